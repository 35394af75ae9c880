//! The FOCUS export checked by a validator not written by us: the FinOps Foundation's
//! `focus-validator` 1.0.0 (PyPI), in its own venv made by `scripts/focus-validate --setup`
//! (which `scripts/test` runs, exporting `CALLTRAIL_FOCUS_VENV`).
//!
//! That release knows FOCUS 1.0 rules only (the export follows 1.2) and has bugs of its own, so
//! some of its checks fail on a correct export. Each such failure is in [`EXPECTED`] with its
//! reason, as docs/focus.md explains them; any other failure fails this test, and so does an
//! expected failure that no longer happens (the allow-list and the document must then shrink).
//!
//! The sample it validates is left at `target/tmp/focus-sample.csv` for
//! `scripts/focus-validate target/tmp/focus-sample.csv`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use calltrail_query::chargeback::{Chargeback, ChargebackRow, Dimension, Granularity, RowKind};
use calltrail_query::focus;
use calltrail_query::price_table::ChargebackConfig;
use chrono::{DateTime, Duration, Utc};

/// The validator's checks that fail on our export although it is right, and why; docs/focus.md
/// explains each one.
const EXPECTED: &[(&str, &str)] = &[
    ("CommitmentDiscountCategory_Required", CONDITIONAL),
    ("CommitmentDiscountId_Required", CONDITIONAL),
    ("CommitmentDiscountName_Required", CONDITIONAL),
    ("CommitmentDiscountStatus_Required", CONDITIONAL),
    ("CommitmentDiscountType_Required", CONDITIONAL),
    ("RegionId_Required", CONDITIONAL),
    ("RegionName_Required", CONDITIONAL),
    ("InvoiceIssuer_Required", MISNAMED),
    ("Provider_Required", MISNAMED),
    ("Publisher_Required", MISNAMED),
    ("ResourceID_Required", MISNAMED),
    (
        "SkuPriceId_Nullable",
        "its SQL reads ChargeType, a 1.0-preview column that FOCUS 1.0 replaced with \
         ChargeCategory: KeyError on any 1.0 or later data",
    ),
];

const CONDITIONAL: &str =
    "a Conditional column (commitment discounts, regions) checked as if it were Mandatory";
const MISNAMED: &str = "the rule names the column by its display name or misspells it \
                        (InvoiceIssuerName, ProviderName, PublisherName, ResourceId are the IDs)";

/// The columns the validator knows by other names, and those names.
const VALIDATOR_NAMES: &[(&str, &str)] = &[
    ("InvoiceIssuerName", "InvoiceIssuer"),
    ("ProviderName", "Provider"),
    ("PublisherName", "Publisher"),
    ("ResourceId", "ResourceID"),
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn row(hour: &str, key: [Option<&str>; 3]) -> ChargebackRow {
    ChargebackRow {
        period_start: at(hour),
        period_end: at(hour) + Duration::hours(1),
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

/// An hourly chargeback by team × server × tool with every kind of row: calls, calls sharing
/// their key with the team's LLM tokens, tokens alone, an idle hour, unattributed calls.
fn sample() -> Chargeback {
    let (h1, h2, h3) = (
        "2026-03-31T22:00:00Z",
        "2026-03-31T23:00:00Z",
        "2026-04-01T00:00:00Z",
    );
    let rows = vec![
        ChargebackRow {
            calls: 3,
            failed_calls: 1,
            duration_s: 1.5,
            call_cost_micros: 30_000,
            duration_cost_micros: 1_500,
            platform_cost_micros: 333_334,
            ..row(h1, [Some("payments"), Some("docs"), Some("search")])
        },
        ChargebackRow {
            calls: 2,
            duration_s: 0.25,
            call_cost_micros: 20_000,
            platform_cost_micros: 666_666,
            input_tokens: 1_200,
            output_tokens: 300,
            token_cost_micros: 4_500,
            ..row(h1, [Some("payments"), None, None])
        },
        ChargebackRow {
            input_tokens: 1_000,
            output_tokens: 500,
            token_cost_micros: 2_250,
            ..row(h2, [Some("risk"), None, None])
        },
        ChargebackRow {
            kind: RowKind::Idle,
            platform_cost_micros: 1_000_000,
            ..row(h2, [None, None, None])
        },
        ChargebackRow {
            calls: 7,
            duration_s: 12.345,
            call_cost_micros: 70_000,
            duration_cost_micros: 12_345,
            platform_cost_micros: 500_000,
            ..row(
                h3,
                [Some("ops, west"), Some("crm db"), Some("update/record")],
            )
        },
        ChargebackRow {
            calls: 1,
            failed_calls: 1,
            duration_s: 0.001,
            call_cost_micros: 10_000,
            duration_cost_micros: 1,
            platform_cost_micros: 500_000,
            ..row(h3, [None, Some("docs"), Some("search")])
        },
    ];
    Chargeback {
        from: at(h1),
        to: at("2026-04-01T01:00:00Z"),
        by: vec![Dimension::Team, Dimension::Server, Dimension::Tool],
        granularity: Granularity::Hour,
        currency: "USD".into(),
        platform_cost_micros: rows.iter().map(|r| r.platform_cost_micros).sum(),
        rows,
        complete: true,
    }
}

/// The validator's venv: `CALLTRAIL_FOCUS_VENV`, else scripts/focus-validate's default, if it
/// has been made.
fn venv() -> Option<PathBuf> {
    if let Some(venv) = std::env::var_os("CALLTRAIL_FOCUS_VENV") {
        let venv = PathBuf::from(venv);
        assert!(
            venv.join("bin/focus-validator").exists(),
            "CALLTRAIL_FOCUS_VENV={} has no focus-validator",
            venv.display()
        );
        return Some(venv);
    }
    let tools = std::env::var_os("CALLTRAIL_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
            cache
                .or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache")))
                .map(|c| c.join("calltrail-tools"))
        })?;
    let venv = tools.join("focus-validator-1.0.0");
    venv.join("bin/focus-validator").exists().then_some(venv)
}

/// Runs scripts/focus-validate on `csv` and returns the checks it reports as failed.
fn failures(venv: &Path, csv: &Path) -> (BTreeSet<String>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/focus-validate");
    let out = Command::new(script)
        .arg(csv)
        .env("CALLTRAIL_FOCUS_VENV", venv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "focus-validator failed to run: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("Validation succeeded.") || stdout.contains("Validation failed!"),
        "focus-validator printed no verdict:\n{stdout}\n{stderr}"
    );
    let failed = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" failed:"))
        .map(str::to_owned)
        .collect();
    (failed, stdout)
}

/// `text` with its header's columns renamed by `names`.
fn rename_header(text: &str, names: &[(&str, &str)]) -> String {
    let (header, body) = text.split_once("\r\n").unwrap();
    let header: Vec<&str> = header
        .split(',')
        .map(|c| {
            names
                .iter()
                .find(|(from, _)| *from == c)
                .map_or(c, |(_, to)| to)
        })
        .collect();
    format!("{}\r\n{body}", header.join(","))
}

#[test]
fn focus_validator_reports_only_the_documented_failures() {
    let batch = focus::rows(&sample(), &ChargebackConfig::default()).unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let csv = dir.join("focus-sample.csv");
    focus::write_csv(&batch, &csv).unwrap();
    let Some(venv) = venv() else {
        eprintln!("skipped: no focus-validator venv (scripts/focus-validate --setup makes it)");
        return;
    };
    let expected: BTreeSet<String> = EXPECTED.iter().map(|(c, _)| (*c).to_owned()).collect();

    // The export as it is: only the documented failures, and all of them.
    let (failed, report) = failures(&venv, &csv);
    let new: Vec<_> = failed.difference(&expected).collect();
    let gone: Vec<_> = expected.difference(&failed).collect();
    assert!(
        new.is_empty(),
        "focus-validator reports failures docs/focus.md does not explain: {new:?}\n{report}"
    );
    assert!(
        gone.is_empty(),
        "expected failures no longer happen; drop them here and in docs/focus.md: {gone:?}\n{report}"
    );

    // With the columns it misnames under its names, its checks of them run (a missing column's
    // checks pass without looking), and pass.
    let text = std::fs::read_to_string(&csv).unwrap();
    let aliased = dir.join("focus-sample-validator-names.csv");
    std::fs::write(&aliased, rename_header(&text, VALIDATOR_NAMES)).unwrap();
    let (failed, report) = failures(&venv, &aliased);
    let misnamed: BTreeSet<String> = EXPECTED
        .iter()
        .filter(|(_, why)| *why == MISNAMED)
        .map(|(c, _)| (*c).to_owned())
        .collect();
    assert_eq!(failed, &expected - &misnamed, "{report}");

    // And it does catch a wrong value: the harness is not blind.
    let broken = dir.join("focus-sample-broken.csv");
    std::fs::write(&broken, text.replace(",Usage-Based,", ",Sometimes,")).unwrap();
    let (failed, report) = failures(&venv, &broken);
    assert!(failed.contains("ChargeFrequency_Enum"), "{report}");
}
