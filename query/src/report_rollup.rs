//! Daily report rollups: what the chargeback and ROI reports read instead of the `calls` view.
//!
//! # Why
//!
//! The `calls` view pairs client and server spans and folds retries with window functions over
//! every row, so a month's report through it costs a minute on 10 M calls. The figures the
//! reports need are sums, distinct sets and (for ROI's percentiles) the durations themselves,
//! all of which merge across days. So each day is reduced once to small Parquet parts, and a
//! report over whole days merges the parts of its days.
//!
//! # On disk
//!
//! `<data_dir>/reports/rollup/date=YYYY-MM-DD/`:
//!
//! - `calls_{none,team,cost_center,tenant,user}.parquet`: per key `k` (the grouping column's
//!   value, null for `none`), server, tool and operation class (what a per-call price depends
//!   on): `calls`, `failed_calls` (outcome not `ok`) and summed `duration_ms`;
//! - `principals_{none,team,cost_center,tenant,server}.parquet`: per key, principal and
//!   principal kind: `calls` (ROI's active principals and attribution coverage);
//! - `tokens_{none,team,cost_center,tenant,user}.parquet`: per key (for a key, the LLM calls
//!   with that attribution of their own; `none`, every LLM call) and model
//!   (`coalesce(response_model, request_model)`): summed `input_tokens`, `output_tokens`;
//! - `traces_{team,cost_center,tenant,user}.parquet`: per trace with calls on the day, the
//!   least key of those calls (`k`, the `min` of the chargeback's token query; rows where it
//!   is null are left out). Days merge by taking the `min` again;
//! - `orphans_{team,cost_center,tenant,user}.parquet`: per trace and model, the summed tokens
//!   of the LLM calls without that key of their own: attributed at report time through the
//!   `traces_*` parts of the days the report's SQL would read;
//! - `straddles.parquet`: traces with a call (trace, call id) whose spans fall on different
//!   days, one of them this day, with `first_date` and `last_date`: where the report's first or
//!   last partition could cut a call that the rollup pairs;
//! - `durations.parquet`: one row per call (team, tenant, cost centre, server, `duration_ms`),
//!   sorted by team and duration: ROI's p50/p95 are exact `percentile_cont` figures, which no
//!   histogram gives, so the values themselves are kept (8 bytes a call, compressed);
//! - `sources.sha256`: a digest of the source files the parts were computed from, written last.
//!
//! A part with no rows has no file. Rows belong to the day of their `start_time` (UTC), the
//! same test the reports' SQL applies (`start_time >= from AND start_time < to`).
//!
//! # Invariants and recovery
//!
//! - A day's parts are computed from the `calls` rows of that day, with the day before and the
//!   day after read too (as the reports' SQL does for its range): a call's client and server
//!   records can fall either side of midnight, and an LLM call takes the attribution of its
//!   trace's calls. The digest therefore covers the `tool_calls` and `llm_calls` files (path and
//!   size) of the three days, plus [`FORMAT`]: late data, a retention deletion or a compaction
//!   on any of them, or a new format, makes the day stale, and it is computed again on next use.
//! - Only days that ended before yesterday (UTC) are stored: the day after yesterday is today,
//!   whose files change all the time. Yesterday and today are computed in memory per report.
//! - The digest file is removed before the parts are rewritten and written (atomically) after
//!   them, so a crash part-way leaves a day without digest: computed again, never half-read.
//! - Rollups are built for every row (no scope). A scoped caller's report reads them only when
//!   the scope is on the grouping column itself (a team lead by team, a tenant auditor by
//!   tenant): the organisation's report, cut to the caller's groups. Any other scoped report is
//!   the raw SQL under the scope (`docs/reports.md`).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, TOOL_CALLS};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use crate::engine::{DateRange, Engine};
use crate::files::write_parquet;

/// The version of the parts' definitions, part of every digest: changing a part's SQL or
/// columns bumps it, and every stored day is computed again.
const FORMAT: &str = "calltrail report rollup v2";

/// Name of the file recording which sources a day's parts were computed from.
const SOURCES: &str = "sources.sha256";

/// Stale days computed together, in one pass over the `calls` view (plus a day each side): more
/// days per pass read fewer margin days, fewer hold less in memory and fit the query timeout.
const CHUNK_DAYS: usize = 4;

/// Why a rollup could not be read or built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RollupError {
    /// A file or directory of the rollup could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A stored part is not readable Parquet.
    #[error("{path}: {message}")]
    Corrupt {
        /// The part's file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The query that computes a day failed.
    #[error("computing the rollup of {date}: {source}")]
    Query {
        /// The day.
        date: NaiveDate,
        /// The query's error.
        source: Box<crate::Error>,
    },
    /// Writing a part failed.
    #[error("storing the rollup of {date}: {source}")]
    Store {
        /// The day.
        date: NaiveDate,
        /// The writer's error.
        source: Box<crate::Error>,
    },
}

impl From<RollupError> for crate::Error {
    fn from(e: RollupError) -> Self {
        crate::Error::Execution(e.to_string())
    }
}

type Result<T, E = RollupError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RollupError + '_ {
    move |source| RollupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The column a part is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// No key: the whole organisation (`k` is null).
    None,
    /// The call's team.
    Team,
    /// The call's cost centre.
    CostCenter,
    /// The call's tenant.
    Tenant,
    /// The call's principal.
    User,
    /// The call's MCP server.
    Server,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Team => "team",
            Self::CostCenter => "cost_center",
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::Server => "server",
        }
    }

    /// The key on a `calls` row (the same expressions as the reports' SQL).
    fn call_expr(self) -> &'static str {
        match self {
            Self::None => "CAST(NULL AS VARCHAR)",
            Self::Team => "team",
            Self::CostCenter => "cost_center",
            Self::Tenant => "tenant",
            Self::User => "principal",
            Self::Server => "server_name",
        }
    }

    /// The LLM call's own attribution on an `llm_calls` row `l` (`None` for the keys an LLM
    /// call has none of).
    fn own_llm_expr(self) -> Option<&'static str> {
        match self {
            Self::None | Self::Server => None,
            Self::Team => Some("l.team"),
            Self::CostCenter => Some("l.cost_center"),
            Self::Tenant => Some("l.tenant"),
            Self::User => Some("l.principal"),
        }
    }
}

/// One part of a day's rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// Calls, failures and duration per key, server, tool and operation class.
    Calls(Key),
    /// Calls per key, principal and principal kind.
    Principals(Key),
    /// Token sums per key and model: for `none`, every LLM call's; for a key, those of the LLM
    /// calls with a key of their own (the others are in [`Part::Orphans`]).
    Tokens(Key),
    /// Per trace with calls on the day: the least key of its calls (`min`, as the chargeback's
    /// token query takes it), when any has one.
    Traces(Key),
    /// Token sums of the LLM calls without a key of their own, per trace and model.
    Orphans(Key),
    /// Traces with a call whose spans fall on different days, one of them this day, with the
    /// first and last of those days: where a report's margin could cut a call in two.
    Straddles,
    /// Every call's duration with its team, tenant, cost centre and server.
    Durations,
}

/// Keys of the `calls_*` parts: what chargeback groups by (server and tool come from `none`).
const CALL_KEYS: [Key; 5] = [
    Key::None,
    Key::Team,
    Key::CostCenter,
    Key::Tenant,
    Key::User,
];
/// Keys of the `traces_*` and `orphans_*` parts: the attribution an LLM call can take from its
/// trace.
const TRACE_KEYS: [Key; 4] = [Key::Team, Key::CostCenter, Key::Tenant, Key::User];
/// Keys of the `principals_*` parts: what ROI groups by.
const PRINCIPAL_KEYS: [Key; 5] = [
    Key::None,
    Key::Team,
    Key::CostCenter,
    Key::Tenant,
    Key::Server,
];

impl Part {
    /// Every part a day has.
    fn all() -> Vec<Part> {
        let mut parts: Vec<Part> = CALL_KEYS.iter().map(|k| Part::Calls(*k)).collect();
        parts.extend(PRINCIPAL_KEYS.iter().map(|k| Part::Principals(*k)));
        parts.extend(CALL_KEYS.iter().map(|k| Part::Tokens(*k)));
        parts.extend(TRACE_KEYS.iter().map(|k| Part::Traces(*k)));
        parts.extend(TRACE_KEYS.iter().map(|k| Part::Orphans(*k)));
        parts.push(Part::Straddles);
        parts.push(Part::Durations);
        parts
    }

    fn stem(self) -> String {
        match self {
            Part::Calls(k) => format!("calls_{}", k.name()),
            Part::Principals(k) => format!("principals_{}", k.name()),
            Part::Tokens(k) => format!("tokens_{}", k.name()),
            Part::Traces(k) => format!("traces_{}", k.name()),
            Part::Orphans(k) => format!("orphans_{}", k.name()),
            Part::Straddles => "straddles".into(),
            Part::Durations => "durations".into(),
        }
    }

    /// The part's query over one day's calls `d`, LLM calls `dl` and calls across days `st`.
    fn sql(self) -> String {
        match self {
            Part::Calls(k) => format!(
                "SELECT {e} AS k, server_name, tool_name, operation_class, count(*) AS calls, \
                 sum(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS failed_calls, \
                 sum(duration_ms) AS duration_ms \
                 FROM d GROUP BY {e}, server_name, tool_name, operation_class",
                e = k.call_expr()
            ),
            Part::Principals(k) => format!(
                "SELECT {e} AS k, principal, principal_kind, count(*) AS calls \
                 FROM d GROUP BY {e}, principal, principal_kind",
                e = k.call_expr()
            ),
            Part::Tokens(k) => {
                let (e, filter) = match k.own_llm_expr() {
                    Some(e) => (e, format!("{e} IS NOT NULL")),
                    None => ("CAST(NULL AS VARCHAR)", "TRUE".to_owned()),
                };
                format!(
                    "SELECT {e} AS k, l.model AS model, sum(l.input_tokens) AS input_tokens, \
                     sum(l.output_tokens) AS output_tokens \
                     FROM dl l WHERE {filter} GROUP BY {e}, l.model"
                )
            }
            Part::Traces(k) => format!(
                "SELECT trace_id, min({e}) AS k FROM d WHERE trace_id IS NOT NULL \
                 GROUP BY trace_id HAVING min({e}) IS NOT NULL",
                e = k.call_expr()
            ),
            Part::Orphans(k) => format!(
                "SELECT l.trace_id AS trace_id, l.model AS model, \
                 sum(l.input_tokens) AS input_tokens, sum(l.output_tokens) AS output_tokens \
                 FROM dl l WHERE {e} IS NULL GROUP BY l.trace_id, l.model",
                e = k.own_llm_expr().unwrap_or("NULL")
            ),
            Part::Straddles => "SELECT DISTINCT trace_id, first_date, last_date FROM st".into(),
            Part::Durations => "SELECT team, tenant, cost_center, server_name, duration_ms \
                                FROM d ORDER BY team, duration_ms"
                .into(),
        }
    }
}

/// One day's parts, as far as asked for (a part with no rows has no batches).
#[derive(Debug, Clone, Default)]
pub(crate) struct DayParts {
    parts: HashMap<Part, Vec<RecordBatch>>,
}

impl DayParts {
    /// The batches of `part` (none when the part is empty or was not asked for).
    pub(crate) fn get(&self, part: Part) -> &[RecordBatch] {
        self.parts.get(&part).map_or(&[], Vec::as_slice)
    }
}

/// How a day's rollup was obtained (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Obtained {
    /// Read back from its files: its sources had not changed.
    Reused,
    /// Computed from the calls and stored.
    Built,
    /// Computed from the calls, not stored (yesterday or today).
    InMemory,
    /// The day has no source files.
    Empty,
}

/// The directory of a day's rollup.
pub(crate) fn day_dir(data_dir: &Path, date: NaiveDate) -> PathBuf {
    data_dir
        .join("reports")
        .join("rollup")
        .join(format!("date={}", date.format("%Y-%m-%d")))
}

/// Parquet files of `table` in the partitions of `date`, as `path size` lines.
fn listing(data_dir: &Path, table: &str, date: NaiveDate, out: &mut Vec<String>) -> Result<()> {
    let day = data_dir
        .join(table)
        .join(format!("date={}", date.format("%Y-%m-%d")));
    let hours = match fs::read_dir(&day) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&day)(e)),
    };
    for hour in hours {
        let hour = hour.map_err(io_err(&day))?.path();
        // A file beside the hour directories, or an hour removed meanwhile, holds no rows.
        let Ok(entries) = fs::read_dir(&hour) else {
            continue;
        };
        for f in entries {
            let f = f.map_err(io_err(&hour))?;
            let p = f.path();
            if p.extension().is_some_and(|x| x == "parquet") {
                let len = f.metadata().map_err(io_err(&p))?.len();
                out.push(format!("{} {len}", p.display()));
            }
        }
    }
    Ok(())
}

/// The digest of what `date`'s parts are computed from: the source files of the day and of
/// the day either side, and [`FORMAT`]. `None` when the day itself has no source file (then it
/// has no rows either).
pub(crate) fn source_digest(data_dir: &Path, date: NaiveDate) -> Result<Option<String>> {
    let mut own = Vec::new();
    for table in [TOOL_CALLS, LLM_CALLS] {
        listing(data_dir, table, date, &mut own)?;
    }
    if own.is_empty() {
        return Ok(None);
    }
    let mut files = own;
    for neighbour in [date - Duration::days(1), date + Duration::days(1)] {
        for table in [TOOL_CALLS, LLM_CALLS] {
            listing(data_dir, table, neighbour, &mut files)?;
        }
    }
    files.sort();
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(b"\n");
    for f in &files {
        h.update(f.as_bytes());
        h.update(b"\n");
    }
    Ok(Some(hex::encode(h.finalize())))
}

/// Reads a stored part, only `columns` when given; a missing file is an empty part.
fn read_part(path: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let corrupt = |e: parquet::errors::ParquetError| RollupError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(corrupt)?
        .with_batch_size(64 * 1024);
    if let Some(columns) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    builder
        .build()
        .map_err(corrupt)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| RollupError::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Replaces a part's file with `batches` (atomically), or removes it when there are none.
fn write_part(path: &Path, date: NaiveDate, batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        return match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(path)(e)),
        };
    };
    let store = |e: crate::Error| RollupError::Store {
        date,
        source: Box::new(e),
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches)
        .map_err(|e| store(crate::Error::Internal(e.to_string())))?;
    write_parquet(&batch, path).map_err(store)
}

/// Writes the digest last, through a synced temporary file, so it names complete parts only.
fn write_sources(dir: &Path, digest: &str) -> Result<()> {
    let path = dir.join(SOURCES);
    let tmp = dir.join(format!(".{SOURCES}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(format!("{digest}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    // The rename is durable once the directory is: best effort, as a lost digest only means
    // the day is computed again.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_sources(dir: &Path) -> Result<()> {
    let path = dir.join(SOURCES);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Midnight (UTC) starting `date`.
pub(crate) fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn ts_sql(t: DateTime<Utc>) -> String {
    format!(
        "CAST('{}' AS TIMESTAMP)",
        t.format("%Y-%m-%dT%H:%M:%S%.9fZ")
    )
}

/// The columns of the calls a chunk keeps in memory, as the view gives them.
fn calls_schema() -> SchemaRef {
    let tool_calls = arrow_schema::tool_calls_schema();
    let field = |name: &str| {
        tool_calls
            .field_with_name(name)
            .map(|f| f.clone().with_nullable(true))
            .unwrap_or_else(|_| Field::new(name, DataType::Utf8, true))
    };
    Arc::new(Schema::new(
        [
            "start_time",
            "trace_id",
            "team",
            "cost_center",
            "tenant",
            "principal",
            "principal_kind",
            "server_name",
            "tool_name",
            "operation_class",
            "outcome",
            "duration_ms",
        ]
        .into_iter()
        .map(field)
        .collect::<Vec<_>>(),
    ))
}

/// The columns of the LLM calls a chunk keeps in memory.
fn llm_schema() -> SchemaRef {
    let ts = arrow_schema::tool_calls_schema()
        .field_with_name("start_time")
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Timestamp(
            arrow::datatypes::TimeUnit::Nanosecond,
            None,
        ));
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("start_time", ts, true),
        s("trace_id"),
        s("team"),
        s("cost_center"),
        s("tenant"),
        s("principal"),
        s("model"),
        Field::new("input_tokens", DataType::Int64, true),
        Field::new("output_tokens", DataType::Int64, true),
    ]))
}

/// The columns of the calls across days a chunk keeps in memory.
fn straddles_schema() -> SchemaRef {
    Arc::new(Schema::new(
        ["trace_id", "first_date", "last_date"]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// `batches` with the columns of `schema`, cast by name (the engine may hand back views of
/// strings, or dictionary columns, where the parts want plain types).
fn conform(batches: Vec<RecordBatch>, schema: &SchemaRef) -> crate::Result<Vec<RecordBatch>> {
    let internal = |e: arrow::error::ArrowError| crate::Error::Internal(e.to_string());
    batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            let columns = schema
                .fields()
                .iter()
                .map(|f| {
                    let c = b.column_by_name(f.name()).ok_or_else(|| {
                        crate::Error::Internal(format!("the rollup lost its {} column", f.name()))
                    })?;
                    arrow::compute::cast(c, f.data_type()).map_err(internal)
                })
                .collect::<crate::Result<Vec<_>>>()?;
            RecordBatch::try_new(schema.clone(), columns).map_err(internal)
        })
        .collect()
}

fn register(
    ctx: &SessionContext,
    name: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> crate::Result<()> {
    let internal = |e: datafusion::error::DataFusionError| crate::Error::Internal(e.to_string());
    let _ = ctx.deregister_table(name).map_err(internal)?;
    let table = MemTable::try_new(schema.clone(), vec![batches]).map_err(internal)?;
    ctx.register_table(name, Arc::new(table))
        .map_err(internal)?;
    Ok(())
}

async fn collect(ctx: &SessionContext, sql: &str) -> crate::Result<Vec<RecordBatch>> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| crate::Error::Internal(format!("rollup query: {e}")))?;
    let batches = df
        .collect()
        .await
        .map_err(|e| crate::Error::Execution(format!("rollup query: {e}")))?;
    Ok(batches.into_iter().filter(|b| b.num_rows() > 0).collect())
}

/// Computes every part of the consecutive days `days` in one pass over the `calls` view (with
/// a day's margin each side).
async fn build_chunk(engine: &Engine, days: &[NaiveDate]) -> crate::Result<Vec<DayParts>> {
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(Vec::new());
    };
    let margin = DateRange {
        first: (first - Duration::days(1)).format("%Y-%m-%d").to_string(),
        last: (last + Duration::days(1)).format("%Y-%m-%d").to_string(),
    };
    // Every call of the margin days too: they pair with the chunk's and attribute its traces.
    let calls = engine
        .query_internal(
            "SELECT start_time, trace_id, team, cost_center, tenant, principal, principal_kind, \
             server_name, tool_name, operation_class, outcome, duration_ms FROM calls",
            &margin,
        )
        .await?;
    let (from, to) = (midnight(first), midnight(last + Duration::days(1)));
    let llm = engine
        .query_internal(
            &format!(
                "SELECT start_time, trace_id, team, cost_center, tenant, principal, \
                 coalesce(response_model, request_model) AS model, \
                 coalesce(input_tokens, 0) AS input_tokens, \
                 coalesce(output_tokens, 0) AS output_tokens \
                 FROM llm_calls WHERE start_time >= {} AND start_time < {}",
                ts_sql(from),
                ts_sql(to)
            ),
            &margin,
        )
        .await?;
    // Calls whose spans lie on different days (a call across midnight): a report whose
    // margin day cuts one pairs it differently from the rollup, which reads a day each side.
    let straddling = engine
        .query_internal(
            "SELECT trace_id, min(CAST(date AS VARCHAR)) AS first_date, \
             max(CAST(date AS VARCHAR)) AS last_date FROM tool_calls WHERE is_request \
             GROUP BY trace_id, call_id HAVING min(CAST(date AS VARCHAR)) <> max(CAST(date AS VARCHAR))",
            &margin,
        )
        .await?;
    let (calls_schema, llm_schema, st_schema) = (calls_schema(), llm_schema(), straddles_schema());
    let ctx = SessionContext::new();
    register(&ctx, "c", &calls_schema, conform(calls, &calls_schema)?)?;
    register(&ctx, "l_all", &llm_schema, conform(llm, &llm_schema)?)?;
    register(&ctx, "st_all", &st_schema, conform(straddling, &st_schema)?)?;
    let mut out = Vec::with_capacity(days.len());
    for day in days {
        let range = format!(
            "start_time >= {} AND start_time < {}",
            ts_sql(midnight(*day)),
            ts_sql(midnight(*day + Duration::days(1)))
        );
        let d = collect(&ctx, &format!("SELECT * FROM c WHERE {range}")).await?;
        register(&ctx, "d", &calls_schema, conform(d, &calls_schema)?)?;
        let dl = collect(&ctx, &format!("SELECT * FROM l_all WHERE {range}")).await?;
        register(&ctx, "dl", &llm_schema, conform(dl, &llm_schema)?)?;
        let date = format!("'{}'", day.format("%Y-%m-%d"));
        let st = collect(
            &ctx,
            &format!("SELECT * FROM st_all WHERE first_date <= {date} AND last_date >= {date}"),
        )
        .await?;
        register(&ctx, "st", &st_schema, conform(st, &st_schema)?)?;
        let mut parts = DayParts::default();
        for part in Part::all() {
            parts.parts.insert(part, collect(&ctx, &part.sql()).await?);
        }
        out.push(parts);
    }
    Ok(out)
}

/// Stores a computed day: digest removed, parts replaced, digest written.
fn store_day(data_dir: &Path, date: NaiveDate, parts: &DayParts, digest: &str) -> Result<()> {
    let dir = day_dir(data_dir, date);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    remove_sources(&dir)?;
    for part in Part::all() {
        write_part(
            &dir.join(format!("{}.parquet", part.stem())),
            date,
            parts.get(part),
        )?;
    }
    write_sources(&dir, digest)
}

/// Reads the `wanted` parts of a stored day (durations: only `duration_ms` and the columns
/// named in `duration_columns`).
fn read_day(dir: &Path, wanted: &[Part], duration_columns: &[&str]) -> Result<DayParts> {
    let mut parts = DayParts::default();
    for part in wanted {
        let path = dir.join(format!("{}.parquet", part.stem()));
        let batches = if *part == Part::Durations {
            let mut columns = duration_columns.to_vec();
            columns.push("duration_ms");
            read_part(&path, Some(&columns))?
        } else {
            read_part(&path, None)?
        };
        parts.parts.insert(*part, batches);
    }
    Ok(parts)
}

/// Serialises building, so that two reports never write the same part at once.
static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `wanted` parts of each of `days` (ascending), with how each was obtained: read back
/// when its sources are unchanged, else computed (and stored, when the day ended before
/// yesterday). `duration_columns` are the key columns of `durations` the caller reads.
pub(crate) async fn days(
    engine: &Engine,
    days: &[NaiveDate],
    wanted: &[Part],
    duration_columns: &[&str],
) -> crate::Result<Vec<(DayParts, Obtained)>> {
    days_as_of(
        engine,
        days,
        wanted,
        duration_columns,
        Utc::now().date_naive(),
    )
    .await
}

/// [`days`] with `today` given (tests pin it).
pub(crate) async fn days_as_of(
    engine: &Engine,
    days: &[NaiveDate],
    wanted: &[Part],
    duration_columns: &[&str],
    today: NaiveDate,
) -> crate::Result<Vec<(DayParts, Obtained)>> {
    let data_dir = engine.data_dir().to_owned();
    let storable = |d: NaiveDate| d + Duration::days(2) <= today;
    let mut out: Vec<Option<(DayParts, Obtained)>> = vec![None; days.len()];
    let mut digests: Vec<Option<String>> = Vec::with_capacity(days.len());
    let columns: Vec<String> = duration_columns.iter().map(|c| (*c).to_owned()).collect();
    let mut reads = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let digest = source_digest(&data_dir, *day)?;
        let Some(d) = &digest else {
            out[i] = Some((DayParts::default(), Obtained::Empty));
            digests.push(None);
            continue;
        };
        let dir = day_dir(&data_dir, *day);
        let stored = fs::read_to_string(dir.join(SOURCES)).is_ok_and(|s| s.trim() == d);
        if storable(*day) && stored {
            // Stored days are read on the blocking pool, in parallel: decoding is the cost.
            let (wanted, columns) = (wanted.to_vec(), columns.clone());
            reads.push((
                i,
                tokio::task::spawn_blocking(move || {
                    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
                    read_day(&dir, &wanted, &cols)
                }),
            ));
        }
        digests.push(digest);
    }
    for (i, read) in reads {
        let parts = read
            .await
            .map_err(|e| crate::Error::Internal(format!("reading a rollup: {e}")))??;
        out[i] = Some((parts, Obtained::Reused));
    }
    let stale: Vec<usize> = (0..days.len()).filter(|i| out[*i].is_none()).collect();
    if !stale.is_empty() {
        let _guard = BUILDING.lock().await;
        // Consecutive stale days in chunks: a chunk reads its days and one either side.
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        for i in stale {
            match chunks.last_mut() {
                Some(c)
                    if c.len() < CHUNK_DAYS
                        && c.last()
                            .is_some_and(|l| days[*l] + Duration::days(1) == days[i]) =>
                {
                    c.push(i);
                }
                _ => chunks.push(vec![i]),
            }
        }
        for chunk in chunks {
            let chunk_days: Vec<NaiveDate> = chunk.iter().map(|i| days[*i]).collect();
            let built = build_chunk(engine, &chunk_days)
                .await
                .map_err(|e| RollupError::Query {
                    date: chunk_days[0],
                    source: Box::new(e),
                })?;
            for (i, mut parts) in chunk.into_iter().zip(built) {
                let how = match &digests[i] {
                    Some(digest) if storable(days[i]) => {
                        store_day(&data_dir, days[i], &parts, digest)?;
                        Obtained::Built
                    }
                    _ => Obtained::InMemory,
                };
                parts.parts.retain(|p, _| wanted.contains(p));
                out[i] = Some((parts, how));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or((DayParts::default(), Obtained::Empty)))
        .collect())
}

/// The whole days within `[from, to)`: from the first midnight at or after `from` to the last
/// at or before `to`. Empty when the range holds no whole day.
pub(crate) fn whole_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let mut first = from.date_naive();
    if midnight(first) < from {
        first += Duration::days(1);
    }
    let end = to.date_naive();
    let mut out = Vec::new();
    let mut d = first;
    while d < end {
        out.push(d);
        d += Duration::days(1);
    }
    out
}

/// Builds (or checks) the stored rollup of every day in `[first, last]` that ended before
/// yesterday: a warm-up for a server, so the first report after start-up reads rollups only.
/// Returns how many days were computed.
pub async fn warm_up(engine: &Engine, first: NaiveDate, last: NaiveDate) -> crate::Result<usize> {
    let today = Utc::now().date_naive();
    let mut days = Vec::new();
    let mut d = first;
    while d <= last && d + Duration::days(2) <= today {
        days.push(d);
        d += Duration::days(1);
    }
    let got = days_as_of(engine, &days, &[], &[], today).await?;
    Ok(got
        .iter()
        .filter(|(_, how)| *how == Obtained::Built)
        .count())
}

#[cfg(test)]
#[path = "report_rollup_tests.rs"]
mod tests;
