//! Replays OTLP payloads captured from real MCP instrumentation (`tests/fixtures/samples`)
//! through OTLP/HTTP, as protobuf and as JSON, and checks the `calls` view row by row.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use support::{Server, text};

/// (method, target or "-", outcome) per call, in start-time order.
type Expected = &'static [(&'static str, &'static str, &'static str)];

const V2_STDIO_AUTO: Expected = &[
    ("server/discover", "-", "ok"),
    ("tools/list", "-", "ok"),
    ("tools/call", "get_customer", "ok"),
    ("tools/call", "update_account_status", "ok"),
    ("tools/call", "get_customer", "tool_error"),
    ("tools/call", "charge_customer", "protocol_error"),
    ("tools/call", "no_such_tool", "tool_error"),
    ("resources/read", "-", "ok"),
    ("prompts/get", "summarize_account", "ok"),
];

const V2_HTTP_LEGACY: Expected = &[
    ("initialize", "-", "ok"),
    ("tools/list", "-", "ok"),
    ("tools/call", "get_customer", "ok"),
    ("tools/call", "update_account_status", "ok"),
    ("tools/call", "get_customer", "tool_error"),
    ("tools/call", "charge_customer", "protocol_error"),
    ("tools/call", "no_such_tool", "tool_error"),
    ("resources/read", "-", "ok"),
    ("prompts/get", "summarize_account", "ok"),
];

// The FastMCP capture has no charge_customer / no_such_tool calls.
const FASTMCP4_HTTP: Expected = &[
    ("server/discover", "-", "ok"),
    ("tools/list", "-", "ok"),
    ("tools/call", "get_customer", "ok"),
    ("tools/call", "update_account_status", "ok"),
    ("tools/call", "get_customer", "tool_error"),
    ("resources/read", "crm://customers/c-100", "ok"),
    ("prompts/get", "summarize_account", "ok"),
];

// FastMCP 2 under Traceloop reported charge_customer's -32000 as a tool error (isError).
const V1_TRACELOOP_STDIO: Expected = &[
    ("initialize", "-", "ok"),
    ("tools/list", "-", "ok"),
    ("tools/call", "get_customer", "ok"),
    ("tools/call", "update_account_status", "ok"),
    ("tools/call", "get_customer", "tool_error"),
    ("tools/call", "charge_customer", "tool_error"),
    ("tools/call", "no_such_tool", "tool_error"),
    ("resources/read", "crm://customers/c-100", "ok"),
    ("prompts/get", "summarize_account", "ok"),
];

const PRODUCERS: &[(&str, Expected)] = &[
    ("v2-stdio-auto", V2_STDIO_AUTO),
    ("v2-http-legacy", V2_HTTP_LEGACY),
    ("fastmcp4-http", FASTMCP4_HTTP),
    ("v1-traceloop-stdio", V1_TRACELOOP_STDIO),
];

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn ext(self) -> &'static str {
        match self {
            Encoding::Protobuf => "pb",
            Encoding::Json => "json",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The payload files of one producer (`<prefix>-traces-NNN.<ext>`), in order.
fn payloads(prefix: &str, enc: Encoding) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(support::samples_dir())
        .expect("read tests/fixtures/samples")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            n.starts_with(&format!("{prefix}-traces-")) && n.ends_with(&format!(".{}", enc.ext()))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected the client and server payloads of {prefix}, found {files:?}"
    );
    files
        .into_iter()
        .map(|n| {
            let body = std::fs::read(support::samples_dir().join(&n)).unwrap();
            (n, body)
        })
        .collect()
}

/// Every trace id in one payload, as lowercase hex, decoded independently of Calltrail.
fn trace_ids(body: &[u8], enc: Encoding) -> BTreeSet<String> {
    match enc {
        Encoding::Protobuf => {
            let req = ExportTraceServiceRequest::decode(body).expect("sample .pb decodes");
            req.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| hex::encode(&s.trace_id))
                .collect()
        }
        Encoding::Json => {
            let v: Value = serde_json::from_slice(body).expect("sample .json parses");
            let mut ids = BTreeSet::new();
            for r in v["resourceSpans"].as_array().unwrap() {
                for s in r["scopeSpans"].as_array().unwrap() {
                    for span in s["spans"].as_array().unwrap() {
                        ids.insert(span["traceId"].as_str().unwrap().to_ascii_lowercase());
                    }
                }
            }
            ids
        }
    }
}

fn in_list(ids: &BTreeSet<String>) -> String {
    ids.iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn post_all(server: &Server, enc: Encoding) {
    let client = support::http_client();
    for (prefix, _) in PRODUCERS {
        for (name, body) in payloads(prefix, enc) {
            let resp = client
                .post(server.traces_url())
                .header("content-type", enc.content_type())
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {name}: {e}"));
            let status = resp.status();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let text = resp.bytes().await.unwrap();
            assert_eq!(
                status.as_u16(),
                200,
                "POST {name}: {}",
                String::from_utf8_lossy(&text)
            );
            assert!(
                ctype
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(enc.content_type()),
                "POST {name}: response content type {ctype:?}, expected {}",
                enc.content_type()
            );
        }
    }
}

fn producer_traces(prefix: &str, enc: Encoding) -> BTreeSet<String> {
    payloads(prefix, enc)
        .iter()
        .flat_map(|(_, body)| trace_ids(body, enc))
        .collect()
}

/// Checks the `calls` rows of every producer; returns them for later comparison.
fn check_calls(server: &Server, enc: Encoding) -> Vec<Vec<support::Row>> {
    let mut all = Vec::new();
    for (prefix, expected) in PRODUCERS {
        let traces = producer_traces(prefix, enc);
        let rows = server.query(&format!(
            "SELECT method, target, outcome, start_time, principal, principal_kind, principal_reason, \
                    side, tool_name, jsonrpc_code, trace_id, call_id, is_request \
             FROM calls WHERE trace_id IN ({}) ORDER BY start_time, call_id",
            in_list(&traces)
        ));
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
        let want: Vec<(String, String, String)> = expected
            .iter()
            .map(|(m, t, o)| (m.to_string(), t.to_string(), o.to_string()))
            .collect();
        assert_eq!(
            got, want,
            "{prefix} ({enc:?}): calls (method, target, outcome) in start order; rows: {rows:#?}"
        );

        for r in &rows {
            assert_eq!(
                support::boolean(r, "is_request"),
                Some(true),
                "{prefix}: calls row not a request: {r:?}"
            );
            assert!(
                text(r, "call_id").is_some(),
                "{prefix}: calls row without call_id: {r:?}"
            );
            if text(r, "method").as_deref() == Some("tools/call") {
                assert_eq!(
                    text(r, "tool_name"),
                    text(r, "target"),
                    "{prefix}: tool_name vs target: {r:?}"
                );
            }
        }
        // Every call of the official SDK and of FastMCP has a SERVER span: the view keeps that side.
        if *prefix != "v1-traceloop-stdio" {
            for r in &rows {
                assert_eq!(
                    text(r, "side").as_deref(),
                    Some("server"),
                    "{prefix}: calls row not from the server side: {r:?}"
                );
            }
        }
        // The official SDK's server reports charge_customer's JSON-RPC error -32000.
        if prefix.starts_with("v2-") {
            let charge: Vec<_> = rows
                .iter()
                .filter(|r| text(r, "target").as_deref() == Some("charge_customer"))
                .collect();
            assert_eq!(charge.len(), 1, "{prefix}: {rows:#?}");
            assert_eq!(
                support::int(charge[0], "jsonrpc_code"),
                Some(-32000),
                "{prefix}: {:?}",
                charge[0]
            );
        }
        if *prefix == "fastmcp4-http" {
            // FastMCP sets enduser.id to the OAuth client id: an app, not a person.
            for r in &rows {
                assert_eq!(
                    text(r, "principal").as_deref(),
                    Some("claude-desktop"),
                    "{r:?}"
                );
                assert_eq!(
                    text(r, "principal_kind").as_deref(),
                    Some("service_account"),
                    "{r:?}"
                );
                assert_eq!(
                    text(r, "principal_reason").as_deref(),
                    Some("client_id_pattern:claude-desktop"),
                    "{r:?}"
                );
            }
            let list = in_list(&traces);
            let server_rows = server.count(&format!(
                "SELECT count(*) AS n FROM tool_calls WHERE side = 'server' AND trace_id IN ({list})"
            ));
            let attributed = server.count(&format!(
                "SELECT count(*) AS n FROM tool_calls WHERE side = 'server' AND trace_id IN ({list}) \
                 AND principal = 'claude-desktop' AND principal_kind = 'service_account' \
                 AND principal_reason = 'client_id_pattern:claude-desktop'"
            ));
            assert!(
                server_rows >= expected.len() as i64,
                "fastmcp4-http: only {server_rows} server rows"
            );
            assert_eq!(
                attributed, server_rows,
                "fastmcp4-http: every server row is the client id claude-desktop"
            );
        }
        all.push(rows);
    }
    all
}

fn total_calls_sql(enc: Encoding) -> (String, i64) {
    let mut traces = BTreeSet::new();
    let mut n = 0;
    for (prefix, expected) in PRODUCERS {
        traces.extend(producer_traces(prefix, enc));
        n += expected.len() as i64;
    }
    (
        format!(
            "SELECT count(*) AS n FROM calls WHERE trace_id IN ({})",
            in_list(&traces)
        ),
        n,
    )
}

async fn replay(enc: Encoding) {
    let mut server = Server::start();
    post_all(&server, enc).await;
    // Visible shortly after the periodic flush, without stopping the server.
    let (sql, total) = total_calls_sql(enc);
    server.wait_for_count(&sql, total, Duration::from_secs(15));
    // SIGTERM flushes everything: from here on the files are final.
    server.stop();
    let first = check_calls(&server, enc);

    // The same payloads again (an exporter retry): the calls view must not change.
    server.restart();
    post_all(&server, enc).await;
    server.stop();
    let second = check_calls(&server, enc);
    let strip = |runs: &Vec<Vec<support::Row>>| {
        runs.iter()
            .map(|rows| {
                rows.iter()
                    .map(|r| (text(r, "call_id"), text(r, "trace_id"), text(r, "outcome")))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&first),
        strip(&second),
        "posting the same payloads twice changed the calls view"
    );
    assert_eq!(server.count(&sql), total, "calls after the replay");
}

#[tokio::test]
async fn samples_replay_protobuf() {
    replay(Encoding::Protobuf).await;
}

#[tokio::test]
async fn samples_replay_json() {
    replay(Encoding::Json).await;
}
