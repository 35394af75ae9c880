//! Retention end to end, on a store a real server wrote: records two years old and fresh ones;
//! a legal hold placed through the running server; `calltrail retention plan/apply` delete
//! exactly the expired, unheld segments, each behind a signed receipt; `calltrail verify` passes
//! across the gaps; the hold keeps its segments until released; a clock advanced past the next
//! rule boundary (`plan --as-of`, and the library's apply at that time) takes the next ones;
//! a deletion without a receipt, or with a forged one, is reported as an attack. Rows are
//! counted with DuckDB before and after.

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use std::path::Path;

use serde_json::Value;
use support::{Server, duckdb_rows};
use tamper_support::*;

const DAY_S: i64 = 86_400;

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sends `spans` demo spans spread over 3 hours from `start` (Unix seconds).
fn demo_at(server: &Server, spans: u32, seed: u32, start: i64) {
    calltrail_ok(&[
        os("demo"),
        os("--endpoint"),
        os(&server.grpc_url()),
        os("--spans"),
        os(&spans.to_string()),
        os("--seed"),
        os(&seed.to_string()),
        os("--start"),
        os(&rfc3339(start)),
        os("--hours"),
        os("3"),
    ]);
}

/// Rows of `table` matching `filter`, counted by DuckDB; 0 when the table has no file (left).
fn duckdb_count(dir: &Path, table: &str, filter: &str) -> i64 {
    duckdb_rows(
        dir,
        table,
        &format!("SELECT count(*) FROM t WHERE {filter}"),
    )
    .first()
    .map_or(0, |r| r[0].parse().unwrap())
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| os(a)).collect();
    all.extend([os("--data-dir"), dir.as_os_str(), os("--json")]);
    serde_json::from_str(&calltrail_ok(&all)).unwrap()
}

fn records_of(list: &Value) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["records"].as_i64().unwrap())
        .sum()
}

/// Rows of both tables that started before `before` (Unix seconds) and are not writes,
/// deletes or admin calls: the ones classes shorter than seven years cover.
fn old_short_lived(dir: &Path, before: i64) -> i64 {
    let t = format!("epoch(CAST(start_time AS TIMESTAMPTZ)) < {before}");
    duckdb_count(
        dir,
        "tool_calls",
        &format!("{t} AND operation_class NOT IN ('write', 'delete', 'admin')"),
    ) + duckdb_count(dir, "llm_calls", &t)
}

#[test]
fn retention_deletes_exactly_the_expired_unheld_segments_and_verify_crosses_the_gaps() {
    let mut server = Server::start_with_config(CONFIG);
    let old = now_s() - 800 * DAY_S;
    demo_at(&server, 400, 7, old);
    demo(&server, 200, 8);
    let dir = server.data_dir().to_owned();
    let boundary = old + 4 * 3600;

    // The hold goes through the running server's control socket. Its principal: the one with
    // the fewest old reads sealed so far (the server flushes every 100 ms), so that it holds
    // some segments and not others.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let principal = loop {
        let principals = duckdb_rows(
            &dir,
            "tool_calls",
            &format!(
                "SELECT principal, count(*) FROM t WHERE epoch(CAST(start_time AS TIMESTAMPTZ)) < {boundary} AND operation_class = 'read' AND principal IS NOT NULL GROUP BY principal ORDER BY 2, 1"
            ),
        );
        if let Some(row) = principals.first() {
            break row[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no old reads were sealed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let hold = calltrail_ok(&[
        os("hold"),
        os("place"),
        os("--data-dir"),
        dir.as_os_str(),
        os("--by"),
        os("carol@bank.example"),
        os("--reason"),
        os("FINRA inquiry 2026-17"),
        os("--principal"),
        os(&principal),
    ])
    .trim()
    .to_owned();
    assert!(hold.starts_with("hold-"), "{hold}");
    assert!(
        server
            .log()
            .contains("Recording an audit event from the control socket"),
        "the running server recorded the hold"
    );
    server.stop();

    let writes_before = duckdb_count(
        &dir,
        "tool_calls",
        "operation_class IN ('write', 'delete', 'admin')",
    );
    let recent_before = duckdb_count(
        &dir,
        "tool_calls",
        &format!("epoch(CAST(start_time AS TIMESTAMPTZ)) >= {boundary}"),
    );
    let old_before = old_short_lived(&dir, boundary);
    assert!(old_before > 0 && writes_before > 0 && recent_before > 0);

    let status = json(&dir, &["status"]);
    assert_eq!(status["holds"].as_array().unwrap().len(), 1);
    assert_eq!(status["holds"][0]["id"], hold.as_str());
    let plan = json(&dir, &["retention", "plan"]);
    let (delete, held) = (&plan["delete"], &plan["held"]);
    assert!(!delete.as_array().unwrap().is_empty(), "{plan}");
    assert!(
        !held.as_array().unwrap().is_empty(),
        "the hold keeps some: {plan}"
    );
    for s in held.as_array().unwrap() {
        assert_eq!(s["held_by"], serde_json::json!([hold]), "{s}");
    }
    for s in delete.as_array().unwrap() {
        assert!(s["expires_at"].as_i64().unwrap() <= now_s(), "{s}");
        assert_ne!(s["class"], "writes-deletes", "writes keep 7 years: {s}");
        assert!(s["partition_start"].as_i64().unwrap() < boundary, "{s}");
    }
    assert_eq!(
        records_of(delete) + records_of(held),
        old_before,
        "every old short-lived record is either due or held"
    );
    // The principal's rows are all in held segments: their count must not change.
    let principal_old = |d: &Path| {
        duckdb_count(
            d,
            "tool_calls",
            &format!(
                "principal = '{principal}' AND epoch(CAST(start_time AS TIMESTAMPTZ)) < {boundary} AND operation_class NOT IN ('write', 'delete', 'admin')"
            ),
        )
    };
    let principal_before = principal_old(&dir);

    let applied = json(&dir, &["retention", "apply"]);
    assert_eq!(applied["deleted"], delete.as_array().unwrap().len());
    assert_eq!(applied["records"].as_i64().unwrap(), records_of(delete));
    assert_eq!(old_short_lived(&dir, boundary), records_of(held));
    assert_eq!(principal_old(&dir), principal_before, "held rows are kept");
    assert_eq!(
        duckdb_count(
            &dir,
            "tool_calls",
            "operation_class IN ('write', 'delete', 'admin')"
        ),
        writes_before
    );
    assert_eq!(
        duckdb_count(
            &dir,
            "tool_calls",
            &format!("epoch(CAST(start_time AS TIMESTAMPTZ)) >= {boundary}")
        ),
        recent_before
    );
    let (ok, report) = verify(&dir, None);
    assert!(ok, "verify after lawful deletions: {report}");
    let crossed: i64 = report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["receipts"].as_i64().unwrap())
        .sum();
    assert_eq!(crossed, applied["deleted"].as_i64().unwrap());
    let status = json(&dir, &["status"]);
    assert_eq!(status["retention"]["receipts"], applied["deleted"]);
    assert_eq!(
        status["retention"]["held_segments"].as_u64().unwrap(),
        held.as_array().unwrap().len() as u64
    );

    // Released (no server: the CLI records it itself), the next run takes what it kept.
    calltrail_ok(&[
        os("hold"),
        os("release"),
        os(&hold),
        os("--data-dir"),
        dir.as_os_str(),
        os("--by"),
        os("carol@bank.example"),
        os("--reason"),
        os("inquiry closed"),
    ]);
    let listed = json(&dir, &["hold", "list", "--all"]);
    assert_eq!(listed[0]["released"]["by"], "carol@bank.example");
    // Both are audit records in the chain, queryable like the calls they concern.
    let audit = support::query_dir(
        &dir,
        "SELECT action, subject, actor FROM audit_events ORDER BY seq",
    )
    .unwrap();
    let actions: Vec<String> = audit
        .iter()
        .map(|r| support::text(r, "action").unwrap())
        .collect();
    assert_eq!(actions, ["hold.placed", "hold.released"]);
    assert!(
        audit
            .iter()
            .all(|r| support::text(r, "subject").as_deref() == Some(hold.as_str()))
    );
    let applied = json(&dir, &["retention", "apply"]);
    assert_eq!(applied["records"].as_i64().unwrap(), records_of(held));
    assert_eq!(old_short_lived(&dir, boundary), 0);
    let (ok, report) = verify(&dir, None);
    assert!(ok, "verify after the release: {report}");

    // The clock passes the next boundary: today's reads expire in 396 days, "other" in 400.
    let soon = now_s() + 398 * DAY_S;
    let ahead = json(&dir, &["retention", "plan", "--as-of", &rfc3339(soon)]);
    let classes: std::collections::BTreeSet<&str> = ahead["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        ["reads"].into(),
        "only reads are due 398 days on: {ahead}"
    );
    let key = calltrail_retention::chain::keys::read_signing_key(&dir.join("keys/calltrail.key"))
        .unwrap();
    let holds = calltrail_retention::holds::Holds::load(&dir).unwrap();
    let policy = calltrail_retention::policy::RetentionConfig::default();
    let p = calltrail_retention::enforce::plan(&dir, &policy, &holds, soon).unwrap();
    assert_eq!(p.delete.len(), ahead["delete"].as_array().unwrap().len());
    calltrail_retention::enforce::apply(&dir, &p, &key, soon, &|_, _| {}).unwrap();
    assert_eq!(
        duckdb_count(&dir, "tool_calls", "operation_class = 'read'"),
        0,
        "every read has gone"
    );
    let (ok, report) = verify(&dir, None);
    assert!(ok, "verify after the clock moved on: {report}");

    // An attacker deletes a segment that has not expired: no receipt covers it.
    let victim = segments(&dir)
        .into_iter()
        .find(|s| s.table == "tool_calls")
        .unwrap();
    remove_segment(&dir, &victim);
    let (ok, report) = verify(&dir, None);
    assert!(!ok);
    assert_eq!(
        kinds(&report),
        ["segment_deleted".to_owned()].into(),
        "{report}"
    );
    // ... and plants a receipt for it, signed with a key of their own.
    let other = calltrail_retention::note::SigningKey::generate("attacker").unwrap();
    let receipts = calltrail_retention::receipt::list(&dir).unwrap();
    let mut forged =
        calltrail_retention::receipt::DeletionReceipt::open(&receipts[0].note, &key.verifier())
            .unwrap();
    forged.first_seq = victim.first_seq;
    forged.last_seq = victim.first_seq + victim.count - 1;
    forged.count = victim.count;
    forged.tree_size = forged.last_seq + 1;
    calltrail_retention::receipt::write(&dir, &forged, &forged.sign(&other).unwrap()).unwrap();
    let (ok, report) = verify(&dir, None);
    assert!(!ok);
    assert_eq!(
        kinds(&report),
        ["receipt_forged".to_owned(), "segment_deleted".to_owned()].into(),
        "{report}"
    );
}

/// `serve` applies the policy on its own schedule: records sent two years late are deleted
/// within seconds when the interval is short, each with a receipt, and the store verifies.
#[test]
fn serve_applies_the_policy_on_its_schedule() {
    let config = format!("{CONFIG}\n[retention]\napply_every_secs = 1\n");
    let mut server = Server::start_with_config(&config);
    let dir = server.data_dir().to_owned();
    demo_at(&server, 200, 3, now_s() - 800 * DAY_S);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let receipts = || calltrail_retention::receipt::list(&dir).unwrap().len();
    while receipts() == 0 || old_short_lived(&dir, now_s() - 700 * DAY_S) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule deleted nothing in 30 s:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(server.log().contains("Applied the retention policy."));
    server.stop();
    assert!(
        duckdb_count(
            &dir,
            "tool_calls",
            "operation_class IN ('write', 'delete', 'admin')"
        ) > 0,
        "writes are kept 7 years"
    );
    let (ok, report) = verify(&dir, None);
    assert!(ok, "{report}");
    assert!(report["chains"][0]["receipts"].as_i64().unwrap() > 0);
}
