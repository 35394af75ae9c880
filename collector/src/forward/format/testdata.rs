//! Records the format tests share: hand-made tool calls, LLM calls, audit events, anomaly
//! findings and checkpoints, stored as they would be (content batch + chain columns; findings
//! unchained), covering the cases that matter to formats: every column set, every column null,
//! hostnames instead of IPs, values with characters each format must escape, and payloads
//! present.

use std::sync::Arc;

use arrow::array::RecordBatch;
use calltrail_schemas::arrow_schema::{
    ChainColumns, LLM_CALLS, TOOL_CALLS, llm_calls_batch, tool_calls_batch, with_chain,
};
use calltrail_schemas::audit::{AUDIT_EVENTS, AuditEvent, audit_events_batch};
use calltrail_schemas::finding::{ANOMALIES, Finding, Severity, finding_id, findings_batch};
use calltrail_schemas::record::{
    Attribution, LlmCall, OperationClass, Outcome, Payload, PrincipalKind, Side, Source, ToolCall,
};

use super::{FormatKind, FormatOptions, Formatter};
use crate::forward::event::{CheckpointEvent, Columns, Event, FindingRow, RecordRow};

/// 2026-11-23T10:00:00Z in ns.
pub(super) const T0: i64 = 1_795_428_000_000_000_000;

/// Characters every format has to deal with.
pub(super) const NASTY: &str = "a|b=c\\d]e\"f\ng\rh\ti ünï 😀 ^x";

/// A batch of `table` and its column index.
pub(super) struct Stored {
    pub(super) batch: RecordBatch,
    pub(super) columns: Columns,
}

impl Stored {
    fn new(table: &str, content: &RecordBatch, first_seq: i64) -> Self {
        let n = content.num_rows();
        let leaf: Vec<[u8; 32]> = (0..n).map(|i| [i as u8 + 1; 32]).collect();
        let chained: Vec<[u8; 32]> = (0..n).map(|i| [0xa0 + i as u8; 32]).collect();
        let batch = with_chain(
            content,
            ChainColumns {
                chain_id: "w-01",
                first_seq,
                leaf_hashes: &leaf,
                chain_hashes: &chained,
            },
        )
        .expect("chain columns");
        let columns = Columns::new(table, &batch);
        Self { batch, columns }
    }

    /// Row `i` as a record.
    pub(super) fn row(&self, i: usize) -> RecordRow<'_> {
        RecordRow::new(&self.batch, &self.columns, i)
    }

    /// Every row.
    pub(super) fn rows(&self) -> impl Iterator<Item = RecordRow<'_>> {
        (0..self.batch.num_rows()).map(|i| self.row(i))
    }
}

fn source() -> Arc<Source> {
    Arc::new(Source {
        service: Some("crm-gateway".into()),
        instance: Some("gw-7".into()),
        sdk: Some("opentelemetry/python/1.45.2".into()),
        scope: Some("mcp-python-sdk/2.3.0".into()),
        ingest_protocol: "otlp_grpc",
        ingest_peer: Some("10.0.0.9:51234".into()),
        ingest_source: None,
    })
}

/// A fully populated successful write.
pub(super) fn tool_call() -> ToolCall {
    ToolCall {
        event_id: "0190a6f0-0000-8000-8000-000000000001".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        parent_span_id: Some("a3ce929d0e0e4736".into()),
        call_id: "00f067aa0ba902b7".into(),
        is_request: true,
        side: Side::Server,
        span_name: "tools/call crm.create_contact".into(),
        start_time_ns: T0,
        end_time_ns: T0 + 12_500_000,
        observed_time_ns: T0 + 40_000_000,
        method: "tools/call".into(),
        tool_name: Some("crm.create_contact".into()),
        prompt_name: None,
        resource_uri: None,
        operation_class: OperationClass::Write,
        outcome: Outcome::Ok,
        error_type: None,
        jsonrpc_code: None,
        error_message: None,
        request_id: Some("42".into()),
        protocol_version: Some("2025-06-18".into()),
        session_id: Some("sess-1".into()),
        server_name: Some("crm".into()),
        client_name: Some("claude-desktop".into()),
        attribution: Attribution {
            principal: Some("alice@bank.example".into()),
            principal_source: Some("span:enduser.id".into()),
            principal_kind: Some(PrincipalKind::Human),
            principal_reason: "directory".into(),
            team: Some("payments".into()),
            tenant: Some("acme-bank-eu".into()),
            cost_center: Some("cc-17".into()),
        },
        network_transport: Some("tcp".into()),
        client_address: Some("192.0.2.10".into()),
        client_port: Some(51000),
        server_address: Some("2001:db8::5".into()),
        server_port: Some(8443),
        source: source(),
        arguments: Payload {
            sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
            size: Some(4),
            content: None,
        },
        result: Payload {
            sha256: Some("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752".into()),
            size: Some(7),
            content: None,
        },
        attributes: vec![("mcp.extra".into(), "1".into())],
        resource_attributes: Arc::new(vec![("service.name".into(), "crm".into())]),
    }
}

/// The tool calls of the golden tests, in order.
pub(super) fn tool_calls() -> Vec<ToolCall> {
    let ok = tool_call();

    let mut denied = tool_call();
    denied.event_id = "0190a6f0-0000-8000-8000-000000000002".into();
    denied.span_id = "00f067aa0ba902b8".into();
    denied.tool_name = Some("crm.delete_contact".into());
    denied.operation_class = OperationClass::Delete;
    denied.outcome = Outcome::Denied;
    denied.error_type = Some("403".into());
    denied.jsonrpc_code = Some(-32001);
    denied.error_message = Some("policy forbids deleting contacts".into());
    denied.attribution.principal = Some("svc-batch".into());
    denied.attribution.principal_kind = Some(PrincipalKind::ServiceAccount);
    denied.client_address = Some("agent.internal.example".into());
    denied.server_address = Some("crm.internal.example".into());
    denied.arguments.content = Some(r#"{"id":"c-1"}"#.into());
    denied.result.content = Some("denied".into());

    let mut bare = tool_call();
    bare.event_id = "0190a6f0-0000-8000-8000-000000000003".into();
    bare.parent_span_id = None;
    bare.method = "resources/read".into();
    bare.tool_name = None;
    bare.resource_uri = Some("file:///etc/motd".into());
    bare.operation_class = OperationClass::Unknown;
    bare.outcome = Outcome::ProtocolError;
    bare.error_type = Some("_OTHER".into());
    bare.request_id = None;
    bare.protocol_version = None;
    bare.session_id = None;
    bare.server_name = None;
    bare.client_name = None;
    bare.attribution = Attribution::default();
    bare.network_transport = None;
    bare.client_address = None;
    bare.client_port = None;
    bare.server_address = None;
    bare.server_port = None;
    bare.source = Arc::new(Source {
        ingest_protocol: "otlp_http_json",
        ..Source::default()
    });
    bare.arguments = Payload::default();
    bare.result = Payload::default();
    bare.attributes = Vec::new();
    bare.resource_attributes = Arc::new(Vec::new());

    let mut nasty = tool_call();
    nasty.event_id = "0190a6f0-0000-8000-8000-000000000004".into();
    nasty.method = "tools/call".into();
    nasty.tool_name = Some(format!("admin {NASTY}"));
    nasty.operation_class = OperationClass::Admin;
    nasty.outcome = Outcome::ToolError;
    nasty.error_type = Some("tool_error".into());
    nasty.error_message = Some(NASTY.into());
    nasty.attribution.principal = Some(format!("bob {NASTY}"));
    nasty.attribution.team = Some(String::new());
    nasty.server_name = Some(NASTY.into());
    nasty.client_address = Some(NASTY.into());
    nasty.arguments.content = Some(NASTY.into());
    nasty.result.content = Some(String::new());
    nasty.attributes = vec![(NASTY.into(), NASTY.into())];

    vec![ok, denied, bare, nasty]
}

/// The LLM calls of the golden tests.
pub(super) fn llm_calls() -> Vec<LlmCall> {
    let chat = LlmCall {
        event_id: "0190a6f0-0000-8000-8000-000000000101".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "1111111111111111".into(),
        parent_span_id: Some("a3ce929d0e0e4736".into()),
        span_name: "chat claude-sonnet-4".into(),
        start_time_ns: T0 - 2_000_000_000,
        end_time_ns: T0 - 500_000_000,
        observed_time_ns: T0,
        operation: Some("chat".into()),
        provider: Some("anthropic".into()),
        request_model: Some("claude-sonnet-4".into()),
        response_model: Some("claude-sonnet-4-20250514".into()),
        input_tokens: Some(1200),
        output_tokens: Some(350),
        cache_read_input_tokens: Some(1000),
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        is_error: false,
        error_type: None,
        attribution: tool_call().attribution,
        source: source(),
        attributes: Vec::new(),
    };
    let failed = LlmCall {
        event_id: "0190a6f0-0000-8000-8000-000000000102".into(),
        span_id: "2222222222222222".into(),
        parent_span_id: None,
        operation: None,
        provider: None,
        request_model: None,
        response_model: None,
        input_tokens: None,
        output_tokens: None,
        cache_read_input_tokens: None,
        is_error: true,
        error_type: Some("rate_limited".into()),
        attribution: Attribution::default(),
        source: Arc::new(Source::default()),
        ..chat.clone()
    };
    vec![chat, failed]
}

/// The audit events of the golden tests.
pub(super) fn audit_events() -> Vec<AuditEvent> {
    let placed = AuditEvent {
        event_id: "hold-5d5b2f628cc0-placed".into(),
        time_ns: T0 + 3_600_000_000_000,
        action: "hold.placed".into(),
        actor: "carol@bank.example".into(),
        subject: "hold-5d5b2f628cc0".into(),
        reason: Some("FINRA inquiry 17".into()),
        details: vec![("tenant".into(), "acme-bank-eu".into())],
    };
    let released = AuditEvent {
        event_id: "hold-5d5b2f628cc0-released".into(),
        time_ns: T0 + 7_200_000_000_000,
        action: "hold.released".into(),
        reason: Some(NASTY.into()),
        details: Vec::new(),
        ..placed.clone()
    };
    vec![placed, released]
}

/// The checkpoints of the golden tests: one signed at a time, one without a timestamp.
pub(super) fn checkpoints() -> Vec<CheckpointEvent> {
    let note = "calltrail/w-01\n42\nq83vEjRWeJCrze8SFBNhnwEjRWeJCrze8SFBNhnwE=\n1795428000\n\n— calltrail Az3b4w==\n";
    vec![
        CheckpointEvent {
            chain_id: "w-01".into(),
            origin: "calltrail/w-01".into(),
            size: 42,
            root_hex: "ab".repeat(32),
            timestamp: Some(1_795_428_000),
            note: note.into(),
        },
        CheckpointEvent {
            chain_id: "w-01".into(),
            origin: "calltrail/w-01".into(),
            size: 0,
            root_hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            timestamp: None,
            note: String::new(),
        },
    ]
}

/// Every golden record, stored: tool calls (seq 1..), LLM calls (seq 10..), audit (seq 20..).
pub(super) fn stored() -> [Stored; 3] {
    let tools = tool_calls();
    let llms = llm_calls();
    let audits = audit_events();
    [
        Stored::new(
            TOOL_CALLS,
            &tool_calls_batch(&tools.iter().collect::<Vec<_>>()).expect("tool batch"),
            1,
        ),
        Stored::new(
            LLM_CALLS,
            &llm_calls_batch(&llms.iter().collect::<Vec<_>>()).expect("llm batch"),
            10,
        ),
        Stored::new(
            AUDIT_EVENTS,
            &audit_events_batch(&audits.iter().collect::<Vec<_>>()).expect("audit batch"),
            20,
        ),
    ]
}

/// A finding with every column set: a volume spike of a user on a server, severity high.
pub(super) fn finding() -> Finding {
    let window_start_ns = T0 - 3_600_000_000_000;
    Finding {
        finding_id: finding_id("D1", "user", "alice@bank.example", window_start_ns),
        detector: "D1".into(),
        rule: "volume_spike".into(),
        severity: Severity::High,
        entity_kind: "user".into(),
        entity: "alice@bank.example".into(),
        principal: Some("alice@bank.example".into()),
        team: Some("payments".into()),
        tenant: Some("acme-bank-eu".into()),
        server_name: Some("crm".into()),
        tool_name: Some("crm.delete_contact".into()),
        window_start_ns,
        window_end_ns: T0,
        observed: 412.0,
        expected: Some(12.5),
        score: 11.5,
        explanation: "alice@bank.example made 412 calls to crm in the hour to 10:00 UTC, 33 times her baseline of 12.5".into(),
        detected_at_ns: T0 + 300_000_000_000,
    }
}

/// The findings of the golden tests: every column set (high), every optional column null
/// (critical), text each format must escape (medium), and a low one.
pub(super) fn findings() -> Vec<Finding> {
    let full = finding();

    let mut bare = finding();
    bare.finding_id = finding_id("D8", "chain", "w-01", T0);
    bare.detector = "D8".into();
    bare.rule = "chain_break".into();
    bare.severity = Severity::Critical;
    bare.entity_kind = "chain".into();
    bare.entity = "w-01".into();
    bare.principal = None;
    bare.team = None;
    bare.tenant = None;
    bare.server_name = None;
    bare.tool_name = None;
    bare.expected = None;
    bare.observed = 1.0;
    bare.score = 1.0;
    bare.explanation = "chain w-01 does not verify at seq 42".into();

    let mut nasty = finding();
    nasty.finding_id = finding_id("D3", "user", NASTY, T0);
    nasty.detector = "D3".into();
    nasty.rule = "first_destructive_use".into();
    nasty.severity = Severity::Medium;
    nasty.entity = NASTY.into();
    nasty.principal = Some(format!("bob {NASTY}"));
    nasty.server_name = Some(NASTY.into());
    nasty.tool_name = Some(format!("drop=all {NASTY}"));
    nasty.explanation = format!("bob used a delete tool for the first time: {NASTY}");

    let mut low = finding();
    low.finding_id = finding_id("D2", "team", "payments", T0);
    low.detector = "D2".into();
    low.rule = "new_server".into();
    low.severity = Severity::Low;
    low.entity_kind = "team".into();
    low.entity = "payments".into();
    low.principal = None;
    low.tool_name = None;
    low.expected = Some(0.0);
    low.explanation = "team payments called server crm for the first time".into();

    vec![full, bare, nasty, low]
}

/// A batch of `anomalies` and its column index.
pub(super) struct StoredFindings {
    pub(super) batch: RecordBatch,
    pub(super) columns: Columns,
}

impl StoredFindings {
    /// `rows` as the detectors store them.
    pub(super) fn new(rows: &[Finding]) -> Self {
        let batch = findings_batch(rows).expect("findings batch");
        let columns = Columns::new(ANOMALIES, &batch);
        Self { batch, columns }
    }

    /// Row `i` as a finding.
    pub(super) fn row(&self, i: usize) -> FindingRow<'_> {
        FindingRow::new(&self.batch, &self.columns, i)
    }

    /// Every row.
    pub(super) fn rows(&self) -> impl Iterator<Item = FindingRow<'_>> {
        (0..self.batch.num_rows()).map(|i| self.row(i))
    }
}

/// Every golden finding, stored.
pub(super) fn stored_findings() -> StoredFindings {
    StoredFindings::new(&findings())
}

/// `event` encoded by a formatter of `kind` with `options`, as text.
pub(super) fn encode(kind: FormatKind, options: &FormatOptions, event: &Event<'_>) -> String {
    let mut out = Vec::new();
    Formatter::new(kind, options.clone())
        .encode(event, &mut out)
        .expect("encode");
    String::from_utf8(out).expect("UTF-8")
}

/// Default options with payloads.
pub(super) fn with_payloads() -> FormatOptions {
    FormatOptions {
        include_payloads: true,
        ..FormatOptions::default()
    }
}
