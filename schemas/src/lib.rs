//! Calltrail's canonical tool-call record and the pure functions that produce it.
//!
//! This crate does no I/O. It holds:
//! - [`record`]: the canonical [`ToolCall`] and [`LlmCall`] records and their enums;
//! - [`arrow_schema`]: the versioned Arrow schemas and record → `RecordBatch` builders;
//! - [`audit`]: audit events (legal holds placed and released) and their table;
//! - [`semconv`]: the OpenTelemetry MCP attribute keys and the aliases real instrumentation uses;
//! - [`mapping`]: OTLP `ExportTraceServiceRequest` → records, following `docs/specs/record.md`;
//! - [`attribution`]: who made a call (principal, team, tenant, cost centre), `docs/specs/attribution.md`;
//! - [`catalog`]: the operation class (read, write, delete, admin) of a tool;
//! - [`outcome`]: ok / tool_error / protocol_error / denied from a span's error signals;
//! - [`canonical`]: the canonical record encoding that record hashes cover (`docs/specs/chain.md`);
//! - [`codec`]: the deterministic binary encoding of records that the write-ahead log stores;
//! - [`glob`]: the `*`/`?` patterns configuration uses;
//! - [`sensitive`]: what is kept of tool arguments and results.

pub mod arrow_schema;
pub mod attribution;
pub mod audit;
pub mod canonical;
pub mod catalog;
pub mod codec;
pub mod finding;
pub mod glob;
pub mod mapping;
pub mod otlp_value;
pub mod outcome;
pub mod record;
pub mod semconv;
pub mod sensitive;

pub use attribution::{AttributionConfig, Attributor, Directory};
pub use catalog::ToolCatalog;
pub use mapping::{IngestContext, MappedBatch, Rejection, map_request, span_count};
pub use record::{LlmCall, OperationClass, Outcome, PrincipalKind, Side, ToolCall};

/// Version of the record layout written to every Parquet file (`calltrail.schema_version`).
///
/// Bumped whenever a column is added, removed or changes meaning; readers use it to pick
/// the right interpretation of old files.
pub const SCHEMA_VERSION: u16 = 2;

/// Errors raised while loading attribution inputs (directory, catalog, config).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The principal directory could not be parsed.
    #[error("directory file, line {line}: {message}")]
    Directory {
        /// 1-based line number in the CSV file.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The tool catalog could not be parsed.
    #[error("tool catalog: {0}")]
    Catalog(String),
    /// A configuration value is invalid; the message names the key.
    #[error("{key}: {message}")]
    Config {
        /// Dotted path of the offending key, e.g. `attribution.identity_sources[2].from`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
