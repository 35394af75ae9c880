//! A deterministic, realistic synthetic MCP workload: people across teams and two tenants,
//! service accounts and unattributed callers, several MCP servers with read, write and delete
//! tools, tool errors, JSON-RPC errors and gateway denials, and LLM spans with token usage.
//!
//! Each agent task is one trace: an LLM `chat` span and one to four tool calls, each recorded by
//! the gateway (CLIENT span) and the MCP server (SERVER span, child of the client span). The
//! same seed gives the same spans; only the base time comes from the caller.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};

const TEAMS: &[(&str, &str, &str)] = &[
    ("payments", "acme-bank-eu", "CC-110"),
    ("risk", "acme-bank-eu", "CC-120"),
    ("platform", "acme-bank-eu", "CC-130"),
    ("data", "acme-bank-us", "CC-140"),
    ("support", "acme-bank-us", "CC-150"),
    ("treasury", "acme-bank-us", "CC-160"),
];
const PEOPLE: &[&str] = &[
    "alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken",
    "lena", "mike", "nina", "oscar", "peggy", "quinn", "rita", "sam", "tara", "uma", "victor",
    "wendy", "yusuf",
];
const SERVICE_ACCOUNTS: &[&str] = &["svc-reporting", "deploy-bot"];
const SERVERS: &[(&str, &[&str])] = &[
    (
        "payments-mcp",
        &[
            "get_balance",
            "list_transactions",
            "charge_card",
            "refund_payment",
        ],
    ),
    (
        "crm-mcp",
        &[
            "get_customer",
            "search_customers",
            "update_account_status",
            "delete_contact",
        ],
    ),
    (
        "github-mcp",
        &[
            "search_code",
            "get_file",
            "create_issue",
            "list_pull_requests",
        ],
    ),
    ("confluence-mcp", &["search_pages", "get_page"]),
    ("ledger-mcp", &["get_ledger_entry", "post_journal_entry"]),
];
const MODELS: &[&str] = &["gpt-5", "claude-sonnet-4-5", "gemini-2.5-pro"];

/// splitmix64: tiny, fast, good enough for synthetic data, and identical on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut v: Vec<u8> = (0..N).map(|_| self.next() as u8).collect();
        v[0] |= 1; // never all zeroes
        v
    }
}

fn kv(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn kv_int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// Who an agent task runs as.
#[derive(Debug, Clone)]
struct Caller {
    principal: Option<String>,
    team: usize,
}

/// The generator.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    next_start_ns: i64,
    step_ns: i64,
}

/// Spans grouped by the process that emitted them.
#[derive(Default)]
struct Emitted {
    groups: Vec<(String, Vec<Span>)>,
    count: usize,
}

impl Emitted {
    fn push(&mut self, service: &str, span: Span) {
        self.count += 1;
        match self.groups.iter_mut().find(|(s, _)| s == service) {
            Some((_, spans)) => spans.push(span),
            None => self.groups.push((service.to_string(), vec![span])),
        }
    }
}

impl Workload {
    /// A workload whose first task starts at `base_time_ns`, tasks `step_ns` apart.
    pub fn new(seed: u64, base_time_ns: i64, step_ns: i64) -> Self {
        Self {
            rng: Rng(seed),
            next_start_ns: base_time_ns,
            step_ns: step_ns.max(1),
        }
    }

    fn caller(&mut self) -> Caller {
        let r = self.rng.below(100);
        let team = self.rng.below(TEAMS.len());
        if r < 3 {
            Caller {
                principal: None,
                team,
            }
        } else if r < 10 {
            Caller {
                principal: Some(SERVICE_ACCOUNTS[self.rng.below(SERVICE_ACCOUNTS.len())].into()),
                team: 2,
            }
        } else {
            let i = self.rng.below(PEOPLE.len());
            Caller {
                principal: Some(format!("{}@acme-bank.example", PEOPLE[i])),
                team: i % TEAMS.len(),
            }
        }
    }

    /// The next request, holding whole tasks and at least `spans` spans.
    pub fn next_request(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let mut out = Emitted::default();
        while out.count < spans {
            self.task(&mut out);
        }
        let resource_spans = out
            .groups
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", service.clone()),
                        kv("service.instance.id", format!("{service}-0")),
                        kv("telemetry.sdk.name", "opentelemetry"),
                        kv("telemetry.sdk.language", "rust"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "calltrail-demo".into(),
                        version: "1".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    fn task(&mut self, out: &mut Emitted) {
        let caller = self.caller();
        let (team, tenant, cost) = TEAMS[caller.team];
        let trace = self.rng.id::<16>();
        let root = self.rng.id::<8>();
        let start = self.next_start_ns;
        self.next_start_ns += self.step_ns;
        let identity = |attrs: &mut Vec<KeyValue>, key: &str| {
            if let Some(p) = &caller.principal {
                attrs.push(kv(key, p.clone()));
                attrs.extend([
                    kv("team.id", team),
                    kv("tenant.id", tenant),
                    kv("cost_center", cost),
                ]);
            }
        };

        let model = MODELS[self.rng.below(MODELS.len())];
        let mut llm_attrs = vec![
            kv("gen_ai.operation.name", "chat"),
            kv(
                "gen_ai.provider.name",
                if model.starts_with("gpt") {
                    "openai"
                } else {
                    "anthropic"
                },
            ),
            kv("gen_ai.request.model", model),
            kv_int(
                "gen_ai.usage.input_tokens",
                200 + self.rng.below(8000) as i64,
            ),
            kv_int(
                "gen_ai.usage.output_tokens",
                50 + self.rng.below(1500) as i64,
            ),
        ];
        identity(&mut llm_attrs, "user.id");
        out.push(
            "coding-agent",
            Span {
                trace_id: trace.clone(),
                span_id: root.clone(),
                name: format!("chat {model}"),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: start as u64,
                end_time_unix_nano: (start + 400_000_000 + self.rng.below(2_000) as i64 * 1_000_000)
                    as u64,
                attributes: llm_attrs,
                ..Default::default()
            },
        );

        let calls = 1 + self.rng.below(4);
        for n in 0..calls {
            let (server, tools) = SERVERS[self.rng.below(SERVERS.len())];
            let tool = tools[self.rng.below(tools.len())];
            let begin = start + 500_000_000 + n as i64 * 300_000_000;
            let dur = 5_000_000 + self.rng.below(400) as i64 * 1_000_000;
            let client_id = self.rng.id::<8>();
            let request_id = (n + 2).to_string();
            let outcome = self.rng.below(100);
            let mut client_attrs = vec![
                kv("mcp.method.name", "tools/call"),
                kv("gen_ai.tool.name", tool),
                kv("jsonrpc.request.id", request_id.clone()),
                kv("server.address", format!("{server}.internal")),
                kv_int("server.port", 443),
                kv("network.transport", "tcp"),
                kv("mcp.client.name", "mcp-gateway"),
            ];
            identity(&mut client_attrs, "user.id");
            let mut client_status = None;
            if outcome == 0 {
                // Denied at the gateway: the server never sees the call.
                client_attrs.extend([
                    kv("error.type", "403"),
                    kv_int("http.response.status_code", 403),
                ]);
                client_status = Some(Status {
                    code: StatusCode::Error as i32,
                    message: "forbidden by policy".into(),
                });
            }
            out.push(
                "mcp-gateway",
                Span {
                    trace_id: trace.clone(),
                    span_id: client_id.clone(),
                    parent_span_id: root.clone(),
                    name: format!("tools/call {tool}"),
                    kind: SpanKind::Client as i32,
                    start_time_unix_nano: begin as u64,
                    end_time_unix_nano: (begin + dur + 2_000_000) as u64,
                    attributes: client_attrs,
                    status: client_status,
                    ..Default::default()
                },
            );
            if outcome == 0 {
                continue;
            }
            let mut server_attrs = vec![
                kv("mcp.method.name", "tools/call"),
                kv("gen_ai.tool.name", tool),
                kv("gen_ai.operation.name", "execute_tool"),
                kv("jsonrpc.request.id", request_id),
                kv("mcp.protocol.version", "2025-11-25"),
                kv("mcp.server.name", server),
                kv("client.address", "10.20.0.7"),
            ];
            identity(&mut server_attrs, "enduser.id");
            let mut status = None;
            if (1..=4).contains(&outcome) {
                server_attrs.push(kv("error.type", "tool_error"));
                status = Some(Status {
                    code: StatusCode::Error as i32,
                    message: "tool reported isError".into(),
                });
            } else if (5..=6).contains(&outcome) {
                let code = if outcome == 5 { "-32603" } else { "-32602" };
                server_attrs.extend([kv("error.type", code), kv("rpc.response.status_code", code)]);
                status = Some(Status {
                    code: StatusCode::Error as i32,
                    message: "JSON-RPC error".into(),
                });
            }
            out.push(
                server,
                Span {
                    trace_id: trace.clone(),
                    span_id: self.rng.id::<8>(),
                    parent_span_id: client_id,
                    name: format!("tools/call {tool}"),
                    kind: SpanKind::Server as i32,
                    start_time_unix_nano: (begin + 1_000_000) as u64,
                    end_time_unix_nano: (begin + 1_000_000 + dur) as u64,
                    attributes: server_attrs,
                    status,
                    ..Default::default()
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_spans() {
        let a = Workload::new(7, 1_795_000_000_000_000_000, 1_000_000).next_request(100);
        let b = Workload::new(7, 1_795_000_000_000_000_000, 1_000_000).next_request(100);
        assert_eq!(a, b);
        let c = Workload::new(8, 1_795_000_000_000_000_000, 1_000_000).next_request(100);
        assert_ne!(a, c);
        let n = calltrail_schemas::span_count(&a);
        assert!((100..110).contains(&n), "{n}");
    }
}
