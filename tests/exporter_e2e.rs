//! End to end with the real `opentelemetry-otlp` Rust exporter (not written by us): MCP spans
//! following the semantic conventions, sent over OTLP/gRPC and over OTLP/HTTP protobuf, then
//! read back with `calltrail query` and, from the Parquet files, with DuckDB.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use support::{Server, int, text};

const ALICE: &str = "alice@example.com";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Grpc,
    HttpProtobuf,
}

/// The config: a directory CSV that maps alice to her team, tenant and cost centre.
fn config(dir: &std::path::Path) -> String {
    let csv = dir.join("directory.csv");
    std::fs::write(
        &csv,
        format!("principal,team,tenant,cost_center\n{ALICE},payments,acme-eu,CC-100\n"),
    )
    .unwrap();
    format!(
        "[store]\nflush_interval_ms = 500\n\n[attribution]\ndirectory = \"{}\"\n",
        csv.display().to_string().replace('\\', "\\\\")
    )
}

fn provider(server: &Server, transport: Transport) -> SdkTracerProvider {
    let resource = Resource::builder()
        .with_service_name("payments-gateway")
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    match transport {
        Transport::Grpc => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(server.grpc_url())
                .with_timeout(Duration::from_secs(10))
                .build()
                .expect("build gRPC exporter");
            builder.with_batch_exporter(exporter).build()
        }
        Transport::HttpProtobuf => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(server.traces_url())
                .with_timeout(Duration::from_secs(10))
                .build()
                .expect("build HTTP exporter");
            builder.with_simple_exporter(exporter).build()
        }
    }
}

fn mcp_attrs(tool: &str, request_id: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("mcp.method.name", "tools/call"),
        KeyValue::new("gen_ai.tool.name", tool.to_string()),
        KeyValue::new("gen_ai.operation.name", "execute_tool"),
        KeyValue::new("jsonrpc.request.id", request_id.to_string()),
        KeyValue::new("mcp.protocol.version", "2025-11-25"),
    ]
}

/// Emits one agent turn: five MCP calls (one seen from both sides) and one LLM inference.
fn emit(provider: &SdkTracerProvider) {
    let tracer = provider.tracer("calltrail-e2e");
    let root = tracer
        .span_builder("agent turn")
        .with_kind(SpanKind::Internal)
        .start(&tracer);
    let root_cx = Context::current_with_span(root);

    let server_span = |tool: &str, id: &str, extra: Vec<KeyValue>, parent: &Context| {
        let mut attrs = mcp_attrs(tool, id);
        attrs.extend(extra);
        tracer
            .span_builder(format!("tools/call {tool}"))
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(&tracer, parent)
    };

    // 1. get_balance by alice, seen by the client and by the server (its child).
    let client = tracer
        .span_builder("tools/call get_balance")
        .with_kind(SpanKind::Client)
        .with_attributes(mcp_attrs("get_balance", "1"))
        .start_with_context(&tracer, &root_cx);
    let client_cx = root_cx.with_span(client);
    let mut s = server_span(
        "get_balance",
        "1",
        vec![KeyValue::new("user.id", ALICE)],
        &client_cx,
    );
    s.end();
    client_cx.span().end();

    // 2. A tool error (CallToolResult.isError) by alice.
    let mut s = server_span(
        "get_balance",
        "2",
        vec![
            KeyValue::new("user.id", ALICE),
            KeyValue::new("error.type", "tool_error"),
        ],
        &root_cx,
    );
    s.set_status(Status::error("account not found"));
    s.end();

    // 3. A JSON-RPC error (invalid params) by alice.
    let mut s = server_span(
        "get_balance",
        "3",
        vec![
            KeyValue::new("user.id", ALICE),
            KeyValue::new("error.type", "-32602"),
            KeyValue::new("rpc.response.status_code", "-32602"),
        ],
        &root_cx,
    );
    s.set_status(Status::error("invalid params"));
    s.end();

    // 4. delete_account by a batch service account.
    let mut s = server_span(
        "delete_account",
        "4",
        vec![KeyValue::new("user.id", "svc-batch")],
        &root_cx,
    );
    s.end();

    // 5. A call with no principal anywhere.
    let mut s = server_span("get_balance", "5", vec![], &root_cx);
    s.end();

    // 6. The LLM inference of the same turn: the tokens live here.
    let mut s = tracer
        .span_builder("chat")
        .with_kind(SpanKind::Client)
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "anthropic"),
            KeyValue::new("gen_ai.request.model", "claude-sonnet-4"),
            KeyValue::new("gen_ai.usage.input_tokens", 1200_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 345_i64),
            KeyValue::new("user.id", ALICE),
        ])
        .start_with_context(&tracer, &root_cx);
    s.end();

    root_cx.span().end();
}

async fn run(transport: Transport) {
    let csv_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_config(&config(csv_dir.path()));

    // The SDK's processors call the exporter from plain threads: run them off the async workers
    // (inside the runtime context, which the tonic and reqwest clients need).
    let p = provider(&server, transport);
    tokio::task::spawn_blocking(move || {
        emit(&p);
        p.force_flush().expect("force_flush");
        p.shutdown().expect("shutdown");
    })
    .await
    .unwrap();

    server.wait_for_count(
        "SELECT count(*) AS n FROM tool_calls",
        6,
        Duration::from_secs(15),
    );
    server.wait_for_count(
        "SELECT count(*) AS n FROM llm_calls",
        1,
        Duration::from_secs(15),
    );

    // The client+server pair of call 1 is one call, seen from the server.
    assert_eq!(
        server.count("SELECT count(*) AS n FROM calls"),
        5,
        "calls view"
    );
    assert_eq!(
        server.count("SELECT count(*) AS n FROM tool_calls WHERE side = 'client'"),
        1,
        "the client perspective is kept in tool_calls"
    );
    let rows = server.query(
        "SELECT side, tool_name, target, method, outcome, jsonrpc_code, error_type, principal, principal_kind, \
                principal_reason, team, tenant, cost_center, operation_class, request_id, protocol_version, \
                source_service, date, hour \
         FROM calls ORDER BY request_id",
    );
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let by_id = |id: &str| {
        rows.iter()
            .find(|r| text(r, "request_id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no call with jsonrpc.request.id {id}: {rows:#?}"))
    };

    for r in &rows {
        assert_eq!(text(r, "side").as_deref(), Some("server"), "{r:?}");
        assert_eq!(text(r, "method").as_deref(), Some("tools/call"), "{r:?}");
        assert_eq!(text(r, "target"), text(r, "tool_name"), "{r:?}");
        assert_eq!(
            text(r, "protocol_version").as_deref(),
            Some("2025-11-25"),
            "{r:?}"
        );
        assert_eq!(
            text(r, "source_service").as_deref(),
            Some("payments-gateway"),
            "{r:?}"
        );
        let date = text(r, "date").unwrap_or_default();
        let hour = text(r, "hour").unwrap_or_default();
        assert!(
            date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
            "date partition 'YYYY-MM-DD': {r:?}"
        );
        assert!(
            hour.len() == 2 && hour.bytes().all(|b| b.is_ascii_digit()),
            "hour partition 'HH': {r:?}"
        );
    }

    let ok = by_id("1");
    assert_eq!(text(ok, "tool_name").as_deref(), Some("get_balance"));
    assert_eq!(text(ok, "outcome").as_deref(), Some("ok"), "{ok:?}");
    assert_eq!(
        text(ok, "operation_class").as_deref(),
        Some("read"),
        "{ok:?}"
    );

    let tool_err = by_id("2");
    assert_eq!(
        text(tool_err, "outcome").as_deref(),
        Some("tool_error"),
        "{tool_err:?}"
    );
    assert_eq!(
        text(tool_err, "error_type").as_deref(),
        Some("tool_error"),
        "{tool_err:?}"
    );

    let rpc_err = by_id("3");
    assert_eq!(
        text(rpc_err, "outcome").as_deref(),
        Some("protocol_error"),
        "{rpc_err:?}"
    );
    assert_eq!(int(rpc_err, "jsonrpc_code"), Some(-32602), "{rpc_err:?}");

    for r in [ok, tool_err, rpc_err] {
        assert_eq!(text(r, "principal").as_deref(), Some(ALICE), "{r:?}");
        assert_eq!(text(r, "principal_kind").as_deref(), Some("human"), "{r:?}");
        assert_eq!(text(r, "team").as_deref(), Some("payments"), "{r:?}");
        assert_eq!(text(r, "tenant").as_deref(), Some("acme-eu"), "{r:?}");
        assert_eq!(text(r, "cost_center").as_deref(), Some("CC-100"), "{r:?}");
    }

    let delete = by_id("4");
    assert_eq!(text(delete, "tool_name").as_deref(), Some("delete_account"));
    assert_eq!(
        text(delete, "operation_class").as_deref(),
        Some("delete"),
        "{delete:?}"
    );
    assert_eq!(text(delete, "outcome").as_deref(), Some("ok"), "{delete:?}");
    assert_eq!(
        text(delete, "principal").as_deref(),
        Some("svc-batch"),
        "{delete:?}"
    );
    assert_eq!(
        text(delete, "principal_kind").as_deref(),
        Some("service_account"),
        "{delete:?}"
    );
    assert_eq!(
        text(delete, "team"),
        None,
        "svc-batch is not in the directory: {delete:?}"
    );

    let nobody = by_id("5");
    assert_eq!(text(nobody, "principal"), None, "{nobody:?}");
    assert_eq!(
        text(nobody, "principal_kind").as_deref(),
        Some("unattributed"),
        "{nobody:?}"
    );
    assert_eq!(text(nobody, "outcome").as_deref(), Some("ok"), "{nobody:?}");

    let llm = server.query(
        "SELECT operation, span_name, input_tokens, output_tokens, request_model, principal, team, source_service FROM llm_calls",
    );
    assert_eq!(llm.len(), 1, "{llm:#?}");
    let l = &llm[0];
    assert_eq!(text(l, "operation").as_deref(), Some("chat"), "{l:?}");
    assert_eq!(int(l, "input_tokens"), Some(1200), "{l:?}");
    assert_eq!(int(l, "output_tokens"), Some(345), "{l:?}");
    assert_eq!(
        text(l, "request_model").as_deref(),
        Some("claude-sonnet-4"),
        "{l:?}"
    );
    assert_eq!(text(l, "principal").as_deref(), Some(ALICE), "{l:?}");
    assert_eq!(text(l, "team").as_deref(), Some("payments"), "{l:?}");

    // LLM spans and MCP spans of one turn join by trace id.
    assert_eq!(
        server
            .count("SELECT count(*) AS n FROM calls c JOIN llm_calls l ON c.trace_id = l.trace_id"),
        5,
        "calls and llm_calls share the trace id"
    );

    // A clean stop flushes; DuckDB reads the same from the Parquet files (Hive partitions).
    server.stop();
    let dir = server.data_dir();
    assert_eq!(
        support::duckdb_count(dir, "tool_calls", "true"),
        6,
        "DuckDB: tool_calls rows"
    );
    let (rows, partitions) = support::pyarrow_scan(dir, "tool_calls");
    assert_eq!(rows, 6, "pyarrow: tool_calls rows");
    assert!(
        !partitions.is_empty() && partitions.iter().all(|p| p.len() == "YYYY-MM-DD/HH".len()),
        "pyarrow sees the Hive partitions: {partitions:?}"
    );
    assert_eq!(
        support::pyarrow_scan(dir, "llm_calls").0,
        1,
        "pyarrow: llm_calls rows"
    );
    assert_eq!(
        support::duckdb_count(
            dir,
            "tool_calls",
            &format!(
                "principal = '{ALICE}' AND team = 'payments' AND tenant = 'acme-eu' AND cost_center = 'CC-100'"
            )
        ),
        3,
        "DuckDB: alice's server rows, with the directory's team, tenant and cost centre"
    );
    assert_eq!(
        support::duckdb_count(
            dir,
            "tool_calls",
            "outcome = 'protocol_error' AND jsonrpc_code = -32602"
        ),
        1,
        "DuckDB: the JSON-RPC error"
    );
    assert_eq!(
        support::duckdb_count(
            dir,
            "tool_calls",
            "principal_kind = 'unattributed' AND side = 'server'"
        ),
        1,
        "DuckDB: the unattributed server row"
    );
    assert_eq!(
        support::duckdb_count(dir, "tool_calls", "date IS NOT NULL AND hour IS NOT NULL"),
        6,
        "DuckDB: hive partition columns date and hour"
    );
    assert_eq!(
        support::duckdb_count(
            dir,
            "llm_calls",
            "input_tokens = 1200 AND output_tokens = 345"
        ),
        1,
        "DuckDB: llm_calls"
    );
    if transport == Transport::Grpc {
        assert_eq!(
            support::duckdb_count(dir, "tool_calls", "ingest_protocol = 'otlp_grpc'"),
            6
        );
    } else {
        assert_eq!(
            support::duckdb_count(dir, "tool_calls", "ingest_protocol = 'otlp_http_protobuf'"),
            6
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_exporter_end_to_end() {
    run(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_exporter_end_to_end() {
    run(Transport::HttpProtobuf).await;
}
