//! One hour of synthetic calls: agent traces of a few tool calls each, about one LLM call per
//! three tool calls in the same traces, with realistic identities, mixes and latencies.
//!
//! Every row is a server-side wire request (`side = 'server'`, `is_request = true`) with ids
//! unique across the whole data set, so the `calls` view keeps every row once: the view's
//! pairing and dedup logic is exercised for cost, not for effect.

use std::sync::Arc;

use calltrail_schemas::record::{Attribution, Payload, Source};
use calltrail_schemas::{LlmCall, OperationClass, Outcome, Side, ToolCall};

use super::population::{self, CLIENTS, SERVERS, TOOLS, Tool, Who};
use super::rng::{Rng, mix};

const NS_PER_MS: f64 = 1e6;
const NS_PER_HOUR: i64 = 3_600_000_000_000;

// Salts keep the ids of different kinds apart while each stays a bijection of the row key.
const TRACE_SALT: u64 = 0x7ace_0000_0000_0001;
const SPAN_SALT: u64 = 0x5a00_0000_0000_0002;
const PARENT_SALT: u64 = 0x9a7e_0000_0000_0003;
const EVENT_SALT: u64 = 0xe7e0_0000_0000_0004;
const LLM_SALT: u64 = 0x1100_0000_0000_0005;

/// What every hour shares: the tool list and the per-server and per-client sources.
/// A server: its name, its source and its resource attributes.
type Server = (String, Arc<Source>, Arc<Vec<(String, String)>>);

pub(crate) struct Catalog {
    tools: Vec<Tool>,
    servers: Vec<Server>,
    agents: Vec<Arc<Source>>,
}

impl Catalog {
    /// Builds the catalog (a few hundred entries).
    pub(crate) fn new() -> Self {
        let servers = (0..SERVERS)
            .map(|s| {
                let name = population::server_name(s);
                let source = Source {
                    service: Some(name.clone()),
                    instance: Some(format!("{name}-{}", s % 3)),
                    sdk: Some("opentelemetry/python/1.38.0".into()),
                    scope: Some("mcp-python-sdk/1.20.0".into()),
                    ingest_protocol: "otlp_grpc",
                    ingest_peer: Some(format!("10.20.{s}.7:43122")),
                    ingest_source: None,
                };
                let resource = vec![
                    ("service.name".to_string(), name.clone()),
                    ("deployment.environment".to_string(), "prod".to_string()),
                ];
                (name, Arc::new(source), Arc::new(resource))
            })
            .collect();
        let agents = CLIENTS
            .iter()
            .map(|c| {
                Arc::new(Source {
                    service: Some((*c).to_string()),
                    instance: None,
                    sdk: Some("opentelemetry/nodejs/2.1.0".into()),
                    scope: Some("agent-llm/0.4.0".into()),
                    ingest_protocol: "otlp_http_protobuf",
                    ingest_peer: Some("10.30.0.5:51000".into()),
                    ingest_source: None,
                })
            })
            .collect();
        Self {
            tools: (0..TOOLS).map(population::tool).collect(),
            servers,
            agents,
        }
    }
}

/// 32 random-looking hex characters (a SHA-256 stand-in is two of these).
fn hex128(a: u64, b: u64) -> String {
    format!("{a:016x}{b:016x}")
}

/// An RFC 9562-shaped UUID string from 128 bits.
fn uuid(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-8{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn attribution(who: &Who) -> Attribution {
    Attribution {
        principal: who.principal.clone(),
        principal_source: who
            .principal
            .as_ref()
            .map(|_| "span:enduser.id".to_string()),
        principal_kind: Some(who.kind),
        principal_reason: if who.principal.is_some() {
            "directory".into()
        } else {
            "no_principal".into()
        },
        team: who.team.clone(),
        tenant: who.tenant.clone(),
        cost_center: who.cost_center.clone(),
    }
}

/// ok 95%, tool error 2.5%, protocol error 1.5%, denied 1%: outcome, error type, JSON-RPC code
/// and message.
type Ending = (Outcome, Option<String>, Option<i64>, Option<String>);

fn draw_outcome(rng: &mut Rng) -> Ending {
    let u = rng.unit();
    if u < 0.95 {
        (Outcome::Ok, None, None, None)
    } else if u < 0.975 {
        let msg = Some("upstream returned an error".to_string());
        (Outcome::ToolError, Some("tool_error".into()), None, msg)
    } else if u < 0.99 {
        let msg = Some("Invalid params".to_string());
        (
            Outcome::ProtocolError,
            Some("-32602".into()),
            Some(-32602),
            msg,
        )
    } else {
        let msg = Some("forbidden by policy".to_string());
        (Outcome::Denied, Some("403".into()), None, msg)
    }
}

/// One trace's caller and context.
struct Trace {
    id: String,
    who: Who,
    client: usize,
    session: String,
}

/// The rows of one hour partition: `tool_rows` tool calls and `ceil(tool_rows / 3)` LLM calls,
/// each sorted by start time as the store writes them. `hour_index` (hours since the first
/// hour of the data set) keys the ids and the random stream.
pub(crate) fn hour(
    catalog: &Catalog,
    seed: u64,
    hour_index: u64,
    hour_start_ns: i64,
    tool_rows: usize,
) -> (Vec<ToolCall>, Vec<LlmCall>) {
    let mut rng = Rng::new(seed ^ mix(hour_index));
    let mut tools = Vec::with_capacity(tool_rows);
    let mut llms = Vec::with_capacity(tool_rows.div_ceil(3));
    let last_ns = hour_start_ns + NS_PER_HOUR - 1;
    let mut trace_no = 0u64;
    while tools.len() < tool_rows {
        let trace_key = hour_index << 32 | trace_no;
        trace_no += 1;
        let trace = Trace {
            id: hex128(mix(trace_key ^ TRACE_SALT), rng.next_u64()),
            who: population::who(population::draw_principal(&mut rng)),
            client: rng.below(CLIENTS.len() as u64) as usize,
            session: hex128(rng.next_u64(), rng.next_u64()),
        };
        // Agent tasks make 1 to 8 tool calls, 3 on average.
        let calls = (1 + (rng.lognormal(2.0, 0.7) as usize)).min(8);
        let mut t = hour_start_ns + rng.below(NS_PER_HOUR as u64) as i64;
        for _ in 0..calls.min(tool_rows - tools.len()) {
            let row = tools.len() as u64;
            let key = hour_index << 32 | row;
            // Every third tool call is preceded by the model call that chose it.
            if row.is_multiple_of(3) {
                llms.push(llm_call(catalog, &mut rng, &trace, key, hour_start_ns, t));
            }
            let start = t.min(last_ns);
            let call = tool_call(catalog, &mut rng, &trace, key, start);
            // Think time between an agent's calls.
            t = call.end_time_ns + (rng.lognormal(1500.0, 1.0) * NS_PER_MS) as i64;
            tools.push(call);
        }
    }
    tools.sort_by_key(|r| r.start_time_ns);
    llms.sort_by_key(|r| r.start_time_ns);
    (tools, llms)
}

fn tool_call(catalog: &Catalog, rng: &mut Rng, trace: &Trace, key: u64, start: i64) -> ToolCall {
    let tool = &catalog.tools[rng.skewed(TOOLS, 2.0)];
    let (server, source, resource) = &catalog.servers[tool.server];
    let kind = rng.unit();
    let (method, tool_name, resource_uri, prompt_name, class) = if kind < 0.93 {
        (
            "tools/call",
            Some(tool.name.clone()),
            None,
            None,
            tool.class,
        )
    } else if kind < 0.98 {
        let uri = format!("file:///srv/{server}/doc-{}.md", rng.below(500));
        (
            "resources/read",
            None,
            Some(uri),
            None,
            OperationClass::Read,
        )
    } else {
        let prompt = format!("prompt-{}", rng.below(20));
        (
            "prompts/get",
            None,
            None,
            Some(prompt),
            OperationClass::Read,
        )
    };
    let target = tool_name
        .as_deref()
        .or(resource_uri.as_deref())
        .or(prompt_name.as_deref())
        .unwrap_or_default();
    // Writes and admin calls are slower than reads; all have a long tail.
    let median_ms = match class {
        OperationClass::Read => 90.0,
        OperationClass::Write | OperationClass::Delete => 240.0,
        OperationClass::Admin | OperationClass::Unknown => 400.0,
    };
    let duration_ms = rng.lognormal(median_ms, 1.0).clamp(1.0, 120_000.0);
    let end = start + (duration_ms * NS_PER_MS) as i64;
    let (outcome, error_type, jsonrpc_code, error_message) = draw_outcome(rng);
    let parent = format!("{:016x}", mix(key ^ PARENT_SALT));
    let arg_size = rng.lognormal(300.0, 1.0) as i64;
    let result_size = rng.lognormal(4000.0, 1.5) as i64;
    ToolCall {
        event_id: uuid(mix(key ^ EVENT_SALT), mix(key ^ EVENT_SALT ^ 1)),
        trace_id: trace.id.clone(),
        span_id: format!("{:016x}", mix(key ^ SPAN_SALT)),
        parent_span_id: Some(parent.clone()),
        // A server record's call id is its parent, the client span that sent the request.
        call_id: parent,
        is_request: true,
        side: Side::Server,
        span_name: format!("{method} {target}"),
        start_time_ns: start,
        end_time_ns: end,
        observed_time_ns: end + (rng.lognormal(800.0, 0.5) * NS_PER_MS) as i64,
        method: method.into(),
        tool_name,
        prompt_name,
        resource_uri,
        operation_class: class,
        outcome,
        error_type,
        jsonrpc_code,
        error_message,
        request_id: Some((key & 0xffff_ffff).to_string()),
        protocol_version: Some("2025-06-18".into()),
        session_id: Some(trace.session.clone()),
        server_name: Some(server.clone()),
        client_name: Some(CLIENTS[trace.client].into()),
        attribution: attribution(&trace.who),
        network_transport: Some("tcp".into()),
        client_address: Some(format!("10.{}.{}.{}", key % 7, key % 251, key % 13)),
        client_port: Some(32_768 + (key % 28_000) as i64),
        server_address: Some(format!("{server}.internal")),
        server_port: Some(443),
        source: Arc::clone(source),
        arguments: Payload {
            sha256: Some(hex128(rng.next_u64(), rng.next_u64()) + &hex128(key, !key)),
            size: Some(arg_size),
            content: None,
        },
        result: Payload {
            sha256: Some(hex128(rng.next_u64(), rng.next_u64()) + &hex128(!key, key)),
            size: Some(result_size),
            content: None,
        },
        attributes: vec![("network.protocol.name".into(), "http".into())],
        resource_attributes: Arc::clone(resource),
    }
}

fn llm_call(
    catalog: &Catalog,
    rng: &mut Rng,
    trace: &Trace,
    key: u64,
    hour_start_ns: i64,
    before_ns: i64,
) -> LlmCall {
    let (model, provider) = population::draw_model(rng);
    let duration_ms = rng.lognormal(1800.0, 0.8).clamp(50.0, 300_000.0);
    // Ends just before the tool call it chose, but stays in the tool call's hour partition.
    let start = (before_ns - ((duration_ms + 30.0) * NS_PER_MS) as i64).max(hour_start_ns);
    let end = start + (duration_ms * NS_PER_MS) as i64;
    let input = rng.lognormal(2500.0, 0.8) as i64;
    let is_error = rng.chance(0.005);
    LlmCall {
        event_id: uuid(mix(key ^ LLM_SALT ^ EVENT_SALT), mix(key ^ LLM_SALT)),
        trace_id: trace.id.clone(),
        span_id: format!("{:016x}", mix(key ^ LLM_SALT)),
        parent_span_id: None,
        span_name: format!("chat {model}"),
        start_time_ns: start,
        end_time_ns: end,
        observed_time_ns: end + (rng.lognormal(800.0, 0.5) * NS_PER_MS) as i64,
        operation: Some("chat".into()),
        provider: Some(provider.into()),
        request_model: Some(model.into()),
        response_model: Some(model.into()),
        input_tokens: Some(input),
        output_tokens: Some(rng.lognormal(350.0, 0.9) as i64),
        cache_read_input_tokens: rng.chance(0.5).then(|| input * 3 / 5),
        cache_write_input_tokens: None,
        reasoning_output_tokens: model.starts_with("gpt-5").then(|| rng.below(2000) as i64),
        is_error,
        error_type: is_error.then(|| "rate_limit_exceeded".to_string()),
        attribution: attribution(&trace.who),
        source: Arc::clone(&catalog.agents[trace.client]),
        attributes: Vec::new(),
    }
}
