//! Fixture data for the chargeback, ROI and SQL tests, written into a store by the real writer.
//!
//! [`small`] is a ledger small enough to work out by hand: its expected figures are written in
//! the tests (and the `.slt` files) as computed on paper from the table below, not by our code.
//! [`generated`] is a larger deterministic workload for the DuckDB differential test.
//!
//! | # | principal (kind)     | team     | tenant  | cc     | server/tool                 | class  | start (UTC)      | ms   | outcome    | trace |
//! |---|----------------------|----------|---------|--------|-----------------------------|--------|------------------|------|------------|-------|
//! | 1 | alice (human)        | payments | acme-uk | CC-100 | payments-mcp/transfer       | write  | 2026-10-05 10:00 | 1000 | ok         | 1 (exported twice) |
//! | 2 | alice (human)        | payments | acme-uk | CC-100 | payments-mcp/transfer       | write  | 2026-10-05 10:05 | 1000 | tool_error | 1 |
//! | 3 | alice (human)        | payments | acme-uk | CC-100 | payments-mcp/get_balance    | read   | 2026-10-05 10:10 | 200  | ok         | 1 |
//! | 4 | bob (human)          | crm      | acme-de | CC-200 | crm-mcp/lookup              | read   | 2026-10-06 09:00 | 500  | ok         | 2 (client and server records) |
//! | 5 | bob (human)          | crm      | acme-de | CC-200 | crm-mcp/lookup              | read   | 2026-10-13 09:00 | 500  | ok         | 3 |
//! | 6 | batch-bot (service)  | payments | acme-uk | CC-100 | payments-mcp/reconcile      | admin  | 2026-10-06 02:00 | 3000 | ok         | 4 |
//! | 7 | (unattributed)       | -        | -       | -      | files-mcp/read_file         | read   | 2026-10-07 12:00 | 100  | denied     | 5 |
//! | 8 | alice (human)        | payments | acme-uk | CC-100 | payments-mcp/get_balance    | read   | 2026-11-02 10:00 | 200  | ok         | 6 |
//!
//! LLM calls: trace 1 `claude-sonnet-4-20250514` 2000 in / 500 out, no attribution of its own
//! (it takes its trace's team, payments); trace 2 `gpt-4o-mini` 1000 / 1000, bob/crm; trace 9
//! (no tool calls) `gpt-4o` 4000 / 0, carol/research.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use calltrail_retention::{Layout, StoreConfig, StoreWriter, WriteBatch};
use calltrail_schemas::record::{Attribution, Payload, Source};
use calltrail_schemas::{LlmCall, OperationClass, Outcome, PrincipalKind, Side, ToolCall};

/// Nanoseconds of an RFC 3339 time.
pub fn ns(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

/// Who made a call.
#[derive(Debug, Clone)]
pub struct Who {
    pub principal: Option<String>,
    pub kind: PrincipalKind,
    pub team: Option<String>,
    pub tenant: Option<String>,
    pub cost_center: Option<String>,
}

impl Who {
    pub fn human(p: &str, team: &str, tenant: &str, cc: &str) -> Self {
        Self {
            principal: Some(p.into()),
            kind: PrincipalKind::Human,
            team: Some(team.into()),
            tenant: Some(tenant.into()),
            cost_center: Some(cc.into()),
        }
    }

    pub fn service(p: &str, team: &str, tenant: &str, cc: &str) -> Self {
        Self {
            kind: PrincipalKind::ServiceAccount,
            ..Self::human(p, team, tenant, cc)
        }
    }

    pub fn nobody() -> Self {
        Self {
            principal: None,
            kind: PrincipalKind::Unattributed,
            team: None,
            tenant: None,
            cost_center: None,
        }
    }

    fn attribution(&self) -> Attribution {
        Attribution {
            principal: self.principal.clone(),
            principal_source: self.principal.as_ref().map(|_| "span:enduser.id".into()),
            principal_kind: Some(self.kind),
            principal_reason: "fixture".into(),
            team: self.team.clone(),
            tenant: self.tenant.clone(),
            cost_center: self.cost_center.clone(),
        }
    }
}

/// One call to write.
#[derive(Debug, Clone)]
pub struct Call {
    pub who: Who,
    pub server: String,
    pub tool: String,
    pub class: OperationClass,
    pub outcome: Outcome,
    pub start_ns: i64,
    pub duration_ms: i64,
    pub trace: u64,
    /// Distinguishes calls within a trace.
    pub n: u64,
}

/// One LLM inference to write.
#[derive(Debug, Clone)]
pub struct Inference {
    pub who: Who,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub start_ns: i64,
    pub trace: u64,
    pub n: u64,
}

fn source() -> Arc<Source> {
    Arc::new(Source {
        service: Some("fixture".into()),
        ingest_protocol: "test",
        ..Source::default()
    })
}

fn trace_id(trace: u64) -> String {
    format!("{trace:032x}")
}

pub fn tool_call(c: &Call, side: Side) -> ToolCall {
    // The client's span is the wire request: both records carry its id as their call id, and
    // the server's parent is it.
    let client_span = format!("{:016x}", c.trace * 1000 + c.n + 500);
    let span_id = match side {
        Side::Server => format!("{:016x}", c.trace * 1000 + c.n),
        Side::Client => client_span.clone(),
    };
    ToolCall {
        event_id: format!("{}-{span_id}-{side:?}", trace_id(c.trace)),
        trace_id: trace_id(c.trace),
        span_id: span_id.clone(),
        parent_span_id: (side == Side::Server).then(|| client_span.clone()),
        call_id: client_span,
        is_request: true,
        side,
        span_name: format!("tools/call {}", c.tool),
        start_time_ns: c.start_ns,
        end_time_ns: c.start_ns + c.duration_ms * 1_000_000,
        observed_time_ns: c.start_ns + 5_000_000_000,
        method: "tools/call".into(),
        tool_name: Some(c.tool.clone()),
        prompt_name: None,
        resource_uri: None,
        operation_class: c.class,
        outcome: c.outcome,
        error_type: (c.outcome != Outcome::Ok).then(|| "fixture_error".into()),
        jsonrpc_code: None,
        error_message: None,
        request_id: Some(c.n.to_string()),
        protocol_version: Some("2025-06-18".into()),
        session_id: None,
        server_name: Some(c.server.clone()),
        client_name: Some("fixture-agent".into()),
        attribution: c.who.attribution(),
        network_transport: None,
        client_address: None,
        client_port: None,
        server_address: None,
        server_port: None,
        source: source(),
        arguments: Payload::default(),
        result: Payload::default(),
        attributes: Vec::new(),
        resource_attributes: Arc::new(Vec::new()),
    }
}

pub fn llm_call(i: &Inference) -> LlmCall {
    let span_id = format!("{:016x}", i.trace * 1000 + 900 + i.n);
    LlmCall {
        event_id: format!("{}-{span_id}-llm", trace_id(i.trace)),
        trace_id: trace_id(i.trace),
        span_id,
        parent_span_id: None,
        span_name: format!("chat {}", i.model),
        start_time_ns: i.start_ns,
        end_time_ns: i.start_ns + 2_000_000_000,
        observed_time_ns: i.start_ns + 5_000_000_000,
        operation: Some("chat".into()),
        provider: Some("fixture".into()),
        request_model: Some(i.model.clone()),
        response_model: Some(i.model.clone()),
        input_tokens: Some(i.input_tokens),
        output_tokens: Some(i.output_tokens),
        cache_read_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        is_error: false,
        error_type: None,
        attribution: i.who.attribution(),
        source: source(),
        attributes: Vec::new(),
    }
}

/// Writes records into a store at `dir` through the real writer (duplicate filter off, so a
/// retried export reaches Parquet twice and the `calls` view must fold it).
pub async fn write(dir: &Path, mut tool_calls: Vec<ToolCall>, mut llm_calls: Vec<LlmCall>) {
    // In time order, as a live feed arrives: each batch then touches a few hour partitions,
    // not all of them (which would leave thousands of tiny files).
    tool_calls.sort_by_key(|c| c.start_time_ns);
    llm_calls.sort_by_key(|c| c.start_time_ns);
    let config = StoreConfig {
        dedup_window: 0,
        ..StoreConfig::default()
    };
    let key = calltrail_retention::note::SigningKey::generate("test.calltrail").unwrap();
    let w = StoreWriter::spawn(
        config,
        Arc::new(Layout::new(dir, "t")),
        &calltrail_retention::chain::IntegrityConfig::default(),
        &key,
        &calltrail_retention::policy::RetentionConfig::default(),
    )
    .unwrap();
    let mut seq = 0;
    let mut llm = llm_calls.into_iter();
    for chunk in tool_calls.chunks(2000) {
        seq += 1;
        let batch = WriteBatch {
            wal_seq: seq,
            tool_calls: chunk.to_vec(),
            llm_calls: llm.by_ref().take(1000).collect(),
        };
        submit(&w, batch).await;
    }
    loop {
        let rest: Vec<LlmCall> = llm.by_ref().take(1000).collect();
        if rest.is_empty() {
            break;
        }
        seq += 1;
        submit(
            &w,
            WriteBatch {
                wal_seq: seq,
                tool_calls: Vec::new(),
                llm_calls: rest,
            },
        )
        .await;
    }
    w.shutdown().await;
}

async fn submit(w: &StoreWriter, batch: WriteBatch) {
    // The writer's queue is bounded: wait for room rather than fail.
    let handle = w.handle();
    tokio::task::spawn_blocking(move || handle.submit_blocking(batch))
        .await
        .unwrap()
        .unwrap();
}

fn call(who: &Who, server: &str, tool: &str, class: OperationClass, outcome: Outcome) -> Call {
    Call {
        who: who.clone(),
        server: server.into(),
        tool: tool.into(),
        class,
        outcome,
        start_ns: 0,
        duration_ms: 0,
        trace: 0,
        n: 0,
    }
}

/// The hand-countable ledger of the module documentation, written into `dir`.
pub async fn small(dir: &Path) {
    let alice = Who::human("alice@bank.example", "payments", "acme-uk", "CC-100");
    let bob = Who::human("bob@bank.example", "crm", "acme-de", "CC-200");
    let bot = Who::service("batch-bot", "payments", "acme-uk", "CC-100");
    let carol = Who::human("carol@bank.example", "research", "acme-uk", "CC-300");
    use OperationClass::{Admin, Read, Write};
    use Outcome::{Denied, Ok as Fine, ToolError};
    let at = |c: Call, start: &str, ms: i64, trace: u64, n: u64| Call {
        start_ns: ns(start),
        duration_ms: ms,
        trace,
        n,
        ..c
    };
    let calls = [
        at(
            call(&alice, "payments-mcp", "transfer", Write, Fine),
            "2026-10-05T10:00:00Z",
            1000,
            1,
            1,
        ),
        at(
            call(&alice, "payments-mcp", "transfer", Write, ToolError),
            "2026-10-05T10:05:00Z",
            1000,
            1,
            2,
        ),
        at(
            call(&alice, "payments-mcp", "get_balance", Read, Fine),
            "2026-10-05T10:10:00Z",
            200,
            1,
            3,
        ),
        at(
            call(&bob, "crm-mcp", "lookup", Read, Fine),
            "2026-10-06T09:00:00Z",
            500,
            2,
            1,
        ),
        at(
            call(&bob, "crm-mcp", "lookup", Read, Fine),
            "2026-10-13T09:00:00Z",
            500,
            3,
            1,
        ),
        at(
            call(&bot, "payments-mcp", "reconcile", Admin, Fine),
            "2026-10-06T02:00:00Z",
            3000,
            4,
            1,
        ),
        at(
            call(&Who::nobody(), "files-mcp", "read_file", Read, Denied),
            "2026-10-07T12:00:00Z",
            100,
            5,
            1,
        ),
        at(
            call(&alice, "payments-mcp", "get_balance", Read, Fine),
            "2026-11-02T10:00:00Z",
            200,
            6,
            1,
        ),
    ];
    let mut records: Vec<ToolCall> = calls.iter().map(|c| tool_call(c, Side::Server)).collect();
    // Call 1 exported twice (a retry); call 4 seen by its client too.
    records.push(tool_call(&calls[0], Side::Server));
    records.push(tool_call(&calls[3], Side::Client));
    let llm = [
        Inference {
            who: Who::nobody(),
            model: "claude-sonnet-4-20250514".into(),
            input_tokens: 2000,
            output_tokens: 500,
            start_ns: ns("2026-10-05T09:59:00Z"),
            trace: 1,
            n: 1,
        },
        Inference {
            who: bob.clone(),
            model: "gpt-4o-mini".into(),
            input_tokens: 1000,
            output_tokens: 1000,
            start_ns: ns("2026-10-06T08:59:00Z"),
            trace: 2,
            n: 1,
        },
        Inference {
            who: carol,
            model: "gpt-4o".into(),
            input_tokens: 4000,
            output_tokens: 0,
            start_ns: ns("2026-10-08T15:00:00Z"),
            trace: 9,
            n: 1,
        },
    ];
    write(dir, records, llm.iter().map(llm_call).collect()).await;
}

/// The price tables the tests use with [`small`] (TOML of `[chargeback]`).
pub const PRICES: &str = r#"
currency = "EUR"
[[price_tables]]
version = "2026-10"
platform_monthly_cost = 3100.0
allocation = "proportional"
default_per_call = 0.001
per_second = 0.0001
[[price_tables.calls]]
server = "payments-mcp"
operation_class = "write"
per_call = 0.01
[[price_tables.calls]]
tool = "reconcile"
per_call = 0.05
[[price_tables.models]]
model = "claude-sonnet-4"
per_1k_input_tokens = 3.0
per_1k_output_tokens = 15.0
[[price_tables.models]]
model = "gpt-4o"
per_1k_input_tokens = 2.5
per_1k_output_tokens = 10.0
[[price_tables.models]]
model = "gpt-4o-mini"
per_1k_input_tokens = 0.15
per_1k_output_tokens = 0.6
[[price_tables]]
version = "2026-11"
effective_from = "2026-11-01"
platform_monthly_cost = 6000.0
allocation = "even"
default_per_call = 0.002
per_second = 0.0001
"#;

/// A deterministic PRNG (SplitMix64): the same workload on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A larger workload: `calls` calls in two hours of each of the 61 days from 2026-09-01, 40
/// principals in 6 teams and 3 tenants, 8 servers, some retries and client records, one LLM call per 3 tool calls.
pub async fn generated(dir: &Path, calls: u64) {
    let mut rng = Rng::new(7);
    let teams = ["payments", "crm", "risk", "platform", "research", "ops"];
    let tenants = ["acme-uk", "acme-de", "acme-us"];
    let servers = [
        ("payments-mcp", ["transfer", "get_balance", "refund"]),
        ("crm-mcp", ["lookup", "update_contact", "delete_contact"]),
        ("files-mcp", ["read_file", "write_file", "delete_file"]),
        ("risk-mcp", ["score", "explain", "override"]),
        ("jira-mcp", ["search", "create_issue", "close_issue"]),
        ("git-mcp", ["diff", "commit", "push"]),
        ("db-mcp", ["select", "insert", "drop_table"]),
        ("search-mcp", ["query", "index", "purge"]),
    ];
    let classes = [
        OperationClass::Read,
        OperationClass::Write,
        OperationClass::Delete,
    ];
    let models = [
        "claude-sonnet-4-20250514",
        "gpt-4o",
        "gpt-4o-mini",
        "local-llama",
    ];
    let people: Vec<Who> = (0..40)
        .map(|i| {
            let team = teams[i % teams.len()];
            let tenant = tenants[i % tenants.len()];
            let cc = format!("CC-{}", 100 + i % 5);
            match i {
                0..=33 => Who::human(&format!("user{i}@bank.example"), team, tenant, &cc),
                34..=37 => Who::service(&format!("svc-{i}"), team, tenant, &cc),
                _ => Who::nobody(),
            }
        })
        .collect();
    let start = ns("2026-09-01T00:00:00Z");
    let mut records = Vec::new();
    let mut llm = Vec::new();
    for i in 0..calls {
        let who = people[rng.below(people.len() as u64) as usize].clone();
        let (server, tools) = servers[rng.below(servers.len() as u64) as usize];
        let t = rng.below(3) as usize;
        let outcome = match rng.below(20) {
            0 => Outcome::ToolError,
            1 => Outcome::Denied,
            _ => Outcome::Ok,
        };
        let c = Call {
            who: who.clone(),
            server: server.into(),
            tool: tools[t].into(),
            class: classes[t],
            outcome,
            // Two working hours a day: 61 days x 2 hour partitions keeps the file count (and
            // the debug-build test time) small while spanning two months and nine weeks.
            start_ns: start
                + (rng.below(61) * 86_400
                    + [9, 14][rng.below(2) as usize] * 3_600
                    + rng.below(3_600)) as i64
                    * 1_000_000_000,
            duration_ms: 20 + (rng.below(1000) * rng.below(1000) / 200) as i64,
            trace: 100 + i / 3,
            n: i % 3 + 1,
        };
        records.push(tool_call(&c, Side::Server));
        if rng.below(10) == 0 {
            records.push(tool_call(&c, Side::Server));
        }
        if rng.below(5) == 0 {
            records.push(tool_call(&c, Side::Client));
        }
        if i % 3 == 0 {
            llm.push(llm_call(&Inference {
                who: if rng.below(2) == 0 {
                    who
                } else {
                    Who::nobody()
                },
                model: models[rng.below(models.len() as u64) as usize].into(),
                input_tokens: rng.below(5000) as i64,
                output_tokens: rng.below(2000) as i64,
                start_ns: c.start_ns - 1_000_000_000,
                trace: c.trace,
                n: 1,
            }));
        }
    }
    write(dir, records, llm).await;
}
