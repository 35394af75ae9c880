use serde_json::{Value, json};

use super::{MAX_STRING, clamp_strings, is_hostname};
use crate::forward::event::{Columns, Event, FindingRow, RecordRow};
use crate::forward::format::testdata::{
    StoredFindings, checkpoints, encode, finding, stored, tool_call, with_payloads,
};
use crate::forward::format::{FormatKind, FormatOptions};
use calltrail_schemas::arrow_schema::{ChainColumns, TOOL_CALLS, tool_calls_batch, with_chain};
use calltrail_schemas::finding::{Finding, Severity};
use calltrail_schemas::record::{OperationClass, Outcome};

fn doc(options: &FormatOptions, event: &Event<'_>) -> Value {
    serde_json::from_str(&encode(FormatKind::Ocsf, options, event)).unwrap()
}

/// The OCSF document of one tool call, built alone.
fn tool_doc(class: OperationClass, tool: &str, outcome: Outcome) -> Value {
    let mut call = tool_call();
    call.operation_class = class;
    call.tool_name = Some(tool.into());
    call.outcome = outcome;
    let content = tool_calls_batch(&[&call]).unwrap();
    let batch = with_chain(
        &content,
        ChainColumns {
            chain_id: "c",
            first_seq: 7,
            leaf_hashes: &[[7; 32]],
            chain_hashes: &[[8; 32]],
        },
    )
    .unwrap();
    let columns = Columns::new(TOOL_CALLS, &batch);
    doc(
        &FormatOptions::default(),
        &Event::Record(RecordRow::new(&batch, &columns, 0)),
    )
}

#[test]
fn activity_follows_the_operation_class() {
    for (class, tool, id, name) in [
        (OperationClass::Read, "crm.get_contact", 2, "Read"),
        (OperationClass::Write, "crm.create_contact", 1, "Create"),
        (OperationClass::Write, "crm.CreateInvoice", 1, "Create"),
        (OperationClass::Write, "crm.update_contact", 3, "Update"),
        (OperationClass::Delete, "crm.delete_contact", 4, "Delete"),
        (OperationClass::Admin, "iam.grant_role", 99, "Other"),
        (OperationClass::Unknown, "misc", 0, "Unknown"),
    ] {
        let v = tool_doc(class, tool, Outcome::Ok);
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["category_uid"], 6);
        assert_eq!(v["activity_id"], id, "{tool}");
        assert_eq!(v["activity_name"], name);
        assert_eq!(v["type_uid"], 600300 + id);
        assert_eq!(v["type_name"], format!("API Activity: {name}"));
    }
}

#[test]
fn status_and_severity_follow_the_outcome() {
    let ok = tool_doc(OperationClass::Read, "t", Outcome::Ok);
    assert_eq!(
        (ok["status_id"].clone(), ok["status"].clone()),
        (json!(1), json!("Success"))
    );
    assert_eq!(ok["severity_id"], 1);
    let denied = tool_doc(OperationClass::Read, "t", Outcome::Denied);
    assert_eq!(
        (denied["status_id"].clone(), denied["status_code"].clone()),
        (json!(2), json!("denied"))
    );
    assert_eq!(denied["severity_id"], 3);
    let write = tool_doc(OperationClass::Write, "t", Outcome::Ok);
    assert_eq!(write["severity_id"], 2);
}

#[test]
fn tool_call_maps_actor_api_endpoints_and_identity() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[0].row(0)));
    assert_eq!(v["time"], 1_795_428_000_000_i64);
    assert_eq!(v["duration"], 12);
    assert_eq!(v["metadata"]["version"], "1.3.0");
    assert_eq!(v["metadata"]["product"]["vendor_name"], "Calltrail");
    assert_eq!(v["metadata"]["uid"], "0190a6f0-0000-8000-8000-000000000001");
    assert_eq!(v["metadata"]["sequence"], 1);
    assert_eq!(
        v["metadata"]["correlation_uid"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(v["metadata"]["tenant_uid"], "acme-bank-eu");
    let ct = &v["unmapped"]["calltrail"];
    assert_eq!(ct["chain_id"], "w-01");
    assert_eq!(ct["seq"], 1);
    assert_eq!(ct["leaf_hash"], "01".repeat(32));
    assert_eq!(
        v["actor"]["user"],
        json!({"uid": "alice@bank.example", "name": "alice@bank.example", "type_id": 1, "type": "User"})
    );
    assert_eq!(v["actor"]["app_name"], "claude-desktop");
    assert_eq!(v["api"]["operation"], "tools/call");
    assert_eq!(v["api"]["service"]["name"], "crm");
    assert_eq!(v["api"]["request"]["uid"], "42");
    assert_eq!(
        v["src_endpoint"],
        json!({"ip": "192.0.2.10", "port": 51000, "svc_name": "claude-desktop"})
    );
    assert_eq!(
        v["dst_endpoint"],
        json!({"ip": "2001:db8::5", "port": 8443, "svc_name": "crm"})
    );
    assert_eq!(
        v["resources"],
        json!([{"name": "crm.create_contact", "type": "tool"}])
    );
    assert!(ct.get("arguments_sha256").is_none(), "payloads are opt-in");
    assert!(v.get("ai_model").is_none());
}

#[test]
fn required_attributes_exist_when_the_record_is_bare() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[0].row(2)));
    assert_eq!(v["actor"], json!({"app_name": "unknown"}));
    assert_eq!(v["src_endpoint"], json!({"name": "unknown"}));
    assert!(v.get("dst_endpoint").is_none());
    assert_eq!(v["api"]["operation"], "resources/read");
    assert_eq!(
        v["resources"],
        json!([{"name": "file:///etc/motd", "type": "resource", "uid": "file:///etc/motd"}])
    );
    assert_eq!(v["activity_id"], 0);
    assert_eq!(v["status_id"], 2);
}

#[test]
fn odd_addresses_go_to_hostname_or_name() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[0].row(1)));
    assert_eq!(v["src_endpoint"]["hostname"], "agent.internal.example");
    assert_eq!(v["actor"]["user"]["type_id"], 99);
    let v = doc(&FormatOptions::default(), &Event::Record(s[0].row(3)));
    assert!(v["src_endpoint"].get("hostname").is_none());
    assert!(v["src_endpoint"]["name"].as_str().unwrap().contains('|'));
    assert!(
        is_hostname("a-1.b.example")
            && !is_hostname("-a")
            && !is_hostname("a..b")
            && !is_hostname("")
    );
}

#[test]
fn payloads_only_when_asked() {
    let s = stored();
    let v = doc(&with_payloads(), &Event::Record(s[0].row(1)));
    let ct = &v["unmapped"]["calltrail"];
    assert_eq!(ct["arguments"], r#"{"id":"c-1"}"#);
    assert_eq!(ct["arguments_size"], 4);
    assert_eq!(ct["result"], "denied");
}

#[test]
fn llm_call_has_ai_operation_only_when_asked() {
    let s = stored();
    let plain = doc(&FormatOptions::default(), &Event::Record(s[1].row(0)));
    assert_eq!(plain["class_uid"], 6003);
    assert_eq!(plain["activity_id"], 99);
    assert_eq!(plain["api"]["operation"], "chat");
    assert!(plain.get("ai_model").is_none() && plain.get("message_context").is_none());
    assert_eq!(plain["unmapped"]["calltrail"]["input_tokens"], 1200);
    let ai = FormatOptions {
        ocsf_ai_operation: true,
        ..FormatOptions::default()
    };
    let v = doc(&ai, &Event::Record(s[1].row(0)));
    assert_eq!(v["metadata"]["version"], "1.8.0");
    assert_eq!(v["metadata"]["profiles"], json!(["ai_operation"]));
    assert_eq!(
        v["ai_model"],
        json!({"name": "claude-sonnet-4-20250514", "ai_provider": "anthropic"})
    );
    assert_eq!(v["message_context"]["prompt_tokens"], 1200);
    assert_eq!(v["message_context"]["completion_tokens"], 350);
    assert_eq!(v["message_context"]["total_tokens"], 1550);
    let failed = doc(&ai, &Event::Record(s[1].row(1)));
    assert!(failed.get("ai_model").is_none(), "no model, no ai_model");
    assert_eq!(failed["status_id"], 2);
}

#[test]
fn audit_events_are_api_activity_on_calltrail() {
    let s = stored();
    let placed = doc(&FormatOptions::default(), &Event::Record(s[2].row(0)));
    assert_eq!(placed["class_uid"], 6003);
    assert_eq!(placed["activity_id"], 1);
    assert_eq!(placed["api"]["operation"], "hold.placed");
    assert_eq!(placed["actor"]["user"]["uid"], "carol@bank.example");
    assert_eq!(
        placed["resources"],
        json!([{"uid": "hold-5d5b2f628cc0", "type": "legal_hold"}])
    );
    assert_eq!(placed["metadata"]["sequence"], 20);
    let released = doc(&FormatOptions::default(), &Event::Record(s[2].row(1)));
    assert_eq!(released["activity_id"], 3);
}

#[test]
fn checkpoint_is_a_base_event() {
    let cps = checkpoints();
    let v = doc(&FormatOptions::default(), &Event::Checkpoint(&cps[0]));
    assert_eq!(v["class_uid"], 0);
    assert_eq!(v["category_uid"], 0);
    assert_eq!(v["activity_id"], 99);
    assert_eq!(v["type_uid"], 99);
    assert_eq!(v["time"], 1_795_428_000_000_i64);
    assert_eq!(v["metadata"]["uid"], "checkpoint:w-01:42:1795428000");
    assert_eq!(v["metadata"]["sequence"], 42);
    let ct = &v["unmapped"]["calltrail"];
    assert_eq!(ct["size"], 42);
    assert_eq!(ct["root"], "ab".repeat(32));
    assert_eq!(ct["note"], cps[0].note);
}

#[test]
fn long_strings_are_cut_at_a_character_boundary() {
    let mut v = json!({"a": ["é".repeat(MAX_STRING)], "b": "short"});
    clamp_strings(&mut v);
    let a = v["a"][0].as_str().unwrap();
    assert!(a.len() <= MAX_STRING && a.len() > MAX_STRING - 2);
    assert_eq!(v["b"], "short");
}

#[test]
fn a_seq_past_integer_t_stays_only_in_unmapped() {
    let mut call = tool_call();
    call.jsonrpc_code = Some(1 << 40);
    let content = tool_calls_batch(&[&call]).unwrap();
    let batch = with_chain(
        &content,
        ChainColumns {
            chain_id: "c",
            first_seq: 1 << 40,
            leaf_hashes: &[[7; 32]],
            chain_hashes: &[[8; 32]],
        },
    )
    .unwrap();
    let columns = Columns::new(TOOL_CALLS, &batch);
    let v = doc(
        &FormatOptions::default(),
        &Event::Record(RecordRow::new(&batch, &columns, 0)),
    );
    assert!(v["metadata"].get("sequence").is_none());
    assert_eq!(v["unmapped"]["calltrail"]["seq"], 1_u64 << 40);
    assert!(
        v["api"]
            .get("response")
            .is_none_or(|r| r.get("code").is_none())
    );
}

/// The OCSF document of one finding, stored alone.
fn finding_doc(f: &Finding, options: &FormatOptions) -> Value {
    let s = StoredFindings::new(std::slice::from_ref(f));
    doc(options, &Event::Finding(s.row(0)))
}

#[test]
fn a_finding_is_a_detection_finding_created() {
    let f = finding();
    let v = finding_doc(&f, &FormatOptions::default());
    assert_eq!(v["class_uid"], 2004);
    assert_eq!(v["class_name"], "Detection Finding");
    assert_eq!(v["category_uid"], 2);
    assert_eq!(v["category_name"], "Findings");
    assert_eq!(
        (v["activity_id"].clone(), v["activity_name"].clone()),
        (json!(1), json!("Create"))
    );
    assert_eq!(v["type_uid"], 200401);
    assert_eq!(v["type_name"], "Detection Finding: Create");
    assert_eq!(
        (v["status_id"].clone(), v["status"].clone()),
        (json!(1), json!("New"))
    );
    assert_eq!(v["time"], 1_795_428_300_000_i64, "detected_at, ms");
    assert_eq!(v["start_time"], 1_795_424_400_000_i64);
    assert_eq!(v["end_time"], 1_795_428_000_000_i64);
    assert_eq!(v["message"], f.explanation.as_str());
    let info = &v["finding_info"];
    assert_eq!(info["uid"], f.finding_id.as_str());
    assert_eq!(info["title"], "volume_spike (D1)");
    assert_eq!(info["desc"], f.explanation.as_str());
    assert_eq!(info["types"], json!(["D1"]));
    assert_eq!(
        info["analytic"],
        json!({"uid": "D1", "name": "volume_spike", "type_id": 2, "type": "Behavioral"})
    );
    assert_eq!(info["created_time"], 1_795_428_300_000_i64);
    assert_eq!(info["first_seen_time"], 1_795_424_400_000_i64);
    assert_eq!(info["last_seen_time"], 1_795_428_000_000_i64);
    let md = &v["metadata"];
    assert_eq!(md["uid"], f.finding_id.as_str());
    assert_eq!(md["version"], "1.3.0");
    assert_eq!(md["log_name"], "anomalies");
    assert_eq!(md["tenant_uid"], "acme-bank-eu");
    assert_eq!(md["product"]["name"], "Calltrail");
    assert_eq!(md["product"]["vendor_name"], "Calltrail");
    assert!(
        md.get("sequence").is_none(),
        "findings are not chained: {md}"
    );
    assert_eq!(
        md["profiles"],
        json!(["host"]),
        "actor is the host profile's"
    );
    assert_eq!(v["actor"]["user"]["name"], "alice@bank.example");
    assert_eq!(v["actor"]["user"]["uid"], "alice@bank.example");
    assert_eq!(
        v["resources"],
        json!([{"name": "crm", "type": "mcp_server"}, {"name": "crm.delete_contact", "type": "tool"}])
    );
    assert_eq!(
        v["evidences"],
        json!([{"data": {"observed": 412.0, "expected": 12.5, "score": 11.5}}])
    );
    let ct = &v["unmapped"]["calltrail"];
    assert_eq!(ct["kind"], "finding");
    assert_eq!(ct["event_id"], f.finding_id.as_str());
    assert_eq!(ct["severity"], "high");
    assert_eq!(
        (ct["entity_kind"].clone(), ct["entity"].clone()),
        (json!("user"), json!("alice@bank.example"))
    );
    assert_eq!(ct["team"], "payments");
    assert!(
        ct.get("chain_id").is_none() && ct.get("seq").is_none(),
        "{ct}"
    );
}

#[test]
fn finding_severities_low_to_critical_are_2_to_5() {
    for (severity, id, name) in [
        (Severity::Low, 2, "Low"),
        (Severity::Medium, 3, "Medium"),
        (Severity::High, 4, "High"),
        (Severity::Critical, 5, "Critical"),
    ] {
        let mut f = finding();
        f.severity = severity;
        let v = finding_doc(&f, &FormatOptions::default());
        assert_eq!(
            (v["severity_id"].clone(), v["severity"].clone()),
            (json!(id), json!(name))
        );
    }
}

#[test]
fn a_finding_without_principal_resources_or_baseline_leaves_them_out() {
    let mut f = finding();
    f.principal = None;
    f.server_name = None;
    f.tool_name = None;
    f.expected = None;
    f.tenant = None;
    let v = finding_doc(&f, &FormatOptions::default());
    assert!(v.get("actor").is_none(), "{v}");
    assert!(v.get("resources").is_none(), "{v}");
    assert!(v["metadata"].get("profiles").is_none(), "{v}");
    assert!(v["metadata"].get("tenant_uid").is_none(), "{v}");
    assert_eq!(
        v["evidences"],
        json!([{"data": {"observed": 412.0, "score": 11.5}}])
    );
    // With the 1.8 option, the finding declares 1.8.0 like every other event.
    let v = finding_doc(
        &finding(),
        &FormatOptions {
            ocsf_ai_operation: true,
            ..FormatOptions::default()
        },
    );
    assert_eq!(v["metadata"]["version"], "1.8.0");
    assert_eq!(v["metadata"]["profiles"], json!(["host"]));
}

#[test]
fn an_unknown_severity_is_medium_and_odd_text_is_kept() {
    let s = StoredFindings::new(&[finding()]);
    // A severity the table does not define (a newer detector, a hand-edited file).
    let mut columns: Vec<arrow::array::ArrayRef> = s.batch.columns().to_vec();
    let i = s.batch.schema().index_of("severity").unwrap();
    columns[i] = std::sync::Arc::new(arrow::array::StringArray::from(vec!["severe"]));
    let batch = arrow::array::RecordBatch::try_new(s.batch.schema(), columns).unwrap();
    let cols = Columns::new(calltrail_schemas::finding::ANOMALIES, &batch);
    let v = doc(
        &FormatOptions::default(),
        &Event::Finding(FindingRow::new(&batch, &cols, 0)),
    );
    assert_eq!(v["severity_id"], 3);
    assert_eq!(v["unmapped"]["calltrail"]["severity"], "severe");
}
