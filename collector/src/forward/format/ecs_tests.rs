use serde_json::{Value, json};

use crate::forward::event::Event;
use calltrail_schemas::finding::Severity;

use crate::forward::format::testdata::{
    StoredFindings, checkpoints, encode, finding, stored, with_payloads,
};
use crate::forward::format::{FormatKind, FormatOptions};

fn doc(options: &FormatOptions, event: &Event<'_>) -> Value {
    serde_json::from_str(&encode(FormatKind::Ecs, options, event)).unwrap()
}

#[test]
fn tool_call_has_the_ecs_fields() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[0].row(0)));
    assert_eq!(v["@timestamp"], "2026-11-23T10:00:00.000000000Z");
    let e = &v["event"];
    assert_eq!(e["kind"], "event");
    assert_eq!(e["category"], json!(["api"]));
    assert_eq!(e["type"], json!(["creation"]));
    assert_eq!(e["action"], "tools/call");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["duration"], 12_500_000);
    assert_eq!(e["id"], "0190a6f0-0000-8000-8000-000000000001");
    assert_eq!(e["sequence"], 1);
    assert_eq!(e["hash"], "01".repeat(32));
    assert_eq!(
        v["user"],
        json!({"id": "alice@bank.example", "name": "alice@bank.example"})
    );
    assert_eq!(v["group"]["name"], "payments");
    assert_eq!(v["organization"]["id"], "acme-bank-eu");
    assert_eq!(v["service"]["name"], "crm");
    assert_eq!(
        v["source"],
        json!({"address": "192.0.2.10", "ip": "192.0.2.10", "port": 51000})
    );
    assert_eq!(v["destination"]["ip"], "2001:db8::5");
    assert_eq!(v["trace"]["id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v["span"]["id"], "00f067aa0ba902b7");
    assert_eq!(v["gen_ai"]["tool"]["name"], "crm.create_contact");
    assert_eq!(v["gen_ai"]["operation"]["name"], "execute_tool");
    let ct = &v["calltrail"];
    assert_eq!(
        (ct["chain_id"].clone(), ct["seq"].clone()),
        (json!("w-01"), json!(1))
    );
    assert_eq!(ct["leaf_hash"], "01".repeat(32));
    assert_eq!(ct["principal"]["kind"], "human");
    assert!(
        v["gen_ai"]["tool"]
            .get("call")
            .is_some_and(|c| c.get("arguments").is_none())
    );
    assert!(ct.get("arguments").is_none(), "payloads are opt-in");
}

#[test]
fn denied_and_failed_calls() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[0].row(1)));
    assert_eq!(v["event"]["type"], json!(["deletion", "denied"]));
    assert_eq!(v["event"]["outcome"], "failure");
    assert_eq!(
        v["error"],
        json!({"type": "403", "message": "policy forbids deleting contacts", "code": "-32001"})
    );
    assert_eq!(
        v["source"],
        json!({"address": "agent.internal.example", "domain": "agent.internal.example", "port": 51000})
    );
    let bare = doc(&FormatOptions::default(), &Event::Record(s[0].row(2)));
    assert_eq!(bare["event"]["type"], json!(["info", "error"]));
    for absent in ["user", "group", "organization", "source", "destination"] {
        assert!(bare.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn payloads_only_when_asked() {
    let s = stored();
    let v = doc(&with_payloads(), &Event::Record(s[0].row(1)));
    assert_eq!(v["gen_ai"]["tool"]["call"]["arguments"], r#"{"id":"c-1"}"#);
    assert_eq!(v["gen_ai"]["tool"]["call"]["result"], "denied");
    assert_eq!(v["calltrail"]["arguments"]["size"], 4);
}

#[test]
fn llm_call_has_gen_ai_usage() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[1].row(0)));
    assert_eq!(v["event"]["action"], "chat");
    assert_eq!(v["event"]["type"], json!(["info"]));
    assert_eq!(
        v["gen_ai"]["usage"],
        json!({"input_tokens": 1200, "output_tokens": 350})
    );
    assert_eq!(v["gen_ai"]["system"], "anthropic");
    assert_eq!(v["gen_ai"]["request"]["model"], "claude-sonnet-4");
    assert_eq!(v["calltrail"]["seq"], 10);
    let failed = doc(&FormatOptions::default(), &Event::Record(s[1].row(1)));
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["error"]["type"], "rate_limited");
}

#[test]
fn audit_and_checkpoint() {
    let s = stored();
    let v = doc(&FormatOptions::default(), &Event::Record(s[2].row(0)));
    assert_eq!(v["event"]["action"], "hold.placed");
    assert_eq!(v["event"]["type"], json!(["creation"]));
    assert_eq!(v["event"]["reason"], "FINRA inquiry 17");
    assert_eq!(v["user"]["id"], "carol@bank.example");
    assert_eq!(v["calltrail"]["details"], json!({"tenant": "acme-bank-eu"}));
    let cps = checkpoints();
    let c = doc(&FormatOptions::default(), &Event::Checkpoint(&cps[0]));
    assert_eq!(c["event"]["id"], "checkpoint:w-01:42:1795428000");
    assert_eq!(c["event"]["sequence"], 42);
    assert_eq!(c["event"]["hash"], "ab".repeat(32));
    assert_eq!(c["calltrail"]["checkpoint"]["size"], 42);
    assert!(c["calltrail"].get("leaf_hash").is_none());
}

#[test]
fn a_finding_is_an_alert_with_its_rule() {
    let f = finding();
    let s = StoredFindings::new(std::slice::from_ref(&f));
    let v = doc(&FormatOptions::default(), &Event::Finding(s.row(0)));
    assert_eq!(v["@timestamp"], "2026-11-23T10:05:00.000000000Z");
    assert_eq!(v["message"], f.explanation.as_str());
    let e = &v["event"];
    assert_eq!(e["kind"], "alert");
    assert_eq!(e["category"], json!(["intrusion_detection"]));
    assert_eq!(e["type"], json!(["info"]));
    assert_eq!(e["id"], f.finding_id.as_str());
    assert_eq!(e["severity"], 3, "high is syslog error");
    assert_eq!(e["start"], "2026-11-23T09:00:00.000000000Z");
    assert_eq!(e["end"], "2026-11-23T10:00:00.000000000Z");
    assert_eq!(e["dataset"], "calltrail.anomalies");
    assert!(
        e.get("sequence").is_none() && e.get("hash").is_none(),
        "{e}"
    );
    assert!(e.get("outcome").is_none(), "an alert has no outcome: {e}");
    assert_eq!(
        v["rule"],
        json!({"id": "D1", "name": "volume_spike", "ruleset": "calltrail"})
    );
    assert_eq!(v["user"]["name"], "alice@bank.example");
    assert_eq!(v["group"]["name"], "payments");
    assert_eq!(v["organization"]["id"], "acme-bank-eu");
    assert_eq!(v["service"]["name"], "crm");
    assert_eq!(v["gen_ai"]["tool"]["name"], "crm.delete_contact");
    assert_eq!(v["observer"]["product"], "Calltrail");
    let ct = &v["calltrail"];
    assert_eq!(ct["kind"], "finding");
    assert_eq!(ct["event_id"], f.finding_id.as_str());
    assert_eq!(
        ct["finding"],
        json!({"detector": "D1", "rule": "volume_spike", "severity": "high",
               "entity_kind": "user", "entity": "alice@bank.example",
               "observed": 412.0, "expected": 12.5, "score": 11.5})
    );
    for (severity, syslog) in [
        (Severity::Low, 5),
        (Severity::Medium, 4),
        (Severity::High, 3),
        (Severity::Critical, 2),
    ] {
        let mut g = finding();
        g.severity = severity;
        g.principal = None;
        let s = StoredFindings::new(&[g]);
        let v = doc(&FormatOptions::default(), &Event::Finding(s.row(0)));
        assert_eq!(v["event"]["severity"], syslog);
        assert!(v.get("user").is_none(), "{v}");
    }
}
