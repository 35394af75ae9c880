//! The query_10m benchmark's parts: the synthetic data set and its generator, the DuckDB run,
//! the cross-check of both engines' answers, and session-setting experiments.

pub(crate) mod calls;
pub(crate) mod compare;
pub(crate) mod duckdb;
pub(crate) mod experiments;
pub(crate) mod generate;
pub(crate) mod population;
pub(crate) mod rng;

/// Errors of the benchmark: printed and the process exits non-zero.
pub(crate) type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
