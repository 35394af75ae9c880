//! Mapping tests over payloads captured from real MCP instrumentation
//! (`tests/fixtures/samples`, see its README).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use prost::Message;

use super::*;
use crate::record::{OperationClass, Outcome, PrincipalKind};

fn sample(name: &str) -> ExportTraceServiceRequest {
    let path = format!(
        "{}/../tests/fixtures/samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap()
}

fn ctx() -> IngestContext {
    // 2027-01-15, after every capture.
    IngestContext {
        observed_time_ns: 1_800_000_000_000_000_000,
        protocol: "test",
        peer: None,
        source: None,
    }
}

/// Maps the client and server payload of one producer run, as two separate requests.
fn producer(prefix: &str) -> Vec<ToolCall> {
    let at = Attributor::default();
    let mut all = Vec::new();
    for n in ["001", "002"] {
        let m = map_request(&sample(&format!("{prefix}-traces-{n}.pb")), &ctx(), &at);
        assert!(m.rejected.is_empty(), "{:?}", m.rejected);
        all.extend(m.tool_calls);
    }
    all
}

/// What the `calls` view does: every server request is a call; client records fold into the
/// server record sharing their (trace, call id), else count once per (trace, call id).
fn calls(records: &[ToolCall]) -> Vec<&ToolCall> {
    let key = |r: &ToolCall| (r.trace_id.clone(), r.call_id.clone());
    let servers: Vec<&ToolCall> = records
        .iter()
        .filter(|r| r.is_request && r.side == Side::Server)
        .collect();
    let paired: std::collections::BTreeSet<(String, String)> =
        servers.iter().map(|r| key(r)).collect();
    let mut clients: BTreeMap<(String, String), &ToolCall> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.is_request && r.side == Side::Client && !paired.contains(&key(r)))
    {
        clients
            .entry(key(r))
            .and_modify(|b| {
                if b.target().is_none() {
                    *b = r;
                }
            })
            .or_insert(r);
    }
    let mut v: Vec<&ToolCall> = servers.into_iter().chain(clients.into_values()).collect();
    v.sort_by_key(|c| c.start_time_ns);
    v
}

fn summary(calls: &[&ToolCall]) -> Vec<(String, Option<String>, &'static str)> {
    calls
        .iter()
        .map(|c| {
            (
                c.method.clone(),
                c.target().map(String::from),
                c.outcome.as_str(),
            )
        })
        .collect()
}

fn row(m: &str, t: Option<&str>, o: &'static str) -> (String, Option<String>, &'static str) {
    (m.to_string(), t.map(String::from), o)
}

/// The calls every CRM producer run makes; `uri` is the resource target when the producer records it.
fn crm_calls(first: &str, uri: Option<&str>) -> Vec<(String, Option<String>, &'static str)> {
    vec![
        row(first, None, "ok"),
        row("tools/list", None, "ok"),
        row("tools/call", Some("get_customer"), "ok"),
        row("tools/call", Some("update_account_status"), "ok"),
        row("tools/call", Some("get_customer"), "tool_error"),
        row("tools/call", Some("charge_customer"), "protocol_error"),
        row("tools/call", Some("no_such_tool"), "tool_error"),
        row("resources/read", uri, "ok"),
        row("prompts/get", Some("summarize_account"), "ok"),
    ]
}

#[test]
fn official_sdk_stdio_one_call_per_request() {
    let recs = producer("v2-stdio-auto");
    assert_eq!(recs.len(), 18, "9 client + 9 server spans");
    let c = calls(&recs);
    assert_eq!(summary(&c), crm_calls("server/discover", None));
    assert!(
        c.iter().all(|c| c.side == Side::Server),
        "server records are preferred"
    );
    let charge = c
        .iter()
        .find(|c| c.tool_name.as_deref() == Some("charge_customer"))
        .unwrap();
    assert_eq!(charge.jsonrpc_code, Some(-32000));
    assert_eq!(
        charge.error_message.as_deref(),
        Some("payment backend unavailable")
    );
    assert_eq!(charge.protocol_version.as_deref(), Some("2026-07-28"));
    // The client span has no gen_ai.tool.name: the name comes from `MCP send tools/call X`.
    let client = recs
        .iter()
        .find(|r| r.side == Side::Client && r.span_name.ends_with("charge_customer"))
        .unwrap();
    assert_eq!(client.tool_name.as_deref(), Some("charge_customer"));
    assert_eq!(client.call_id, charge.call_id);
    assert_eq!(client.request_id.as_deref(), Some("6"));
}

#[test]
fn official_sdk_http_legacy_skips_notifications() {
    let recs = producer("v2-http-legacy");
    assert_eq!(recs.len(), 19);
    let note = recs
        .iter()
        .find(|r| r.method == "notifications/initialized")
        .unwrap();
    assert!(!note.is_request);
    assert_eq!(summary(&calls(&recs)), crm_calls("initialize", None));
}

#[test]
fn fastmcp_orphans_do_not_count_and_client_id_is_not_a_human() {
    let recs = producer("fastmcp4-http");
    let c = calls(&recs);
    let expected = vec![
        row("server/discover", None, "ok"),
        row("tools/list", None, "ok"),
        row("tools/call", Some("get_customer"), "ok"),
        row("tools/call", Some("update_account_status"), "ok"),
        row("tools/call", Some("get_customer"), "tool_error"),
        row("resources/read", Some("crm://customers/c-100"), "ok"),
        row("prompts/get", Some("summarize_account"), "ok"),
    ];
    assert_eq!(summary(&c), expected);
    let orphans = recs.iter().filter(|r| !r.is_request).count();
    assert_eq!(
        orphans, 3,
        "three root tools/list SERVER spans that were never wire requests"
    );
    for s in recs.iter().filter(|r| r.side == Side::Server) {
        assert_eq!(s.attribution.principal.as_deref(), Some("claude-desktop"));
        assert_eq!(s.attribution.kind(), PrincipalKind::ServiceAccount);
        assert_eq!(
            s.attribution.principal_reason,
            "client_id_pattern:claude-desktop"
        );
        assert_eq!(s.client_name.as_deref(), Some("claude-desktop"));
        assert_eq!(s.server_name.as_deref(), Some("crm-server"));
    }
    // Both client spans of a call (FastMCP's own and the SDK's `MCP send`) pair with the server's.
    let server = c.iter().find(|c| c.outcome == Outcome::ToolError).unwrap();
    let partners = recs
        .iter()
        .filter(|r| r.call_id == server.call_id && r.trace_id == server.trace_id)
        .count();
    assert_eq!(partners, 3);
}

#[test]
fn traceloop_internal_spans_pair_and_capture_is_hashed() {
    let recs = producer("v1-traceloop-stdio");
    let c = calls(&recs);
    let mut expected = crm_calls("initialize", Some("crm://customers/c-100"));
    // FastMCP 2 under Traceloop turned the -32000 error into an isError result.
    expected[5].2 = "tool_error";
    assert_eq!(summary(&c), expected);
    let tools: Vec<&&ToolCall> = c.iter().filter(|c| c.method == "tools/call").collect();
    // The server never ran the unknown tool, so only the client saw that call.
    let sides: Vec<Side> = tools.iter().map(|t| t.side).collect();
    assert_eq!(
        sides,
        [
            Side::Server,
            Side::Server,
            Side::Server,
            Side::Server,
            Side::Client
        ]
    );
    assert!(tools.iter().all(|t| t.request_id.is_some()));
    let client = recs
        .iter()
        .find(|r| r.side == Side::Client && r.tool_name.as_deref() == Some("update_account_status"))
        .unwrap();
    assert_eq!(
        client.arguments.content, None,
        "arguments are never stored by default"
    );
    let sent = r#"{"tool_name": "update_account_status", "arguments": {"customer_id": "c-200", "status": "active"}}"#;
    assert_eq!(client.arguments.size, Some(sent.len() as i64));
    assert_eq!(client.arguments.sha256.as_deref().map(str::len), Some(64));
    assert!(
        !client
            .attributes
            .iter()
            .any(|(k, _)| k.starts_with("traceloop.entity.input"))
    );
    assert_eq!(client.operation_class, OperationClass::Write);
}

#[test]
fn operation_classes_from_tool_names() {
    let recs = producer("v2-stdio-auto");
    let class = |t: &str| {
        recs.iter()
            .find(|r| r.tool_name.as_deref() == Some(t))
            .unwrap()
            .operation_class
    };
    assert_eq!(class("get_customer"), OperationClass::Read);
    assert_eq!(class("update_account_status"), OperationClass::Write);
    assert_eq!(class("charge_customer"), OperationClass::Write);
    assert_eq!(class("no_such_tool"), OperationClass::Unknown);
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn one_span(span: Span) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("gw".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn good_span() -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "tools/call delete_account".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: 1_790_000_000_000_000_000,
        end_time_unix_nano: 1_790_000_000_500_000_000,
        attributes: vec![
            kv("mcp.method.name", Value::StringValue("tools/call".into())),
            kv("user.id", Value::StringValue("bob@example.com".into())),
            kv(
                "gen_ai.tool.call.arguments",
                Value::StringValue("{\"id\":1}".into()),
            ),
            kv("custom.flag", Value::BoolValue(true)),
        ],
        ..Default::default()
    }
}

#[test]
fn bad_spans_are_rejected_with_their_path_and_good_ones_kept() {
    let mut bad_trace = good_span();
    bad_trace.trace_id = vec![1; 3];
    let mut zero_span = good_span();
    zero_span.span_id = vec![0; 8];
    let mut absurd = good_span();
    absurd.start_time_unix_nano = 5;
    let mut future = good_span();
    future.start_time_unix_nano = u64::MAX;
    let mut backwards = good_span();
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mut req = one_span(good_span());
    req.resource_spans[0].scope_spans[0]
        .spans
        .extend([bad_trace, zero_span, absurd, future, backwards]);
    let m = map_request(&req, &ctx(), &Attributor::default());
    assert_eq!(m.tool_calls.len(), 1);
    let reasons: Vec<&str> = m.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("trace_id must be 16 bytes, got 3"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("span_id is all zeroes"));
    assert!(reasons[2].contains("start_time_unix_nano 5"));
    assert!(reasons[3].contains("outside"));
    assert!(reasons[4].contains("before the start"));
    assert_eq!(
        m.rejected[1].path,
        "resourceSpans[0].scopeSpans[0].spans[2]"
    );
    let msg = m.rejection_message().unwrap();
    assert!(
        msg.starts_with("5 span(s) rejected: resourceSpans[0].scopeSpans[0].spans[1]: trace_id"),
        "{msg}"
    );
    assert!(msg.ends_with("and 2 more"), "{msg}");
}

#[test]
fn record_fields_from_a_gateway_span() {
    let m = map_request(&one_span(good_span()), &ctx(), &Attributor::default());
    let r = &m.tool_calls[0];
    assert_eq!(r.tool_name.as_deref(), Some("delete_account"));
    assert_eq!(r.operation_class, OperationClass::Delete);
    assert_eq!(r.attribution.principal.as_deref(), Some("bob@example.com"));
    assert_eq!(r.attribution.kind(), PrincipalKind::Human);
    assert_eq!(
        r.server_name.as_deref(),
        Some("gw"),
        "server side falls back to service.name"
    );
    assert_eq!(r.trace_id, "01".repeat(16));
    assert_eq!(
        r.call_id, r.span_id,
        "a root server span with no client is its own call"
    );
    assert!(
        !r.is_request,
        "a root server span without a request id is not counted"
    );
    assert_eq!(
        r.attributes,
        vec![
            ("user.id".to_string(), "bob@example.com".to_string()),
            ("custom.flag".to_string(), "true".to_string())
        ]
    );
    assert_eq!(r.arguments.size, Some(8));
    // Same span, same id: retries are idempotent.
    let again = map_request(&one_span(good_span()), &ctx(), &Attributor::default());
    assert_eq!(again.tool_calls[0].event_id, r.event_id);
    assert_eq!(r.event_id.len(), 36);
    assert_eq!(&r.event_id[14..15], "8", "UUID version 8");
}

#[test]
fn llm_spans_go_to_their_table_and_others_are_skipped() {
    let mut llm = good_span();
    llm.name = "chat gpt-5".into();
    llm.attributes = vec![
        kv("gen_ai.operation.name", Value::StringValue("chat".into())),
        kv("gen_ai.request.model", Value::StringValue("gpt-5".into())),
        kv("gen_ai.usage.input_tokens", Value::IntValue(1200)),
        kv(
            "gen_ai.usage.completion_tokens",
            Value::StringValue("300".into()),
        ),
        kv(
            "gen_ai.usage.cache_creation.input_tokens",
            Value::IntValue(7),
        ),
    ];
    let mut http = good_span();
    http.span_id = vec![3; 8];
    http.attributes = vec![kv("http.request.method", Value::StringValue("GET".into()))];
    let mut req = one_span(llm);
    req.resource_spans[0].scope_spans[0].spans.push(http);
    let m = map_request(&req, &ctx(), &Attributor::default());
    assert_eq!(
        (m.tool_calls.len(), m.llm_calls.len(), m.skipped_spans),
        (0, 1, 1)
    );
    let l = &m.llm_calls[0];
    assert_eq!(
        (l.input_tokens, l.output_tokens, l.cache_write_input_tokens),
        (Some(1200), Some(300), Some(7))
    );
    assert_eq!(l.request_model.as_deref(), Some("gpt-5"));
    assert!(
        l.attributes
            .iter()
            .all(|(k, _)| !k.starts_with("gen_ai.usage"))
    );
}

/// Found while writing the fuzz harness: linking scanned a parent's children once per call, so a
/// request whose spans share one parent (Traceloop wrappers under one remote span) or repeat
/// one span id cost quadratic time: 20 000 such pairs (4 MB) took 2 s and 21 s of CPU in a
/// release build, and a 16 MiB body minutes. Now each lookup is a hash probe.
#[test]
fn linking_is_linear_when_spans_share_a_parent_or_an_id() {
    const PAIRS: u64 = 40_000;
    let span = |id: u64, parent: Option<u64>, kind: SpanKind, attrs: &[(&str, &str)]| Span {
        trace_id: vec![1; 16],
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        kind: kind as i32,
        start_time_unix_nano: 1_790_000_000_000_000_000,
        end_time_unix_nano: 1_790_000_000_000_000_001,
        attributes: attrs
            .iter()
            .map(|(k, v)| kv(k, Value::StringValue((*v).into())))
            .collect(),
        ..Default::default()
    };
    let mut spans = Vec::new();
    for i in 0..PAIRS {
        // Traceloop server side: tool span → `mcp.server` wrapper → remote span 1.
        let wrapper = 1_000_000 + i;
        spans.push(span(
            wrapper,
            Some(1),
            SpanKind::Server,
            &[("traceloop.span.kind", "server")],
        ));
        spans.push(span(
            2_000_000 + i,
            Some(wrapper),
            SpanKind::Server,
            &[
                ("traceloop.span.kind", "tool"),
                ("traceloop.workflow.name", "w"),
            ],
        ));
        // Client spans all claiming span id 2, each with a child of another method.
        spans.push(span(
            2,
            None,
            SpanKind::Client,
            &[("mcp.method.name", "tools/call")],
        ));
        spans.push(span(
            3_000_000 + i,
            Some(2),
            SpanKind::Client,
            &[("mcp.method.name", "ping")],
        ));
    }
    spans.push(span(
        9,
        Some(1),
        SpanKind::Client,
        &[("jsonrpc.request.id", "7")],
    ));
    let mut req = one_span(good_span());
    req.resource_spans[0].scope_spans[0].spans = spans;

    let started = std::time::Instant::now();
    let m = map_request(&req, &ctx(), &Attributor::default());
    let elapsed = started.elapsed();
    // Linear: about a second in a debug build on the 2-core development machine; the quadratic
    // scan took over a minute.
    assert!(elapsed < std::time::Duration::from_secs(15), "{elapsed:?}");

    assert_eq!(m.tool_calls.len() as u64, 3 * PAIRS);
    let tool = m
        .tool_calls
        .iter()
        .find(|c| c.side == Side::Server)
        .unwrap();
    assert_eq!(tool.call_id, hex::encode(1u64.to_be_bytes()));
    assert_eq!(tool.request_id.as_deref(), Some("7"));
    let outer = m
        .tool_calls
        .iter()
        .find(|c| c.side == Side::Client && c.method == "tools/call")
        .unwrap();
    assert_eq!(outer.call_id, hex::encode(2u64.to_be_bytes()));
}
