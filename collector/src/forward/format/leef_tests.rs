use std::collections::BTreeMap;

use super::{check_delimiter, sanitize};
use crate::forward::event::Event;
use calltrail_schemas::finding::Severity;

use crate::forward::format::testdata::{
    NASTY, StoredFindings, checkpoints, encode, finding, stored, with_payloads,
};
use crate::forward::format::{FormatError, FormatKind, FormatOptions};

/// Header fields and pairs of one LEEF line split on `delimiter`, failing on a repeated key.
fn parse(line: &str, delimiter: char) -> (Vec<&str>, BTreeMap<&str, &str>) {
    let parts: Vec<&str> = line.splitn(7, '|').collect();
    assert_eq!(parts.len(), 7, "{line:?}");
    let mut pairs = BTreeMap::new();
    for pair in parts[6].split(delimiter) {
        let (k, v) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("no = in {pair:?}"));
        assert!(pairs.insert(k, v).is_none(), "{k} twice in {line:?}");
    }
    (parts[..6].to_vec(), pairs)
}

fn options(delimiter: char) -> FormatOptions {
    FormatOptions {
        leef_delimiter: delimiter,
        ..with_payloads()
    }
}

#[test]
fn header_names_version_event_id_and_delimiter() {
    let s = stored();
    let line = encode(
        FormatKind::Leef,
        &FormatOptions::default(),
        &Event::Record(s[0].row(0)),
    );
    let (header, pairs) = parse(&line, '\t');
    assert_eq!(
        header,
        [
            "LEEF:2.0",
            "Calltrail",
            "Calltrail",
            env!("CARGO_PKG_VERSION"),
            "tool_call.write.ok",
            "0x09"
        ]
    );
    assert_eq!(pairs["eventId"], "0190a6f0-0000-8000-8000-000000000001");
    assert_eq!(pairs["chainId"], "w-01");
    assert_eq!(pairs["seq"], "1");
    assert_eq!(pairs["leafHash"], "01".repeat(32));
    assert_eq!(pairs["devTime"], "2026-11-23T10:00:00.000Z");
    assert_eq!(pairs["devTimeFormat"], "yyyy-MM-dd'T'HH:mm:ss.SSSX");
    assert_eq!(pairs["cat"], "tool_call");
    assert_eq!(pairs["sev"], "3");
    assert_eq!(pairs["usrName"], "alice@bank.example");
    assert_eq!(pairs["src"], "192.0.2.10");
    assert_eq!(pairs["srcPort"], "51000");
    assert_eq!(pairs["dst"], "2001:db8::5");
    assert!(
        !pairs.contains_key("argumentsSha256"),
        "payloads are opt-in"
    );
}

#[test]
fn printable_delimiters_are_literal_others_hex() {
    let s = stored();
    let row = Event::Record(s[0].row(0));
    for (d, shown) in [
        ('^', "^"),
        ('|', "0x7c"),
        ('\t', "0x09"),
        ('\u{1f}', "0x1f"),
    ] {
        let line = encode(FormatKind::Leef, &options(d), &row);
        let (header, pairs) = parse(&line, d);
        assert_eq!(header[5], shown);
        assert_eq!(pairs["eventId"], "0190a6f0-0000-8000-8000-000000000001");
    }
}

#[test]
fn unusable_delimiters_are_refused() {
    for d in ['a', 'Z', '7', '=', '\\', '\n', '\r', '\0', ' ', 'é'] {
        assert!(
            matches!(check_delimiter(d), Err(FormatError::LeefDelimiter(c)) if c == d),
            "{d:?}"
        );
    }
    for d in ['\t', '^', '|', ';', '\u{1}'] {
        assert!(check_delimiter(d).is_ok(), "{d:?}");
    }
}

#[test]
fn values_lose_the_delimiter_and_control_characters() {
    let mut out = Vec::new();
    sanitize("a^b\tc\nd\re=f|g ü", '^', &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "a b c d e=f|g ü");
}

#[test]
fn nasty_values_never_split_a_pair() {
    let s = stored();
    for d in ['\t', '^', '|'] {
        let line = encode(FormatKind::Leef, &options(d), &Event::Record(s[0].row(3)));
        assert!(!line.contains('\n') && !line.contains('\r'));
        let (_, pairs) = parse(&line, d);
        let clean: String = NASTY
            .chars()
            .map(|c| if c == d || c.is_control() { ' ' } else { c })
            .collect();
        assert_eq!(pairs["msg"], clean, "delimiter {d:?}");
        assert_eq!(pairs["arguments"], clean);
        assert_eq!(pairs["srcHost"], clean);
        assert!(!pairs.contains_key("team"), "an empty team is left out");
    }
}

#[test]
fn nulls_leave_keys_out_but_never_the_identity() {
    let s = stored();
    let line = encode(
        FormatKind::Leef,
        &FormatOptions::default(),
        &Event::Record(s[0].row(2)),
    );
    let (header, pairs) = parse(&line, '\t');
    assert_eq!(header[4], "tool_call.unknown.protocol_error");
    for absent in ["usrName", "src", "dst", "team", "tenant", "mcpServer"] {
        assert!(!pairs.contains_key(absent), "{absent}");
    }
    for present in ["eventId", "chainId", "seq", "leafHash", "devTime", "sev"] {
        assert!(pairs.contains_key(present), "{present}");
    }
}

#[test]
fn checkpoint_carries_size_and_root() {
    let cps = checkpoints();
    let line = encode(
        FormatKind::Leef,
        &FormatOptions::default(),
        &Event::Checkpoint(&cps[0]),
    );
    let (header, pairs) = parse(&line, '\t');
    assert_eq!(header[4], "checkpoint");
    assert_eq!(pairs["eventId"], "checkpoint:w-01:42:1795428000");
    assert_eq!(pairs["treeSize"], "42");
    assert_eq!(pairs["rootHash"], "ab".repeat(32));
    assert_eq!(pairs["devTime"], "2026-11-23T10:00:00.000Z");
    assert!(!pairs["msg"].contains('\n'));
}

#[test]
fn a_finding_has_its_event_id_severity_and_sanitised_explanation() {
    let mut f = finding();
    f.explanation = format!("tab\there, new\nline, pipe | and = stay {NASTY}");
    let s = StoredFindings::new(std::slice::from_ref(&f));
    let line = encode(
        FormatKind::Leef,
        &FormatOptions::default(),
        &Event::Finding(s.row(0)),
    );
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    let (header, pairs) = parse(&line, '\t');
    assert_eq!(header[4], "finding.D1.volume_spike");
    assert_eq!(pairs["sev"], "7");
    assert_eq!(pairs["cat"], "finding");
    assert_eq!(pairs["eventId"], f.finding_id);
    assert_eq!(pairs["devTime"], "2026-11-23T10:05:00.000Z");
    assert_eq!(pairs["windowStart"], "2026-11-23T09:00:00.000Z");
    assert_eq!(pairs["windowEnd"], "2026-11-23T10:00:00.000Z");
    assert_eq!(pairs["usrName"], "alice@bank.example");
    assert_eq!(pairs["detector"], "D1");
    assert_eq!(pairs["rule"], "volume_spike");
    assert_eq!(pairs["findingSeverity"], "high");
    assert_eq!(pairs["entityKind"], "user");
    assert_eq!(pairs["entity"], "alice@bank.example");
    assert_eq!(pairs["target"], "crm.delete_contact");
    assert_eq!(pairs["mcpServer"], "crm");
    assert_eq!(pairs["observed"], "412");
    assert_eq!(pairs["expected"], "12.5");
    assert_eq!(pairs["score"], "11.5");
    let mut want = String::new();
    for c in f.explanation.chars() {
        want.push(if c.is_control() { ' ' } else { c });
    }
    assert_eq!(
        pairs["msg"], want,
        "controls (and the delimiter) become spaces"
    );
    assert!(!pairs.contains_key("seq") && !pairs.contains_key("chainId"));
    for (severity, sev) in [
        (Severity::Low, "3"),
        (Severity::Medium, "5"),
        (Severity::Critical, "9"),
    ] {
        let mut g = finding();
        g.severity = severity;
        let s = StoredFindings::new(&[g]);
        let line = encode(
            FormatKind::Leef,
            &FormatOptions::default(),
            &Event::Finding(s.row(0)),
        );
        assert_eq!(parse(&line, '\t').1["sev"], sev);
    }
}
