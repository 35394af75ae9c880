//! The SIEM event formats end to end: a varied set of stored records (every table, nulls,
//! hostnames, and values full of `|`, `=`, `\`, `]`, `"`, newlines and non-ASCII) and signed
//! checkpoints, encoded in every format, written to a temporary directory and read back by
//! parsers Calltrail did not write:
//!
//! - CEF: PyPI `pycef` parses every line, and every value we put in comes back exactly
//!   (`tests/forward_checks/cef_check.py`);
//! - OCSF: every event validates against the OCSF 1.3.0 schema that PyPI `pydantic-ocsf`
//!   ships, offline, through its models and a strict walk of the schema
//!   (`tests/forward_checks/ocsf_check.py`), with and without the 1.8 `ai_operation` profile;
//! - ECS, LEEF and native JSON: structure checked here, and ECS and LEEF compared with golden
//!   files under `tests/fixtures/forward/golden/` (`CALLTRAIL_BLESS=1` rewrites them:
//!   `CALLTRAIL_BLESS=1 CALLTRAIL_TEST_PYTHON=.venv-test/bin/python cargo test --test forward_formats`).
//!
//! Needs the test venv (`CALLTRAIL_TEST_PYTHON`, set by `scripts/test`).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use calltrail_collector::forward::event::{CheckpointEvent, Columns, Event, RecordRow};
use calltrail_collector::forward::format::{FormatKind, FormatOptions, Formatter};
use calltrail_schemas::arrow_schema::{
    ChainColumns, LLM_CALLS, TOOL_CALLS, llm_calls_batch, tool_calls_batch, with_chain,
};
use calltrail_schemas::audit::{AUDIT_EVENTS, AuditEvent, audit_events_batch};
use calltrail_schemas::record::{
    Attribution, LlmCall, OperationClass, Outcome, Payload, PrincipalKind, Side, Source, ToolCall,
};
use serde_json::{Value, json};

/// Values that each format must escape, replace or carry as they are.
const NASTY: [&str; 14] = [
    "pipe|in|value",
    "equals=in=value",
    r"back\slash",
    "bracket] and quote\"",
    "new\nline",
    "cr\rand crlf\r\n",
    "tab\there",
    "ünïcödé 😀 中文",
    " leading and trailing ",
    r"ends with backslash\",
    r"\=",
    "x cs1=forged suser=mallory",
    "=",
    r"\n is not a newline",
];

const T0: i64 = 1_795_428_000_000_000_000;

fn nasty(i: usize) -> String {
    NASTY[i % NASTY.len()].to_owned()
}

fn tool_calls() -> Vec<ToolCall> {
    let classes = [
        OperationClass::Read,
        OperationClass::Write,
        OperationClass::Delete,
        OperationClass::Admin,
        OperationClass::Unknown,
    ];
    let outcomes = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::ProtocolError,
        Outcome::Denied,
    ];
    let kinds = [
        Some(PrincipalKind::Human),
        Some(PrincipalKind::ServiceAccount),
        None,
    ];
    (0..NASTY.len())
        .map(|i| ToolCall {
            event_id: format!("0190a6f0-0000-8000-8000-{i:012}"),
            trace_id: format!("{:032x}", 0xabc0 + i),
            span_id: format!("{:016x}", 0x10 + i),
            parent_span_id: (i % 2 == 0).then(|| format!("{:016x}", 0x99)),
            call_id: format!("{:016x}", 0x10 + i),
            is_request: true,
            side: if i % 2 == 0 {
                Side::Server
            } else {
                Side::Client
            },
            span_name: nasty(i),
            start_time_ns: T0 + i as i64 * 1_000_000_000,
            end_time_ns: T0 + i as i64 * 1_000_000_000 + 2_345_678,
            observed_time_ns: T0 + 60_000_000_000,
            method: if i == 5 {
                nasty(i)
            } else {
                "tools/call".into()
            },
            tool_name: Some(nasty(i + 1)),
            prompt_name: None,
            resource_uri: None,
            operation_class: classes[i % classes.len()],
            outcome: outcomes[i % outcomes.len()],
            error_type: (i % 4 != 0).then(|| nasty(i + 2)),
            jsonrpc_code: (i % 4 == 2).then_some(-32603),
            error_message: (i % 4 != 0).then(|| nasty(i + 3)),
            request_id: Some(nasty(i + 4)),
            protocol_version: Some("2025-06-18".into()),
            session_id: Some(nasty(i + 5)),
            server_name: Some(nasty(i + 6)),
            client_name: Some(nasty(i + 7)),
            attribution: Attribution {
                principal: kinds[i % 3].map(|_| nasty(i + 8)),
                principal_source: Some("span:enduser.id".into()),
                principal_kind: kinds[i % 3],
                principal_reason: nasty(i + 9),
                team: Some(nasty(i + 10)),
                tenant: Some(nasty(i + 11)),
                cost_center: None,
            },
            network_transport: Some("tcp".into()),
            client_address: Some(match i % 3 {
                0 => "198.51.100.7".into(),
                1 => "agent-7.corp.example".into(),
                _ => nasty(i + 12),
            }),
            client_port: Some(40_000 + i as i64),
            server_address: (i % 2 == 0).then(|| "::1".into()),
            server_port: (i % 2 == 0).then_some(443),
            source: Arc::new(Source {
                service: Some(nasty(i + 13)),
                ingest_protocol: "otlp_http_json",
                ..Source::default()
            }),
            arguments: Payload {
                sha256: Some("00".repeat(32)),
                size: Some(12),
                content: Some(nasty(i)),
            },
            result: Payload {
                sha256: Some("ff".repeat(32)),
                size: Some(3),
                content: Some(nasty(i + 1)),
            },
            attributes: vec![(nasty(i), nasty(i + 1))],
            resource_attributes: Arc::new(Vec::new()),
        })
        .collect()
}

fn llm_calls() -> Vec<LlmCall> {
    (0..3)
        .map(|i| LlmCall {
            event_id: format!("0190a6f0-0000-8000-8001-{i:012}"),
            trace_id: format!("{:032x}", 0xabc0 + i),
            span_id: format!("{:016x}", 0x100 + i),
            parent_span_id: None,
            span_name: "chat".into(),
            start_time_ns: T0 - 5_000_000_000,
            end_time_ns: T0 - 1_000_000_000,
            observed_time_ns: T0,
            operation: (i != 2).then(|| "chat".into()),
            provider: (i != 2).then(|| nasty(i)),
            request_model: (i != 2).then(|| "gpt-5".into()),
            response_model: (i == 0).then(|| nasty(i + 3)),
            input_tokens: (i != 2).then_some(1000 + i as i64),
            output_tokens: (i != 2).then_some(10),
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
            reasoning_output_tokens: Some(4),
            is_error: i == 1,
            error_type: (i == 1).then(|| nasty(5)),
            attribution: Attribution {
                principal: (i != 2).then(|| nasty(i + 6)),
                principal_kind: (i != 2).then_some(PrincipalKind::Human),
                principal_reason: "directory".into(),
                ..Attribution::default()
            },
            source: Arc::new(Source::default()),
            attributes: Vec::new(),
        })
        .collect()
}

fn audit_events() -> Vec<AuditEvent> {
    vec![
        AuditEvent {
            event_id: "hold-1-placed".into(),
            time_ns: T0,
            action: "hold.placed".into(),
            actor: nasty(0),
            subject: "hold-1".into(),
            reason: Some(nasty(4)),
            details: vec![(nasty(1), nasty(2))],
        },
        AuditEvent {
            event_id: "hold-1-released".into(),
            time_ns: T0 + 1,
            action: "hold.released".into(),
            actor: nasty(7),
            subject: nasty(3),
            reason: None,
            details: Vec::new(),
        },
    ]
}

fn checkpoints() -> Vec<CheckpointEvent> {
    vec![
        CheckpointEvent {
            chain_id: "w-01".into(),
            origin: "calltrail/w-01".into(),
            size: 17,
            root_hex: "cd".repeat(32),
            timestamp: Some(1_795_428_000),
            note: format!(
                "calltrail/w-01\n17\n{}\n\n— calltrail sig=\n",
                "q".repeat(44)
            ),
        },
        CheckpointEvent {
            chain_id: "w-02".into(),
            origin: nasty(0),
            size: u64::MAX,
            root_hex: "00".repeat(32),
            timestamp: None,
            note: nasty(5),
        },
    ]
}

/// A stored batch: content plus chain columns (leaf hash of row i = [first_seq + i; 32]).
fn store(table: &str, content: &RecordBatch, first_seq: i64) -> (RecordBatch, Columns) {
    let n = content.num_rows();
    let leaf: Vec<[u8; 32]> = (0..n)
        .map(|i| [(first_seq as usize + i) as u8; 32])
        .collect();
    let chained = vec![[0xee; 32]; n];
    let batch = with_chain(
        content,
        ChainColumns {
            chain_id: "w-01",
            first_seq,
            leaf_hashes: &leaf,
            chain_hashes: &chained,
        },
    )
    .unwrap();
    let columns = Columns::new(table, &batch);
    (batch, columns)
}

/// The stored batches: tool calls (seq 1..), LLM calls (seq 100..), audit events (seq 200..).
fn stored() -> Vec<(RecordBatch, Columns)> {
    let tools = tool_calls();
    let llms = llm_calls();
    let audits = audit_events();
    vec![
        store(
            TOOL_CALLS,
            &tool_calls_batch(&tools.iter().collect::<Vec<_>>()).unwrap(),
            1,
        ),
        store(
            LLM_CALLS,
            &llm_calls_batch(&llms.iter().collect::<Vec<_>>()).unwrap(),
            100,
        ),
        store(
            AUDIT_EVENTS,
            &audit_events_batch(&audits.iter().collect::<Vec<_>>()).unwrap(),
            200,
        ),
    ]
}

/// Every event encoded with `formatter`, one per line.
fn encode_all(formatter: &Formatter) -> String {
    let mut out = Vec::new();
    for (batch, columns) in &stored() {
        for row in 0..batch.num_rows() {
            let event = Event::Record(RecordRow::new(batch, columns, row));
            formatter.encode(&event, &mut out).unwrap();
            out.push(b'\n');
        }
    }
    for c in &checkpoints() {
        formatter.encode(&Event::Checkpoint(c), &mut out).unwrap();
        out.push(b'\n');
    }
    String::from_utf8(out).unwrap()
}

fn formatter(kind: FormatKind, options: FormatOptions) -> Formatter {
    options.validate().unwrap();
    Formatter::new(kind, options)
}

fn payloads() -> FormatOptions {
    FormatOptions {
        include_payloads: true,
        ..FormatOptions::default()
    }
}

/// Runs a checker script from `tests/forward_checks` with the venv's Python.
fn run_check(script: &str, args: &[&Path]) -> String {
    let mut cmd = Command::new(support::python());
    cmd.arg(
        support::repo_root()
            .join("tests/forward_checks")
            .join(script),
    )
    .args(args);
    let out = support::run(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Compares `actual` with the golden file `name`, or rewrites it under `CALLTRAIL_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = support::repo_root()
        .join("tests/fixtures/forward/golden")
        .join(name);
    if std::env::var_os("CALLTRAIL_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; CALLTRAIL_BLESS=1 creates it", path.display()));
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        assert_eq!(
            e,
            a,
            "{} line {} (CALLTRAIL_BLESS=1 rewrites it)",
            path.display(),
            i + 1
        );
    }
    assert_eq!(
        expected.lines().count(),
        actual.lines().count(),
        "{}",
        path.display()
    );
}

fn hex32(b: u8) -> String {
    hex::encode([b; 32])
}

/// What pycef must read from each CEF line: built from the records, not from the encoder.
fn cef_expectations() -> Vec<Value> {
    let version = env!("CARGO_PKG_VERSION");
    let mut all = Vec::new();
    for (i, t) in tool_calls().iter().enumerate() {
        let seq = i as u8 + 1;
        let mut e = json!({
            "CEFVersion": "0",
            "DeviceVendor": "Calltrail",
            "DeviceProduct": "Calltrail",
            "DeviceVersion": version,
            "DeviceEventClassID": format!("tool_call.{}.{}", t.operation_class.as_str(), t.outcome.as_str()),
            "externalId": t.event_id,
            "chainId": "w-01",
            "seq": seq.to_string(),
            "leafHash": hex32(seq),
            "act": t.method,
            "target": t.tool_name.clone().unwrap(),
            "mcpServer": t.server_name.clone().unwrap(),
            "team": t.attribution.team.clone().unwrap(),
            "tenant": t.attribution.tenant.clone().unwrap(),
            "requestClientApplication": t.client_name.clone().unwrap(),
            "reason": t.outcome.as_str(),
            "calltrailArguments": t.arguments.content.clone().unwrap(),
            "calltrailResult": t.result.content.clone().unwrap(),
            "calltrailTraceId": t.trace_id,
        });
        let o = e.as_object_mut().unwrap();
        if let Some(p) = &t.attribution.principal {
            o.insert("suser".into(), json!(p));
        }
        if let Some(m) = &t.error_message {
            o.insert("msg".into(), json!(m));
        }
        if let Some(et) = &t.error_type {
            o.insert("errorType".into(), json!(et));
        }
        let address = t.client_address.clone().unwrap();
        let key = if address.parse::<std::net::IpAddr>().is_ok() {
            "src"
        } else {
            "shost"
        };
        o.insert(key.into(), json!(address));
        all.push(e);
    }
    for (i, l) in llm_calls().iter().enumerate() {
        let seq = 100 + i as u8;
        let mut e = json!({
            "externalId": l.event_id,
            "chainId": "w-01",
            "seq": seq.to_string(),
            "leafHash": hex32(seq),
            "DeviceEventClassID": if l.is_error { "llm_call.error" } else { "llm_call.ok" },
        });
        let o = e.as_object_mut().unwrap();
        if let Some(p) = &l.provider {
            o.insert("provider".into(), json!(p));
        }
        if let Some(m) = l.response_model.as_ref().or(l.request_model.as_ref()) {
            o.insert("model".into(), json!(m));
        }
        if let Some(p) = &l.attribution.principal {
            o.insert("suser".into(), json!(p));
        }
        all.push(e);
    }
    for (i, a) in audit_events().iter().enumerate() {
        let seq = 200 + i as u8;
        let mut e = json!({
            "externalId": a.event_id,
            "chainId": "w-01",
            "seq": seq.to_string(),
            "leafHash": hex32(seq),
            "act": a.action,
            "suser": a.actor,
            "subject": a.subject,
        });
        if let Some(r) = &a.reason {
            e["reason"] = json!(r);
        }
        all.push(e);
    }
    for c in checkpoints() {
        all.push(json!({
            "DeviceEventClassID": "checkpoint",
            "externalId": c.meta().event_id,
            "chainId": c.chain_id,
            "treeSize": c.size.to_string(),
            "rootHash": c.root_hex,
            "origin": c.origin,
            "msg": c.note,
        }));
    }
    all
}

#[test]
fn cef_lines_parse_with_pycef_and_every_value_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let text = encode_all(&formatter(FormatKind::Cef, payloads()));
    let events = dir.path().join("events.cef");
    let expected = dir.path().join("expected.json");
    std::fs::write(&events, &text).unwrap();
    std::fs::write(&expected, serde_json::to_vec(&cef_expectations()).unwrap()).unwrap();
    let out = run_check("cef_check.py", &[&events, &expected]);
    let n = cef_expectations().len();
    assert!(out.contains(&format!("{n} lines parsed")), "{out}");
}

#[test]
fn ocsf_events_validate_against_the_ocsf_1_3_schema() {
    let dir = tempfile::tempdir().unwrap();
    let n = cef_expectations().len();
    for (name, options) in [
        ("ocsf.jsonl", FormatOptions::default()),
        (
            "ocsf-ai.jsonl",
            FormatOptions {
                ocsf_ai_operation: true,
                ..payloads()
            },
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, encode_all(&formatter(FormatKind::Ocsf, options))).unwrap();
        let out = run_check("ocsf_check.py", &[&path]);
        assert!(out.contains(&format!("{n} events valid")), "{name}: {out}");
    }
}

/// Every line is a JSON object; every event names its id and chain.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn ecs_documents_have_the_ecs_fields_and_match_the_golden_file() {
    let text = encode_all(&formatter(FormatKind::Ecs, payloads()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.ecs.jsonl"), &text).unwrap();
    let docs = json_lines(&text);
    assert_eq!(docs.len(), cef_expectations().len());
    for d in &docs {
        assert!(
            d["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{d}"
        );
        assert_eq!(d["event"]["kind"], "event");
        assert_eq!(d["event"]["category"], json!(["api"]));
        assert!(
            ["success", "failure", "unknown"].contains(&d["event"]["outcome"].as_str().unwrap())
        );
        assert!(d["event"]["type"].as_array().is_some_and(|t| !t.is_empty()));
        assert!(d["event"]["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(d["event"]["sequence"].is_u64() && d["event"]["hash"].is_string());
        assert!(d["calltrail"]["chain_id"].is_string());
    }
    let tools = tool_calls();
    for (d, t) in docs.iter().zip(&tools) {
        assert_eq!(d["user"]["id"].as_str(), t.attribution.principal.as_deref());
        assert_eq!(d["group"]["name"].as_str(), t.attribution.team.as_deref());
        assert_eq!(
            d["organization"]["id"].as_str(),
            t.attribution.tenant.as_deref()
        );
        assert_eq!(d["gen_ai"]["tool"]["name"].as_str(), t.tool_name.as_deref());
        assert_eq!(
            d["gen_ai"]["tool"]["call"]["arguments"].as_str(),
            t.arguments.content.as_deref()
        );
        assert_eq!(d["event"]["duration"], 2_345_678);
    }
    golden("e2e-ecs.jsonl", &text);
}

#[test]
fn leef_lines_split_cleanly_and_match_the_golden_file() {
    for (delimiter, name) in [('\t', "e2e-leef.log"), ('^', "e2e-leef-caret.log")] {
        let options = FormatOptions {
            leef_delimiter: delimiter,
            ..payloads()
        };
        let text = encode_all(&formatter(FormatKind::Leef, options));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.leef"), &text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), cef_expectations().len());
        for line in &lines {
            let parts: Vec<&str> = line.splitn(7, '|').collect();
            assert_eq!(parts.len(), 7, "{line}");
            assert_eq!(&parts[..3], ["LEEF:2.0", "Calltrail", "Calltrail"]);
            let mut keys = BTreeSet::new();
            let mut pairs = BTreeMap::new();
            for pair in parts[6].split(delimiter) {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{pair:?} in {line}"));
                assert!(keys.insert(k), "{k} twice in {line}");
                assert!(!v.chars().any(char::is_control), "{k}");
                pairs.insert(k, v);
            }
            for key in ["sev", "eventId", "chainId", "cat"] {
                assert!(pairs.contains_key(key), "{key} in {line}");
            }
            assert!(pairs.contains_key("seq") || pairs.contains_key("treeSize"));
            assert!(pairs.contains_key("leafHash") || pairs.contains_key("rootHash"));
        }
        golden(name, &text);
    }
}

#[test]
fn native_json_is_the_row_and_round_trips_values() {
    let docs = json_lines(&encode_all(&formatter(FormatKind::Json, payloads())));
    let tools = tool_calls();
    for (d, t) in docs.iter().zip(&tools) {
        assert_eq!(d["kind"], "tool_call");
        assert_eq!(d["event_id"].as_str(), Some(t.event_id.as_str()));
        assert_eq!(d["principal"].as_str(), t.attribution.principal.as_deref());
        assert_eq!(d["error_message"].as_str(), t.error_message.as_deref());
        assert_eq!(d["arguments"].as_str(), t.arguments.content.as_deref());
        assert_eq!(
            d["attributes"][&t.attributes[0].0],
            t.attributes[0].1.as_str()
        );
        assert!(
            d["start_time"]
                .as_str()
                .is_some_and(|s| s.len() == 30 && s.ends_with('Z'))
        );
    }
    let plain = json_lines(&encode_all(&formatter(
        FormatKind::Json,
        FormatOptions::default(),
    )));
    assert!(
        plain
            .iter()
            .all(|d| d.get("arguments").is_none() && d.get("result_sha256").is_none())
    );
    let last = docs.last().unwrap();
    assert_eq!(last["kind"], "checkpoint");
    assert_eq!(last["size"], u64::MAX);
}
