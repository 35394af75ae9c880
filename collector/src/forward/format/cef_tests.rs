use std::collections::BTreeMap;

use super::{escape_header, escape_value};
use crate::forward::event::Event;
use calltrail_schemas::finding::{Finding, Severity};

use crate::forward::format::testdata::{
    NASTY, StoredFindings, checkpoints, encode, finding, stored, with_payloads,
};
use crate::forward::format::{FormatKind, FormatOptions};

fn esc_value(s: &str) -> String {
    let mut out = Vec::new();
    escape_value(s, &mut out);
    String::from_utf8(out).unwrap()
}

fn esc_header(s: &str) -> String {
    let mut out = Vec::new();
    escape_header(s, &mut out);
    String::from_utf8(out).unwrap()
}

/// A strict reader of one CEF line: the 7 header fields (unescaped) and the extension's
/// pairs (unescaped), failing on a repeated key.
fn parse(line: &str) -> (Vec<String>, BTreeMap<String, String>) {
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next().expect("header ends early") {
            '\\' => field.push(chars.next().expect("dangling escape")),
            '|' => header.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    // Pairs: a key runs to an unescaped `=`; its value runs to the last space before the next
    // unescaped `=`.
    let ext: Vec<char> = chars.collect();
    let mut eq = Vec::new();
    let mut i = 0;
    while i < ext.len() {
        match ext[i] {
            '\\' => i += 1,
            '=' => eq.push(i),
            _ => {}
        }
        i += 1;
    }
    let mut pairs = BTreeMap::new();
    let mut key_start = 0;
    for (n, &e) in eq.iter().enumerate() {
        let key: String = ext[key_start..e].iter().collect();
        let value_end = match eq.get(n + 1) {
            Some(&next) => {
                let space = ext[..next].iter().rposition(|&c| c == ' ').unwrap();
                key_start = space + 1;
                space
            }
            None => ext.len(),
        };
        let raw: String = ext[e + 1..value_end].iter().collect();
        let mut value = String::new();
        let mut it = raw.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {raw:?}"),
                }
            } else {
                value.push(c);
            }
        }
        assert!(pairs.insert(key.clone(), value).is_none(), "{key} twice");
    }
    (header, pairs)
}

#[test]
fn extension_values_escape_backslash_equals_and_newlines() {
    assert_eq!(esc_value(r"a\b=c"), r"a\\b\=c");
    assert_eq!(esc_value("x\ny\rz"), r"x\ny\rz");
    assert_eq!(esc_value("p|q ]\"ü"), "p|q ]\"ü", "pipes and the rest stay");
    assert_eq!(esc_value(""), "");
}

#[test]
fn header_fields_escape_pipe_and_backslash() {
    assert_eq!(esc_header(r"a|b\c"), r"a\|b\\c");
    assert_eq!(esc_header("x\r\ny=z"), "x  y=z");
}

#[test]
fn tool_call_carries_id_chain_seq_and_leaf_hash() {
    let s = stored();
    let line = encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Record(s[0].row(0)),
    );
    let (header, ext) = parse(&line);
    assert_eq!(header[0], "CEF:0");
    assert_eq!(header[1], "Calltrail");
    assert_eq!(header[4], "tool_call.write.ok");
    assert_eq!(header[5], "MCP write call ok");
    assert_eq!(ext["externalId"], "0190a6f0-0000-8000-8000-000000000001");
    assert_eq!(
        (ext["cs1Label"].as_str(), ext["cs1"].as_str()),
        ("chainId", "w-01")
    );
    assert_eq!(
        (ext["cn1Label"].as_str(), ext["cn1"].as_str()),
        ("seq", "1")
    );
    assert_eq!(ext["cs2Label"], "leafHash");
    assert_eq!(ext["cs2"], "01".repeat(32));
    assert_eq!(ext["rt"], "1795428000000");
    assert_eq!(ext["end"], "1795428000012");
    assert_eq!(ext["act"], "tools/call");
    assert_eq!(ext["outcome"], "success");
    assert_eq!(ext["suser"], "alice@bank.example");
    assert_eq!(ext["src"], "192.0.2.10");
    assert_eq!(ext["dst"], "2001:db8::5");
    assert_eq!(ext["dpt"], "8443");
    assert_eq!(ext["cfp1"], "12.5");
    assert!(
        !ext.contains_key("calltrailArgumentsSha256"),
        "payloads are opt-in"
    );
}

#[test]
fn severity_follows_the_event() {
    let s = stored();
    let sev = |i| {
        parse(&encode(
            FormatKind::Cef,
            &FormatOptions::default(),
            &Event::Record(s[0].row(i)),
        ))
        .0[6]
            .clone()
    };
    assert_eq!(sev(0), "3", "a write is notice");
    assert_eq!(sev(1), "5", "a denied call is a warning");
}

#[test]
fn hostnames_go_to_shost_and_dhost() {
    let s = stored();
    let (_, ext) = parse(&encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Record(s[0].row(1)),
    ));
    assert_eq!(ext["shost"], "agent.internal.example");
    assert_eq!(ext["dhost"], "crm.internal.example");
    assert!(!ext.contains_key("src") && !ext.contains_key("dst"));
    assert_eq!(ext["reason"], "denied");
    assert_eq!(ext["outcome"], "failure");
    assert_eq!(
        (ext["cn2Label"].as_str(), ext["cn2"].as_str()),
        ("jsonrpcCode", "-32001")
    );
}

#[test]
fn nulls_leave_keys_out_but_never_the_identity() {
    let s = stored();
    let (_, ext) = parse(&encode(
        FormatKind::Cef,
        &with_payloads(),
        &Event::Record(s[0].row(2)),
    ));
    for absent in [
        "suser",
        "src",
        "shost",
        "spt",
        "dst",
        "dpt",
        "cs5",
        "cs6",
        "calltrailArguments",
    ] {
        assert!(!ext.contains_key(absent), "{absent} in {ext:?}");
    }
    for present in ["externalId", "cs1", "cn1", "cs2", "rt"] {
        assert!(ext.contains_key(present), "{present} missing");
    }
}

#[test]
fn nasty_values_round_trip() {
    let s = stored();
    let line = encode(
        FormatKind::Cef,
        &with_payloads(),
        &Event::Record(s[0].row(3)),
    );
    let (_, ext) = parse(&line);
    assert_eq!(ext["msg"], NASTY);
    assert_eq!(ext["calltrailArguments"], NASTY);
    assert_eq!(ext["suser"], format!("bob {NASTY}"));
    assert_eq!(ext["shost"], NASTY);
    assert_eq!(ext["cs4"], NASTY);
    assert!(!ext.contains_key("cs5"), "an empty team is left out");
    assert!(
        !ext.contains_key("calltrailResult"),
        "an empty result is left out"
    );
}

#[test]
fn payloads_only_when_asked() {
    let s = stored();
    let row = Event::Record(s[0].row(1));
    let (_, plain) = parse(&encode(FormatKind::Cef, &FormatOptions::default(), &row));
    let (_, full) = parse(&encode(FormatKind::Cef, &with_payloads(), &row));
    for key in [
        "calltrailArguments",
        "calltrailArgumentsSha256",
        "calltrailArgumentsSize",
        "calltrailResult",
    ] {
        assert!(!plain.contains_key(key));
        assert!(full.contains_key(key), "{key}");
    }
    assert_eq!(full["calltrailArguments"], r#"{"id":"c-1"}"#);
}

#[test]
fn llm_and_audit_events_use_their_own_slots() {
    let s = stored();
    let (header, llm) = parse(&encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Record(s[1].row(0)),
    ));
    assert_eq!(header[4], "llm_call.ok");
    assert_eq!(
        (llm["cs3Label"].as_str(), llm["cs3"].as_str()),
        ("model", "claude-sonnet-4-20250514")
    );
    assert_eq!(
        (llm["cn2Label"].as_str(), llm["cn2"].as_str()),
        ("inputTokens", "1200")
    );
    assert_eq!(
        (llm["cn3Label"].as_str(), llm["cn3"].as_str()),
        ("outputTokens", "350")
    );
    let (header, audit) = parse(&encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Record(s[2].row(1)),
    ));
    assert_eq!(header[4], "audit.hold.released");
    assert_eq!(audit["suser"], "carol@bank.example");
    assert_eq!(audit["reason"], NASTY);
    assert_eq!(audit["cs3"], "hold-5d5b2f628cc0");
    assert_eq!(audit["cn1"], "21");
}

#[test]
fn checkpoint_carries_size_and_root() {
    let cps = checkpoints();
    let (header, ext) = parse(&encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Checkpoint(&cps[0]),
    ));
    assert_eq!(header[4], "checkpoint");
    assert_eq!(ext["externalId"], "checkpoint:w-01:42:1795428000");
    assert_eq!(
        (ext["cn1Label"].as_str(), ext["cn1"].as_str()),
        ("treeSize", "42")
    );
    assert_eq!(
        (ext["cs2Label"].as_str(), ext["cs2"].as_str()),
        ("rootHash", "ab".repeat(32).as_str())
    );
    assert_eq!(ext["msg"], cps[0].note);
    assert_eq!(ext["rt"], "1795428000000");
    let (_, bare) = parse(&encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Checkpoint(&cps[1]),
    ));
    assert!(
        !bare.contains_key("rt") && !bare.contains_key("msg"),
        "{bare:?}"
    );
}

/// The CEF line of one finding, parsed.
fn finding_line(f: &Finding) -> (String, Vec<String>, BTreeMap<String, String>) {
    let s = StoredFindings::new(std::slice::from_ref(f));
    let line = encode(
        FormatKind::Cef,
        &FormatOptions::default(),
        &Event::Finding(s.row(0)),
    );
    let (header, ext) = parse(&line);
    (line, header, ext)
}

#[test]
fn a_finding_has_its_signature_severity_and_labelled_fields() {
    let f = finding();
    let (_, header, ext) = finding_line(&f);
    assert_eq!(header[4], "finding.D1.volume_spike");
    assert_eq!(header[5], "Finding D1 volume spike");
    assert_eq!(header[6], "7", "high");
    assert_eq!(ext["externalId"], f.finding_id);
    assert_eq!(ext["cat"], "finding");
    assert_eq!(ext["rt"], "1795428300000", "detected");
    assert_eq!(ext["start"], "1795424400000");
    assert_eq!(ext["end"], "1795428000000");
    assert_eq!(ext["msg"], f.explanation);
    assert_eq!(ext["suser"], "alice@bank.example");
    for (slot, label, value) in [
        ("cs1", "detector", "D1"),
        ("cs2", "rule", "volume_spike"),
        ("cs3", "target", "crm.delete_contact"),
        ("cs4", "mcpServer", "crm"),
        ("cs5", "team", "payments"),
        ("cs6", "tenant", "acme-bank-eu"),
        ("flexString1", "entityKind", "user"),
        ("flexString2", "entity", "alice@bank.example"),
        ("cfp2", "observed", "412"),
        ("cfp3", "expected", "12.5"),
        ("cfp4", "score", "11.5"),
    ] {
        assert_eq!(
            (ext[&format!("{slot}Label")].as_str(), ext[slot].as_str()),
            (label, value)
        );
    }
    assert_eq!(ext["calltrailSeverity"], "high");
    assert!(!ext.contains_key("cn1"), "no seq: findings are not chained");
    for (severity, cef) in [
        (Severity::Low, "3"),
        (Severity::Medium, "5"),
        (Severity::High, "7"),
        (Severity::Critical, "9"),
    ] {
        let mut g = finding();
        g.severity = severity;
        assert_eq!(finding_line(&g).1[6], cef, "{severity:?}");
    }
}

#[test]
fn a_finding_explanation_is_escaped_and_comes_back_exactly() {
    let mut f = finding();
    f.explanation = format!("x cs1=forged suser=mallory \\ {NASTY}\r\nend");
    f.rule = "odd|rule\\name".into();
    let (line, header, ext) = finding_line(&f);
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    assert!(
        line.contains(r"msg=x cs1\=forged suser\=mallory \\ "),
        "{line}"
    );
    assert_eq!(
        ext["msg"], f.explanation,
        "unescaped, the explanation is intact"
    );
    assert_eq!(
        ext["cs1"], "D1",
        "a forged pair inside a value is not a field"
    );
    assert_eq!(ext["suser"], "alice@bank.example");
    assert_eq!(
        header[4], "finding.D1.odd_rule_name",
        "signatures are tokens"
    );
    assert_eq!(ext["cs2"], "odd|rule\\name");
}
