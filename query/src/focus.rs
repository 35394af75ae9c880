//! The chargeback as FOCUS 1.2 (FinOps Open Cost and Usage Specification) cost and usage rows,
//! for FinOps tools that read FOCUS, written as CSV or Parquet.
//!
//! The grain is the hourly chargeback by team × MCP server × tool ([`request`]). Each usage row
//! of the chargeback becomes one FOCUS row per kind of thing it charges (its calls, its LLM
//! tokens), each idle row one FOCUS row:
//!
//! - calls: `ChargeCategory` `Usage`, `Usage-Based`, quantities in `Requests`; the cost includes
//!   the row's share of the platform's fixed cost (shown again in `x_PlatformCost`), because the
//!   price table passes that cost on to the groups in proportion to their use;
//! - LLM tokens (not tied to a server or tool): `Usage`, `Usage-Based`, consumed in `Tokens`,
//!   priced in `1000 Tokens`, `ServiceName` `LLM tokens`, `ResourceId` `llm-tokens`;
//! - idle (the fixed cost of an hour nobody used): `Purchase`, `Recurring`, priced in `Hours`,
//!   no consumed quantity and no resource: FOCUS keeps `ConsumedQuantity` for usage, and a
//!   recurring charge "regardless of whether the service was used" is what idle capacity is.
//!
//! Amounts are exact: costs are the chargeback's micro-units as `Decimal128(38, 6)`, so the
//! `BilledCost` column sums to the chargeback's total. `docs/focus.md` has the full mapping.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Datelike, Months, Utc};

use crate::chargeback::{
    Chargeback, ChargebackRequest, ChargebackRow, Dimension, Granularity, RowKind,
};
use crate::price_table::ChargebackConfig;
use crate::{Error, Result};

pub use crate::files::{write_csv, write_parquet};

/// The FOCUS version the rows follow.
pub const FOCUS_VERSION: &str = "1.2";

/// The chargeback grouping the export is made from (with [`Granularity::Hour`]).
pub const GRAIN: [Dimension; 3] = [Dimension::Team, Dimension::Server, Dimension::Tool];

/// `ServiceCategory` of every row: MCP tool calls and tokens are spent by AI agents.
const SERVICE_CATEGORY: &str = "AI and Machine Learning";
/// `ServiceSubcategory` of every row (its parent is [`SERVICE_CATEGORY`]).
const SERVICE_SUBCATEGORY: &str = "Generative AI";
/// `ServiceName` of token rows: tokens are the LLM's, not an MCP server's.
const TOKENS_SERVICE: &str = "LLM tokens";
/// `ServiceName` of calls whose server was not recorded.
const UNKNOWN_SERVER: &str = "MCP (server not recorded)";
/// `ServiceName` of idle rows.
const PLATFORM_SERVICE: &str = "MCP platform";

/// Scale of costs and quantities: the chargeback's micro-units.
const SCALE: i8 = 6;
/// Scale of unit prices: fine enough that price × quantity rounds back to the cost (see
/// [`unit_price`]).
const PRICE_SCALE: i8 = 18;

/// The chargeback request for the FOCUS export of `[from, to)`.
pub fn request(from: DateTime<Utc>, to: DateTime<Utc>) -> ChargebackRequest {
    ChargebackRequest {
        from,
        to,
        by: GRAIN.to_vec(),
        granularity: Granularity::Hour,
    }
}

/// What one FOCUS row charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Calls,
    Tokens,
    Idle,
}

/// Where each grouping column sits in a row's key.
#[derive(Debug, Default)]
struct Keys {
    team: Option<usize>,
    cost_center: Option<usize>,
    tenant: Option<usize>,
    server: usize,
    tool: usize,
}

impl Keys {
    fn of(by: &[Dimension]) -> Result<Self> {
        let (mut keys, mut server, mut tool) = (Keys::default(), None, None);
        for (i, d) in by.iter().enumerate() {
            let slot = match d {
                Dimension::Team => &mut keys.team,
                Dimension::CostCenter => &mut keys.cost_center,
                Dimension::Tenant => &mut keys.tenant,
                Dimension::Server => &mut server,
                Dimension::Tool => &mut tool,
                // A person is not a FOCUS sub account, and model rows have no server.
                Dimension::User | Dimension::Model => {
                    return Err(Error::Plan(format!(
                        "the FOCUS export cannot group by {}",
                        d.as_str()
                    )));
                }
            };
            if slot.replace(i).is_some() {
                return Err(Error::Plan(format!("{} is grouped by twice", d.as_str())));
            }
        }
        match (server, tool) {
            (Some(server), Some(tool)) => Ok(Keys {
                server,
                tool,
                ..keys
            }),
            _ => Err(Error::Plan(
                "the FOCUS export needs a chargeback by server and tool (and team)".into(),
            )),
        }
    }
}

/// One FOCUS row, before it becomes columns.
struct Line<'a> {
    row: &'a ChargebackRow,
    part: Part,
    team: Option<&'a str>,
    tags: Option<String>,
    server: Option<&'a str>,
    tool: Option<&'a str>,
}

impl Line<'_> {
    fn cost(&self) -> i64 {
        let r = self.row;
        match self.part {
            Part::Calls => r.call_cost_micros + r.duration_cost_micros + r.platform_cost_micros,
            Part::Tokens => r.token_cost_micros,
            Part::Idle => r.total_cost_micros(),
        }
    }

    /// `PricingQuantity` at [`SCALE`], and its unit.
    fn pricing(&self) -> (i128, &'static str) {
        let r = self.row;
        match self.part {
            Part::Calls => (i128::from(r.calls) * 1_000_000, "Requests"),
            // Token prices are per 1 000 tokens.
            Part::Tokens => (tokens(r) * 1_000, "1000 Tokens"),
            Part::Idle => {
                let micros = (r.period_end - r.period_start)
                    .num_microseconds()
                    .unwrap_or(0);
                ((i128::from(micros) + 1_800) / 3_600, "Hours")
            }
        }
    }

    /// `ConsumedQuantity` at [`SCALE`] and `ConsumedUnit`: usage only.
    fn consumed(&self) -> Option<(i128, &'static str)> {
        match self.part {
            Part::Calls => Some((i128::from(self.row.calls) * 1_000_000, "Requests")),
            Part::Tokens => Some((tokens(self.row) * 1_000_000, "Tokens")),
            Part::Idle => None,
        }
    }

    fn service_name(&self) -> &str {
        match self.part {
            Part::Calls => self.server.unwrap_or(UNKNOWN_SERVER),
            Part::Tokens => TOKENS_SERVICE,
            Part::Idle => PLATFORM_SERVICE,
        }
    }

    /// `ResourceId`, `ResourceName`, `ResourceType`: the tool, else the server; none when the
    /// server is unknown (there is no identifier to give) and none for idle capacity.
    fn resource(&self) -> (Option<String>, Option<String>, Option<&'static str>) {
        match (self.part, self.server, self.tool) {
            (Part::Calls, Some(s), Some(t)) => (
                Some(format!("mcp://{}/{}", uri_segment(s), uri_segment(t))),
                Some(t.to_owned()),
                Some("MCP tool"),
            ),
            (Part::Calls, Some(s), None) => (
                Some(format!("mcp://{}", uri_segment(s))),
                Some(s.to_owned()),
                Some("MCP server"),
            ),
            (Part::Tokens, _, _) => (
                Some("llm-tokens".to_owned()),
                Some(TOKENS_SERVICE.to_owned()),
                Some("LLM tokens"),
            ),
            _ => (None, None, None),
        }
    }

    /// `SkuId`, and `SkuPriceId` too: what is sold, whatever the price table's version.
    fn sku_id(&self) -> &'static str {
        match self.part {
            Part::Calls => "mcp-tool-call",
            Part::Tokens => "llm-tokens",
            Part::Idle => "mcp-platform-hour",
        }
    }

    fn description(&self) -> String {
        let share = if self.row.platform_cost_micros > 0 {
            ", including a share of the platform's fixed cost"
        } else {
            ""
        };
        match (self.part, self.server, self.tool) {
            (Part::Calls, Some(s), Some(t)) => {
                format!("Calls to MCP tool {t} on server {s}{share}")
            }
            (Part::Calls, Some(s), None) => {
                format!("Calls to MCP server {s} (tool not recorded){share}")
            }
            (Part::Calls, None, Some(t)) => {
                format!("Calls to MCP tool {t} (server not recorded){share}")
            }
            (Part::Calls, None, None) => {
                format!("MCP calls (server and tool not recorded){share}")
            }
            (Part::Tokens, _, _) => "LLM tokens of agents' calls (input and output)".to_owned(),
            (Part::Idle, _, _) => {
                "MCP platform fixed cost of an hour without calls (not allocated)".to_owned()
            }
        }
    }
}

fn tokens(row: &ChargebackRow) -> i128 {
    i128::from(row.input_tokens) + i128::from(row.output_tokens)
}

/// `text` as one URI path segment: unreserved characters kept, every other byte `%XX`.
fn uri_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The unit price at [`PRICE_SCALE`] of `cost` (micro-units) over `quantity` (at [`SCALE`]),
/// rounded half up. A row blends prices (per call by operation class, per second, the platform
/// share), so this is its average price per pricing unit; the rounding error of price ×
/// quantity stays below half a micro-unit while the quantity is under 10^12, so the product
/// rounded to the cost's 6 places is the cost exactly. `None` when nothing was counted.
fn unit_price(cost: i64, quantity: i128) -> Option<i128> {
    let cost = i128::from(cost);
    match quantity {
        q if q > 0 => Some((cost * 10i128.pow(18) + q / 2) / q),
        // Nothing counted and nothing charged: a price of 0 keeps price × quantity = cost.
        _ if cost == 0 => Some(0),
        _ => None,
    }
}

/// The calendar month holding `t`: FOCUS's billing period (the platform bills monthly).
fn month_of(t: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let start = t
        .date_naive()
        .with_day(1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    let end = start.and_then(|s| s.checked_add_months(Months::new(1)));
    start
        .zip(end)
        .ok_or_else(|| Error::Plan(format!("{t} is outside the dates FOCUS can express")))
}

/// The rows a chargeback row becomes: calls and tokens separately (their units differ), so a
/// row holding both (calls with no server or tool, and the team's tokens, share that key)
/// becomes two; a row with neither came from LLM calls that counted no tokens.
fn parts(row: &ChargebackRow) -> Vec<Part> {
    if row.kind == RowKind::Idle {
        return vec![Part::Idle];
    }
    let calls = row.calls > 0
        || row.call_cost_micros != 0
        || row.duration_cost_micros != 0
        || row.platform_cost_micros != 0;
    let tokens = tokens(row) > 0 || row.token_cost_micros != 0 || !calls;
    let mut out = Vec::with_capacity(2);
    if calls {
        out.push(Part::Calls);
    }
    if tokens {
        out.push(Part::Tokens);
    }
    out
}

fn lines<'a>(chargeback: &'a Chargeback, keys: &Keys) -> Result<Vec<Line<'a>>> {
    let mut out = Vec::with_capacity(chargeback.rows.len());
    for row in &chargeback.rows {
        if row.key.len() != chargeback.by.len() {
            return Err(Error::Internal(format!(
                "a chargeback row has {} key values for {} grouping columns",
                row.key.len(),
                chargeback.by.len()
            )));
        }
        let value = |i: Option<usize>| i.and_then(|i| row.key[i].as_deref());
        let mut tags = serde_json::Map::new();
        for (name, i) in [
            ("team", keys.team),
            ("cost_center", keys.cost_center),
            ("tenant", keys.tenant),
        ] {
            if let Some(v) = value(i) {
                tags.insert(name.into(), v.into());
            }
        }
        let tags = (!tags.is_empty()).then(|| serde_json::Value::Object(tags).to_string());
        for part in parts(row) {
            out.push(Line {
                row,
                part,
                team: value(keys.team),
                tags: tags.clone(),
                server: value(Some(keys.server)),
                tool: value(Some(keys.tool)),
            });
        }
    }
    Ok(out)
}

/// Columns in the making, in order.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    /// A string column; `nullable` as the specification allows, whatever this batch holds.
    fn text<'a>(
        &mut self,
        name: &str,
        nullable: bool,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> Result<()> {
        let array = StringArray::from_iter(values);
        if !nullable && array.null_count() > 0 {
            return Err(Error::Internal(format!("FOCUS column {name} got a null")));
        }
        self.fields.push(Field::new(name, DataType::Utf8, nullable));
        self.arrays.push(Arc::new(array));
        Ok(())
    }

    fn decimal(
        &mut self,
        name: &str,
        nullable: bool,
        scale: i8,
        values: impl Iterator<Item = Option<i128>>,
    ) -> Result<()> {
        let array = Decimal128Array::from_iter(values)
            .with_precision_and_scale(38, scale)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if !nullable && array.null_count() > 0 {
            return Err(Error::Internal(format!("FOCUS column {name} got a null")));
        }
        self.fields
            .push(Field::new(name, array.data_type().clone(), nullable));
        self.arrays.push(Arc::new(array));
        Ok(())
    }

    fn time(&mut self, name: &str, values: impl Iterator<Item = DateTime<Utc>>) {
        let array =
            TimestampMicrosecondArray::from_iter_values(values.map(|t| t.timestamp_micros()))
                .with_timezone("UTC");
        self.fields.push(Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
        self.arrays.push(Arc::new(array));
    }

    fn int(&mut self, name: &str, values: impl Iterator<Item = i64>) {
        self.fields.push(Field::new(name, DataType::Int64, false));
        self.arrays
            .push(Arc::new(Int64Array::from_iter_values(values)));
    }

    fn finish(self) -> Result<RecordBatch> {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.arrays)
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// The FOCUS 1.2 rows of `chargeback`, which must be hourly and grouped by server and tool
/// (and team; cost centre and tenant may be added and go to `Tags`): FOCUS columns first, in
/// the specification's (alphabetical) order, then the `x_` columns.
pub fn rows(chargeback: &Chargeback, config: &ChargebackConfig) -> Result<RecordBatch> {
    if chargeback.granularity != Granularity::Hour {
        return Err(Error::Plan(
            "the FOCUS export is hourly: compute the chargeback with granularity hour".into(),
        ));
    }
    if chargeback.currency != config.currency {
        return Err(Error::Plan(format!(
            "the chargeback is in {} but the billing currency is {}",
            chargeback.currency, config.currency
        )));
    }
    let keys = Keys::of(&chargeback.by)?;
    let lines = lines(chargeback, &keys)?;
    let months = lines
        .iter()
        .map(|l| month_of(l.row.period_start))
        .collect::<Result<Vec<_>>>()?;
    let usage = |l: &Line<'_>| l.part != Part::Idle;
    let same = |v: &'static str| lines.iter().map(move |_| Some(v));
    let cost = || lines.iter().map(|l| Some(i128::from(l.cost())));
    // Unit prices of the whole row: list, contracted and effective prices are the same.
    let price = || lines.iter().map(|l| unit_price(l.cost(), l.pricing().0));
    let descriptions: Vec<String> = lines.iter().map(Line::description).collect();
    let resources: Vec<_> = lines.iter().map(Line::resource).collect();

    // `N` marks the columns the specification allows nulls in; the others never hold one.
    const N: bool = true;
    let mut c = Columns::default();
    // An internal rate card has no discounts, commitments or negotiated prices, and what the
    // chargeback computes is what the team is billed: list, contracted, effective and billed
    // cost are one amount.
    c.decimal("BilledCost", !N, SCALE, cost())?;
    c.text(
        "BillingAccountId",
        !N,
        same_str(&lines, &config.billing_account_id),
    )?;
    c.text(
        "BillingAccountName",
        N,
        same_str(&lines, &config.billing_account_name),
    )?;
    c.text("BillingCurrency", !N, same_str(&lines, &config.currency))?;
    c.time("BillingPeriodEnd", months.iter().map(|m| m.1));
    c.time("BillingPeriodStart", months.iter().map(|m| m.0));
    let category = |l: &Line<'_>| if usage(l) { "Usage" } else { "Purchase" };
    c.text(
        "ChargeCategory",
        !N,
        lines.iter().map(|l| Some(category(l))),
    )?;
    // No row corrects an earlier one: a recomputed chargeback replaces the whole export.
    c.text("ChargeClass", N, lines.iter().map(|_| None))?;
    c.text(
        "ChargeDescription",
        N,
        descriptions.iter().map(|d| Some(d.as_str())),
    )?;
    let frequency = |l: &Line<'_>| if usage(l) { "Usage-Based" } else { "Recurring" };
    c.text(
        "ChargeFrequency",
        !N,
        lines.iter().map(|l| Some(frequency(l))),
    )?;
    c.time("ChargePeriodEnd", lines.iter().map(|l| l.row.period_end));
    c.time(
        "ChargePeriodStart",
        lines.iter().map(|l| l.row.period_start),
    );
    let consumed: Vec<_> = lines.iter().map(Line::consumed).collect();
    c.decimal(
        "ConsumedQuantity",
        N,
        SCALE,
        consumed.iter().map(|q| q.map(|q| q.0)),
    )?;
    c.text("ConsumedUnit", N, consumed.iter().map(|q| q.map(|q| q.1)))?;
    c.decimal("ContractedCost", !N, SCALE, cost())?;
    c.decimal("ContractedUnitPrice", N, PRICE_SCALE, price())?;
    c.decimal("EffectiveCost", !N, SCALE, cost())?;
    c.text("InvoiceIssuerName", !N, same_str(&lines, &config.provider))?;
    c.decimal("ListCost", !N, SCALE, cost())?;
    c.decimal("ListUnitPrice", N, PRICE_SCALE, price())?;
    // Prices come from the rate card: no spot, dynamic or committed pricing.
    c.text("PricingCategory", N, same("Standard"))?;
    let pricing: Vec<_> = lines.iter().map(Line::pricing).collect();
    c.decimal(
        "PricingQuantity",
        N,
        SCALE,
        pricing.iter().map(|p| Some(p.0)),
    )?;
    c.text("PricingUnit", N, pricing.iter().map(|p| Some(p.1)))?;
    c.text("ProviderName", !N, same_str(&lines, &config.provider))?;
    c.text("PublisherName", !N, same_str(&lines, &config.provider))?;
    c.text("ResourceId", N, resources.iter().map(|r| r.0.as_deref()))?;
    c.text("ResourceName", N, resources.iter().map(|r| r.1.as_deref()))?;
    c.text("ResourceType", N, resources.iter().map(|r| r.2))?;
    c.text("ServiceCategory", !N, same(SERVICE_CATEGORY))?;
    c.text(
        "ServiceName",
        !N,
        lines.iter().map(|l| Some(l.service_name())),
    )?;
    c.text("ServiceSubcategory", !N, same(SERVICE_SUBCATEGORY))?;
    c.text("SkuId", N, lines.iter().map(|l| Some(l.sku_id())))?;
    // FOCUS wants a SKU price ID that stays the same across price changes (no effective dates
    // in it): the price table version that priced the row is in `x_PriceTableVersion`.
    c.text("SkuPriceId", N, lines.iter().map(|l| Some(l.sku_id())))?;
    // Teams are the sub accounts the platform's cost is charged back to; idle has none.
    c.text("SubAccountId", N, lines.iter().map(|l| l.team))?;
    c.text("SubAccountName", N, lines.iter().map(|l| l.team))?;
    c.text("Tags", N, lines.iter().map(|l| l.tags.as_deref()))?;
    custom_columns(&mut c, &lines)?;
    c.finish()
}

/// The `x_` columns: what the row counts and how its cost is made up. A column that does not
/// apply to the row's part holds 0, so every column sums to the chargeback's total.
fn custom_columns(c: &mut Columns, lines: &[Line<'_>]) -> Result<()> {
    let kind = |l: &Line<'_>| match l.part {
        Part::Calls => "calls",
        Part::Tokens => "tokens",
        Part::Idle => "idle",
    };
    c.text("x_RowKind", false, lines.iter().map(|l| Some(kind(l))))?;
    let versions = lines
        .iter()
        .map(|l| Some(l.row.price_table_version.as_str()));
    c.text("x_PriceTableVersion", false, versions)?;
    let of = |part: Part, f: fn(&ChargebackRow) -> i64| {
        lines
            .iter()
            .map(move |l| if l.part == part { f(l.row) } else { 0 })
    };
    c.int("x_Calls", of(Part::Calls, |r| r.calls));
    c.int("x_FailedCalls", of(Part::Calls, |r| r.failed_calls));
    let seconds = lines.iter().map(|l| {
        let s = if l.part == Part::Calls {
            l.row.duration_s
        } else {
            0.0
        };
        // Durations are sums of milliseconds: 6 places hold them exactly.
        s.is_finite().then(|| (s * 1e6).round() as i128)
    });
    c.decimal("x_DurationSeconds", true, SCALE, seconds)?;
    c.int("x_InputTokens", of(Part::Tokens, |r| r.input_tokens));
    c.int("x_OutputTokens", of(Part::Tokens, |r| r.output_tokens));
    let money = |part: Part, f: fn(&ChargebackRow) -> i64| of(part, f).map(|v| Some(i128::from(v)));
    c.decimal(
        "x_CallCost",
        false,
        SCALE,
        money(Part::Calls, |r| r.call_cost_micros),
    )?;
    c.decimal(
        "x_DurationCost",
        false,
        SCALE,
        money(Part::Calls, |r| r.duration_cost_micros),
    )?;
    c.decimal(
        "x_TokenCost",
        false,
        SCALE,
        money(Part::Tokens, |r| r.token_cost_micros),
    )?;
    // The platform share sits on calls rows and makes up all of an idle row.
    let platform = lines.iter().map(|l| {
        Some(i128::from(if l.part == Part::Tokens {
            0
        } else {
            l.row.platform_cost_micros
        }))
    });
    c.decimal("x_PlatformCost", false, SCALE, platform)
}

fn same_str<'a>(lines: &'a [Line<'_>], v: &'a str) -> impl Iterator<Item = Option<&'a str>> {
    lines.iter().map(move |_| Some(v))
}

#[cfg(test)]
#[path = "focus_tests.rs"]
mod tests;
