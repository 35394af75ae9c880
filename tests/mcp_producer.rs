//! End to end with a real MCP producer (not written by us): the official MCP Python SDK's
//! client and server (`tests/producers`), both exporting OTLP/HTTP protobuf to Calltrail.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Server, text};

#[test]
fn official_python_sdk_stdio_client_and_server() {
    let python = support::python();
    let mut server = Server::start_with_config("[store]\nflush_interval_ms = 500\n");

    let producers = support::repo_root().join("tests/producers");
    let mut cmd = Command::new(python);
    cmd.current_dir(&producers)
        .arg(producers.join("crm_client.py"))
        .arg("stdio")
        .env("OTLP_ENDPOINT", server.traces_url())
        .env("OTEL_SERVICE_NAME", "crm-mcp-client")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("CONSOLE_SPANS");
    // The client spawns the server over stdio; both flush their BatchSpanProcessor at exit.
    let out = support::run(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "crm_client.py failed ({})\nstdout:\n{}\nstderr:\n{}\ncalltrail stderr:\n{}",
        out.status,
        out.stdout,
        out.stderr,
        server.log()
    );
    assert!(
        out.stdout.contains("prompt:"),
        "the client did not get through its calls:\n{}",
        out.stdout
    );
    // The producer logs exporter failures on stderr: there must be none.
    assert!(
        !out.stderr.contains("Failed to export"),
        "the producer could not export its spans:\n{}",
        out.stderr
    );

    // Every call has a server span once both processes have exported.
    server.wait_for_count(
        "SELECT count(*) AS n FROM calls WHERE side = 'server'",
        9,
        Duration::from_secs(30),
    );
    server.stop();

    let rows = server.query(
        "SELECT method, target, outcome, side, jsonrpc_code, principal_kind, source_service \
         FROM calls ORDER BY start_time, call_id",
    );
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                text(r, "method").unwrap_or_default(),
                text(r, "target").unwrap_or_else(|| "-".into()),
                text(r, "outcome").unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("server/discover", "-", "ok"),
        ("tools/list", "-", "ok"),
        ("tools/call", "get_customer", "ok"),
        ("tools/call", "update_account_status", "ok"),
        ("tools/call", "get_customer", "tool_error"),
        ("tools/call", "charge_customer", "protocol_error"),
        ("tools/call", "no_such_tool", "tool_error"),
        ("resources/read", "-", "ok"),
        ("prompts/get", "summarize_account", "ok"),
    ]
    .iter()
    .map(|(m, t, o)| (m.to_string(), t.to_string(), o.to_string()))
    .collect();
    assert_eq!(
        got, want,
        "calls (method, target, outcome); rows: {rows:#?}"
    );
    for r in &rows {
        assert_eq!(text(r, "side").as_deref(), Some("server"), "{r:?}");
        assert_eq!(
            text(r, "source_service").as_deref(),
            Some("crm-mcp-server"),
            "{r:?}"
        );
        // The SDK carries baggage to the server but records it on no span.
        assert_eq!(
            text(r, "principal_kind").as_deref(),
            Some("unattributed"),
            "{r:?}"
        );
    }
    let charge = rows
        .iter()
        .find(|r| text(r, "target").as_deref() == Some("charge_customer"))
        .unwrap();
    assert_eq!(
        support::int(charge, "jsonrpc_code"),
        Some(-32000),
        "{charge:?}"
    );

    // Both perspectives are kept for audit: the client's spans came from the other process.
    let clients = server.count("SELECT count(*) AS n FROM tool_calls WHERE side = 'client' AND source_service = 'crm-mcp-client'");
    assert_eq!(clients, 9, "client-side rows from crm-mcp-client");
}
