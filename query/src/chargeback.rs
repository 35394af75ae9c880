//! Chargeback: who pays for which MCP usage.
//!
//! A group (a team, cost centre, tenant, user or server) pays for its calls (a per-call price by
//! server, tool and operation class, plus a price per second of duration), for the LLM tokens of
//! its agents (priced by model; an LLM call without attribution of its own takes the team of the
//! calls in its trace), and for a share of the platform's fixed monthly cost. A period in which
//! nobody called anything leaves that share unallocated: it is reported as its own `idle` row, so
//! that, for every period, allocated platform cost plus idle equals the platform cost.
//!
//! Usage is summed by SQL over the `calls` view and `llm_calls` (under the caller's scope, so a
//! team lead's report holds their teams only); prices are applied per price-table version, and
//! amounts are kept in micro-units of the currency (integers), so that sums reconcile exactly.
//! A report over every row, by one column, per day or month, reads the whole days of its range
//! from the daily rollups instead ([`crate::report_rollup`]) and runs the SQL for the part-days
//! at either end only; both paths price the same sums, so they give the same report.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Decimal128Builder, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use serde::Serialize;

use crate::columns::Columns;
use crate::engine::{DateRange, Engine, Scope};
use crate::price_table::{Allocation, ChargebackConfig, ModelPrice, PriceTable};
use crate::report_rollup::{self, DayParts, Key, Part};
use crate::{Error, Result};

/// A column chargeback can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The caller's team.
    Team,
    /// The cost centre.
    CostCenter,
    /// The tenant or legal entity.
    Tenant,
    /// The principal (a person or workload).
    User,
    /// The MCP server.
    Server,
    /// The tool.
    Tool,
    /// The LLM model (token rows only).
    Model,
}

impl Dimension {
    /// The dimension called `name` in requests (`team`, `cost_center`, `tenant`, `user`,
    /// `server`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "team" => Self::Team,
            "cost_center" => Self::CostCenter,
            "tenant" => Self::Tenant,
            "user" => Self::User,
            "server" => Self::Server,
            "tool" => Self::Tool,
            _ => return None,
        })
    }

    /// Its name in requests and output columns.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::CostCenter => "cost_center",
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::Server => "server",
            Self::Tool => "tool",
            Self::Model => "model",
        }
    }

    /// Its value on a `calls` row.
    fn call_expr(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::CostCenter => "cost_center",
            Self::Tenant => "tenant",
            Self::User => "principal",
            Self::Server => "server_name",
            Self::Tool => "tool_name",
            Self::Model => "CAST(NULL AS VARCHAR)",
        }
    }

    /// Its value on an `llm_calls` row `l`, falling back to the trace's calls `t`.
    fn llm_expr(self) -> &'static str {
        match self {
            Self::Team => "coalesce(l.team, t.team)",
            Self::CostCenter => "coalesce(l.cost_center, t.cost_center)",
            Self::Tenant => "coalesce(l.tenant, t.tenant)",
            Self::User => "coalesce(l.principal, t.principal)",
            Self::Server | Self::Tool => "CAST(NULL AS VARCHAR)",
            Self::Model => "coalesce(l.response_model, l.request_model)",
        }
    }

    /// True when `scope` restricts rows on this same column: a team lead grouping by team sees
    /// whole groups.
    fn matches_scope(self, scope: &Scope) -> bool {
        self.scoped_values(scope).is_some()
    }

    /// The values `scope` allows on this column, when it restricts rows on this very column.
    pub(crate) fn scoped_values(self, scope: &Scope) -> Option<&[String]> {
        match (self, scope) {
            (Self::Team, Scope::Teams(v)) | (Self::Tenant, Scope::Tenants(v)) => Some(v),
            _ => None,
        }
    }
}

/// The length of a chargeback period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One UTC hour (the FOCUS export's grain).
    Hour,
    /// One UTC day.
    Day,
    /// One calendar month, UTC.
    Month,
}

impl Granularity {
    /// The granularity called `name` (`hour`, `day`, `month`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "hour" => Self::Hour,
            "day" => Self::Day,
            "month" => Self::Month,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The start of the period holding `t`.
    fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let d = t.date_naive();
        let start = match self {
            Self::Hour => d.and_hms_opt(t.hour(), 0, 0),
            Self::Day => d.and_hms_opt(0, 0, 0),
            Self::Month => d.with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0)),
        };
        start.map_or(t, |s| s.and_utc())
    }

    /// The start of the period after the one starting at `start`.
    fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Hour => start + Duration::hours(1),
            Self::Day => start + Duration::days(1),
            Self::Month => first_of_next_month(start),
        }
    }
}

fn first_of_next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct ChargebackRequest {
    /// Start of the range, inclusive.
    pub from: DateTime<Utc>,
    /// End of the range, exclusive.
    pub to: DateTime<Utc>,
    /// The grouping columns.
    pub by: Vec<Dimension>,
    /// The period length.
    pub granularity: Granularity,
}

/// Whether a row is a group's usage or the platform cost nobody used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A group's usage and its share of the platform cost.
    Usage,
    /// The platform cost of a period without calls: unallocated.
    Idle,
}

/// One group in one period, priced by one price-table version. Amounts are in micro-units of
/// the currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChargebackRow {
    /// Period start (inclusive; clipped to the request's range).
    pub period_start: DateTime<Utc>,
    /// Period end (exclusive; clipped to the request's range).
    pub period_end: DateTime<Utc>,
    /// Usage or idle.
    pub kind: RowKind,
    /// The group's value of each grouping column (`None`: not attributed).
    pub key: Vec<Option<String>>,
    /// The price table that priced the row.
    pub price_table_version: String,
    /// Calls.
    pub calls: i64,
    /// Calls whose outcome was not `ok`.
    pub failed_calls: i64,
    /// Summed call duration, seconds.
    pub duration_s: f64,
    /// LLM input tokens.
    pub input_tokens: i64,
    /// LLM output tokens.
    pub output_tokens: i64,
    /// Per-call prices.
    pub call_cost_micros: i64,
    /// Duration prices.
    pub duration_cost_micros: i64,
    /// Token prices.
    pub token_cost_micros: i64,
    /// The share of the platform's fixed cost.
    pub platform_cost_micros: i64,
}

impl ChargebackRow {
    /// Calls, duration and tokens.
    pub fn usage_cost_micros(&self) -> i64 {
        self.call_cost_micros + self.duration_cost_micros + self.token_cost_micros
    }

    /// Everything the group is charged.
    pub fn total_cost_micros(&self) -> i64 {
        self.usage_cost_micros() + self.platform_cost_micros
    }
}

/// A computed chargeback.
#[derive(Debug, Clone, Serialize)]
pub struct Chargeback {
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range.
    pub to: DateTime<Utc>,
    /// Grouping columns.
    pub by: Vec<Dimension>,
    /// Period length.
    pub granularity: Granularity,
    /// ISO 4217 currency of every amount.
    pub currency: String,
    /// The rows, by period, version and key; idle rows last in their period.
    pub rows: Vec<ChargebackRow>,
    /// The platform's fixed cost over the whole range.
    pub platform_cost_micros: i64,
    /// Whether the report covers every row (false for a team lead's or tenant auditor's own
    /// share, where idle and other groups' shares are left out).
    pub complete: bool,
}

impl Chargeback {
    /// Platform cost allocated to groups.
    pub fn allocated_micros(&self) -> i64 {
        self.rows
            .iter()
            .filter(|r| r.kind == RowKind::Usage)
            .map(|r| r.platform_cost_micros)
            .sum()
    }

    /// Platform cost of periods without calls.
    pub fn idle_micros(&self) -> i64 {
        self.rows
            .iter()
            .filter(|r| r.kind == RowKind::Idle)
            .map(|r| r.platform_cost_micros)
            .sum()
    }
}

/// `'text'` as a SQL string literal. Only configuration (price rules) and the audit search's
/// filter values are quoted this way; the caller's scope never is (it is a filter in the plan).
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A price as a SQL literal: a plain decimal, never an exponent form DataFusion could misread.
fn number(v: f64) -> String {
    format!("{v:.12}")
}

/// `t` as a SQL timestamp literal (UTC, nanoseconds).
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    format!(
        "CAST({} AS TIMESTAMP)",
        quote(&t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
    )
}

/// The price of one `calls` row under `table`, as SQL.
pub fn call_price_sql(table: &PriceTable) -> String {
    if table.calls.is_empty() {
        return number(table.default_per_call);
    }
    let mut sql = String::from("CASE");
    for rule in &table.calls {
        let mut conditions = Vec::new();
        for (column, value) in [
            ("server_name", &rule.server),
            ("tool_name", &rule.tool),
            ("operation_class", &rule.operation_class),
        ] {
            if let Some(v) = value {
                conditions.push(format!("{column} = {}", quote(v)));
            }
        }
        let when = if conditions.is_empty() {
            "TRUE".to_string()
        } else {
            conditions.join(" AND ")
        };
        let _ = write!(sql, " WHEN {when} THEN {}", number(rule.per_call));
    }
    let _ = write!(sql, " ELSE {} END", number(table.default_per_call));
    sql
}

/// The token price of one `llm_calls` row `l` under `table`, as SQL.
pub fn token_price_sql(table: &PriceTable) -> String {
    let model = "coalesce(l.response_model, l.request_model, '')";
    let models = table.models_by_specificity();
    let price = |per_1k: fn(&ModelPrice) -> f64, default: f64| {
        if models.is_empty() {
            return number(default);
        }
        let mut sql = String::from("CASE");
        for m in &models {
            let _ = write!(
                sql,
                " WHEN starts_with({model}, {}) THEN {}",
                quote(&m.model),
                number(per_1k(m))
            );
        }
        let _ = write!(sql, " ELSE {} END", number(default));
        sql
    };
    let input = price(|m| m.per_1k_input_tokens, table.default_per_1k_input_tokens);
    let output = price(
        |m| m.per_1k_output_tokens,
        table.default_per_1k_output_tokens,
    );
    format!(
        "coalesce(l.input_tokens, 0) / 1000.0 * ({input}) + coalesce(l.output_tokens, 0) / 1000.0 * ({output})"
    )
}

/// The key columns `, <expr> AS k0, ...` to select and `, k0, ...` to group by (both empty
/// without keys), each ready to follow a column list.
fn key_columns(by: &[Dimension], expr: impl Fn(Dimension) -> &'static str) -> (String, String) {
    let select = by
        .iter()
        .enumerate()
        .map(|(i, d)| format!(", {} AS k{i}", expr(*d)))
        .collect::<String>();
    let group = (0..by.len()).map(|i| format!(", k{i}")).collect::<String>();
    (select, group)
}

/// SQL summing calls per period and key within `[from, to)` under `table`.
pub fn calls_sql(
    table: &PriceTable,
    by: &[Dimension],
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let (keys, group) = key_columns(by, Dimension::call_expr);
    format!(
        "SELECT date_trunc('{g}', start_time) AS period_start{keys}, \
         count(*) AS calls, \
         sum(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS failed_calls, \
         sum(duration_ms) / 1000.0 AS duration_s, \
         sum({price}) AS call_cost \
         FROM calls WHERE start_time >= {from} AND start_time < {to} \
         GROUP BY period_start{group}",
        g = granularity.sql(),
        price = call_price_sql(table),
        from = timestamp(from),
        to = timestamp(to),
    )
}

/// SQL summing LLM tokens per period and key within `[from, to)` under `table`.
pub fn tokens_sql(
    table: &PriceTable,
    by: &[Dimension],
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let (keys, group) = key_columns(by, Dimension::llm_expr);
    format!(
        "WITH t AS (\
           SELECT trace_id, min(team) AS team, min(cost_center) AS cost_center, \
                  min(tenant) AS tenant, min(principal) AS principal \
           FROM calls GROUP BY trace_id) \
         SELECT date_trunc('{g}', l.start_time) AS period_start{keys}, \
         sum(coalesce(l.input_tokens, 0)) AS input_tokens, \
         sum(coalesce(l.output_tokens, 0)) AS output_tokens, \
         sum({price}) AS token_cost \
         FROM llm_calls l LEFT JOIN t ON l.trace_id = t.trace_id \
         WHERE l.start_time >= {from} AND l.start_time < {to} \
         GROUP BY period_start{group}",
        g = granularity.sql(),
        price = token_price_sql(table),
        from = timestamp(from),
        to = timestamp(to),
    )
}

/// The partition dates a query over `[from, to)` needs: a day of margin either side, because a
/// call's client and server records can fall either side of midnight.
pub fn dates_for(from: DateTime<Utc>, to: DateTime<Utc>) -> DateRange {
    let day = |t: DateTime<Utc>| t.date_naive().format("%Y-%m-%d").to_string();
    DateRange {
        first: day(from - Duration::days(1)),
        last: day(to + Duration::days(1)),
    }
}

fn micros(v: f64) -> i64 {
    // Amounts are far below 9.2e12 currency units; the cast saturates beyond.
    (v * 1e6).round() as i64
}

/// Rows keyed by (period start in ns, key).
type Groups = BTreeMap<(i64, Vec<Option<String>>), ChargebackRow>;

/// A group's usage in one period, summed before it is priced into micros: the raw SQL's rows
/// and the daily rollups' rows add into the same sums, so a period is rounded once whichever
/// served it.
#[derive(Debug, Default, Clone)]
struct Sums {
    calls: i64,
    failed_calls: i64,
    /// Seconds, from the raw SQL (`sum(duration_ms) / 1000.0`).
    duration_s: f64,
    /// Milliseconds, from rollups; divided once at pricing, as the SQL does.
    duration_ms: f64,
    call_cost: f64,
    input_tokens: i64,
    output_tokens: i64,
    token_cost: f64,
}

/// Usage keyed by (period start in ns, key).
type Usage = BTreeMap<(i64, Vec<Option<String>>), Sums>;

fn new_row(start_ns: i64, key: Vec<Option<String>>, version: &str) -> ChargebackRow {
    let start = Utc.timestamp_nanos(start_ns);
    ChargebackRow {
        period_start: start,
        period_end: start,
        kind: RowKind::Usage,
        key,
        price_table_version: version.to_owned(),
        calls: 0,
        failed_calls: 0,
        duration_s: 0.0,
        input_tokens: 0,
        output_tokens: 0,
        call_cost_micros: 0,
        duration_cost_micros: 0,
        token_cost_micros: 0,
        platform_cost_micros: 0,
    }
}

/// The usage priced into rows of `table`'s version.
fn priced(usage: Usage, table: &PriceTable) -> Groups {
    usage
        .into_iter()
        .map(|((start, key), u)| {
            let duration_s = u.duration_s + u.duration_ms / 1000.0;
            let row = ChargebackRow {
                calls: u.calls,
                failed_calls: u.failed_calls,
                duration_s,
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                call_cost_micros: micros(u.call_cost),
                duration_cost_micros: micros(duration_s * table.per_second),
                token_cost_micros: micros(u.token_cost),
                ..new_row(start, key.clone(), &table.version)
            };
            ((start, key), row)
        })
        .collect()
}

fn keys_of(batch: &RecordBatch, n: usize) -> Result<Vec<StringArray>> {
    (0..n)
        .map(|i| Columns(batch).str(&format!("k{i}")))
        .collect()
}

fn key_at(keys: &[StringArray], row: usize) -> Vec<Option<String>> {
    keys.iter()
        .map(|k| (!k.is_null(row)).then(|| k.value(row).to_owned()))
        .collect()
}

fn add_calls(usage: &mut Usage, batches: &[RecordBatch], by: usize) -> Result<()> {
    for b in batches {
        let start = Columns(b).i64("period_start")?;
        let calls = Columns(b).i64("calls")?;
        let failed = Columns(b).i64("failed_calls")?;
        let duration = Columns(b).f64("duration_s")?;
        let cost = Columns(b).f64("call_cost")?;
        let keys = keys_of(b, by)?;
        for i in 0..b.num_rows() {
            let u = usage.entry((start.value(i), key_at(&keys, i))).or_default();
            u.calls += calls.value(i);
            u.failed_calls += failed.value(i);
            u.duration_s += duration.value(i);
            u.call_cost += cost.value(i);
        }
    }
    Ok(())
}

fn add_tokens(usage: &mut Usage, batches: &[RecordBatch], by: usize) -> Result<()> {
    for b in batches {
        let start = Columns(b).i64("period_start")?;
        let input = Columns(b).i64("input_tokens")?;
        let output = Columns(b).i64("output_tokens")?;
        let cost = Columns(b).f64("token_cost")?;
        let keys = keys_of(b, by)?;
        for i in 0..b.num_rows() {
            let u = usage.entry((start.value(i), key_at(&keys, i))).or_default();
            u.input_tokens += input.value(i);
            u.output_tokens += output.value(i);
            u.token_cost += cost.value(i);
        }
    }
    Ok(())
}

/// Sums the usage of `[a, b)` under `table` with the SQL over `calls` and `llm_calls`, under
/// `scope`.
async fn raw_usage(
    engine: &Engine,
    table: &PriceTable,
    request: &ChargebackRequest,
    scope: &Scope,
    (a, b): (DateTime<Utc>, DateTime<Utc>),
    usage: &mut Usage,
) -> Result<()> {
    let dates = dates_for(a, b);
    let calls = engine
        .query_within(
            &calls_sql(table, &request.by, request.granularity, a, b),
            scope,
            Some(&dates),
        )
        .await?;
    let tokens = engine
        .query_within(
            &tokens_sql(table, &request.by, request.granularity, a, b),
            scope,
            Some(&dates),
        )
        .await?;
    add_calls(usage, &calls, request.by.len())?;
    add_tokens(usage, &tokens, request.by.len())
}

/// Where a chargeback's key comes from in the daily rollups.
#[derive(Clone, Copy)]
enum RollupKey {
    /// No key (`by` is empty).
    Nothing,
    /// The part's `k` column.
    K,
    /// The `server_name` column (tokens: no server).
    Server,
    /// The `tool_name` column (tokens: no tool).
    Tool,
}

/// The rollup parts that serve `by` (calls, tokens) and where the key is, if any do.
fn rollup_plan(by: &[Dimension]) -> Option<(Part, Part, RollupKey)> {
    let keyed = |k: Key| Some((Part::Calls(k), Part::Tokens(k), RollupKey::K));
    match by {
        [] => Some((
            Part::Calls(Key::None),
            Part::Tokens(Key::None),
            RollupKey::Nothing,
        )),
        [Dimension::Team] => keyed(Key::Team),
        [Dimension::CostCenter] => keyed(Key::CostCenter),
        [Dimension::Tenant] => keyed(Key::Tenant),
        [Dimension::User] => keyed(Key::User),
        [Dimension::Server] => Some((
            Part::Calls(Key::None),
            Part::Tokens(Key::None),
            RollupKey::Server,
        )),
        [Dimension::Tool] => Some((
            Part::Calls(Key::None),
            Part::Tokens(Key::None),
            RollupKey::Tool,
        )),
        _ => None,
    }
}

fn text(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Adds one day's rollup rows to the period starting at `start_ns`.
fn add_rollup_day(
    usage: &mut Usage,
    parts: &DayParts,
    plan: (Part, Option<Part>, RollupKey),
    table: &PriceTable,
    start_ns: i64,
) -> Result<()> {
    let (calls_part, tokens_part, key) = plan;
    for b in parts.get(calls_part) {
        let c = Columns(b);
        let (k, server, tool, class) = (
            c.str("k")?,
            c.str("server_name")?,
            c.str("tool_name")?,
            c.str("operation_class")?,
        );
        let (calls, failed, duration) = (
            c.i64("calls")?,
            c.i64("failed_calls")?,
            c.f64("duration_ms")?,
        );
        for i in 0..b.num_rows() {
            let key = match key {
                RollupKey::Nothing => Vec::new(),
                RollupKey::K => vec![text(&k, i).map(str::to_owned)],
                RollupKey::Server => vec![text(&server, i).map(str::to_owned)],
                RollupKey::Tool => vec![text(&tool, i).map(str::to_owned)],
            };
            let price = call_price(table, text(&server, i), text(&tool, i), text(&class, i));
            let u = usage.entry((start_ns, key)).or_default();
            u.calls += calls.value(i);
            u.failed_calls += failed.value(i);
            u.duration_ms += duration.value(i);
            u.call_cost += price * calls.value(i) as f64;
        }
    }
    for b in tokens_part.map_or(&[][..], |p| parts.get(p)) {
        let c = Columns(b);
        let (k, model, input, output) = (
            c.str("k")?,
            c.str("model")?,
            c.i64("input_tokens")?,
            c.i64("output_tokens")?,
        );
        for i in 0..b.num_rows() {
            let key = match key {
                RollupKey::Nothing => Vec::new(),
                RollupKey::K => vec![text(&k, i).map(str::to_owned)],
                RollupKey::Server | RollupKey::Tool => vec![None],
            };
            let (per_in, per_out) = token_prices(table, text(&model, i));
            let u = usage.entry((start_ns, key)).or_default();
            u.input_tokens += input.value(i);
            u.output_tokens += output.value(i);
            u.token_cost +=
                input.value(i) as f64 / 1000.0 * per_in + output.value(i) as f64 / 1000.0 * per_out;
        }
    }
    Ok(())
}

/// Sums the usage of `[a, b)` from the daily rollups (every row: callers with a scope never
/// come here), and the SQL for the part-days at either end. `false` when the request is not
/// one the rollups serve (hourly periods, several grouping columns), with nothing added.
async fn rollup_usage(
    engine: &Engine,
    table: &PriceTable,
    request: &ChargebackRequest,
    (a, b): (DateTime<Utc>, DateTime<Utc>),
    usage: &mut Usage,
) -> Result<bool> {
    let Some(plan) = rollup_plan(&request.by) else {
        return Ok(false);
    };
    let days = report_rollup::whole_days(a, b);
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(false);
    };
    if request.granularity == Granularity::Hour {
        return Ok(false);
    }
    let (whole_from, whole_to) = (
        report_rollup::midnight(*first),
        report_rollup::midnight(*last + Duration::days(1)),
    );
    // An LLM call without attribution of its own takes the attribution of its trace's calls
    // anywhere in the partitions the SQL reads (`tokens_sql`'s `t`): the rollups' per-trace
    // parts give it over whole days (`rollup_tokens`). With part-days, the SQL's partitions
    // and the pieces' differ, so the tokens come from the SQL for the whole range.
    let part_days = a < whole_from || whole_to < b;
    let tokens_served = match trace_key(&request.by) {
        Some(key) if !part_days => {
            rollup_tokens(engine, table, request.granularity, &days, key, usage).await?
        }
        _ => false,
    };
    let tokens_from_sql = matches!(plan.2, RollupKey::K) && !tokens_served;
    let plan = if tokens_from_sql {
        let dates = dates_for(a, b);
        let tokens = engine
            .query_within(
                &tokens_sql(table, &request.by, request.granularity, a, b),
                &Scope::All,
                Some(&dates),
            )
            .await?;
        add_tokens(usage, &tokens, request.by.len())?;
        (plan.0, None, plan.2)
    } else {
        (plan.0, Some(plan.1), plan.2)
    };
    let wanted: Vec<Part> = std::iter::once(plan.0).chain(plan.1).collect();
    let got = report_rollup::days(engine, &days, &wanted, &[]).await?;
    for (day, (parts, _)) in days.iter().zip(&got) {
        let start = request.granularity.floor(report_rollup::midnight(*day));
        let start_ns = start.timestamp_nanos_opt().unwrap_or(i64::MAX);
        add_rollup_day(usage, parts, plan, table, start_ns)?;
    }
    for piece in [(a, whole_from), (whole_to, b)] {
        if piece.0 < piece.1 {
            if tokens_from_sql {
                let dates = dates_for(piece.0, piece.1);
                let calls = engine
                    .query_within(
                        &calls_sql(table, &request.by, request.granularity, piece.0, piece.1),
                        &Scope::All,
                        Some(&dates),
                    )
                    .await?;
                add_calls(usage, &calls, request.by.len())?;
            } else {
                raw_usage(engine, table, request, &Scope::All, piece, usage).await?;
            }
        }
    }
    Ok(true)
}

/// The rollup key of `by` when it is one an LLM call can take from its trace.
fn trace_key(by: &[Dimension]) -> Option<Key> {
    match by {
        [Dimension::Team] => Some(Key::Team),
        [Dimension::CostCenter] => Some(Key::CostCenter),
        [Dimension::Tenant] => Some(Key::Tenant),
        [Dimension::User] => Some(Key::User),
        _ => None,
    }
}

/// (period start in ns, a trace or key, model).
type PeriodModel = (i64, Option<String>, Option<String>);

/// Adds the tokens of the LLM calls of `days` (consecutive whole days, the report's range)
/// without a `key` of their own, attributed as [`tokens_sql`] does: the least `key` of their
/// trace's calls in the partitions the SQL reads ([`dates_for`]: a day before the range, two
/// after its last day). The tokens with a key of their own come from [`Part::Tokens`].
///
/// The rollup pairs a call's spans across the midnights at the edges of those partitions; the
/// SQL does not see the spans beyond. So when a trace the tokens need has a call cut by one of
/// those midnights ([`Part::Straddles`]), nothing is added and `false` says to use the SQL.
async fn rollup_tokens(
    engine: &Engine,
    table: &PriceTable,
    granularity: Granularity,
    days: &[NaiveDate],
    key: Key,
    usage: &mut Usage,
) -> Result<bool> {
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(true);
    };
    let (edge_first, edge_last) = (first - Duration::days(1), last + Duration::days(2));
    let window: Vec<NaiveDate> = edge_first
        .iter_days()
        .take_while(|d| *d <= edge_last)
        .collect();
    let got = report_rollup::days(
        engine,
        &window,
        &[Part::Orphans(key), Part::Traces(key), Part::Straddles],
        &[],
    )
    .await?;
    // The LLM calls to attribute: tokens per (period, trace, model).
    let mut orphans: HashMap<PeriodModel, (i64, i64)> = HashMap::new();
    let mut traces: HashMap<String, Option<String>> = HashMap::new();
    for (day, (parts, _)) in window.iter().zip(&got) {
        if *day < first || *day > last {
            continue;
        }
        let start = granularity.floor(report_rollup::midnight(*day));
        let start_ns = start.timestamp_nanos_opt().unwrap_or(i64::MAX);
        for b in parts.get(Part::Orphans(key)) {
            let c = Columns(b);
            let (trace, model, input, output) = (
                c.str("trace_id")?,
                c.str("model")?,
                c.i64("input_tokens")?,
                c.i64("output_tokens")?,
            );
            for i in 0..b.num_rows() {
                let trace = text(&trace, i).map(str::to_owned);
                if let Some(t) = &trace {
                    traces.entry(t.clone()).or_insert(None);
                }
                let sums = orphans
                    .entry((start_ns, trace, text(&model, i).map(str::to_owned)))
                    .or_default();
                sums.0 += input.value(i);
                sums.1 += output.value(i);
            }
        }
    }
    if orphans.is_empty() {
        return Ok(true);
    }
    // A call cut by the first partition's start or the last one's end.
    let edge = |parts: &DayParts, date: NaiveDate, before: bool| -> Result<bool> {
        let date = date.format("%Y-%m-%d").to_string();
        for b in parts.get(Part::Straddles) {
            let c = Columns(b);
            let (trace, first, last) = (
                c.str("trace_id")?,
                c.str("first_date")?,
                c.str("last_date")?,
            );
            for i in 0..b.num_rows() {
                let cut = if before {
                    text(&first, i).is_some_and(|f| f < date.as_str())
                } else {
                    text(&last, i).is_some_and(|l| l > date.as_str())
                };
                if cut && text(&trace, i).is_some_and(|t| traces.contains_key(t)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    };
    if let (Some((left, _)), Some((right, _))) = (got.first(), got.last())
        && (edge(left, edge_first, true)? || edge(right, edge_last, false)?)
    {
        return Ok(false);
    }
    for (parts, _) in &got {
        for b in parts.get(Part::Traces(key)) {
            let c = Columns(b);
            let (trace, k) = (c.str("trace_id")?, c.str("k")?);
            for i in 0..b.num_rows() {
                let (Some(t), Some(k)) = (text(&trace, i), text(&k, i)) else {
                    continue;
                };
                if let Some(least) = traces.get_mut(t)
                    && least.as_deref().is_none_or(|l| k < l)
                {
                    *least = Some(k.to_owned());
                }
            }
        }
    }
    let mut sums: BTreeMap<PeriodModel, (i64, i64)> = BTreeMap::new();
    for ((start_ns, trace, model), (input, output)) in orphans {
        let k = trace.and_then(|t| traces.get(&t).cloned().flatten());
        let s = sums.entry((start_ns, k, model)).or_default();
        s.0 += input;
        s.1 += output;
    }
    for ((start_ns, k, model), (input, output)) in sums {
        let (per_in, per_out) = token_prices(table, model.as_deref());
        let u = usage.entry((start_ns, vec![k])).or_default();
        u.input_tokens += input;
        u.output_tokens += output;
        u.token_cost += input as f64 / 1000.0 * per_in + output as f64 / 1000.0 * per_out;
    }
    Ok(true)
}

/// The price of one call under `table`: what [`call_price_sql`] computes, for rollup rows
/// (the first rule whose every given field equals the call's; a missing value matches no
/// rule that names the field, as `NULL = 'x'` is not true).
fn call_price(
    table: &PriceTable,
    server: Option<&str>,
    tool: Option<&str>,
    class: Option<&str>,
) -> f64 {
    for rule in &table.calls {
        let matches = [
            (&rule.server, server),
            (&rule.tool, tool),
            (&rule.operation_class, class),
        ]
        .iter()
        .all(|(want, have)| want.as_deref().is_none_or(|w| *have == Some(w)));
        if matches {
            return literal(rule.per_call);
        }
    }
    literal(table.default_per_call)
}

/// The prices per 1 000 input and output tokens of `model` under `table`: what
/// [`token_price_sql`] computes, for rollup rows.
fn token_prices(table: &PriceTable, model: Option<&str>) -> (f64, f64) {
    let model = model.unwrap_or("");
    for m in table.models_by_specificity() {
        if model.starts_with(m.model.as_str()) {
            return (
                literal(m.per_1k_input_tokens),
                literal(m.per_1k_output_tokens),
            );
        }
    }
    (
        literal(table.default_per_1k_input_tokens),
        literal(table.default_per_1k_output_tokens),
    )
}

/// A price as the SQL sees it: [`number`]'s literal read back, so that both paths multiply by
/// the same float.
fn literal(v: f64) -> f64 {
    number(v).parse().unwrap_or(v)
}

/// The fixed cost of `[a, b)`, a part of one calendar month: the month's cost in proportion to
/// the seconds covered. Measured as the difference of the cost accrued since the month began,
/// so that the periods of a month (days, hours) add up to its cost to the micro.
fn platform_cost_of(table: &PriceTable, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    let month_start = Granularity::Month.floor(a);
    let month_secs = i128::from((first_of_next_month(month_start) - month_start).num_seconds());
    if month_secs <= 0 {
        return 0;
    }
    let monthly = i128::from(micros(table.platform_monthly_cost));
    let accrued =
        |t: DateTime<Utc>| monthly * i128::from((t - month_start).num_seconds()) / month_secs;
    i64::try_from(accrued(b) - accrued(a)).unwrap_or(i64::MAX)
}

/// Splits `total` over `weights` in proportion, exactly: floors first, then the remainder one
/// micro at a time to the largest fractional parts (ties to the earlier entry).
fn split(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<i64> = Vec::with_capacity(weights.len());
    let mut fractions: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = i128::from(total) * i128::from(*w);
        shares.push(i64::try_from(exact / sum).unwrap_or(i64::MAX));
        fractions.push((exact % sum, i));
    }
    let mut left = total - shares.iter().sum::<i64>();
    fractions.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in fractions {
        if left <= 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares
}

/// Global call counts (and groups) per period, for a scoped caller's share of the fixed cost.
async fn global_counts(
    engine: &Engine,
    request: &ChargebackRequest,
    a: DateTime<Utc>,
    b: DateTime<Utc>,
) -> Result<BTreeMap<i64, (i64, i64)>> {
    let group = request.by.first().map_or("''", |d| d.call_expr());
    let sql = format!(
        "SELECT date_trunc('{g}', start_time) AS period_start, count(*) AS calls, \
         count(DISTINCT coalesce({group}, '')) AS groups \
         FROM calls WHERE start_time >= {from} AND start_time < {to} GROUP BY period_start",
        g = request.granularity.sql(),
        from = timestamp(a),
        to = timestamp(b),
    );
    let batches = engine
        .query_within(&sql, &Scope::All, Some(&dates_for(a, b)))
        .await?;
    let mut out = BTreeMap::new();
    for batch in &batches {
        let start = Columns(batch).i64("period_start")?;
        let calls = Columns(batch).i64("calls")?;
        let groups = Columns(batch).i64("groups")?;
        for i in 0..batch.num_rows() {
            out.insert(start.value(i), (calls.value(i), groups.value(i)));
        }
    }
    Ok(out)
}

/// Computes the chargeback for `request` over the rows `scope` allows.
pub async fn compute(
    engine: &Engine,
    config: &ChargebackConfig,
    request: &ChargebackRequest,
    scope: &Scope,
) -> Result<Chargeback> {
    compute_with(engine, config, request, scope, true).await
}

/// [`compute`], from the raw SQL only when `rollups` is false (the tests' reference).
pub(crate) async fn compute_with(
    engine: &Engine,
    config: &ChargebackConfig,
    request: &ChargebackRequest,
    scope: &Scope,
    rollups: bool,
) -> Result<Chargeback> {
    if request.from >= request.to {
        return Err(Error::Plan("from must be before to".into()));
    }
    // A scope on the grouping column itself keeps whole groups, so the caller's rows are exactly
    // their groups' rows of the whole organisation's report, which the daily rollups serve
    // without scanning the calls.
    if rollups
        && let [by] = request.by[..]
        && let Some(allowed) = by.scoped_values(scope)
    {
        let mut whole = Box::pin(compute_with(engine, config, request, &Scope::All, true)).await?;
        whole.rows.retain(|r| {
            r.kind == RowKind::Usage
                && r.key
                    .first()
                    .and_then(Option::as_deref)
                    .is_some_and(|k| allowed.iter().any(|a| a == k))
        });
        whole.complete = false;
        return Ok(whole);
    }
    let complete = *scope == Scope::All;
    let first_by = request.by.first().copied();
    let mut rows = Vec::new();
    let mut platform_total = 0i64;
    for (table, a, b) in config.tables_within(request.from, request.to) {
        if !complete
            && table.allocation == Allocation::Even
            && table.platform_monthly_cost > 0.0
            && !(request.by.len() == 1 && first_by.is_some_and(|d| d.matches_scope(scope)))
        {
            return Err(Error::Plan(format!(
                "price table {} shares the platform cost evenly among the groups of the whole \
                 organisation; your role sees part of it, so ask by your own scope \
                 (by=team for a team lead, by=tenant for a tenant auditor)",
                table.version
            )));
        }
        let mut usage = Usage::new();
        // Every-row reports come from the daily rollups where they can; a failure there (a
        // read-only store, a corrupt part) costs speed, not the report.
        let served = if complete && rollups {
            match rollup_usage(engine, table, request, (a, b), &mut usage).await {
                Ok(served) => served,
                Err(e) => {
                    tracing::warn!(error = %e, "The chargeback could not use the daily rollups; computing it from the calls.");
                    usage.clear();
                    false
                }
            }
        } else {
            false
        };
        if !served {
            raw_usage(engine, table, request, scope, (a, b), &mut usage).await?;
        }
        let groups = priced(usage, table);
        let global = if complete {
            None
        } else {
            Some(global_counts(engine, request, a, b).await?)
        };
        // Each period of the table's part of the range, even those without a row.
        let mut start = request.granularity.floor(a);
        while start < b {
            let next = request.granularity.next(start);
            let (pa, pb) = (start.max(a), next.min(b));
            let cost = platform_cost_of(table, pa, pb);
            platform_total += cost;
            let key_ns = start.timestamp_nanos_opt().unwrap_or(i64::MAX);
            let mut period: Vec<ChargebackRow> = groups
                .range((key_ns, Vec::new())..)
                .take_while(|((s, _), _)| *s == key_ns)
                .map(|(_, r)| r.clone())
                .collect();
            for r in &mut period {
                r.period_start = pa;
                r.period_end = pb;
            }
            allocate(
                &mut period,
                cost,
                table.allocation,
                global
                    .as_ref()
                    .map(|g| g.get(&key_ns).copied().unwrap_or((0, 0))),
            );
            let used = period.iter().any(|r| r.calls > 0);
            rows.extend(period);
            if !used && complete {
                rows.push(ChargebackRow {
                    period_start: pa,
                    period_end: pb,
                    kind: RowKind::Idle,
                    key: vec![None; request.by.len()],
                    platform_cost_micros: cost,
                    ..new_row(0, Vec::new(), &table.version)
                });
            }
            start = next;
        }
    }
    Ok(Chargeback {
        from: request.from,
        to: request.to,
        by: request.by.clone(),
        granularity: request.granularity,
        currency: config.currency.clone(),
        rows,
        platform_cost_micros: platform_total,
        complete,
    })
}

/// Shares one period's fixed cost among its rows with calls. `global` is the whole
/// organisation's (calls, groups) in the period when the rows are only the caller's part.
fn allocate(
    period: &mut [ChargebackRow],
    cost: i64,
    allocation: Allocation,
    global: Option<(i64, i64)>,
) {
    match global {
        None => {
            let weights: Vec<i64> = period
                .iter()
                .map(|r| match allocation {
                    Allocation::Proportional => r.calls,
                    Allocation::Even => i64::from(r.calls > 0),
                })
                .collect();
            for (r, share) in period.iter_mut().zip(split(cost, &weights)) {
                r.platform_cost_micros = share;
            }
        }
        Some((calls, groups)) => {
            for r in period.iter_mut() {
                let (part, whole) = match allocation {
                    Allocation::Proportional => (r.calls, calls),
                    Allocation::Even => (i64::from(r.calls > 0), groups),
                };
                r.platform_cost_micros = if whole > 0 {
                    i64::try_from(i128::from(cost) * i128::from(part) / i128::from(whole))
                        .unwrap_or(0)
                } else {
                    0
                };
            }
        }
    }
}

/// `micros` as a decimal in currency units, exactly (`1234567` → `1.234567`).
pub fn decimal(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Amounts as Decimal128 with 6 places: exact in CSV and tables.
fn money(values: impl Iterator<Item = i64>) -> Result<ArrayRef> {
    let mut b = Decimal128Builder::new();
    for v in values {
        b.append_value(i128::from(v));
    }
    let array = b
        .finish()
        .with_precision_and_scale(20, 6)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Arc::new(array))
}

impl Chargeback {
    /// The rows as one Arrow batch (for the CLI's table and CSV, and the API's CSV).
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let rfc = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut fields = vec![
            Field::new("period_start", DataType::Utf8, false),
            Field::new("period_end", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                self.rows.iter().map(|r| rfc(&r.period_start)),
            )),
            Arc::new(StringArray::from_iter_values(
                self.rows.iter().map(|r| rfc(&r.period_end)),
            )),
            Arc::new(StringArray::from_iter_values(self.rows.iter().map(
                |r| match r.kind {
                    RowKind::Usage => "usage",
                    RowKind::Idle => "idle",
                },
            ))),
        ];
        for (i, d) in self.by.iter().enumerate() {
            fields.push(Field::new(d.as_str(), DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from_iter(
                self.rows.iter().map(|r| r.key.get(i).cloned().flatten()),
            )));
        }
        let int = |f: fn(&ChargebackRow) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(self.rows.iter().map(f)))
        };
        fields.push(Field::new("price_table_version", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(
            self.rows.iter().map(|r| r.price_table_version.as_str()),
        )));
        fields.push(Field::new("currency", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(
            self.rows.iter().map(|_| self.currency.as_str()),
        )));
        for (name, f) in [
            (
                "calls",
                (|r: &ChargebackRow| r.calls) as fn(&ChargebackRow) -> i64,
            ),
            ("failed_calls", |r| r.failed_calls),
            ("input_tokens", |r| r.input_tokens),
            ("output_tokens", |r| r.output_tokens),
        ] {
            fields.push(Field::new(name, DataType::Int64, false));
            columns.push(int(f));
        }
        fields.push(Field::new("duration_s", DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            self.rows.iter().map(|r| r.duration_s),
        )));
        let decimal_type = DataType::Decimal128(20, 6);
        for (name, f) in [
            (
                "call_cost",
                (|r: &ChargebackRow| r.call_cost_micros) as fn(&ChargebackRow) -> i64,
            ),
            ("duration_cost", |r| r.duration_cost_micros),
            ("token_cost", |r| r.token_cost_micros),
            ("usage_cost", ChargebackRow::usage_cost_micros),
            ("platform_cost", |r| r.platform_cost_micros),
            ("total_cost", ChargebackRow::total_cost_micros),
        ] {
            fields.push(Field::new(name, decimal_type.clone(), false));
            columns.push(money(self.rows.iter().map(f))?);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The report as the API's JSON: amounts as decimal strings (exact), plus the totals and
    /// the reconciliation of the fixed cost.
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert(
                    "period_start".into(),
                    r.period_start
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        .into(),
                );
                o.insert(
                    "period_end".into(),
                    r.period_end
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        .into(),
                );
                o.insert(
                    "kind".into(),
                    serde_json::to_value(r.kind).unwrap_or_default(),
                );
                for (d, v) in self.by.iter().zip(&r.key) {
                    o.insert(d.as_str().into(), v.clone().into());
                }
                o.insert(
                    "price_table_version".into(),
                    r.price_table_version.clone().into(),
                );
                o.insert("calls".into(), r.calls.into());
                o.insert("failed_calls".into(), r.failed_calls.into());
                o.insert("duration_s".into(), r.duration_s.into());
                o.insert("input_tokens".into(), r.input_tokens.into());
                o.insert("output_tokens".into(), r.output_tokens.into());
                for (name, v) in [
                    ("call_cost", r.call_cost_micros),
                    ("duration_cost", r.duration_cost_micros),
                    ("token_cost", r.token_cost_micros),
                    ("usage_cost", r.usage_cost_micros()),
                    ("platform_cost", r.platform_cost_micros),
                    ("total_cost", r.total_cost_micros()),
                ] {
                    o.insert(name.into(), decimal(v).into());
                }
                serde_json::Value::Object(o)
            })
            .collect();
        let usage: i64 = self.rows.iter().map(ChargebackRow::usage_cost_micros).sum();
        serde_json::json!({
            "from": self.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "to": self.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "by": self.by,
            "granularity": self.granularity,
            "currency": self.currency,
            "complete": self.complete,
            "price_table_versions": self.versions(),
            "totals": {
                "usage_cost": decimal(usage),
                "platform_cost": decimal(self.platform_cost_micros),
                "allocated_platform_cost": decimal(self.allocated_micros()),
                "idle_platform_cost": decimal(self.idle_micros()),
                "reconciles": self.complete
                    && self.allocated_micros() + self.idle_micros() == self.platform_cost_micros,
            },
            "rows": rows,
        })
    }

    /// The price-table versions the rows were priced with, in order of first use.
    pub fn versions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r.price_table_version) {
                out.push(r.price_table_version.clone());
            }
        }
        out
    }
}

/// Parses a range bound: RFC 3339, or a `YYYY-MM-DD` day (its midnight, UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

#[cfg(test)]
#[path = "chargeback_tests.rs"]
mod tests;
