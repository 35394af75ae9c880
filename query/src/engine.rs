//! A DataFusion session over the store and read-only, bounded execution.
//!
//! Tables are Hive-partitioned listing tables (`date`, `hour` partition columns), so filters on
//! them prune whole directories; views are SQL files in `query/sql/`.
//!
//! Every query runs in a session of its own, with its own memory pool: one runaway query fails
//! alone ("resources exhausted"), never the server or its neighbours. Only queries are planned
//! (no DDL, DML, `COPY` or statements such as `SET`); the session has no `information_schema`,
//! no URL tables (`SELECT * FROM '/etc/passwd'`) and no file-reading table functions, so SQL can
//! read the store's tables and nothing else. A query longer than `max_sql_bytes` is refused
//! before parsing, one running past `timeout_ms` is cancelled, and a result of more than
//! `max_rows` rows is an error rather than a silent cut.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, TOOL_CALLS};
use calltrail_schemas::audit::{AUDIT_EVENTS, audit_events_schema};
use calltrail_schemas::finding::{ANOMALIES, anomalies_schema};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{Expr, col, lit};
use serde::Deserialize;

use crate::store_source::BucketSource;
use crate::{Error, Result};

/// SQL files defining views, in registration order.
const VIEWS: &[(&str, &str)] = &[
    ("calls", include_str!("../sql/calls.sql")),
    ("sessions", include_str!("../sql/sessions.sql")),
];

/// Bounds on one query: the `[query]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryLimits {
    /// Rows returned at most; more is an error rather than a silent cut. Default 1000000.
    pub max_rows: usize,
    /// Wall time a query may run before it is cancelled, in ms. Default 30000.
    pub timeout_ms: u64,
    /// Memory one query may hold (sorts, joins, aggregations), in MiB. Default 1024.
    pub memory_limit_mib: usize,
    /// The longest SQL text accepted, in bytes. Default 65536.
    pub max_sql_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
            timeout_ms: 30_000,
            memory_limit_mib: 1024,
            max_sql_bytes: 64 * 1024,
        }
    }
}

impl QueryLimits {
    /// Checks every bound; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100_000_000).contains(&self.max_rows) {
            return Err("query.max_rows: must be between 1 and 100000000".into());
        }
        if !(100..=3_600_000).contains(&self.timeout_ms) {
            return Err("query.timeout_ms: must be between 100 and 3600000".into());
        }
        if !(16..=1_048_576).contains(&self.memory_limit_mib) {
            return Err("query.memory_limit_mib: must be between 16 and 1048576".into());
        }
        if !(256..=16 * 1024 * 1024).contains(&self.max_sql_bytes) {
            return Err("query.max_sql_bytes: must be between 256 and 16777216".into());
        }
        Ok(())
    }
}

/// A query engine over one data directory (or a bucket the store was pushed to).
pub struct Engine {
    data_dir: PathBuf,
    limits: QueryLimits,
    /// When set, the tables are read from this bucket instead of `data_dir`.
    bucket: Option<Arc<BucketSource>>,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// Which rows a session may read. The filter is part of the only provider of each table the
/// session has: the unfiltered table is never registered, so no SQL (join, subquery, CTE, the
/// `calls` and `sessions` views built on it) can reach the rows outside the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every row (auditors, admins, the local CLI).
    All,
    /// Rows whose `team` is one of these (team leads).
    Teams(Vec<String>),
    /// Rows whose `tenant` (legal entity) is one of these (jurisdictional auditors).
    Tenants(Vec<String>),
}

impl Scope {
    /// The filter on a calls table; `None` for every row.
    fn filter(&self) -> Option<Expr> {
        let list = |column: &str, values: &[String]| {
            col(column).in_list(values.iter().map(|v| lit(v.clone())).collect(), false)
        };
        match self {
            Self::All => None,
            // An empty list keeps nothing: `IN ()` is false for every row.
            Self::Teams(teams) if teams.is_empty() => Some(lit(false)),
            Self::Tenants(tenants) if tenants.is_empty() => Some(lit(false)),
            Self::Teams(teams) => Some(list("team", teams)),
            Self::Tenants(tenants) => Some(list("tenant", tenants)),
        }
    }
}

/// The partition dates a session's tables are cut to, inclusive (`YYYY-MM-DD`). The chargeback
/// and ROI queries set it so that a month's report reads that month's directories only: the
/// `calls` view's pairing and dedup (window functions over all rows) would otherwise stop
/// filters on `date` from reaching the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    /// The first date read.
    pub first: String,
    /// The last date read.
    pub last: String,
}

/// The Hive partition columns of the store's tables: the calls tables and the audit events are
/// cut by hour, the findings of the detectors by day.
fn partition_cols(name: &str) -> &'static [&'static str] {
    if name == ANOMALIES {
        &["date"]
    } else {
        &["date", "hour"]
    }
}

fn register_table(
    ctx: &SessionContext,
    data_dir: &Path,
    bucket: Option<&BucketSource>,
    name: &str,
    schema: SchemaRef,
    scope: &Scope,
    dates: Option<&DateRange>,
) -> Result<()> {
    let table = match bucket {
        Some(b) => b.table_provider(name, schema)?,
        None => table_provider(data_dir, name, schema)?,
    };
    let dates = dates.map(|d| {
        col("date")
            .gt_eq(lit(d.first.clone()))
            .and(col("date").lt_eq(lit(d.last.clone())))
    });
    let filter = match (scope.filter(), dates) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, b) => a.or(b),
    };
    let Some(filter) = filter else {
        ctx.register_table(name, table).map_err(internal)?;
        return Ok(());
    };
    let scoped = ctx
        .read_table(table)
        .and_then(|df| df.filter(filter))
        .map_err(internal)?;
    ctx.register_table(name, scoped.into_view())
        .map_err(internal)?;
    Ok(())
}

/// An empty table of `schema` and the partition columns, as a table is before its first file.
fn empty_table(name: &str, schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for p in partition_cols(name) {
        fields.push(arrow::datatypes::Field::new(*p, DataType::Utf8, false));
    }
    let full = Arc::new(arrow::datatypes::Schema::new(fields));
    Ok(Arc::new(
        MemTable::try_new(full, vec![vec![]]).map_err(internal)?,
    ))
}

/// The provider of a table: its Hive-partitioned files, or an empty table before any.
fn table_provider(
    data_dir: &Path,
    name: &str,
    schema: SchemaRef,
) -> Result<Arc<dyn TableProvider>> {
    let dir = data_dir.join(name);
    if !dir.is_dir() {
        // An empty store still answers queries, with no rows.
        return empty_table(name, &schema);
    }
    let url = format!("{}/", dir.display());
    let url = ListingTableUrl::parse(&url).map_err(internal)?;
    listing_table(url, name, schema)
}

/// A Hive-partitioned listing table of `name`'s Parquet files under `url`.
pub(crate) fn listing_table(
    url: ListingTableUrl,
    name: &str,
    schema: SchemaRef,
) -> Result<Arc<dyn TableProvider>> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            partition_cols(name)
                .iter()
                .map(|p| ((*p).to_string(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(internal)?;
    Ok(Arc::new(table))
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl Engine {
    /// An engine over the store in `data_dir`. Builds one session at once, so a broken view
    /// is reported here rather than at the first query.
    pub async fn open(data_dir: &Path, limits: QueryLimits) -> Result<Self> {
        limits.validate().map_err(Error::Plan)?;
        let engine = Self {
            data_dir: data_dir.to_owned(),
            limits,
            bucket: None,
        };
        engine.session(&Scope::All, None).await?;
        Ok(engine)
    }

    /// An engine whose tables are read from `bucket` ([`BucketSource`]) rather than a data
    /// directory; [`Engine::data_dir`] is then empty.
    pub async fn open_bucket(bucket: BucketSource, limits: QueryLimits) -> Result<Self> {
        limits.validate().map_err(Error::Plan)?;
        let engine = Self {
            data_dir: PathBuf::new(),
            limits,
            bucket: Some(Arc::new(bucket)),
        };
        engine.session(&Scope::All, None).await?;
        Ok(engine)
    }

    /// A fresh session: the store's tables (as far as `scope` lets it see) and views, and a
    /// memory pool of its own.
    async fn session(&self, scope: &Scope, dates: Option<&DateRange>) -> Result<SessionContext> {
        let data_dir = self.data_dir.as_path();
        let config = SessionConfig::new().with_information_schema(false);
        // No spilling: the memory limit is a hard bound, and queries write nothing to disk.
        let runtime = RuntimeEnvBuilder::new()
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_memory_limit(self.limits.memory_limit_mib << 20, 1.0)
            .build_arc()
            .map_err(internal)?;
        let bucket = self.bucket.as_deref();
        if let Some(b) = bucket {
            b.register(&runtime);
        }
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        register_table(
            &ctx,
            data_dir,
            bucket,
            TOOL_CALLS,
            arrow_schema::tool_calls_schema(),
            scope,
            dates,
        )?;
        register_table(
            &ctx,
            data_dir,
            bucket,
            LLM_CALLS,
            arrow_schema::llm_calls_schema(),
            scope,
            dates,
        )?;
        if *scope == Scope::All {
            register_table(
                &ctx,
                data_dir,
                bucket,
                AUDIT_EVENTS,
                audit_events_schema(),
                scope,
                dates,
            )?;
        } else {
            // Audit events have no team or tenant: scoped sessions see none.
            ctx.register_table(
                AUDIT_EVENTS,
                empty_table(AUDIT_EVENTS, &audit_events_schema())?,
            )
            .map_err(internal)?;
        }
        // Findings carry the team and tenant they concern, so the scope's filter applies.
        register_table(
            &ctx,
            data_dir,
            bucket,
            ANOMALIES,
            anomalies_schema(),
            scope,
            dates,
        )?;
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
        Ok(ctx)
    }

    /// The bounds queries run under.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs one read-only SQL query over every row and collects its results.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.query_scoped(sql, &Scope::All).await
    }

    /// Runs one read-only SQL query over the rows `scope` allows and collects its results. A
    /// query over the `calls` view alone reads only the partitions its `date` filter needs
    /// ([`crate::date_hint`]).
    pub async fn query_scoped(&self, sql: &str, scope: &Scope) -> Result<Vec<RecordBatch>> {
        let dates = if sql.len() <= self.limits.max_sql_bytes {
            crate::date_hint::date_hint(sql)
        } else {
            None
        };
        self.query_within(sql, scope, dates.as_ref()).await
    }

    /// Runs one of Calltrail's own queries (the detectors' rollups) over every row of the
    /// partitions of `dates`: read-only and under the memory limit and timeout like any query,
    /// but with no row cap, since its result is an aggregate the caller consumes, not a page.
    pub(crate) async fn query_internal(
        &self,
        sql: &str,
        dates: &DateRange,
    ) -> Result<Vec<RecordBatch>> {
        let ctx = self.session(&Scope::All, Some(dates)).await?;
        let run = async {
            let df = ctx
                .sql_with_options(sql, read_only())
                .await
                .map_err(|e| Error::Plan(e.to_string()))?;
            df.collect()
                .await
                .map_err(|e| Error::Execution(e.to_string()))
        };
        tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), run)
            .await
            .map_err(|_| {
                Error::Execution(format!(
                    "an internal query ran longer than query.timeout_ms ({} ms)",
                    self.limits.timeout_ms
                ))
            })?
    }

    /// The store's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs one read-only SQL query over the rows `scope` allows in the partitions of `dates`
    /// (every partition when `None`) and collects its results.
    pub async fn query_within(
        &self,
        sql: &str,
        scope: &Scope,
        dates: Option<&DateRange>,
    ) -> Result<Vec<RecordBatch>> {
        if sql.len() > self.limits.max_sql_bytes {
            return Err(Error::Plan(format!(
                "the query is {} bytes; at most {} are accepted (query.max_sql_bytes)",
                sql.len(),
                self.limits.max_sql_bytes
            )));
        }
        let ctx = self.session(scope, dates).await?;
        let run = async {
            let df = ctx
                .sql_with_options(sql, read_only())
                .await
                .map_err(|e| Error::Plan(e.to_string()))?;
            // EXPLAIN must stay the root of its plan; its few rows need no cap.
            let explain = matches!(
                df.logical_plan(),
                LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
            );
            let df = if explain {
                df
            } else {
                df.limit(0, Some(self.limits.max_rows + 1))
                    .map_err(|e| Error::Plan(e.to_string()))?
            };
            df.collect().await.map_err(|e| {
                let text = e.to_string();
                if text.contains("Resources exhausted") {
                    Error::Execution(format!(
                        "the query needs more memory than query.memory_limit_mib ({} MiB) allows: {text}",
                        self.limits.memory_limit_mib
                    ))
                } else {
                    Error::Execution(text)
                }
            })
        };
        // Dropping the query's future on timeout cancels its plan and frees its memory.
        let batches = tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), run)
            .await
            .map_err(|_| {
                Error::Execution(format!(
                    "the query ran longer than query.timeout_ms ({} ms) and was cancelled",
                    self.limits.timeout_ms
                ))
            })??;
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
