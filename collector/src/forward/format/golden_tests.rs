//! Golden tests: every record of [`super::testdata`] (tool calls, LLM calls, audit events,
//! checkpoints, then anomaly findings) encoded in every format, one event per line, must equal
//! the file of that format under `tests/fixtures/forward/golden/`. A change of output is a
//! change of what SIEMs receive, so it must show up in review as a diff of those files.
//!
//! To accept a deliberate change, rewrite the files and review the diff:
//!
//! ```sh
//! CALLTRAIL_BLESS=1 cargo test -p calltrail-collector forward::format::golden
//! ```
//!
//! The product version (`CARGO_PKG_VERSION`) is part of the output, so a version bump needs
//! a bless too.

use std::path::PathBuf;

use super::testdata::{checkpoints, encode, stored, stored_findings, with_payloads};
use super::{FormatKind, FormatOptions};
use crate::forward::event::Event;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/forward/golden")
}

/// Every golden event encoded, one per line.
fn encode_all(kind: FormatKind, options: &FormatOptions) -> String {
    let mut text = String::new();
    for table in &stored() {
        for row in table.rows() {
            text.push_str(&encode(kind, options, &Event::Record(row)));
            text.push('\n');
        }
    }
    for c in &checkpoints() {
        text.push_str(&encode(kind, options, &Event::Checkpoint(c)));
        text.push('\n');
    }
    // Last, so that adding them only appended lines to files reviewed before.
    for f in stored_findings().rows() {
        text.push_str(&encode(kind, options, &Event::Finding(f)));
        text.push('\n');
    }
    text
}

/// Compares `actual` with the golden file `name`, or rewrites it under `CALLTRAIL_BLESS=1`.
fn check(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("CALLTRAIL_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with CALLTRAIL_BLESS=1 to create it",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        assert_eq!(
            e,
            a,
            "{} line {} differs (CALLTRAIL_BLESS=1 rewrites it if the change is meant)",
            path.display(),
            i + 1
        );
    }
    panic!(
        "{}: {} lines expected, {} encoded (CALLTRAIL_BLESS=1 rewrites it if the change is meant)",
        path.display(),
        expected.lines().count(),
        actual.lines().count()
    );
}

#[test]
fn golden_ocsf() {
    check(
        "ocsf.jsonl",
        &encode_all(FormatKind::Ocsf, &FormatOptions::default()),
    );
}

#[test]
fn golden_ocsf_ai_operation_with_payloads() {
    let options = FormatOptions {
        ocsf_ai_operation: true,
        ..with_payloads()
    };
    check(
        "ocsf-ai-payloads.jsonl",
        &encode_all(FormatKind::Ocsf, &options),
    );
}

#[test]
fn golden_ecs() {
    check(
        "ecs.jsonl",
        &encode_all(FormatKind::Ecs, &FormatOptions::default()),
    );
    check(
        "ecs-payloads.jsonl",
        &encode_all(FormatKind::Ecs, &with_payloads()),
    );
}

#[test]
fn golden_cef() {
    check(
        "cef.log",
        &encode_all(FormatKind::Cef, &FormatOptions::default()),
    );
    check(
        "cef-payloads.log",
        &encode_all(FormatKind::Cef, &with_payloads()),
    );
}

#[test]
fn golden_leef() {
    check(
        "leef.log",
        &encode_all(FormatKind::Leef, &FormatOptions::default()),
    );
    let caret = FormatOptions {
        leef_delimiter: '^',
        ..with_payloads()
    };
    check(
        "leef-caret-payloads.log",
        &encode_all(FormatKind::Leef, &caret),
    );
}

#[test]
fn golden_json() {
    check(
        "json.jsonl",
        &encode_all(FormatKind::Json, &FormatOptions::default()),
    );
    check(
        "json-payloads.jsonl",
        &encode_all(FormatKind::Json, &with_payloads()),
    );
}
