//! Session-setting experiments: a local copy of the engine's session (`query/src/engine.rs`:
//! the same listing tables, runtime and views), with DataFusion options and the `calls` view
//! text varied, to measure what a change to the engine would buy before anyone makes it.
//!
//! Keep [`session`] in step with `Engine::session`: the baseline variant must time like
//! `Engine::query`, or the comparisons mean nothing (the bench prints both).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, TOOL_CALLS};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

use super::BenchResult;

/// The engine's `calls` view.
pub(crate) const CALLS_SQL: &str = include_str!("../../sql/calls.sql");

/// One variant of the session.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// What it changes, for the report.
    pub(crate) name: String,
    /// DataFusion options set on the session (`datafusion.execution.target_partitions`, ...).
    pub(crate) options: Vec<(String, String)>,
    /// The `CREATE VIEW calls` statement.
    pub(crate) calls_sql: String,
    /// Build the session once and reuse it, instead of one per query as the engine does.
    pub(crate) reuse_session: bool,
}

impl Variant {
    /// The engine's own settings.
    pub(crate) fn baseline() -> Self {
        Self {
            name: "engine settings (local copy)".into(),
            options: Vec::new(),
            calls_sql: CALLS_SQL.into(),
            reuse_session: false,
        }
    }
}

fn listing_table(data_dir: &Path, name: &str, schema: SchemaRef) -> BenchResult<ListingTable> {
    let url = ListingTableUrl::parse(format!("{}/", data_dir.join(name).display()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            ("date".into(), DataType::Utf8),
            ("hour".into(), DataType::Utf8),
        ]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(ListingTable::try_new(config)?)
}

/// A session like the engine's, with `variant`'s options and `calls` view.
pub(crate) async fn session(
    data_dir: &Path,
    memory_mib: usize,
    variant: &Variant,
) -> BenchResult<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(false);
    for (k, v) in &variant.options {
        config.options_mut().set(k, v)?;
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .with_memory_limit(memory_mib << 20, 1.0)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for (name, schema) in [
        (TOOL_CALLS, arrow_schema::tool_calls_schema()),
        (LLM_CALLS, arrow_schema::llm_calls_schema()),
    ] {
        ctx.register_table(name, Arc::new(listing_table(data_dir, name, schema)?))?;
    }
    ctx.sql(&variant.calls_sql).await?.collect().await?;
    Ok(ctx)
}

/// Best and every run's seconds of `sql` under `variant`, after one warm-up, and the last
/// run's rows.
pub(crate) async fn time(
    data_dir: &Path,
    memory_mib: usize,
    variant: &Variant,
    sql: &str,
    runs: usize,
) -> BenchResult<(Vec<f64>, usize)> {
    let shared = if variant.reuse_session {
        Some(session(data_dir, memory_mib, variant).await?)
    } else {
        None
    };
    let mut times = Vec::new();
    let mut rows = 0;
    for i in 0..=runs {
        let started = Instant::now();
        let ctx = match &shared {
            Some(ctx) => ctx.clone(),
            None => session(data_dir, memory_mib, variant).await?,
        };
        let batches = ctx.sql(sql).await?.collect().await?;
        let secs = started.elapsed().as_secs_f64();
        rows = batches.iter().map(RecordBatch::num_rows).sum();
        if i > 0 {
            times.push(secs);
        }
    }
    Ok((times, rows))
}

/// The variants the bench times with `--experiments`.
pub(crate) fn variants() -> Vec<Variant> {
    vec![Variant::baseline()]
}
