//! OTLP out: a Calltrail re-exports its stored calls, with attribution added, over OTLP/HTTP to
//! the backend a user already runs; here that backend is a second Calltrail, a real OTLP/HTTP
//! receiver. Every span arrives, with the same ids and principal, carrying the chain position
//! and the attribution as attributes; when the backend is down, nothing is lost.

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{Server, duckdb_rows};
use tamper_support::demo;

fn ids(server: &Server, table: &str) -> BTreeSet<String> {
    duckdb_rows(
        server.data_dir(),
        table,
        "SELECT trace_id || '/' || span_id || '/' || coalesce(principal, '-') FROM t",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn spans_are_re_exported_with_attribution_and_survive_a_backend_outage() {
    let mut backend = Server::start();
    let config = format!(
        r#"
[store]
flush_max_rows = 50
flush_interval_ms = 100
[forward]
poll_ms = 100
max_backoff_ms = 500
[[forward.destinations]]
name = "observability"
start = "earliest"
filter = {{ kinds = ["tool_call", "llm_call"] }}
otlp = {{ endpoint = "{}", timeout_ms = 2000 }}
"#,
        backend.traces_url()
    );
    let mut source = Server::start_with_config(&config);
    demo(&source, 200, 41);
    wait_until(
        "the backend to hold every tool call",
        Duration::from_secs(60),
        || {
            let want = ids(&source, "tool_calls");
            !want.is_empty() && ids(&backend, "tool_calls") == want
        },
    );
    assert_eq!(ids(&backend, "llm_calls"), ids(&source, "llm_calls"));
    let enriched = duckdb_rows(
        backend.data_dir(),
        "tool_calls",
        "SELECT count(*) FROM t WHERE map_contains(attributes, 'calltrail.chain_id') AND map_contains(attributes, 'calltrail.seq') AND map_contains(attributes, 'calltrail.leaf_hash')",
    );
    let total = ids(&backend, "tool_calls").len();
    assert_eq!(
        enriched[0][0],
        total.to_string(),
        "every span carries its chain position"
    );
    let teams = duckdb_rows(
        backend.data_dir(),
        "tool_calls",
        "SELECT count(*) FROM t WHERE team IS NOT NULL AND map_contains(attributes, 'calltrail.team')",
    );
    assert_ne!(teams[0][0], "0", "attribution travels as attributes");

    // The backend goes down; calls keep coming; it comes back: nothing is missing.
    backend.stop();
    demo(&source, 200, 42);
    std::thread::sleep(Duration::from_secs(2));
    backend.restart_on_same_ports();
    wait_until("the backend to catch up", Duration::from_secs(60), || {
        ids(&backend, "tool_calls") == ids(&source, "tool_calls")
    });
    source.stop();
    backend.stop();
}
