//! Conformance of the FOCUS export, checked against the FOCUS 1.2 column definitions written
//! out here from the specification (not from the code under test), and exactness against the
//! chargeback it came from.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, Timelike, Utc};

use super::*;
use crate::chargeback::{Chargeback, ChargebackRow, Dimension, Granularity, RowKind, decimal};
use crate::price_table::ChargebackConfig;

/// Feature level of a FOCUS 1.2 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Mandatory,
    Recommended,
    Conditional,
}

/// Data type of a FOCUS 1.2 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Decimal,
    DateTime,
    String,
    Json,
}

/// One column of the FOCUS 1.2 specification: ID, feature level, data type, whether it allows
/// nulls, and its allowed values (empty: not an allowed-values column).
struct Spec {
    id: &'static str,
    level: Level,
    kind: Kind,
    nulls: bool,
    allowed: &'static [&'static str],
}

const fn col(id: &'static str, level: Level, kind: Kind, nulls: bool) -> Spec {
    Spec {
        id,
        level,
        kind,
        nulls,
        allowed: &[],
    }
}

const fn values(
    id: &'static str,
    level: Level,
    nulls: bool,
    allowed: &'static [&'static str],
) -> Spec {
    Spec {
        id,
        level,
        kind: Kind::String,
        nulls,
        allowed,
    }
}

use Kind::{DateTime as Time, Decimal as Dec, Json, String as Str};
use Level::{Conditional as C, Mandatory as M, Recommended as R};

const SERVICE_CATEGORIES: &[&str] = &[
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
];

/// The subcategories whose parent is "AI and Machine Learning" (the only category a
/// Calltrail export may use; the check below also asks for that parent).
const AI_SUBCATEGORIES: &[&str] = &[
    "AI Platforms",
    "Bots",
    "Generative AI",
    "Machine Learning",
    "Natural Language Processing",
    "Other (AI and Machine Learning)",
];

/// The FOCUS 1.2 columns, in the specification's (alphabetical) order.
const FOCUS_1_2: &[Spec] = &[
    col("AvailabilityZone", R, Str, true),
    col("BilledCost", M, Dec, false),
    col("BillingAccountId", M, Str, false),
    col("BillingAccountName", M, Str, true),
    col("BillingAccountType", C, Str, true),
    col("BillingCurrency", M, Str, false),
    col("BillingPeriodEnd", M, Time, false),
    col("BillingPeriodStart", M, Time, false),
    col("CapacityReservationId", C, Str, true),
    values("CapacityReservationStatus", C, true, &["Used", "Unused"]),
    values(
        "ChargeCategory",
        M,
        false,
        &["Usage", "Purchase", "Tax", "Credit", "Adjustment"],
    ),
    values("ChargeClass", M, true, &["Correction"]),
    col("ChargeDescription", M, Str, true),
    values(
        "ChargeFrequency",
        R,
        false,
        &["One-Time", "Recurring", "Usage-Based"],
    ),
    col("ChargePeriodEnd", M, Time, false),
    col("ChargePeriodStart", M, Time, false),
    values("CommitmentDiscountCategory", C, true, &["Spend", "Usage"]),
    col("CommitmentDiscountId", C, Str, true),
    col("CommitmentDiscountName", C, Str, true),
    col("CommitmentDiscountQuantity", C, Dec, true),
    values("CommitmentDiscountStatus", C, true, &["Used", "Unused"]),
    col("CommitmentDiscountType", C, Str, true),
    col("CommitmentDiscountUnit", C, Str, true),
    col("ConsumedQuantity", C, Dec, true),
    col("ConsumedUnit", C, Str, true),
    col("ContractedCost", M, Dec, false),
    col("ContractedUnitPrice", C, Dec, true),
    col("EffectiveCost", M, Dec, false),
    col("InvoiceId", R, Str, true),
    col("InvoiceIssuerName", M, Str, false),
    col("ListCost", M, Dec, false),
    col("ListUnitPrice", C, Dec, true),
    values(
        "PricingCategory",
        C,
        true,
        &["Standard", "Dynamic", "Committed", "Other"],
    ),
    col("PricingCurrency", C, Str, true),
    col("PricingCurrencyContractedUnitPrice", C, Dec, true),
    col("PricingCurrencyEffectiveCost", C, Dec, true),
    col("PricingCurrencyListUnitPrice", C, Dec, true),
    col("PricingQuantity", M, Dec, true),
    col("PricingUnit", M, Str, true),
    col("ProviderName", M, Str, false),
    col("PublisherName", M, Str, false),
    col("RegionId", C, Str, true),
    col("RegionName", C, Str, true),
    col("ResourceId", C, Str, true),
    col("ResourceName", C, Str, true),
    col("ResourceType", C, Str, true),
    values("ServiceCategory", M, false, SERVICE_CATEGORIES),
    col("ServiceName", M, Str, false),
    values("ServiceSubcategory", R, false, AI_SUBCATEGORIES),
    col("SkuId", C, Str, true),
    col("SkuMeter", C, Str, true),
    col("SkuPriceDetails", C, Json, true),
    col("SkuPriceId", C, Str, true),
    col("SubAccountId", C, Str, true),
    col("SubAccountName", C, Str, true),
    col("SubAccountType", C, Str, true),
    col("Tags", C, Json, true),
];

/// ISO 4217 codes a configuration may plausibly use (the check also asks for the shape).
const ISO_4217: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "HKD", "INR", "JPY", "KRW", "MXN",
    "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR",
];

fn spec(id: &str) -> Option<&'static Spec> {
    FOCUS_1_2.iter().find(|s| s.id == id)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn usage(hour: &str, key: [Option<&str>; 3]) -> ChargebackRow {
    let start = at(hour);
    ChargebackRow {
        period_start: start,
        period_end: start + chrono::Duration::hours(1),
        kind: RowKind::Usage,
        key: key.iter().map(|k| k.map(str::to_owned)).collect(),
        price_table_version: "2026-01".into(),
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

/// A chargeback by team × server × tool × hour across a month end, with: calls whose cost does
/// not divide evenly by their count, calls without a server or tool sharing their key with the
/// team's tokens, tokens alone, an idle hour, unattributed calls, and names that need escaping
/// in URIs, JSON and CSV.
fn sample() -> Chargeback {
    let h1 = "2026-03-31T22:00:00Z";
    let h2 = "2026-03-31T23:00:00Z";
    let h3 = "2026-04-01T00:00:00Z";
    let rows = vec![
        ChargebackRow {
            calls: 3,
            failed_calls: 1,
            duration_s: 1.5,
            call_cost_micros: 30_000,
            duration_cost_micros: 1_500,
            platform_cost_micros: 333_334,
            ..usage(h1, [Some("payments"), Some("docs"), Some("search")])
        },
        ChargebackRow {
            calls: 2,
            duration_s: 0.25,
            call_cost_micros: 20_000,
            platform_cost_micros: 666_666,
            input_tokens: 1_200,
            output_tokens: 300,
            token_cost_micros: 4_500,
            ..usage(h1, [Some("payments"), None, None])
        },
        ChargebackRow {
            input_tokens: 1_000,
            output_tokens: 500,
            token_cost_micros: 2_250,
            ..usage(h1, [Some("risk"), None, None])
        },
        ChargebackRow {
            input_tokens: 10,
            token_cost_micros: 7,
            ..usage(h2, [Some("risk"), None, None])
        },
        ChargebackRow {
            kind: RowKind::Idle,
            platform_cost_micros: 1_000_000,
            ..usage(h2, [None, None, None])
        },
        ChargebackRow {
            calls: 7,
            duration_s: 12.345,
            call_cost_micros: 70_000,
            duration_cost_micros: 12_345,
            platform_cost_micros: 500_000,
            ..usage(
                h3,
                [
                    Some("ops \"blue\", west"),
                    Some("crm db"),
                    Some("update/record"),
                ],
            )
        },
        ChargebackRow {
            calls: 1,
            failed_calls: 1,
            duration_s: 0.001,
            call_cost_micros: 10_000,
            duration_cost_micros: 1,
            platform_cost_micros: 500_000,
            ..usage(h3, [None, Some("docs"), Some("search")])
        },
    ];
    let platform = rows.iter().map(|r| r.platform_cost_micros).sum();
    Chargeback {
        from: at(h1),
        to: at("2026-04-01T01:00:00Z"),
        by: GRAIN.to_vec(),
        granularity: Granularity::Hour,
        currency: "EUR".into(),
        rows,
        platform_cost_micros: platform,
        complete: true,
    }
}

fn config() -> ChargebackConfig {
    ChargebackConfig {
        currency: "EUR".into(),
        ..ChargebackConfig::default()
    }
}

fn batch() -> RecordBatch {
    rows(&sample(), &config()).unwrap()
}

fn strings(batch: &RecordBatch, id: &str) -> Vec<Option<String>> {
    let c = batch
        .column_by_name(id)
        .unwrap_or_else(|| panic!("no {id}"));
    let a = c.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned()))
        .collect()
}

/// A decimal column's values at scale 6 (the scale of costs).
fn micros(batch: &RecordBatch, id: &str) -> Vec<Option<i128>> {
    let a = batch
        .column_by_name(id)
        .unwrap()
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    let shift = 10i128.pow(u32::try_from(a.scale() - 6).unwrap());
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i) / shift))
        .collect()
}

fn times(batch: &RecordBatch, id: &str) -> Vec<DateTime<Utc>> {
    let a = batch
        .column_by_name(id)
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    (0..a.len())
        .map(|i| DateTime::from_timestamp_micros(a.value(i)).unwrap())
        .collect()
}

fn is_pascal_case(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_uppercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[test]
fn every_mandatory_column_is_present_with_its_type() {
    let batch = batch();
    let schema = batch.schema();
    for s in FOCUS_1_2.iter().filter(|s| s.level == Level::Mandatory) {
        assert!(
            schema.field_with_name(s.id).is_ok(),
            "mandatory column {} is missing",
            s.id
        );
    }
    for field in schema.fields() {
        let Some(s) = spec(field.name()) else {
            continue;
        };
        let ok = match (s.kind, field.data_type()) {
            (Kind::Decimal, DataType::Decimal128(_, scale)) => *scale >= 6,
            (Kind::DateTime, DataType::Timestamp(_, Some(tz))) => {
                matches!(tz.as_ref(), "UTC" | "+00:00" | "Z")
            }
            (Kind::String | Kind::Json, DataType::Utf8) => true,
            _ => false,
        };
        assert!(
            ok,
            "{} is {} but FOCUS says {:?}",
            s.id,
            field.data_type(),
            s.kind
        );
        assert!(
            s.nulls || !field.is_nullable(),
            "{} must not allow nulls",
            s.id
        );
    }
}

#[test]
fn columns_are_focus_in_spec_order_then_custom_with_x_prefix() {
    let batch = batch();
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let focus: Vec<&String> = names.iter().take_while(|n| spec(n).is_some()).collect();
    for n in &names[focus.len()..] {
        let rest = n
            .strip_prefix("x_")
            .unwrap_or_else(|| panic!("{n} is neither a FOCUS 1.2 column nor x_-prefixed"));
        assert!(is_pascal_case(rest), "{n} is not x_ + PascalCase");
    }
    for n in &focus {
        assert!(is_pascal_case(n), "{n}");
    }
    let position = |n: &str| FOCUS_1_2.iter().position(|s| s.id == n).unwrap();
    assert!(
        focus.windows(2).all(|w| position(w[0]) < position(w[1])),
        "FOCUS columns out of the specification's order: {focus:?}"
    );
    let distinct: BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "a column appears twice");
}

#[test]
fn values_are_allowed_and_not_null_where_the_spec_says() {
    let batch = batch();
    for field in batch.schema().fields() {
        let Some(s) = spec(field.name()) else {
            continue;
        };
        let column = batch.column_by_name(s.id).unwrap();
        if !s.nulls {
            assert_eq!(column.null_count(), 0, "{} holds a null", s.id);
        }
        if !s.allowed.is_empty() {
            for v in strings(&batch, s.id).into_iter().flatten() {
                assert!(s.allowed.contains(&v.as_str()), "{}: {v:?}", s.id);
            }
        }
    }
    for (category, sub) in strings(&batch, "ServiceCategory")
        .iter()
        .zip(strings(&batch, "ServiceSubcategory"))
    {
        if sub.is_some() {
            assert_eq!(category.as_deref(), Some("AI and Machine Learning"));
        }
    }
}

#[test]
fn conditional_columns_follow_the_charge_category() {
    let batch = batch();
    let category = strings(&batch, "ChargeCategory");
    let class = strings(&batch, "ChargeClass");
    let frequency = strings(&batch, "ChargeFrequency");
    let consumed = micros(&batch, "ConsumedQuantity");
    let consumed_unit = strings(&batch, "ConsumedUnit");
    let must_for_usage_and_purchase = ["PricingUnit", "SkuId", "SkuPriceId", "PricingCategory"];
    for i in 0..batch.num_rows() {
        let cat = category[i].as_deref().unwrap();
        let correction = class[i].is_some();
        // ConsumedQuantity and ConsumedUnit: on usage only, and there always.
        assert_eq!(consumed[i].is_some(), cat == "Usage", "row {i}");
        assert_eq!(consumed_unit[i].is_some(), cat == "Usage", "row {i}");
        if let Some(q) = consumed[i] {
            assert!(q >= 0, "row {i}: negative consumed quantity");
        }
        if matches!(cat, "Usage" | "Purchase") && !correction {
            for id in must_for_usage_and_purchase {
                assert!(strings(&batch, id)[i].is_some(), "{id} null on row {i}");
            }
            for id in ["PricingQuantity", "ListUnitPrice", "ContractedUnitPrice"] {
                assert!(micros(&batch, id)[i].is_some(), "{id} null on row {i}");
            }
        }
        if cat == "Purchase" {
            assert_ne!(frequency[i].as_deref(), Some("Usage-Based"), "row {i}");
        }
    }
}

#[test]
fn unit_price_times_quantity_is_the_cost() {
    let batch = batch();
    let quantity = micros(&batch, "PricingQuantity");
    let list = micros(&batch, "ListCost");
    let contracted = micros(&batch, "ContractedCost");
    for (price_id, cost) in [
        ("ListUnitPrice", &list),
        ("ContractedUnitPrice", &contracted),
    ] {
        let prices = batch
            .column_by_name(price_id)
            .unwrap()
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .clone();
        for i in 0..batch.num_rows() {
            let (p, q) = (prices.value(i), quantity[i].unwrap());
            // price (scale s) × quantity (scale 6) at scale s + 6, rounded to scale 6.
            let shift = 10i128.pow(u32::try_from(prices.scale()).unwrap());
            let product = (p * q + shift / 2) / shift;
            assert_eq!(
                Some(product),
                cost[i],
                "{price_id} × PricingQuantity on row {i}"
            );
        }
    }
}

#[test]
fn currency_is_iso_4217() {
    for c in strings(&batch(), "BillingCurrency").into_iter().flatten() {
        assert!(c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()));
        assert!(ISO_4217.contains(&c.as_str()), "{c}");
    }
}

#[test]
fn costs_are_non_negative_and_one_amount() {
    let batch = batch();
    let billed = micros(&batch, "BilledCost");
    for id in ["EffectiveCost", "ListCost", "ContractedCost"] {
        assert_eq!(micros(&batch, id), billed, "{id} differs from BilledCost");
    }
    assert!(billed.iter().all(|c| c.is_some_and(|c| c >= 0)));
}

#[test]
fn charge_periods_fall_in_calendar_month_billing_periods() {
    let batch = batch();
    let (start, end) = (
        times(&batch, "ChargePeriodStart"),
        times(&batch, "ChargePeriodEnd"),
    );
    let (bill_start, bill_end) = (
        times(&batch, "BillingPeriodStart"),
        times(&batch, "BillingPeriodEnd"),
    );
    for i in 0..batch.num_rows() {
        assert!(start[i] < end[i], "row {i}");
        assert!(
            bill_start[i] <= start[i] && end[i] <= bill_end[i],
            "row {i}"
        );
        let b = bill_start[i];
        assert_eq!((b.day(), b.hour(), b.minute(), b.second()), (1, 0, 0, 0));
        assert_eq!(
            bill_end[i],
            b.checked_add_months(chrono::Months::new(1)).unwrap()
        );
    }
    // The sample crosses from March into April.
    let months: BTreeSet<_> = bill_start.iter().map(|b| b.month()).collect();
    assert_eq!(months, BTreeSet::from([3, 4]));
}

#[test]
fn billed_cost_sums_to_the_chargeback_exactly() {
    let cb = sample();
    let batch = rows(&cb, &config()).unwrap();
    let total: i64 = cb.rows.iter().map(ChargebackRow::total_cost_micros).sum();
    let billed: i128 = micros(&batch, "BilledCost").iter().flatten().sum();
    assert_eq!(decimal(i64::try_from(billed).unwrap()), decimal(total));
    let sum = |id: &str| -> i128 { micros(&batch, id).iter().flatten().sum() };
    assert_eq!(
        sum("x_PlatformCost"),
        i128::from(cb.allocated_micros() + cb.idle_micros())
    );
    assert_eq!(
        sum("x_CallCost") + sum("x_DurationCost") + sum("x_TokenCost") + sum("x_PlatformCost"),
        billed
    );
}

#[test]
fn calls_tokens_and_idle_rows_are_told_apart() {
    let batch = batch();
    let kind = strings(&batch, "x_RowKind");
    let resource = strings(&batch, "ResourceId");
    let service = strings(&batch, "ServiceName");
    let unit = strings(&batch, "PricingUnit");
    let category = strings(&batch, "ChargeCategory");
    let sub = strings(&batch, "SubAccountId");
    let tags = strings(&batch, "Tags");
    let row = |i: usize| {
        (
            kind[i].as_deref().unwrap(),
            resource[i].as_deref(),
            service[i].as_deref().unwrap(),
            unit[i].as_deref().unwrap(),
            category[i].as_deref().unwrap(),
        )
    };
    // 7 chargeback rows: one holds calls and tokens, so 8 FOCUS rows.
    assert_eq!(batch.num_rows(), 8);
    assert_eq!(
        row(0),
        (
            "calls",
            Some("mcp://docs/search"),
            "docs",
            "Requests",
            "Usage"
        )
    );
    assert_eq!(row(1).0, "calls");
    assert_eq!(row(1).1, None, "no resource id for calls without a server");
    assert_eq!(
        row(2),
        (
            "tokens",
            Some("llm-tokens"),
            "LLM tokens",
            "1000 Tokens",
            "Usage"
        )
    );
    assert_eq!(row(5), ("idle", None, "MCP platform", "Hours", "Purchase"));
    assert_eq!(sub[5], None);
    assert_eq!(tags[5], None);
    assert_eq!(
        row(6).1,
        Some("mcp://crm%20db/update%2Frecord"),
        "server and tool are percent-encoded"
    );
    let team: serde_json::Value = serde_json::from_str(tags[6].as_deref().unwrap()).unwrap();
    assert_eq!(team, serde_json::json!({"team": "ops \"blue\", west"}));
    assert_eq!(sub[7], None, "unattributed calls have no sub account");
    // Tokens of a mixed row, and calls of it, keep their own quantities and costs.
    let calls = batch.column_by_name("x_Calls").unwrap();
    let calls = calls
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert_eq!((calls.value(1), calls.value(2)), (2, 0));
    assert_eq!(micros(&batch, "ConsumedQuantity")[2], Some(1_500_000_000));
    assert_eq!(micros(&batch, "PricingQuantity")[2], Some(1_500_000));
    assert_eq!(micros(&batch, "BilledCost")[2], Some(4_500));
}

#[test]
fn the_export_refuses_another_grain_or_currency() {
    let mut daily = sample();
    daily.granularity = Granularity::Day;
    assert!(matches!(rows(&daily, &config()), Err(Error::Plan(_))));
    let mut by_user = sample();
    by_user.by = vec![Dimension::User, Dimension::Server, Dimension::Tool];
    assert!(matches!(rows(&by_user, &config()), Err(Error::Plan(_))));
    let mut no_tool = sample();
    no_tool.by = vec![Dimension::Team, Dimension::Server];
    for r in &mut no_tool.rows {
        r.key.pop();
    }
    assert!(matches!(rows(&no_tool, &config()), Err(Error::Plan(_))));
    let usd = ChargebackConfig::default();
    assert!(matches!(rows(&sample(), &usd), Err(Error::Plan(_))));
    let mut short_key = sample();
    short_key.rows[0].key.pop();
    assert!(matches!(
        rows(&short_key, &config()),
        Err(Error::Internal(_))
    ));
}

#[test]
fn cost_centre_and_tenant_go_to_tags() {
    let mut cb = sample();
    cb.by = vec![
        Dimension::Team,
        Dimension::Server,
        Dimension::Tool,
        Dimension::CostCenter,
        Dimension::Tenant,
    ];
    for r in &mut cb.rows {
        r.key.push(Some("cc-42".into()));
        r.key.push(None);
    }
    let batch = rows(&cb, &config()).unwrap();
    let tags: serde_json::Value =
        serde_json::from_str(strings(&batch, "Tags")[0].as_deref().unwrap()).unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"team": "payments", "cost_center": "cc-42"})
    );
}

/// Splits RFC 4180 text into records, checking that every record ends with CRLF.
fn parse_rfc4180(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\n') => panic!("a record ends with a bare LF"),
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "no CRLF after the last record"
    );
    records
}

/// Plain decimal text (`-12.345`) as micro-units, exactly; `None` for anything else.
fn parse_micros(text: &str) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !ok(int) || !ok(frac) {
        return None;
    }
    let frac6: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    if frac.len() > 6 && frac[6..].chars().any(|c| c != '0') {
        return None;
    }
    let v = int.parse::<i128>().ok()? * 1_000_000 + frac6.parse::<i128>().ok()?;
    Some(if neg { -v } else { v })
}

#[test]
fn csv_is_rfc4180_with_rfc3339_utc_times_and_plain_decimals() {
    let cb = sample();
    let batch = rows(&cb, &config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/focus.csv");
    write_csv(&batch, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let records = parse_rfc4180(&text);
    let header = &records[0];
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(header, &names);
    assert_eq!(records.len(), batch.num_rows() + 1);
    let column: BTreeMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for record in &records[1..] {
        assert_eq!(record.len(), header.len());
        for s in FOCUS_1_2 {
            let Some(&i) = column.get(s.id) else { continue };
            let v = &record[i];
            match s.kind {
                Kind::DateTime => {
                    // 'YYYY-MM-DDTHH:mm:ssZ', which RFC 3339 reads as UTC.
                    assert_eq!(v.len(), 20, "{}: {v}", s.id);
                    assert!(v.ends_with('Z'), "{}: {v}", s.id);
                    let t = DateTime::parse_from_rfc3339(v).unwrap();
                    assert_eq!(t.offset().local_minus_utc(), 0);
                }
                Kind::Decimal if !v.is_empty() => {
                    assert!(
                        !v.contains(['e', 'E']) && v.parse::<f64>().is_ok(),
                        "{}: {v}",
                        s.id
                    );
                }
                Kind::Json if !v.is_empty() => {
                    let j: serde_json::Value = serde_json::from_str(v).unwrap();
                    assert!(j.is_object(), "{}: {v}", s.id);
                }
                _ => {}
            }
        }
    }
    // The CSV's BilledCost, read as text, sums to the chargeback's total exactly.
    let billed: i128 = records[1..]
        .iter()
        .map(|r| parse_micros(&r[column["BilledCost"]]).unwrap())
        .sum();
    let total: i64 = cb.rows.iter().map(ChargebackRow::total_cost_micros).sum();
    assert_eq!(billed, i128::from(total));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["focus.csv"], "no temporary file is left");
}

#[test]
fn parquet_round_trips_and_replaces_atomically() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let batch = batch();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("focus.parquet");
    std::fs::write(&path, b"an older export").unwrap();
    write_parquet(&batch, &path).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0], batch);
    let t = read[0]
        .schema()
        .field_with_name("ChargePeriodStart")
        .unwrap()
        .data_type()
        .clone();
    assert_eq!(
        t,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_empty_chargeback_gives_an_empty_batch_with_every_column() {
    let mut cb = sample();
    cb.rows.clear();
    let batch = rows(&cb, &config()).unwrap();
    assert_eq!(batch.num_rows(), 0);
    assert_eq!(batch.schema(), rows(&sample(), &config()).unwrap().schema());
}

#[test]
fn unit_prices_round_back_to_the_cost() {
    // 364 834 micro-units over 3 requests: 121 611.333… micro-units each.
    let p = unit_price(364_834, 3_000_000).unwrap();
    assert_eq!(p, 121_611_333_333_333_333);
    assert_eq!(unit_price(0, 0), Some(0));
    assert_eq!(unit_price(5, 0), None);
    assert_eq!(uri_segment("a b/c~d"), "a%20b%2Fc~d");
}
