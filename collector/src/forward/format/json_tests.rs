use serde_json::Value;

use crate::forward::event::Event;
use crate::forward::format::testdata::{
    NASTY, StoredFindings, checkpoints, encode, finding, stored, with_payloads,
};
use crate::forward::format::{FormatKind, FormatOptions};

fn doc(options: &FormatOptions, event: &Event<'_>) -> (String, Value) {
    let text = encode(FormatKind::Json, options, event);
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

#[test]
fn a_row_is_its_columns_in_stored_order_after_kind() {
    let s = stored();
    let row = s[0].row(0);
    let (text, v) = doc(&FormatOptions::default(), &Event::Record(row));
    assert!(
        text.starts_with(r#"{"kind":"tool_call","schema_version":2,"event_id":"#),
        "{text}"
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = row
        .column_names()
        .filter(|c| !super::PAYLOAD_COLUMNS.contains(c))
        .collect();
    expected.push("kind");
    let (mut a, mut b) = (keys.clone(), expected.clone());
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    // Stored order: `seq` comes after `chain_id`, which comes after `resource_attributes`.
    let pos = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    assert!(pos("resource_attributes") < pos("chain_id") && pos("chain_id") < pos("seq"));
    assert_eq!(v["start_time"], "2026-11-23T10:00:00.000000000Z");
    assert_eq!(v["end_time"], "2026-11-23T10:00:00.012500000Z");
    assert_eq!(v["duration_ms"], 12.5);
    assert_eq!(v["client_port"], 51000);
    assert_eq!(v["is_request"], true);
    assert_eq!(v["leaf_hash"], "01".repeat(32));
    assert_eq!(v["chain_hash"], "a0".repeat(32));
    assert_eq!(v["seq"], 1);
    assert_eq!(v["attributes"], serde_json::json!({"mcp.extra": "1"}));
    assert!(
        v.get("arguments_sha256").is_none(),
        "payload columns are opt-in"
    );
}

#[test]
fn payload_columns_with_include_payloads() {
    let s = stored();
    let (_, v) = doc(&with_payloads(), &Event::Record(s[0].row(1)));
    assert_eq!(v["arguments"], r#"{"id":"c-1"}"#);
    assert_eq!(v["arguments_size"], 4);
    assert_eq!(v["result"], "denied");
    assert!(v["result_sha256"].is_string());
}

#[test]
fn nulls_are_null_and_nasty_values_survive() {
    let s = stored();
    let (_, bare) = doc(&with_payloads(), &Event::Record(s[0].row(2)));
    for column in [
        "principal",
        "team",
        "client_port",
        "arguments",
        "parent_span_id",
    ] {
        assert_eq!(bare[column], Value::Null, "{column}");
    }
    assert_eq!(bare["attributes"], serde_json::json!({}));
    let (text, nasty) = doc(&with_payloads(), &Event::Record(s[0].row(3)));
    assert!(!text.contains('\n'), "newlines are escaped");
    assert_eq!(nasty["error_message"], NASTY);
    assert_eq!(nasty["team"], "");
    assert_eq!(nasty["attributes"][NASTY], NASTY);
}

#[test]
fn llm_and_audit_rows() {
    let s = stored();
    let (_, llm) = doc(&FormatOptions::default(), &Event::Record(s[1].row(0)));
    assert_eq!(llm["kind"], "llm_call");
    assert_eq!(llm["input_tokens"], 1200);
    let (_, audit) = doc(&FormatOptions::default(), &Event::Record(s[2].row(0)));
    assert_eq!(audit["kind"], "audit");
    assert_eq!(audit["time"], "2026-11-23T11:00:00.000000000Z");
    assert_eq!(
        audit["details"],
        serde_json::json!({"tenant": "acme-bank-eu"})
    );
    assert_eq!(audit["seq"], 20);
}

#[test]
fn checkpoint_has_exactly_its_keys() {
    let cps = checkpoints();
    let (text, v) = doc(&FormatOptions::default(), &Event::Checkpoint(&cps[0]));
    assert!(text.starts_with(r#"{"kind":"checkpoint","event_id":"checkpoint:w-01:42:1795428000","chain_id":"w-01","origin":"calltrail/w-01","size":42,"root":"#), "{text}");
    assert_eq!(v["timestamp"], "2026-11-23T10:00:00.000000000Z");
    assert_eq!(v["note"], cps[0].note);
    assert_eq!(v.as_object().unwrap().len(), 8);
    let (_, bare) = doc(&FormatOptions::default(), &Event::Checkpoint(&cps[1]));
    assert_eq!(bare["timestamp"], Value::Null);
    assert_eq!(bare["size"], 0);
}

#[test]
fn a_finding_is_its_row_after_kind_finding() {
    let f = finding();
    let s = StoredFindings::new(std::slice::from_ref(&f));
    let (text, v) = doc(&FormatOptions::default(), &Event::Finding(s.row(0)));
    assert!(
        text.starts_with(&format!(
            r#"{{"kind":"finding","finding_id":"{}","detector":"D1","rule":"volume_spike","severity":"high","#,
            f.finding_id
        )),
        "{text}"
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys.len(),
        1 + calltrail_schemas::finding::anomalies_schema()
            .fields()
            .len()
    );
    assert_eq!(v["window_start"], "2026-11-23T09:00:00.000000000Z");
    assert_eq!(v["detected_at"], "2026-11-23T10:05:00.000000000Z");
    assert_eq!(v["observed"], 412.0);
    assert_eq!(v["expected"], 12.5);
    assert_eq!(v["explanation"], f.explanation.as_str());
    let mut bare = finding();
    bare.principal = None;
    bare.expected = None;
    bare.explanation = NASTY.into();
    let s = StoredFindings::new(&[bare]);
    let (_, v) = doc(&with_payloads(), &Event::Finding(s.row(0)));
    assert_eq!(v["principal"], Value::Null);
    assert_eq!(v["expected"], Value::Null);
    assert_eq!(v["explanation"], NASTY, "JSON carries any text exactly");
}
