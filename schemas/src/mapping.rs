//! OTLP `ExportTraceServiceRequest` → [`ToolCall`] and [`LlmCall`] records.
//!
//! Each span is validated (ids, timestamps), then classified by its shape:
//! - an MCP operation: `mcp.method.name` (or ToolHive's `mcp.method`), or a Traceloop
//!   `X.tool` / `method.mcp` span → a [`ToolCall`];
//! - a model inference span (`gen_ai.operation.name` = `chat`, ...) → an [`LlmCall`];
//! - anything else is counted as skipped, never stored.
//!
//! Client and server records of one call share a `call_id`: the span id of the wire request
//! (the client span the server span is a child of). Within one request, instrumentation that
//! wraps the wire span (FastMCP's outer client span, Traceloop's tool spans and their
//! `ResponseStreamWriter` children) is linked to it. See `docs/specs/record.md`.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use sha2::{Digest, Sha256};

use crate::attribution::Attributor;
use crate::otlp_value::{attr_i64, attr_string, first_i64, first_string, render};
use crate::outcome::{ErrorSignals, classify};
use crate::record::{LlmCall, Payload, Side, Source, ToolCall};
use crate::semconv as k;

/// 2000-01-01T00:00:00Z: spans that claim to start earlier are rejected as absurd.
pub const MIN_TIME_NS: i64 = 946_684_800_000_000_000;
/// Spans may be stamped at most this far past the receive time (clock skew allowance).
pub const MAX_FUTURE_SKEW_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Facts about the request being mapped that are not in the payload.
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// Receive time, nanoseconds since the Unix epoch.
    pub observed_time_ns: i64,
    /// `otlp_grpc`, `otlp_http_protobuf` or `otlp_http_json`.
    pub protocol: &'static str,
    /// Peer address of the connection.
    pub peer: Option<String>,
    /// Authenticated source name, when ingest authentication is on.
    pub source: Option<String>,
}

/// A span that could not be used, with the reason (reported in OTLP `partial_success`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Where it was: `resourceSpans[0].scopeSpans[1].spans[3]`.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The records one request produced.
#[derive(Debug, Default)]
pub struct MappedBatch {
    /// One record per MCP operation span.
    pub tool_calls: Vec<ToolCall>,
    /// One record per model inference span.
    pub llm_calls: Vec<LlmCall>,
    /// Valid spans that are neither (HTTP, database, agent spans...): counted, not stored.
    pub skipped_spans: u64,
    /// Spans that could not be used.
    pub rejected: Vec<Rejection>,
}

impl MappedBatch {
    /// A one-line summary of the rejections for OTLP `partial_success.error_message`, naming
    /// the first few.
    pub fn rejection_message(&self) -> Option<String> {
        if self.rejected.is_empty() {
            return None;
        }
        let shown: Vec<String> = self
            .rejected
            .iter()
            .take(3)
            .map(|r| format!("{}: {}", r.path, r.reason))
            .collect();
        let more = self.rejected.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        Some(format!(
            "{} span(s) rejected: {}{tail}",
            self.rejected.len(),
            shown.join("; ")
        ))
    }
}

/// Attribute keys that become columns, so they are not repeated in the `attributes` map.
const MAPPED_KEYS: &[&str] = &[
    k::MCP_METHOD_NAME,
    k::MCP_METHOD_LEGACY,
    k::GEN_AI_TOOL_NAME,
    k::MCP_TOOL_NAME,
    k::GEN_AI_PROMPT_NAME,
    k::MCP_RESOURCE_URI,
    k::JSONRPC_REQUEST_ID,
    k::MCP_REQUEST_ID,
    k::ERROR_TYPE,
    k::RPC_RESPONSE_STATUS_CODE,
    k::RPC_STATUS_CODE,
    k::MCP_PROTOCOL_VERSION,
    k::MCP_SESSION_ID,
    k::NETWORK_TRANSPORT,
    k::SERVER_ADDRESS,
    k::SERVER_PORT,
    k::CLIENT_ADDRESS,
    k::CLIENT_PORT,
    "mcp.server.name",
    "fastmcp.server.name",
    "litellm.mcp.server.name",
    "mcp.client.name",
    "gen_ai.client.name",
    k::TRACELOOP_ENTITY_NAME,
];

/// What a span is, decided before records are built.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Call {
        method: String,
        side: Side,
        traceloop: bool,
    },
    Llm,
    /// Traceloop's server-side `mcp.server` span wrapping a tool span.
    TraceloopWrapper,
    /// A span carrying only a request id (Traceloop's `ResponseStreamWriter`).
    RequestCarrier,
    Other,
}

type SpanKey = ([u8; 16], [u8; 8]);

/// A validated span's trace id, span id and parent id.
type SpanIds = ([u8; 16], [u8; 8], Option<[u8; 8]>);

struct Located<'a> {
    span: &'a Span,
    resource: &'a [KeyValue],
    /// Shared per resource and scope: records are many, senders few.
    source: Arc<Source>,
    resource_rendered: Arc<Vec<(String, String)>>,
    trace: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    shape: Shape,
}

/// Number of spans in a request, valid or not.
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Maps one export request. Pure: the receive time and connection facts come in `ctx`.
pub fn map_request(
    req: &ExportTraceServiceRequest,
    ctx: &IngestContext,
    attributor: &Attributor,
) -> MappedBatch {
    let mut out = MappedBatch::default();
    let mut spans: Vec<Located<'_>> = Vec::new();
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        let resource = rs
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let resource_rendered = Arc::new(rendered(resource, |_| false));
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            let source = Arc::new(source(resource, ss.scope.as_ref(), ctx));
            for (pi, span) in ss.spans.iter().enumerate() {
                match validate(span, ctx.observed_time_ns) {
                    Ok((trace, id, parent)) => spans.push(Located {
                        span,
                        resource,
                        source: Arc::clone(&source),
                        resource_rendered: Arc::clone(&resource_rendered),
                        trace,
                        id,
                        parent,
                        shape: shape_of(span),
                    }),
                    Err(reason) => out.rejected.push(Rejection {
                        path: format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"),
                        reason,
                    }),
                }
            }
        }
    }

    let by_id: HashMap<SpanKey, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.id), i))
        .collect();
    // The children call linking looks for, indexed once: scanning a parent's children for each
    // call made a request whose spans share a parent (or repeat a span id) cost quadratic time.
    let mut carriers: HashMap<SpanKey, usize> = HashMap::new();
    let mut client_calls: HashMap<(SpanKey, &str), usize> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let Some(p) = s.parent else { continue };
        match &s.shape {
            Shape::RequestCarrier => {
                carriers.entry((s.trace, p)).or_insert(i);
            }
            Shape::Call {
                method,
                side: Side::Client,
                ..
            } => {
                client_calls
                    .entry(((s.trace, p), method.as_str()))
                    .or_insert(i);
            }
            _ => {}
        }
    }
    let links = Links {
        spans: &spans,
        by_id: &by_id,
        carriers: &carriers,
        client_calls: &client_calls,
    };

    for (i, s) in spans.iter().enumerate() {
        match &s.shape {
            Shape::Call {
                method,
                side,
                traceloop,
            } => {
                let link = links.call_link(i, method, *side, *traceloop);
                out.tool_calls
                    .push(tool_call(s, method, *side, link, ctx, attributor));
            }
            Shape::Llm => out.llm_calls.push(llm_call(s, ctx, attributor)),
            Shape::TraceloopWrapper | Shape::RequestCarrier | Shape::Other => {
                out.skipped_spans += 1;
            }
        }
    }
    out
}

fn validate(span: &Span, observed: i64) -> Result<SpanIds, String> {
    let trace: [u8; 16] = span
        .trace_id
        .as_slice()
        .try_into()
        .map_err(|_| format!("trace_id must be 16 bytes, got {}", span.trace_id.len()))?;
    if trace == [0; 16] {
        return Err("trace_id is all zeroes".into());
    }
    let id: [u8; 8] = span
        .span_id
        .as_slice()
        .try_into()
        .map_err(|_| format!("span_id must be 8 bytes, got {}", span.span_id.len()))?;
    if id == [0; 8] {
        return Err("span_id is all zeroes".into());
    }
    let parent = match span.parent_span_id.len() {
        0 => None,
        8 => span
            .parent_span_id
            .as_slice()
            .try_into()
            .ok()
            .filter(|p| *p != [0u8; 8]),
        n => return Err(format!("parent_span_id must be empty or 8 bytes, got {n}")),
    };
    let max = observed.saturating_add(MAX_FUTURE_SKEW_NS);
    let start = i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX);
    let end = i64::try_from(span.end_time_unix_nano).unwrap_or(i64::MAX);
    if !(MIN_TIME_NS..=max).contains(&start) {
        return Err(format!(
            "start_time_unix_nano {} is outside [2000-01-01, receive time + 24h]",
            span.start_time_unix_nano
        ));
    }
    if !(start..=max).contains(&end) {
        return Err(format!(
            "end_time_unix_nano {} is before the start or more than 24h past the receive time",
            span.end_time_unix_nano
        ));
    }
    Ok((trace, id, parent))
}

fn shape_of(span: &Span) -> Shape {
    let attrs = &span.attributes;
    if let Some(method) = first_string(attrs, &[k::MCP_METHOD_NAME, k::MCP_METHOD_LEGACY]) {
        let side = match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
            SpanKind::Server | SpanKind::Consumer => Side::Server,
            SpanKind::Client | SpanKind::Producer => Side::Client,
            // Proxies sometimes emit INTERNAL spans: server-only attributes tell the side.
            SpanKind::Internal | SpanKind::Unspecified => {
                let server_only = [
                    k::MCP_PROTOCOL_VERSION,
                    k::CLIENT_ADDRESS,
                    "mcp.server.name",
                ];
                if server_only
                    .iter()
                    .any(|key| attr_string(attrs, key).is_some())
                {
                    Side::Server
                } else {
                    Side::Client
                }
            }
        };
        return Shape::Call {
            method: method.into_owned(),
            side,
            traceloop: false,
        };
    }
    if let Some(kind) = attr_string(attrs, k::TRACELOOP_SPAN_KIND) {
        match kind.as_ref() {
            // Only the server-side instrumentation puts the workflow name on tool spans.
            "tool" => {
                let side = if attr_string(attrs, k::TRACELOOP_WORKFLOW_NAME).is_some() {
                    Side::Server
                } else {
                    Side::Client
                };
                return Shape::Call {
                    method: "tools/call".into(),
                    side,
                    traceloop: true,
                };
            }
            "server" => return Shape::TraceloopWrapper,
            _ => {}
        }
    }
    if let Some(method) = span.name.strip_suffix(".mcp")
        && (method.contains('/') || method == "initialize" || method == "ping")
    {
        return Shape::Call {
            method: method.to_string(),
            side: Side::Client,
            traceloop: true,
        };
    }
    if first_string(attrs, &[k::JSONRPC_REQUEST_ID, k::MCP_REQUEST_ID]).is_some() {
        return Shape::RequestCarrier;
    }
    let op = attr_string(attrs, k::GEN_AI_OPERATION_NAME);
    let is_llm = match op.as_deref() {
        Some(op) => k::LLM_OPERATIONS.contains(&op),
        None => {
            first_i64(attrs, k::INPUT_TOKEN_KEYS).is_some()
                || first_i64(attrs, k::OUTPUT_TOKEN_KEYS).is_some()
        }
    };
    if is_llm { Shape::Llm } else { Shape::Other }
}

/// How a call record links to its wire request.
struct CallLink {
    call_id: [u8; 8],
    request_id: Option<String>,
    is_request: bool,
}

struct Links<'a, 'b> {
    spans: &'b [Located<'a>],
    by_id: &'b HashMap<SpanKey, usize>,
    /// The first [`Shape::RequestCarrier`] child of each span.
    carriers: &'b HashMap<SpanKey, usize>,
    /// The first client-side call child of each span, per method.
    client_calls: &'b HashMap<(SpanKey, &'b str), usize>,
}

impl Links<'_, '_> {
    fn carrier_of(&self, trace: [u8; 16], id: [u8; 8]) -> Option<&Located<'_>> {
        self.carriers.get(&(trace, id)).map(|&c| &self.spans[c])
    }

    fn carrier_request_id(s: &Located<'_>) -> Option<String> {
        first_string(
            &s.span.attributes,
            &[k::JSONRPC_REQUEST_ID, k::MCP_REQUEST_ID],
        )
        .map(|v| v.into_owned())
    }

    fn call_link(&self, i: usize, method: &str, side: Side, traceloop: bool) -> CallLink {
        let s = &self.spans[i];
        let own_request_id = first_string(
            &s.span.attributes,
            &[k::JSONRPC_REQUEST_ID, k::MCP_REQUEST_ID],
        )
        .map(|v| v.into_owned());
        let not_notification = !method.starts_with("notifications/");
        match side {
            Side::Client => {
                // Traceloop: the wire request is the ResponseStreamWriter child carrying the id.
                if traceloop && let Some(carrier) = self.carrier_of(s.trace, s.id) {
                    return CallLink {
                        call_id: carrier.id,
                        request_id: Self::carrier_request_id(carrier),
                        is_request: not_notification,
                    };
                }
                // FastMCP: an outer client span wraps the SDK's `MCP send` span of the same method.
                let inner = self
                    .client_calls
                    .get(&((s.trace, s.id), method))
                    .map(|&c| &self.spans[c]);
                let (call_id, request_id) = match inner {
                    Some(c) => (c.id, own_request_id.or_else(|| Self::carrier_request_id(c))),
                    None => (s.id, own_request_id),
                };
                CallLink {
                    call_id,
                    request_id,
                    is_request: not_notification,
                }
            }
            Side::Server => {
                // Traceloop: tool span → `mcp.server` wrapper → the client's carrier span.
                if traceloop
                    && let Some(wrapper) = s
                        .parent
                        .and_then(|p| self.by_id.get(&(s.trace, p)))
                        .map(|&w| &self.spans[w])
                    && wrapper.shape == Shape::TraceloopWrapper
                    && let Some(remote) = wrapper.parent
                {
                    let request_id = self
                        .carrier_of(s.trace, remote)
                        .and_then(Self::carrier_request_id);
                    return CallLink {
                        call_id: remote,
                        request_id,
                        is_request: true,
                    };
                }
                // A root server span without a request id was never a wire request (FastMCP's
                // internal `tools/list` lookups): kept, but not counted as a call.
                let is_request =
                    not_notification && (s.parent.is_some() || own_request_id.is_some());
                CallLink {
                    call_id: s.parent.unwrap_or(s.id),
                    request_id: own_request_id,
                    is_request,
                }
            }
        }
    }
}

/// Deterministic event id: the first 16 bytes of SHA-256 over a domain tag and the span's
/// identity, formatted as an RFC 9562 version-8 UUID. A retried batch gets the same ids.
fn event_id(tag: &[u8], trace: &[u8; 16], id: &[u8; 8], side: Option<Side>) -> String {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(trace);
    h.update(id);
    if let Some(side) = side {
        h.update(side.as_str().as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn source(r: &[KeyValue], scope: Option<&InstrumentationScope>, ctx: &IngestContext) -> Source {
    let sdk_parts: Vec<String> = [
        k::TELEMETRY_SDK_NAME,
        k::TELEMETRY_SDK_LANGUAGE,
        k::TELEMETRY_SDK_VERSION,
    ]
    .iter()
    .filter_map(|key| attr_string(r, key).map(|v| v.into_owned()))
    .collect();
    let scope = scope.filter(|sc| !sc.name.is_empty()).map(|sc| {
        if sc.version.is_empty() {
            sc.name.clone()
        } else {
            format!("{}/{}", sc.name, sc.version)
        }
    });
    Source {
        service: attr_string(r, k::SERVICE_NAME).map(|v| v.into_owned()),
        instance: first_string(r, &[k::SERVICE_INSTANCE_ID, k::HOST_NAME]).map(|v| v.into_owned()),
        sdk: (!sdk_parts.is_empty()).then(|| sdk_parts.join("/")),
        scope,
        ingest_protocol: ctx.protocol,
        ingest_peer: ctx.peer.clone(),
        ingest_source: ctx.source.clone(),
    }
}

fn rendered(kvs: &[KeyValue], skip: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    kvs.iter()
        .filter(|kv| !skip(&kv.key))
        .filter_map(|kv| {
            let v = kv.value.as_ref()?.value.as_ref()?;
            Some((kv.key.clone(), render(v).into_owned()))
        })
        .collect()
}

/// Tool arguments, results and prompt text: never copied into the `attributes` map.
fn is_sensitive(key: &str) -> bool {
    k::ARGUMENT_KEYS.contains(&key)
        || k::RESULT_KEYS.contains(&key)
        || k::LLM_CONTENT_KEYS.contains(&key)
}

fn owned(v: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    v.map(|v| v.into_owned()).filter(|v| !v.is_empty())
}

/// The tool / prompt / resource of a call, with the fallbacks of `docs/specs/record.md`.
fn targets(s: &Located<'_>, method: &str) -> (Option<String>, Option<String>, Option<String>) {
    let attrs = &s.span.attributes;
    // Span names look like `tools/call X`, `MCP send tools/call X` or Traceloop's `X.tool`.
    let from_name = |prefix: &str| {
        let name = s
            .span
            .name
            .strip_prefix("MCP send ")
            .unwrap_or(&s.span.name);
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(' '))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    let traceloop_input = || {
        attr_string(attrs, k::TRACELOOP_ENTITY_INPUT)
            .and_then(|i| serde_json::from_str::<serde_json::Value>(&i).ok())
    };
    let param = |key: &str| {
        traceloop_input().and_then(|v| v.get("params")?.get(key)?.as_str().map(String::from))
    };
    let tool = (method == "tools/call")
        .then(|| {
            owned(first_string(
                attrs,
                &[k::GEN_AI_TOOL_NAME, k::MCP_TOOL_NAME],
            ))
            .or_else(|| {
                (attr_string(attrs, k::TRACELOOP_SPAN_KIND).as_deref() == Some("tool"))
                    .then(|| owned(attr_string(attrs, k::TRACELOOP_ENTITY_NAME)))
                    .flatten()
            })
            .or_else(|| from_name("tools/call"))
            .or_else(|| {
                s.span
                    .name
                    .strip_suffix(".tool")
                    .filter(|t| !t.is_empty())
                    .map(String::from)
            })
        })
        .flatten();
    let prompt = method
        .starts_with("prompts/get")
        .then(|| {
            owned(attr_string(attrs, k::GEN_AI_PROMPT_NAME))
                .or_else(|| from_name("prompts/get"))
                .or_else(|| param("name"))
        })
        .flatten();
    let resource = method
        .starts_with("resources/")
        .then(|| owned(attr_string(attrs, k::MCP_RESOURCE_URI)).or_else(|| param("uri")))
        .flatten();
    (tool, prompt, resource)
}

fn payload(attrs: &[KeyValue], keys: &[&str], attributor: &Attributor) -> (Payload, bool) {
    match first_string(attrs, keys) {
        Some(content) => {
            // Traceloop reports a tool error only inside its captured output.
            let is_error = (content.contains("\"is_error\"") || content.contains("\"isError\""))
                && serde_json::from_str::<serde_json::Value>(&content).is_ok_and(|v| {
                    [v.get("is_error"), v.get("isError")]
                        .into_iter()
                        .flatten()
                        .any(|b| b.as_bool() == Some(true))
                });
            (attributor.sensitive().keep(&content), is_error)
        }
        None => (Payload::default(), false),
    }
}

fn status_error(span: &Span) -> (bool, Option<String>) {
    match &span.status {
        Some(st) => (
            st.code == StatusCode::Error as i32,
            Some(st.message.clone()).filter(|m| !m.is_empty()),
        ),
        None => (false, None),
    }
}

fn tool_call(
    s: &Located<'_>,
    method: &str,
    side: Side,
    link: CallLink,
    ctx: &IngestContext,
    attributor: &Attributor,
) -> ToolCall {
    let attrs = &s.span.attributes;
    let (tool_name, prompt_name, resource_uri) = targets(s, method);
    let (arguments, _) = payload(attrs, k::ARGUMENT_KEYS, attributor);
    let (result, result_is_error) = payload(attrs, k::RESULT_KEYS, attributor);
    let (is_status_error, error_message) = status_error(s.span);
    let error_type = attr_string(attrs, k::ERROR_TYPE);
    let rpc_code = first_string(attrs, &[k::RPC_RESPONSE_STATUS_CODE, k::RPC_STATUS_CODE]);
    let decision = first_string(attrs, k::DECISION_KEYS);
    let classified = classify(ErrorSignals {
        method,
        error_type: error_type.as_deref(),
        rpc_code: rpc_code.as_deref(),
        http_status: attr_i64(attrs, k::HTTP_RESPONSE_STATUS_CODE),
        decision: decision.as_deref(),
        status_error: is_status_error,
        result_is_error,
    });
    let attribution = attributor.attribute(attrs, s.resource);
    let service = owned(attr_string(s.resource, k::SERVICE_NAME));
    let server_name = owned(first_string(attrs, k::SERVER_NAME_KEYS))
        .or_else(|| owned(first_string(s.resource, k::SERVER_NAME_KEYS)))
        .or_else(|| {
            if side == Side::Server {
                service.clone()
            } else {
                None
            }
        });
    let client_name = owned(first_string(attrs, k::CLIENT_NAME_KEYS))
        .or_else(|| {
            if side == Side::Client {
                service.clone()
            } else {
                None
            }
        })
        // FastMCP reports the OAuth client id as `enduser.id`: it names the client app.
        .or_else(|| {
            Attributor::is_client_id(&attribution)
                .then(|| attribution.principal.clone())
                .flatten()
        });
    let operation_class =
        attributor
            .catalog()
            .classify(method, server_name.as_deref(), tool_name.as_deref());
    ToolCall {
        event_id: event_id(b"calltrail.tool_call.v1", &s.trace, &s.id, Some(side)),
        trace_id: hex::encode(s.trace),
        span_id: hex::encode(s.id),
        parent_span_id: s.parent.map(hex::encode),
        call_id: hex::encode(link.call_id),
        is_request: link.is_request,
        side,
        span_name: s.span.name.clone(),
        start_time_ns: s.span.start_time_unix_nano as i64,
        end_time_ns: s.span.end_time_unix_nano as i64,
        observed_time_ns: ctx.observed_time_ns,
        method: method.to_string(),
        tool_name,
        prompt_name,
        resource_uri,
        operation_class,
        outcome: classified.outcome,
        error_type: classified.error_type,
        jsonrpc_code: classified.jsonrpc_code,
        error_message,
        request_id: link.request_id,
        protocol_version: owned(attr_string(attrs, k::MCP_PROTOCOL_VERSION)),
        session_id: owned(attr_string(attrs, k::MCP_SESSION_ID)),
        server_name,
        client_name,
        attribution,
        network_transport: owned(attr_string(attrs, k::NETWORK_TRANSPORT)),
        client_address: owned(attr_string(attrs, k::CLIENT_ADDRESS)),
        client_port: attr_i64(attrs, k::CLIENT_PORT),
        server_address: owned(attr_string(attrs, k::SERVER_ADDRESS)),
        server_port: attr_i64(attrs, k::SERVER_PORT),
        source: Arc::clone(&s.source),
        arguments,
        result,
        attributes: rendered(attrs, |key| MAPPED_KEYS.contains(&key) || is_sensitive(key)),
        resource_attributes: Arc::clone(&s.resource_rendered),
    }
}

fn llm_call(s: &Located<'_>, ctx: &IngestContext, attributor: &Attributor) -> LlmCall {
    let attrs = &s.span.attributes;
    let (is_status_error, _) = status_error(s.span);
    let error_type = owned(attr_string(attrs, k::ERROR_TYPE));
    let token_keys: Vec<&str> = [
        k::INPUT_TOKEN_KEYS,
        k::OUTPUT_TOKEN_KEYS,
        k::CACHE_READ_TOKEN_KEYS,
        k::CACHE_WRITE_TOKEN_KEYS,
        k::REASONING_TOKEN_KEYS,
    ]
    .concat();
    LlmCall {
        event_id: event_id(b"calltrail.llm_call.v1", &s.trace, &s.id, None),
        trace_id: hex::encode(s.trace),
        span_id: hex::encode(s.id),
        parent_span_id: s.parent.map(hex::encode),
        span_name: s.span.name.clone(),
        start_time_ns: s.span.start_time_unix_nano as i64,
        end_time_ns: s.span.end_time_unix_nano as i64,
        observed_time_ns: ctx.observed_time_ns,
        operation: owned(attr_string(attrs, k::GEN_AI_OPERATION_NAME)),
        provider: owned(first_string(attrs, k::GEN_AI_PROVIDER_KEYS)),
        request_model: owned(attr_string(attrs, k::GEN_AI_REQUEST_MODEL)),
        response_model: owned(attr_string(attrs, k::GEN_AI_RESPONSE_MODEL)),
        input_tokens: first_i64(attrs, k::INPUT_TOKEN_KEYS),
        output_tokens: first_i64(attrs, k::OUTPUT_TOKEN_KEYS),
        cache_read_input_tokens: first_i64(attrs, k::CACHE_READ_TOKEN_KEYS),
        cache_write_input_tokens: first_i64(attrs, k::CACHE_WRITE_TOKEN_KEYS),
        reasoning_output_tokens: first_i64(attrs, k::REASONING_TOKEN_KEYS),
        is_error: is_status_error || error_type.is_some(),
        error_type,
        attribution: attributor.attribute(attrs, s.resource),
        source: Arc::clone(&s.source),
        attributes: rendered(attrs, |key| token_keys.contains(&key) || is_sensitive(key)),
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
