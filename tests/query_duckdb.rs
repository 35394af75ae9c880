//! Differential test: the chargeback and ROI figures Calltrail computes (DataFusion, through
//! `calltrail_query::chargeback` and `roi`) against DuckDB computing the same definitions with
//! its own SQL (`tests/duckdb/reports.py`) on the same Parquet files: a generated workload of
//! 20 000 calls over two months with retries, client records and LLM calls.

#![allow(clippy::unwrap_used)]

#[path = "support/ledger.rs"]
mod ledger;
mod support;

use std::collections::BTreeMap;

use calltrail_query::chargeback::{self, ChargebackRequest, Dimension, Granularity};
use calltrail_query::price_table::ChargebackConfig;
use calltrail_query::roi::{self, RoiRequest};
use calltrail_query::{Engine, QueryLimits, Scope};

/// The price table `reports.py` writes out again in DuckDB's SQL.
const PRICES: &str = r#"
currency = "USD"
[[price_tables]]
version = "diff"
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
tool = "delete_contact"
per_call = 0.02
[[price_tables.calls]]
tool = "delete_file"
per_call = 0.02
[[price_tables.models]]
model = "gpt-4o"
per_1k_input_tokens = 2.5
per_1k_output_tokens = 10.0
[[price_tables.models]]
model = "gpt-4o-mini"
per_1k_input_tokens = 0.15
per_1k_output_tokens = 0.6
[[price_tables.models]]
model = "claude-sonnet-4"
per_1k_input_tokens = 3.0
per_1k_output_tokens = 15.0
"#;

fn close(what: &str, ours: f64, theirs: f64, tolerance: f64) {
    assert!(
        (ours - theirs).abs() <= tolerance * theirs.abs().max(1.0),
        "{what}: Calltrail {ours}, DuckDB {theirs}"
    );
}

#[test]
fn chargeback_and_roi_match_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ledger::generated(dir.path(), 20_000));
    let (from, to) = ("2026-09-01T00:00:00Z", "2026-11-01T00:00:00Z");
    let config: ChargebackConfig = toml::from_str(PRICES).unwrap();
    config.validate().unwrap();
    let (ours, ours_roi) = rt.block_on(async {
        let engine = Engine::open(dir.path(), QueryLimits::default())
            .await
            .unwrap();
        let cb = chargeback::compute(
            &engine,
            &config,
            &ChargebackRequest {
                from: chargeback::parse_time(from).unwrap(),
                to: chargeback::parse_time(to).unwrap(),
                by: vec![Dimension::Team],
                granularity: Granularity::Month,
            },
            &Scope::All,
        )
        .await
        .unwrap();
        let roi = roi::compute(
            &engine,
            &RoiRequest {
                from: chargeback::parse_time(from).unwrap(),
                to: chargeback::parse_time(to).unwrap(),
                by: Some(Dimension::Team),
            },
            &Scope::All,
        )
        .await
        .unwrap();
        (cb, roi)
    });

    let out = support::run(
        {
            let mut c = std::process::Command::new(support::python());
            c.arg(support::repo_root().join("tests/duckdb/reports.py"))
                .arg(dir.path())
                .arg(support::repo_root().join("query/sql/calls.sql"))
                .arg(from)
                .arg(to);
            c
        },
        std::time::Duration::from_secs(300),
    );
    assert!(out.status.success(), "reports.py: {}", out.stderr);
    let theirs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();

    // Chargeback: one row per month and team on both sides, the same counts and amounts.
    let mut mine: BTreeMap<(String, Option<String>), &chargeback::ChargebackRow> = BTreeMap::new();
    for r in &ours.rows {
        assert_eq!(
            r.kind,
            chargeback::RowKind::Usage,
            "no idle month in this workload"
        );
        mine.insert(
            (r.period_start.format("%Y-%m").to_string(), r.key[0].clone()),
            r,
        );
    }
    let usage = theirs["usage"].as_array().unwrap();
    assert_eq!(usage.len(), mine.len(), "rows: DuckDB {usage:?}");
    assert!(
        usage.len() >= 12,
        "two months of six teams and the unattributed"
    );
    let micros = |m: i64| m as f64 / 1e6;
    for row in usage {
        let r = row.as_array().unwrap();
        let key = (
            r[0].as_str().unwrap().to_owned(),
            r[1].as_str().map(str::to_owned),
        );
        let m = mine
            .get(&key)
            .unwrap_or_else(|| panic!("DuckDB has {key:?}, we do not"));
        let what = |c: &str| format!("{key:?} {c}");
        assert_eq!(m.calls as f64, r[2].as_f64().unwrap(), "{}", what("calls"));
        assert_eq!(
            m.failed_calls as f64,
            r[3].as_f64().unwrap(),
            "{}",
            what("failed")
        );
        close(
            &what("duration_s"),
            m.duration_s,
            r[4].as_f64().unwrap(),
            1e-9,
        );
        close(
            &what("call_cost"),
            micros(m.call_cost_micros),
            r[5].as_f64().unwrap(),
            1e-6,
        );
        assert_eq!(
            m.input_tokens as f64,
            r[6].as_f64().unwrap(),
            "{}",
            what("input")
        );
        assert_eq!(
            m.output_tokens as f64,
            r[7].as_f64().unwrap(),
            "{}",
            what("output")
        );
        close(
            &what("token_cost"),
            micros(m.token_cost_micros),
            r[8].as_f64().unwrap(),
            1e-6,
        );
        close(
            &what("duration_cost"),
            micros(m.duration_cost_micros),
            r[4].as_f64().unwrap() * 0.0001,
            1e-6,
        );
        close(
            &what("platform"),
            micros(m.platform_cost_micros),
            r[9].as_f64().unwrap(),
            1e-6,
        );
    }
    assert_eq!(
        ours.allocated_micros() + ours.idle_micros(),
        ours.platform_cost_micros
    );
    assert_eq!(
        ours.platform_cost_micros, 6_200_000_000,
        "two months at 3100"
    );

    // ROI: one row per week and team, the same figures.
    let weeks = theirs["roi"].as_array().unwrap();
    assert_eq!(weeks.len(), ours_roi.weeks.len(), "weeks: DuckDB {weeks:?}");
    let mine: BTreeMap<(String, Option<String>), &roi::RoiWeek> = ours_roi
        .weeks
        .iter()
        .map(|w| {
            (
                (w.week_start.format("%Y-%m-%d").to_string(), w.key.clone()),
                w,
            )
        })
        .collect();
    for row in weeks {
        let r = row.as_array().unwrap();
        let key = (
            r[0].as_str().unwrap().to_owned(),
            r[1].as_str().map(str::to_owned),
        );
        let w = mine
            .get(&key)
            .unwrap_or_else(|| panic!("DuckDB has week {key:?}, we do not"));
        let what = |c: &str| format!("{key:?} {c}");
        assert_eq!(
            w.active_principals as f64,
            r[2].as_f64().unwrap(),
            "{}",
            what("active")
        );
        assert_eq!(
            w.active_humans as f64,
            r[3].as_f64().unwrap(),
            "{}",
            what("humans")
        );
        assert_eq!(w.calls as f64, r[4].as_f64().unwrap(), "{}", what("calls"));
        close(
            &what("success"),
            w.success_rate,
            r[5].as_f64().unwrap(),
            1e-9,
        );
        // DataFusion truncates the interpolation weight to 6 decimals (query/src/roi.rs).
        close(&what("p50"), w.p50_ms, r[6].as_f64().unwrap(), 1e-4);
        close(&what("p95"), w.p95_ms, r[7].as_f64().unwrap(), 1e-4);
        assert_eq!(
            w.servers as f64,
            r[8].as_f64().unwrap(),
            "{}",
            what("servers")
        );
        assert_eq!(w.tools as f64, r[9].as_f64().unwrap(), "{}", what("tools"));
        close(
            &what("coverage"),
            w.attribution_coverage,
            r[10].as_f64().unwrap(),
            1e-9,
        );
    }
}
