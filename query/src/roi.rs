//! ROI: is MCP adoption paying off? Per ISO week (Monday 00:00 UTC) and group: weekly active
//! principals (and how many of them are people), calls, success rate (ok / all), p50 and p95
//! latency, distinct servers and tools in use, attribution coverage (the share of calls made
//! by a human principal), the week-over-week change in active principals, and the top tools.
//!
//! Figures come from the `calls` view (each call once), under the caller's scope. Latency
//! percentiles are DataFusion's `percentile_cont` (exact, linear interpolation between closest
//! ranks), which truncates the interpolation weight to 6 decimals: a figure can sit up to a
//! millionth of the gap between two neighbouring durations below the textbook value (2699.998
//! for 2700 ms in `tests/slt/roi.slt`).
//!
//! A report over every row and whole days reads the daily rollups instead
//! ([`crate::report_rollup`]), and so does a team lead's by team or a tenant auditor's by tenant
//! (cut to their groups; `RollupView`): counts add up, distinct principals,
//! servers and tools are unions of the days' sets, and the percentiles are computed from the
//! days' kept durations exactly as `percentile_cont` does, so both paths give the same report.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, RecordBatch, StringArray};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Serialize;

use crate::chargeback::{Dimension, dates_for};
use crate::columns::Columns;
use crate::engine::{Engine, Scope};
use crate::report_rollup::{self, Key, Part};
use crate::{Error, Result};

/// How many tools `top_tools` lists per group.
pub const TOP_TOOLS: usize = 5;

/// What to compute.
#[derive(Debug, Clone)]
pub struct RoiRequest {
    /// Start of the range, inclusive.
    pub from: DateTime<Utc>,
    /// End of the range, exclusive.
    pub to: DateTime<Utc>,
    /// The grouping column (team, tenant, cost centre or server); `None` for the whole
    /// organisation.
    pub by: Option<Dimension>,
}

/// One group in one week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoiWeek {
    /// Monday 00:00 UTC of the week (the first and last week may be partly outside the range).
    pub week_start: DateTime<Utc>,
    /// The group (`None`: not attributed, or the whole organisation without `by`).
    pub key: Option<String>,
    /// Distinct principals with at least one call.
    pub active_principals: i64,
    /// Of those, the people.
    pub active_humans: i64,
    /// Calls.
    pub calls: i64,
    /// Calls whose outcome was `ok`.
    pub ok_calls: i64,
    /// `ok_calls / calls`.
    pub success_rate: f64,
    /// Median call duration, ms.
    pub p50_ms: f64,
    /// 95th percentile of call duration, ms (continuous, interpolated).
    pub p95_ms: f64,
    /// Distinct MCP servers called.
    pub servers: i64,
    /// Distinct tools called.
    pub tools: i64,
    /// Share of calls with a human principal.
    pub attribution_coverage: f64,
    /// Change in active principals against the group's previous week, as a fraction
    /// (0.25 = 25 % more); `None` in a group's first week.
    pub active_change: Option<f64>,
}

/// A much-used tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopTool {
    /// The group.
    pub key: Option<String>,
    /// The tool's server.
    pub server: Option<String>,
    /// The tool.
    pub tool: String,
    /// Calls over the whole range.
    pub calls: i64,
}

/// A computed ROI report.
#[derive(Debug, Clone, Serialize)]
pub struct Roi {
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// The grouping column.
    pub by: Option<Dimension>,
    /// One row per group and week, by group then week.
    pub weeks: Vec<RoiWeek>,
    /// The [`TOP_TOOLS`] most-called tools of each group over the range.
    pub top_tools: Vec<TopTool>,
}

fn range_sql(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ts = |t: DateTime<Utc>| {
        format!(
            "CAST('{}' AS TIMESTAMP)",
            t.format("%Y-%m-%dT%H:%M:%S%.9fZ")
        )
    };
    format!("start_time >= {} AND start_time < {}", ts(from), ts(to))
}

fn key_sql(by: Option<Dimension>) -> Result<&'static str> {
    Ok(match by {
        None => "CAST(NULL AS VARCHAR)",
        Some(Dimension::Team) => "team",
        Some(Dimension::Tenant) => "tenant",
        Some(Dimension::CostCenter) => "cost_center",
        Some(Dimension::Server) => "server_name",
        Some(d) => {
            return Err(Error::Plan(format!(
                "ROI groups by team, tenant, cost_center or server, not {}",
                d.as_str()
            )));
        }
    })
}

/// SQL of the weekly figures.
pub fn weeks_sql(request: &RoiRequest) -> Result<String> {
    Ok(format!(
        "SELECT date_trunc('week', start_time) AS week_start, {key} AS k0, \
         count(DISTINCT principal) AS active_principals, \
         count(DISTINCT CASE WHEN principal_kind = 'human' THEN principal END) AS active_humans, \
         count(*) AS calls, \
         sum(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS ok_calls, \
         sum(CASE WHEN principal_kind = 'human' THEN 1 ELSE 0 END) AS human_calls, \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms, \
         percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms, \
         count(DISTINCT server_name) AS servers, \
         count(DISTINCT tool_name) AS tools \
         FROM calls WHERE {range} GROUP BY week_start, k0 ORDER BY k0, week_start",
        key = key_sql(request.by)?,
        range = range_sql(request.from, request.to),
    ))
}

/// SQL of the top tools per group.
pub fn top_tools_sql(request: &RoiRequest) -> Result<String> {
    Ok(format!(
        "SELECT k0, server_name, tool_name, calls FROM (\
           SELECT k0, server_name, tool_name, calls, row_number() OVER (\
             PARTITION BY k0 ORDER BY calls DESC, server_name, tool_name) AS rank \
           FROM (SELECT {key} AS k0, server_name, tool_name, count(*) AS calls \
                 FROM calls WHERE {range} AND tool_name IS NOT NULL \
                 GROUP BY k0, server_name, tool_name)) \
         WHERE rank <= {TOP_TOOLS} ORDER BY k0, rank",
        key = key_sql(request.by)?,
        range = range_sql(request.from, request.to),
    ))
}

/// Computes the ROI report over the rows `scope` allows.
pub async fn compute(engine: &Engine, request: &RoiRequest, scope: &Scope) -> Result<Roi> {
    compute_with(engine, request, scope, true).await
}

/// [`compute`], from the raw SQL only when `rollups` is false (the tests' reference).
pub(crate) async fn compute_with(
    engine: &Engine,
    request: &RoiRequest,
    scope: &Scope,
    rollups: bool,
) -> Result<Roi> {
    if request.from >= request.to {
        return Err(Error::Plan("from must be before to".into()));
    }
    let from_rollups = match rollup_view(request, scope).filter(|_| rollups) {
        Some(view) => match rollup_figures(engine, &view.request).await {
            Ok(figures) => figures.map(|f| view.keep(f)),
            Err(e) => {
                tracing::warn!(error = %e, "The ROI report could not use the daily rollups; computing it from the calls.");
                None
            }
        },
        // Any other scoped caller's figures come from their own rows: the raw SQL under the scope.
        None => None,
    };
    let (mut weeks, top_tools) = match from_rollups {
        Some(figures) => figures,
        None => raw_figures(engine, request, scope).await?,
    };
    weeks.sort_by(|a, b| a.key.cmp(&b.key).then(a.week_start.cmp(&b.week_start)));
    for i in 1..weeks.len() {
        let (prev, this) = (&weeks[i - 1], &weeks[i]);
        // Only against the week just before: a group absent for a week starts afresh.
        if prev.key == this.key
            && this.week_start - prev.week_start == Duration::weeks(1)
            && prev.active_principals > 0
        {
            let change = (this.active_principals - prev.active_principals) as f64
                / prev.active_principals as f64;
            weeks[i].active_change = Some(change);
        }
    }
    Ok(Roi {
        from: request.from,
        to: request.to,
        by: request.by,
        weeks,
        top_tools,
    })
}

/// How a caller's report is cut from the whole organisation's rollup figures.
struct RollupView<'a> {
    /// The organisation-wide report to compute.
    request: RoiRequest,
    /// The groups the caller may see; `None` for all.
    allowed: Option<&'a [String]>,
    /// Whether the caller asked for no grouping and gets their one group's figures unkeyed.
    ungrouped: bool,
}

impl RollupView<'_> {
    fn keeps(&self, key: Option<&String>) -> bool {
        self.allowed
            .is_none_or(|allowed| key.is_some_and(|k| allowed.contains(k)))
    }

    /// The caller's weeks and top tools among the organisation's.
    fn keep(&self, (weeks, tools): (Vec<RoiWeek>, Vec<TopTool>)) -> (Vec<RoiWeek>, Vec<TopTool>) {
        let mut weeks: Vec<RoiWeek> = weeks
            .into_iter()
            .filter(|w| self.keeps(w.key.as_ref()))
            .collect();
        let mut tools: Vec<TopTool> = tools
            .into_iter()
            .filter(|t| self.keeps(t.key.as_ref()))
            .collect();
        if self.ungrouped {
            weeks.iter_mut().for_each(|w| w.key = None);
            tools.iter_mut().for_each(|t| t.key = None);
        }
        (weeks, tools)
    }
}

/// The rollup report `scope`'s figures can be cut from, if any. A scope on the grouping column
/// itself keeps whole groups, so the caller's figures are exactly their groups' rows of the
/// whole organisation's; an ungrouped report of a single group is that group's row. (Distinct
/// principals of several groups cannot be added up, so those stay with the raw SQL.)
fn rollup_view<'a>(request: &RoiRequest, scope: &'a Scope) -> Option<RollupView<'a>> {
    if *scope == Scope::All {
        return Some(RollupView {
            request: request.clone(),
            allowed: None,
            ungrouped: false,
        });
    }
    let (by, ungrouped) = match (request.by, scope) {
        (Some(by), _) => (by, false),
        (None, Scope::Teams(v)) if v.len() == 1 => (Dimension::Team, true),
        (None, Scope::Tenants(v)) if v.len() == 1 => (Dimension::Tenant, true),
        _ => return None,
    };
    let allowed = by.scoped_values(scope)?;
    Some(RollupView {
        request: RoiRequest {
            by: Some(by),
            ..request.clone()
        },
        allowed: Some(allowed),
        ungrouped,
    })
}

/// The weeks (unsorted, no week-over-week change yet) and top tools by the SQL over `calls`.
async fn raw_figures(
    engine: &Engine,
    request: &RoiRequest,
    scope: &Scope,
) -> Result<(Vec<RoiWeek>, Vec<TopTool>)> {
    let dates = dates_for(request.from, request.to);
    let batches = engine
        .query_within(&weeks_sql(request)?, scope, Some(&dates))
        .await?;
    let mut weeks = Vec::new();
    for b in &batches {
        let c = Columns(b);
        let week = c.i64("week_start")?;
        let key = c.str("k0")?;
        let (active, humans, calls, ok, human_calls) = (
            c.i64("active_principals")?,
            c.i64("active_humans")?,
            c.i64("calls")?,
            c.i64("ok_calls")?,
            c.i64("human_calls")?,
        );
        let (p50, p95, servers, tools) = (
            c.f64("p50_ms")?,
            c.f64("p95_ms")?,
            c.i64("servers")?,
            c.i64("tools")?,
        );
        for i in 0..b.num_rows() {
            let n = calls.value(i);
            weeks.push(RoiWeek {
                week_start: Utc.timestamp_nanos(week.value(i)),
                key: nullable(&key, i),
                active_principals: active.value(i),
                active_humans: humans.value(i),
                calls: n,
                ok_calls: ok.value(i),
                success_rate: ratio(ok.value(i), n),
                p50_ms: to_micros_of_ms(p50.value(i)),
                p95_ms: to_micros_of_ms(p95.value(i)),
                servers: servers.value(i),
                tools: tools.value(i),
                attribution_coverage: ratio(human_calls.value(i), n),
                active_change: None,
            });
        }
    }
    let batches = engine
        .query_within(&top_tools_sql(request)?, scope, Some(&dates))
        .await?;
    let mut top_tools = Vec::new();
    for b in &batches {
        let c = Columns(b);
        let (key, server, tool, calls) = (
            c.str("k0")?,
            c.str("server_name")?,
            c.str("tool_name")?,
            c.i64("calls")?,
        );
        for i in 0..b.num_rows() {
            top_tools.push(TopTool {
                key: nullable(&key, i),
                server: nullable(&server, i),
                tool: tool.value(i).to_owned(),
                calls: calls.value(i),
            });
        }
    }
    Ok((weeks, top_tools))
}

/// Latency rounded to the microsecond: interpolation leaves float noise (2699.999999999999)
/// that no reader wants.
fn to_micros_of_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn nullable(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_owned())
}

impl Roi {
    /// The weekly rows as one Arrow batch (for the CLI's table and CSV).
    pub fn to_batch(&self) -> Result<arrow::array::RecordBatch> {
        use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let w = &self.weeks;
        let int = |f: fn(&RoiWeek) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(w.iter().map(f)))
        };
        let float = |f: fn(&RoiWeek) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(w.iter().map(f)))
        };
        let key_name = self.by.map_or("group", Dimension::as_str);
        let fields = vec![
            Field::new("week_start", DataType::Utf8, false),
            Field::new(key_name, DataType::Utf8, true),
            Field::new("active_principals", DataType::Int64, false),
            Field::new("active_humans", DataType::Int64, false),
            Field::new("calls", DataType::Int64, false),
            Field::new("success_rate", DataType::Float64, false),
            Field::new("p50_ms", DataType::Float64, false),
            Field::new("p95_ms", DataType::Float64, false),
            Field::new("servers", DataType::Int64, false),
            Field::new("tools", DataType::Int64, false),
            Field::new("attribution_coverage", DataType::Float64, false),
            Field::new("active_change", DataType::Float64, true),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(w.iter().map(|r| {
                r.week_start
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }))),
            Arc::new(StringArray::from_iter(w.iter().map(|r| r.key.clone()))),
            int(|r| r.active_principals),
            int(|r| r.active_humans),
            int(|r| r.calls),
            float(|r| r.success_rate),
            float(|r| r.p50_ms),
            float(|r| r.p95_ms),
            int(|r| r.servers),
            int(|r| r.tools),
            float(|r| r.attribution_coverage),
            Arc::new(Float64Array::from_iter(w.iter().map(|r| r.active_change))),
        ];
        arrow::array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// One group's week, merged from the days' rollups.
#[derive(Debug, Default)]
struct WeekSums {
    principals: HashSet<String>,
    humans: HashSet<String>,
    calls: i64,
    ok_calls: i64,
    human_calls: i64,
    servers: HashSet<String>,
    tools: HashSet<String>,
    durations: Vec<f64>,
}

/// The rollup parts and the `durations` key column for `by`.
fn rollup_plan(by: Option<Dimension>) -> Option<(Part, Part, Option<&'static str>, bool)> {
    // (calls part, principals part, durations key column, key is the server column)
    Some(match by {
        None => (
            Part::Calls(Key::None),
            Part::Principals(Key::None),
            None,
            false,
        ),
        Some(Dimension::Team) => (
            Part::Calls(Key::Team),
            Part::Principals(Key::Team),
            Some("team"),
            false,
        ),
        Some(Dimension::Tenant) => (
            Part::Calls(Key::Tenant),
            Part::Principals(Key::Tenant),
            Some("tenant"),
            false,
        ),
        Some(Dimension::CostCenter) => (
            Part::Calls(Key::CostCenter),
            Part::Principals(Key::CostCenter),
            Some("cost_center"),
            false,
        ),
        Some(Dimension::Server) => (
            Part::Calls(Key::None),
            Part::Principals(Key::Server),
            Some("server_name"),
            true,
        ),
        Some(_) => return None,
    })
}

fn text(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// The weeks and top tools from the daily rollups, when the request covers whole days only
/// and groups by a column the rollups keep; `None` otherwise.
async fn rollup_figures(
    engine: &Engine,
    request: &RoiRequest,
) -> Result<Option<(Vec<RoiWeek>, Vec<TopTool>)>> {
    let Some((calls_part, principals_part, duration_key, by_server)) = rollup_plan(request.by)
    else {
        return Ok(None);
    };
    let days = report_rollup::whole_days(request.from, request.to);
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(None);
    };
    if report_rollup::midnight(*first) != request.from
        || report_rollup::midnight(*last + Duration::days(1)) != request.to
    {
        // Distinct counts and percentiles do not add up across a raw part-day: all raw.
        return Ok(None);
    }
    let key_columns: Vec<&str> = duration_key.into_iter().collect();
    let got = report_rollup::days(
        engine,
        &days,
        &[calls_part, principals_part, Part::Durations],
        &key_columns,
    )
    .await?;
    let mut groups: HashMap<(i64, Option<String>), WeekSums> = HashMap::new();
    let mut tool_calls: HashMap<(Option<String>, Option<String>, String), i64> = HashMap::new();
    for (day, (parts, _)) in days.iter().zip(&got) {
        // date_trunc('week', ...): the Monday of the day's week.
        let monday = *day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        let week = report_rollup::midnight(monday)
            .timestamp_nanos_opt()
            .unwrap_or(i64::MAX);
        add_calls(
            &mut groups,
            &mut tool_calls,
            parts.get(calls_part),
            week,
            by_server,
        )?;
        add_principals(&mut groups, parts.get(principals_part), week)?;
        add_durations(&mut groups, parts.get(Part::Durations), week, duration_key)?;
    }
    let mut weeks: Vec<RoiWeek> = groups
        .into_iter()
        .filter(|(_, g)| g.calls > 0)
        .map(|((week, key), mut g)| RoiWeek {
            week_start: Utc.timestamp_nanos(week),
            key,
            active_principals: g.principals.len() as i64,
            active_humans: g.humans.len() as i64,
            calls: g.calls,
            ok_calls: g.ok_calls,
            success_rate: ratio(g.ok_calls, g.calls),
            p50_ms: to_micros_of_ms(percentile_cont(&mut g.durations, 0.5)),
            p95_ms: to_micros_of_ms(percentile_cont(&mut g.durations, 0.95)),
            servers: g.servers.len() as i64,
            tools: g.tools.len() as i64,
            attribution_coverage: ratio(g.human_calls, g.calls),
            active_change: None,
        })
        .collect();
    weeks.sort_by(|a, b| a.key.cmp(&b.key).then(a.week_start.cmp(&b.week_start)));
    Ok(Some((weeks, top_tools(tool_calls))))
}

fn add_calls(
    groups: &mut HashMap<(i64, Option<String>), WeekSums>,
    tool_calls: &mut HashMap<(Option<String>, Option<String>, String), i64>,
    batches: &[RecordBatch],
    week: i64,
    by_server: bool,
) -> Result<()> {
    for b in batches {
        let c = Columns(b);
        let (k, server, tool) = (c.str("k")?, c.str("server_name")?, c.str("tool_name")?);
        let (calls, failed) = (c.i64("calls")?, c.i64("failed_calls")?);
        for i in 0..b.num_rows() {
            let key = if by_server {
                text(&server, i)
            } else {
                text(&k, i)
            }
            .map(str::to_owned);
            let n = calls.value(i);
            let g = groups.entry((week, key.clone())).or_default();
            g.calls += n;
            g.ok_calls += n - failed.value(i);
            if let Some(s) = text(&server, i) {
                g.servers.insert(s.to_owned());
            }
            if let Some(t) = text(&tool, i) {
                g.tools.insert(t.to_owned());
                *tool_calls
                    .entry((key, text(&server, i).map(str::to_owned), t.to_owned()))
                    .or_default() += n;
            }
        }
    }
    Ok(())
}

fn add_principals(
    groups: &mut HashMap<(i64, Option<String>), WeekSums>,
    batches: &[RecordBatch],
    week: i64,
) -> Result<()> {
    for b in batches {
        let c = Columns(b);
        let (k, principal, kind, calls) = (
            c.str("k")?,
            c.str("principal")?,
            c.str("principal_kind")?,
            c.i64("calls")?,
        );
        for i in 0..b.num_rows() {
            let g = groups
                .entry((week, text(&k, i).map(str::to_owned)))
                .or_default();
            let human = text(&kind, i) == Some("human");
            if human {
                g.human_calls += calls.value(i);
            }
            if let Some(p) = text(&principal, i) {
                if human {
                    g.humans.insert(p.to_owned());
                }
                g.principals.insert(p.to_owned());
            }
        }
    }
    Ok(())
}

fn add_durations(
    groups: &mut HashMap<(i64, Option<String>), WeekSums>,
    batches: &[RecordBatch],
    week: i64,
    key_column: Option<&str>,
) -> Result<()> {
    for b in batches {
        let c = Columns(b);
        let durations = c.f64("duration_ms")?;
        let Some(column) = key_column else {
            let g = groups.entry((week, None)).or_default();
            g.durations.extend(durations.values().iter());
            continue;
        };
        let keys = c.str(column)?;
        // The part is sorted by team: runs of one key take one map lookup.
        let mut i = 0;
        while i < b.num_rows() {
            let key = text(&keys, i);
            let mut j = i + 1;
            while j < b.num_rows() && text(&keys, j) == key {
                j += 1;
            }
            let g = groups.entry((week, key.map(str::to_owned))).or_default();
            g.durations.extend(&durations.values()[i..j]);
            i = j;
        }
    }
    Ok(())
}

/// The [`TOP_TOOLS`] most-called tools of each group, ordered as [`top_tools_sql`] orders
/// them: groups ascending with the unattributed last, then calls descending, server and tool.
fn top_tools(tool_calls: HashMap<(Option<String>, Option<String>, String), i64>) -> Vec<TopTool> {
    let mut all: Vec<TopTool> = tool_calls
        .into_iter()
        .map(|((key, server, tool), calls)| TopTool {
            key,
            server,
            tool,
            calls,
        })
        .collect();
    // SQL sorts NULL last in ascending order; `Option` sorts `None` first, hence the flag.
    let nulls_last = |v: &Option<String>| (v.is_none(), v.clone());
    all.sort_by(|a, b| {
        nulls_last(&a.key)
            .cmp(&nulls_last(&b.key))
            .then(b.calls.cmp(&a.calls))
            .then(nulls_last(&a.server).cmp(&nulls_last(&b.server)))
            .then(a.tool.cmp(&b.tool))
    });
    let mut out: Vec<TopTool> = Vec::new();
    let mut taken = 0;
    for t in all {
        if out.last().is_some_and(|l| l.key != t.key) {
            taken = 0;
        }
        if taken < TOP_TOOLS {
            out.push(t);
            taken += 1;
        }
    }
    out
}

/// `percentile_cont(q)` as DataFusion computes it (`datafusion-functions-aggregate`,
/// `calculate_percentile`): the values at ranks floor and ceil of `q × (n − 1)`, in total
/// order, interpolated with the weight truncated to 6 decimals. Reimplemented so that the
/// rollup path gives the very figures of the SQL path.
fn percentile_cont(values: &mut [f64], q: f64) -> f64 {
    const PRECISION: f64 = 1_000_000.0;
    match values.len() {
        0 => f64::NAN,
        1 => values[0],
        n => {
            let index = q * ((n - 1) as f64);
            let (lower, upper) = (index.floor() as usize, index.ceil() as usize);
            let (_, low, _) = values.select_nth_unstable_by(lower, f64::total_cmp);
            let low = *low;
            if lower == upper {
                return low;
            }
            let (_, high, _) = values.select_nth_unstable_by(upper, f64::total_cmp);
            let weight = ((index - lower as f64) * PRECISION) as usize as f64 / PRECISION;
            low + (*high - low) * weight
        }
    }
}
