//! The daily rollups against the raw SQL: the same chargeback and ROI reports, rebuilt when a
//! day's sources change.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, Float64Array, Int64Array, StringArray,
    TimestampNanosecondArray, UInt16Array, new_null_array,
};
use arrow::datatypes::{DataType, SchemaRef};
use calltrail_schemas::arrow_schema;

use super::*;
use crate::chargeback::{self, ChargebackRequest, Dimension, Granularity};
use crate::columns::Columns;
use crate::price_table::ChargebackConfig;
use crate::roi::{self, RoiRequest};
use crate::{QueryLimits, Scope};

const PRICES: &str = r#"
currency = "EUR"
[[price_tables]]
version = "t1"
platform_monthly_cost = 3100.0
default_per_call = 0.001
per_second = 0.0001
default_per_1k_input_tokens = 0.5
default_per_1k_output_tokens = 1.0
[[price_tables.calls]]
server = "payments-mcp"
operation_class = "write"
per_call = 0.01
[[price_tables.calls]]
tool = "lookup"
per_call = 0.003
[[price_tables.models]]
model = "gpt-4o"
per_1k_input_tokens = 2.5
per_1k_output_tokens = 10.0
"#;

/// One tool-call span of the fixture.
struct Span {
    trace: u32,
    /// The call: a server span's parent, a client span's own id.
    call: u32,
    server: bool,
    start: &'static str,
    ms: f64,
    who: Option<(&'static str, &'static str, &'static str, &'static str)>,
    kind: &'static str,
    server_name: &'static str,
    tool: &'static str,
    class: &'static str,
    outcome: &'static str,
}

fn ns(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

/// A batch of `schema`: the given columns, nulls in the other nullable ones, zeros and empty
/// strings in the other required ones.
fn batch(schema: &SchemaRef, n: usize, given: &[(&str, ArrayRef)]) -> RecordBatch {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            if let Some((_, a)) = given.iter().find(|(name, _)| name == f.name()) {
                return arrow::compute::cast(a, f.data_type()).unwrap();
            }
            if f.is_nullable() {
                return new_null_array(f.data_type(), n);
            }
            match f.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from(vec![""; n])) as ArrayRef,
                DataType::Int64 => Arc::new(Int64Array::from(vec![0; n])),
                DataType::UInt16 => Arc::new(UInt16Array::from(vec![1; n])),
                DataType::Boolean => Arc::new(BooleanArray::from(vec![false; n])),
                DataType::Float64 => Arc::new(Float64Array::from(vec![0.0; n])),
                DataType::FixedSizeBinary(32) => Arc::new(
                    FixedSizeBinaryArray::try_from_iter(std::iter::repeat_n([0u8; 32], n)).unwrap(),
                ),
                t @ DataType::Timestamp(..) => arrow::compute::cast(
                    &(Arc::new(TimestampNanosecondArray::from(vec![0; n])) as ArrayRef),
                    t,
                )
                .unwrap(),
                other => panic!("no default for {other}"),
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

fn strings(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// Writes `spans` as one file per (date, hour) under `dir`, named `name`.
fn write_spans(dir: &Path, spans: &[Span], name: &str) {
    let schema = arrow_schema::tool_calls_schema();
    let mut by_hour: std::collections::BTreeMap<(String, String), Vec<&Span>> = Default::default();
    for s in spans {
        let (date, hour) = (s.start[..10].to_string(), s.start[11..13].to_string());
        by_hour.entry((date, hour)).or_default().push(s);
    }
    for ((date, hour), spans) in by_hour {
        let n = spans.len();
        let id = |s: &Span, own: bool| {
            if s.server && own {
                format!(
                    "{:016x}",
                    u64::from(s.trace) * 1000 + u64::from(s.call) + 500
                )
            } else {
                format!("{:016x}", u64::from(s.trace) * 1000 + u64::from(s.call))
            }
        };
        let who = |i: usize| spans[i].who;
        let b = batch(
            &schema,
            n,
            &[
                (
                    "trace_id",
                    Arc::new(StringArray::from_iter_values(
                        spans.iter().map(|s| format!("{:032x}", s.trace)),
                    )),
                ),
                (
                    "span_id",
                    Arc::new(StringArray::from_iter_values(
                        spans.iter().map(|s| id(s, true)),
                    )),
                ),
                (
                    "call_id",
                    Arc::new(StringArray::from_iter_values(
                        spans.iter().map(|s| id(s, false)),
                    )),
                ),
                ("is_request", Arc::new(BooleanArray::from(vec![true; n]))),
                (
                    "side",
                    Arc::new(StringArray::from_iter_values(
                        spans
                            .iter()
                            .map(|s| if s.server { "server" } else { "client" }),
                    )),
                ),
                (
                    "start_time",
                    Arc::new(TimestampNanosecondArray::from_iter_values(
                        spans.iter().map(|s| ns(s.start)),
                    )),
                ),
                (
                    "observed_time",
                    Arc::new(TimestampNanosecondArray::from_iter_values(
                        spans.iter().map(|s| ns(s.start)),
                    )),
                ),
                (
                    "duration_ms",
                    Arc::new(Float64Array::from_iter_values(spans.iter().map(|s| s.ms))),
                ),
                ("method", Arc::new(StringArray::from(vec!["tools/call"; n]))),
                (
                    "tool_name",
                    Arc::new(StringArray::from_iter_values(spans.iter().map(|s| s.tool))),
                ),
                (
                    "server_name",
                    Arc::new(StringArray::from_iter_values(
                        spans.iter().map(|s| s.server_name),
                    )),
                ),
                (
                    "operation_class",
                    Arc::new(StringArray::from_iter_values(spans.iter().map(|s| s.class))),
                ),
                (
                    "outcome",
                    Arc::new(StringArray::from_iter_values(
                        spans.iter().map(|s| s.outcome),
                    )),
                ),
                (
                    "principal_kind",
                    Arc::new(StringArray::from_iter_values(spans.iter().map(|s| s.kind))),
                ),
                (
                    "principal",
                    strings((0..n).map(|i| who(i).map(|w| w.0)).collect()),
                ),
                (
                    "team",
                    strings((0..n).map(|i| who(i).map(|w| w.1)).collect()),
                ),
                (
                    "tenant",
                    strings((0..n).map(|i| who(i).map(|w| w.2)).collect()),
                ),
                (
                    "cost_center",
                    strings((0..n).map(|i| who(i).map(|w| w.3)).collect()),
                ),
            ],
        );
        let path = dir
            .join("tool_calls")
            .join(format!("date={date}"))
            .join(format!("hour={hour}"))
            .join(format!("{name}.parquet"));
        crate::files::write_parquet(&b, &path).unwrap();
    }
}

/// An LLM call: trace, start, model, input and output tokens, its own team.
type Llm<'a> = (u32, &'a str, &'a str, i64, i64, Option<&'a str>);

fn write_llm(dir: &Path, calls: &[Llm<'_>]) {
    write_llm_named(dir, calls, "llm");
}

/// [`write_llm`], one file per call named `{name}{i}`.
fn write_llm_named(dir: &Path, calls: &[Llm<'_>], name: &str) {
    let schema = arrow_schema::llm_calls_schema();
    for (i, (trace, start, model, input, output, team)) in calls.iter().enumerate() {
        let b = batch(
            &schema,
            1,
            &[
                (
                    "trace_id",
                    strings(vec![Some(format!("{trace:032x}").as_str())]),
                ),
                ("span_id", strings(vec![Some(format!("{i:016x}").as_str())])),
                (
                    "start_time",
                    Arc::new(TimestampNanosecondArray::from(vec![ns(start)])),
                ),
                ("response_model", strings(vec![Some(model)])),
                ("input_tokens", Arc::new(Int64Array::from(vec![*input]))),
                ("output_tokens", Arc::new(Int64Array::from(vec![*output]))),
                ("team", strings(vec![*team])),
            ],
        );
        let path = dir
            .join("llm_calls")
            .join(format!("date={}", &start[..10]))
            .join(format!("hour={}", &start[11..13]))
            .join(format!("{name}{i}.parquet"));
        crate::files::write_parquet(&b, &path).unwrap();
    }
}

const ALICE: Option<(&str, &str, &str, &str)> = Some(("alice", "payments", "acme-uk", "CC-100"));
const BOB: Option<(&str, &str, &str, &str)> = Some(("bob", "crm", "acme-de", "CC-200"));
const BOT: Option<(&str, &str, &str, &str)> = Some(("batch-bot", "payments", "acme-uk", "CC-100"));

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u32,
    call: u32,
    server: bool,
    start: &'static str,
    ms: f64,
    who: Option<(&'static str, &'static str, &'static str, &'static str)>,
    kind: &'static str,
    tool: (&'static str, &'static str, &'static str),
    outcome: &'static str,
) -> Span {
    Span {
        trace,
        call,
        server,
        start,
        ms,
        who,
        kind,
        server_name: tool.0,
        tool: tool.1,
        class: tool.2,
        outcome,
    }
}

const TRANSFER: (&str, &str, &str) = ("payments-mcp", "transfer", "write");
const BALANCE: (&str, &str, &str) = ("payments-mcp", "get_balance", "read");
const LOOKUP: (&str, &str, &str) = ("crm-mcp", "lookup", "read");
const READ_FILE: (&str, &str, &str) = ("files-mcp", "read_file", "read");

/// Five days of March 2026 (Monday 2 to Friday 6, and Monday 9): retries, a client span with a
/// better identity than its server's, a call across midnight, a client-only call, an
/// unattributed call and LLM calls with and without attribution of their own.
fn fixture(dir: &Path) {
    let spans = vec![
        span(
            1,
            1,
            true,
            "2026-03-02T10:00:00Z",
            1000.0,
            ALICE,
            "human",
            TRANSFER,
            "ok",
        ),
        // The same span exported twice: one call.
        span(
            1,
            1,
            true,
            "2026-03-02T10:00:00Z",
            1000.0,
            ALICE,
            "human",
            TRANSFER,
            "ok",
        ),
        span(
            1,
            2,
            true,
            "2026-03-02T10:05:00Z",
            250.5,
            ALICE,
            "human",
            TRANSFER,
            "tool_error",
        ),
        span(
            1,
            3,
            true,
            "2026-03-02T11:00:00Z",
            200.0,
            ALICE,
            "human",
            BALANCE,
            "ok",
        ),
        // The server saw a service account, the client saw bob: bob's call.
        span(
            2,
            1,
            true,
            "2026-03-03T09:00:00Z",
            500.0,
            None,
            "service_account",
            LOOKUP,
            "ok",
        ),
        span(
            2,
            1,
            false,
            "2026-03-03T08:59:59Z",
            510.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
        // Across midnight: the client on the 3rd, the server on the 4th.
        span(
            3,
            1,
            false,
            "2026-03-03T23:59:59Z",
            2100.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
        span(
            3,
            1,
            true,
            "2026-03-04T00:00:00Z",
            2000.0,
            None,
            "unattributed",
            LOOKUP,
            "ok",
        ),
        span(
            4,
            1,
            true,
            "2026-03-04T02:00:00Z",
            3000.0,
            BOT,
            "service_account",
            BALANCE,
            "ok",
        ),
        span(
            4,
            2,
            true,
            "2026-03-04T02:10:00Z",
            1500.0,
            BOT,
            "service_account",
            BALANCE,
            "ok",
        ),
        // A client record with no server record: a call of its own.
        span(
            5,
            1,
            false,
            "2026-03-05T12:00:00Z",
            700.0,
            ALICE,
            "human",
            BALANCE,
            "ok",
        ),
        span(
            6,
            1,
            true,
            "2026-03-05T13:00:00Z",
            100.0,
            None,
            "unattributed",
            READ_FILE,
            "denied",
        ),
        span(
            7,
            1,
            true,
            "2026-03-06T15:00:00Z",
            900.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
        span(
            7,
            2,
            true,
            "2026-03-06T15:01:00Z",
            300.0,
            ALICE,
            "human",
            TRANSFER,
            "ok",
        ),
        span(
            8,
            1,
            true,
            "2026-03-09T09:00:00Z",
            1200.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
    ];
    write_spans(dir, &spans, "a");
    write_llm(
        dir,
        &[
            (
                1,
                "2026-03-02T09:59:00Z",
                "claude-sonnet-4-20250514",
                2000,
                500,
                None,
            ),
            (
                2,
                "2026-03-03T08:58:00Z",
                "gpt-4o-mini",
                1000,
                1000,
                Some("crm"),
            ),
            (3, "2026-03-04T00:00:30Z", "gpt-4o", 300, 30, None),
            (
                9,
                "2026-03-05T15:00:00Z",
                "gpt-4o",
                4000,
                0,
                Some("research"),
            ),
        ],
    );
}

async fn engine(dir: &Path) -> Engine {
    Engine::open(dir, QueryLimits::default()).await.unwrap()
}

fn prices() -> ChargebackConfig {
    let c: ChargebackConfig = toml::from_str(PRICES).unwrap();
    c.validate().unwrap();
    c
}

fn t(s: &str) -> DateTime<Utc> {
    chargeback::parse_time(s).unwrap()
}

async fn both_chargebacks(e: &Engine, request: &ChargebackRequest) {
    let config = prices();
    let raw = chargeback::compute_with(e, &config, request, &Scope::All, false)
        .await
        .unwrap();
    let served = chargeback::compute(e, &config, request, &Scope::All)
        .await
        .unwrap();
    assert_eq!(served.rows, raw.rows, "{request:?}");
    assert!(!raw.rows.is_empty(), "{request:?}");
    assert_eq!(served.platform_cost_micros, raw.platform_cost_micros);
}

#[tokio::test]
async fn rollups_give_the_chargeback_of_the_raw_sql() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let e = engine(dir.path()).await;
    for by in [
        vec![Dimension::Team],
        vec![Dimension::CostCenter],
        vec![Dimension::Tenant],
        vec![Dimension::User],
        vec![Dimension::Server],
        vec![Dimension::Tool],
        vec![],
    ] {
        for granularity in [Granularity::Month, Granularity::Day] {
            both_chargebacks(
                &e,
                &ChargebackRequest {
                    from: t("2026-03-01"),
                    to: t("2026-04-01"),
                    by: by.clone(),
                    granularity,
                },
            )
            .await;
        }
    }
    // Part-days at both ends: the SQL for those, the rollups for the days between.
    both_chargebacks(
        &e,
        &ChargebackRequest {
            from: t("2026-03-02T10:30:00Z"),
            to: t("2026-03-06T15:00:30Z"),
            by: vec![Dimension::Team],
            granularity: Granularity::Day,
        },
    )
    .await;
    assert!(
        day_dir(dir.path(), t("2026-03-04").date_naive())
            .join(SOURCES)
            .is_file(),
        "the days were stored"
    );
}

/// Traces whose calls lie on other days than their LLM calls, in the SQL's margin days or
/// beyond them, and a call cut by the margin's last midnight.
fn traces_across_days(dir: &Path) {
    let spans = vec![
        span(
            10,
            1,
            true,
            "2026-03-10T09:00:00Z",
            100.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
        span(
            10,
            2,
            true,
            "2026-03-13T09:00:00Z",
            100.0,
            ALICE,
            "human",
            TRANSFER,
            "ok",
        ),
        span(
            11,
            1,
            true,
            "2026-03-15T09:00:00Z",
            100.0,
            ALICE,
            "human",
            BALANCE,
            "ok",
        ),
        span(
            12,
            1,
            true,
            "2026-03-16T09:00:00Z",
            100.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
        span(
            13,
            1,
            true,
            "2026-03-09T09:00:00Z",
            100.0,
            BOT,
            "service_account",
            BALANCE,
            "ok",
        ),
        // Cut by the midnight ending 2026-03-15: the SQL over 03-09..03-15 sees a client-only
        // call of bob's; the rollup pairs it with its unattributed server span.
        span(
            14,
            1,
            false,
            "2026-03-15T23:59:59Z",
            100.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        ),
        span(
            14,
            1,
            true,
            "2026-03-16T00:00:00Z",
            100.0,
            None,
            "unattributed",
            LOOKUP,
            "ok",
        ),
    ];
    write_spans(dir, &spans, "b");
    write_llm_named(
        dir,
        &[
            (10, "2026-03-11T10:00:00Z", "gpt-4o", 1000, 100, None),
            (10, "2026-03-12T10:00:00Z", "gpt-4o-mini", 2000, 200, None),
            (
                10,
                "2026-03-12T11:00:00Z",
                "gpt-4o",
                50,
                5,
                Some("research"),
            ),
            (11, "2026-03-13T10:00:00Z", "gpt-4o", 3000, 300, None),
            (12, "2026-03-12T12:00:00Z", "gpt-4o", 4000, 400, None),
            (13, "2026-03-10T10:00:00Z", "gpt-4o-mini", 5000, 500, None),
            (14, "2026-03-11T12:00:00Z", "gpt-4o", 6000, 600, None),
            (
                15,
                "2026-03-12T13:00:00Z",
                "claude-sonnet-4",
                7000,
                700,
                None,
            ),
        ],
        "more",
    );
}

#[tokio::test]
async fn token_rollups_give_the_tokens_of_the_raw_sql() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    traces_across_days(dir.path());
    let e = engine(dir.path()).await;
    // 03-10..03-14 reads up to 03-15, where trace 14's call is cut: served by the SQL.
    for (from, to) in [
        ("2026-03-01", "2026-04-01"),
        ("2026-03-10", "2026-03-14"),
        ("2026-03-10", "2026-03-13"),
        ("2026-03-12", "2026-03-13"),
    ] {
        for by in [
            vec![Dimension::Team],
            vec![Dimension::CostCenter],
            vec![Dimension::Tenant],
            vec![Dimension::User],
            vec![],
        ] {
            let days = if by == [Dimension::Team] {
                &[Granularity::Month, Granularity::Day][..]
            } else {
                &[Granularity::Month][..]
            };
            for granularity in days.iter().copied() {
                both_chargebacks(
                    &e,
                    &ChargebackRequest {
                        from: t(from),
                        to: t(to),
                        by: by.clone(),
                        granularity,
                    },
                )
                .await;
            }
        }
    }
    // The rollup attributes the traces across days as the SQL does.
    let request = ChargebackRequest {
        from: t("2026-03-10"),
        to: t("2026-03-13"),
        by: vec![Dimension::Team],
        granularity: Granularity::Month,
    };
    let served = chargeback::compute(&e, &prices(), &request, &Scope::All)
        .await
        .unwrap();
    let tokens = |team: Option<&str>| {
        served
            .rows
            .iter()
            .filter(|r| r.key == vec![team.map(str::to_owned)])
            .map(|r| r.input_tokens)
            .sum::<i64>()
    };
    // Trace 10 (crm's call on the 10th is less than payments' on the 13th), 13 (the day
    // before the range); 12's call on the 16th is beyond the SQL's partitions, 11's LLM call
    // beyond the range.
    assert_eq!(tokens(Some("crm")), 1000 + 2000);
    assert_eq!(tokens(Some("payments")), 5000);
    assert_eq!(tokens(Some("research")), 50);
    assert_eq!(tokens(None), 4000 + 6000 + 7000);
}

#[tokio::test]
async fn rollups_give_the_roi_of_the_raw_sql() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let e = engine(dir.path()).await;
    for by in [
        None,
        Some(Dimension::Team),
        Some(Dimension::Tenant),
        Some(Dimension::CostCenter),
        Some(Dimension::Server),
    ] {
        let request = RoiRequest {
            from: t("2026-03-01"),
            to: t("2026-03-16"),
            by,
        };
        let raw = roi::compute_with(&e, &request, &Scope::All, false)
            .await
            .unwrap();
        let served = roi::compute(&e, &request, &Scope::All).await.unwrap();
        assert_eq!(served.weeks, raw.weeks, "{by:?}");
        assert_eq!(served.top_tools, raw.top_tools, "{by:?}");
        assert!(raw.weeks.len() >= 2, "{by:?}");
    }
}

#[tokio::test]
async fn a_day_whose_sources_change_is_computed_again() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let e = engine(dir.path()).await;
    let today = t("2026-03-20").date_naive();
    let days: Vec<NaiveDate> = ["2026-03-03", "2026-03-04", "2026-03-05", "2026-03-07"]
        .iter()
        .map(|d| t(d).date_naive())
        .collect();
    let how = |got: &[(DayParts, Obtained)]| got.iter().map(|(_, h)| *h).collect::<Vec<_>>();
    let wanted = [Part::Calls(Key::Team)];
    let first = days_as_of(&e, &days, &wanted, &[], today).await.unwrap();
    use Obtained::{Built, Empty, Reused};
    assert_eq!(how(&first), [Built, Built, Built, Empty]);
    let again = days_as_of(&e, &days, &wanted, &[], today).await.unwrap();
    assert_eq!(how(&again), [Reused, Reused, Reused, Empty]);

    // Late data for the 4th: it and its neighbours (whose pairing it can change) are stale.
    write_spans(
        dir.path(),
        &[span(
            10,
            1,
            true,
            "2026-03-04T20:00:00Z",
            800.0,
            BOB,
            "human",
            LOOKUP,
            "ok",
        )],
        "late",
    );
    let after = days_as_of(&e, &days, &wanted, &[], today).await.unwrap();
    assert_eq!(how(&after), [Built, Built, Built, Empty]);
    let calls = |got: &[(DayParts, Obtained)], i: usize| -> i64 {
        got[i]
            .0
            .get(Part::Calls(Key::Team))
            .iter()
            .map(|b| {
                Columns(b)
                    .i64("calls")
                    .unwrap()
                    .values()
                    .iter()
                    .sum::<i64>()
            })
            .sum()
    };
    assert_eq!(
        calls(&after, 1),
        calls(&first, 1) + 1,
        "the late call counts"
    );
    // A report after the change matches the raw SQL again.
    both_chargebacks(
        &e,
        &ChargebackRequest {
            from: t("2026-03-01"),
            to: t("2026-04-01"),
            by: vec![Dimension::Team],
            granularity: Granularity::Month,
        },
    )
    .await;

    // A retention deletion empties a day: the report follows.
    std::fs::remove_dir_all(dir.path().join("tool_calls/date=2026-03-05")).unwrap();
    std::fs::remove_dir_all(dir.path().join("llm_calls/date=2026-03-05")).unwrap();
    let deleted = days_as_of(&e, &days, &wanted, &[], today).await.unwrap();
    assert_eq!(how(&deleted), [Reused, Built, Empty, Empty]);
    both_chargebacks(
        &e,
        &ChargebackRequest {
            from: t("2026-03-01"),
            to: t("2026-04-01"),
            by: vec![Dimension::Team],
            granularity: Granularity::Day,
        },
    )
    .await;
}

#[tokio::test]
async fn recent_days_are_computed_but_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let e = engine(dir.path()).await;
    // "Today" is the 6th: the 5th (yesterday) and the 6th are computed in memory only.
    let today = t("2026-03-06").date_naive();
    let days: Vec<NaiveDate> = ["2026-03-04", "2026-03-05", "2026-03-06"]
        .iter()
        .map(|d| t(d).date_naive())
        .collect();
    let got = days_as_of(&e, &days, &[Part::Durations], &["team"], today)
        .await
        .unwrap();
    let how: Vec<Obtained> = got.iter().map(|(_, h)| *h).collect();
    assert_eq!(
        how,
        [Obtained::Built, Obtained::InMemory, Obtained::InMemory]
    );
    assert!(!day_dir(dir.path(), days[1]).exists());
    assert!(!got[2].0.get(Part::Durations).is_empty());
}

#[tokio::test]
async fn scoped_reports_are_their_groups_rows_of_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let e = engine(dir.path()).await;
    let request = ChargebackRequest {
        from: t("2026-03-01"),
        to: t("2026-04-01"),
        by: vec![Dimension::Team],
        granularity: Granularity::Month,
    };
    let whole = chargeback::compute(&e, &prices(), &request, &Scope::All)
        .await
        .unwrap();
    let scope = Scope::Teams(vec!["crm".into()]);
    let report = chargeback::compute(&e, &prices(), &request, &scope)
        .await
        .unwrap();
    let raw = chargeback::compute_with(&e, &prices(), &request, &scope, false)
        .await
        .unwrap();
    assert!(!report.rows.is_empty() && !report.complete);
    // The lead's rows are the auditor's crm rows, to the micro.
    let crm: Vec<_> = whole
        .rows
        .iter()
        .filter(|r| r.key == [Some("crm".to_string())])
        .cloned()
        .collect();
    assert_eq!(report.rows, crm);
    assert_eq!(report.platform_cost_micros, raw.platform_cost_micros);
    // The raw SQL under the scope counts the same calls. It sees fewer tokens: the scope filters
    // model calls on their own team, and those without one (whose trace is crm's) drop out,
    // while the report charges them to their trace's team, as the auditor's does.
    assert_eq!(report.rows.len(), raw.rows.len());
    for (a, b) in report.rows.iter().zip(&raw.rows) {
        assert_eq!((&a.key, a.calls), (&b.key, b.calls));
        assert!(a.usage_cost_micros() >= b.usage_cost_micros());
    }
    // ROI: the lead's weeks are the auditor's crm weeks (unkeyed when the lead asks for no
    // grouping). The scoped raw SQL pairs client and server spans among crm's rows only, so it
    // may time a call by one side; it counts the same calls.
    let roi_request = |by| RoiRequest {
        from: t("2026-03-01"),
        to: t("2026-03-16"),
        by,
    };
    let whole = roi::compute(&e, &roi_request(Some(Dimension::Team)), &Scope::All)
        .await
        .unwrap();
    for by in [Some(Dimension::Team), None] {
        let roi = roi::compute(&e, &roi_request(by), &scope).await.unwrap();
        let mut crm: Vec<_> = whole
            .weeks
            .iter()
            .filter(|w| w.key.as_deref() == Some("crm"))
            .cloned()
            .collect();
        let mut tools: Vec<_> = whole
            .top_tools
            .iter()
            .filter(|w| w.key.as_deref() == Some("crm"))
            .cloned()
            .collect();
        if by.is_none() {
            crm.iter_mut().for_each(|w| w.key = None);
            tools.iter_mut().for_each(|w| w.key = None);
        }
        assert!(!crm.is_empty() && !tools.is_empty());
        assert_eq!(roi.weeks, crm, "by {by:?}");
        assert_eq!(roi.top_tools, tools, "by {by:?}");
        let raw = roi::compute_with(&e, &roi_request(by), &scope, false)
            .await
            .unwrap();
        let calls = |weeks: &[roi::RoiWeek]| weeks.iter().map(|w| w.calls).collect::<Vec<_>>();
        assert_eq!(calls(&roi.weeks), calls(&raw.weeks), "by {by:?}");
    }
}

#[test]
fn whole_days_leave_out_part_days() {
    let days = |a: &str, b: &str| -> Vec<String> {
        whole_days(t(a), t(b))
            .iter()
            .map(|d| d.to_string())
            .collect()
    };
    assert_eq!(
        days("2026-03-01", "2026-03-03"),
        ["2026-03-01", "2026-03-02"]
    );
    assert_eq!(
        days("2026-03-01T00:00:01Z", "2026-03-03T23:00:00Z"),
        ["2026-03-02"]
    );
    assert!(days("2026-03-01T01:00:00Z", "2026-03-01T23:00:00Z").is_empty());
}
