//! A DataFusion session over the store and read-only execution.
//!
//! Tables are Hive-partitioned listing tables (`date`, `hour` partition columns), so filters on
//! them prune whole directories; views are SQL files in `query/sql/`, registered at start.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, TOOL_CALLS};
use calltrail_schemas::audit::{AUDIT_EVENTS, audit_events_schema};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};

use crate::{Error, Result};

/// SQL files defining views, in registration order.
const VIEWS: &[(&str, &str)] = &[("calls", include_str!("../sql/calls.sql"))];

/// Bounds on one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Rows returned at most; more is an error rather than a silent cut.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
        }
    }
}

/// A query engine over one data directory.
pub struct Engine {
    ctx: SessionContext,
    limits: QueryLimits,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn register_table(
    ctx: &SessionContext,
    data_dir: &Path,
    name: &str,
    schema: SchemaRef,
) -> Result<()> {
    let dir = data_dir.join(name);
    if !dir.is_dir() {
        // An empty store still answers queries, with no rows.
        let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(arrow::datatypes::Field::new("date", DataType::Utf8, false));
        fields.push(arrow::datatypes::Field::new("hour", DataType::Utf8, false));
        let full = Arc::new(arrow::datatypes::Schema::new(fields));
        let table = MemTable::try_new(full, vec![vec![]]).map_err(internal)?;
        ctx.register_table(name, Arc::new(table))
            .map_err(internal)?;
        return Ok(());
    }
    let url = format!("{}/", dir.display());
    let url = ListingTableUrl::parse(&url).map_err(internal)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            ("date".into(), DataType::Utf8),
            ("hour".into(), DataType::Utf8),
        ]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(internal)?;
    ctx.register_table(name, Arc::new(table))
        .map_err(internal)?;
    Ok(())
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl Engine {
    /// Registers the store's tables and views over `data_dir`.
    pub async fn open(data_dir: &Path, limits: QueryLimits) -> Result<Self> {
        let config = SessionConfig::new().with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        register_table(
            &ctx,
            data_dir,
            TOOL_CALLS,
            arrow_schema::tool_calls_schema(),
        )?;
        register_table(&ctx, data_dir, LLM_CALLS, arrow_schema::llm_calls_schema())?;
        register_table(&ctx, data_dir, AUDIT_EVENTS, audit_events_schema())?;
        for (name, sql) in VIEWS {
            // Views are ours, so DDL is allowed here and only here.
            let df = ctx
                .sql(sql)
                .await
                .map_err(|e| Error::Internal(format!("view {name}: {e}")))?;
            df.collect()
                .await
                .map_err(|e| Error::Internal(format!("view {name}: {e}")))?;
        }
        Ok(Self { ctx, limits })
    }

    /// Runs one read-only SQL query and collects its results.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let df = self
            .ctx
            .sql_with_options(sql, read_only())
            .await
            .map_err(|e| Error::Plan(e.to_string()))?;
        let df = df
            .limit(0, Some(self.limits.max_rows + 1))
            .map_err(|e| Error::Plan(e.to_string()))?;
        let batches = df
            .collect()
            .await
            .map_err(|e| Error::Execution(e.to_string()))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > self.limits.max_rows {
            return Err(Error::Execution(format!(
                "the result has more than {} rows; add a LIMIT or a narrower filter",
                self.limits.max_rows
            )));
        }
        Ok(batches)
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
