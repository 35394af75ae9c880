//! Forwarding through a whole server to a real rsyslog over TCP: every stored tool call arrives
//! (as CEF inside RFC 5424); rsyslog is stopped while calls keep coming and restarted on the
//! same ports; nothing is missing afterwards, and each message parses.

#![allow(clippy::unwrap_used)]

mod support;
mod syslog_support;
mod tamper_support;

use support::{Server, duckdb_rows};
use syslog_support::{Pki, Rsyslog, parse_rfc5424};
use tamper_support::demo;

fn stored_ids(server: &Server) -> Vec<String> {
    duckdb_rows(
        server.data_dir(),
        "tool_calls",
        "SELECT event_id FROM t ORDER BY seq",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// Waits until the store stops growing.
fn settle(server: &Server) -> Vec<String> {
    let mut last = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let ids = stored_ids(server);
        if !ids.is_empty() && ids == last {
            return ids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not settle"
        );
        last = ids;
    }
}

#[test]
fn a_syslog_outage_loses_nothing() {
    let pki = Pki::new();
    let mut rsyslog = Rsyslog::start(&pki);
    let config = format!(
        r#"
[store]
flush_max_rows = 50
flush_interval_ms = 100
[forward]
poll_ms = 100
max_backoff_ms = 500
[[forward.destinations]]
name = "arcsight"
format = "cef"
start = "earliest"
filter = {{ kinds = ["tool_call"] }}
syslog = {{ address = "{}", protocol = "tcp" }}
"#,
        rsyslog.address(rsyslog.ports.tcp)
    );
    let mut server = Server::start_with_config(&config);
    demo(&server, 200, 51);
    let first = settle(&server);
    rsyslog.wait_for("tcp", &first);

    rsyslog.stop();
    demo(&server, 200, 52);
    let all = settle(&server);
    assert!(all.len() > first.len());
    std::thread::sleep(std::time::Duration::from_secs(1));
    rsyslog.spawn().unwrap();
    let got = rsyslog.wait_for("tcp", &all);
    let parsed = parse_rfc5424(&got.iter().map(|r| r.raw.as_slice()).collect::<Vec<_>>());
    for (p, id) in parsed.iter().zip(&all) {
        let msg = p["msg"].as_str().unwrap();
        assert!(msg.starts_with("CEF:0|"), "{msg}");
        assert!(
            msg.contains(id.as_str()),
            "the CEF event names its event id {id}: {msg}"
        );
    }
    server.stop();
}
