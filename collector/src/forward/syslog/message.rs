//! Building one syslog message from an encoded event: RFC 5424 (header, Calltrail's
//! structured-data element, MSG) or RFC 3164 (header, TAG, a `key="value"` prefix, MSG).
//!
//! RFC 5424:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID event_id="…" chain_id="…" seq="…" hash="…" kind="…" tenant="…" principal="…"] [BOM]MSG
//! ```
//!
//! - PRI = facility × 8 + the event's severity;
//! - TIMESTAMP = the event's time in UTC, `YYYY-MM-DDThh:mm:ss.ffffffZ` (always 6 digits);
//! - HOSTNAME, APP-NAME, PROCID (Calltrail's process id), MSGID (the event kind) are printable
//!   US-ASCII cut to 255, 48, 128 and 32 characters (anything else becomes `_`; empty is `-`);
//! - structured data: `tenant` and `principal` are left out when unknown; in every value `"`,
//!   `\` and `]` are escaped as `\"`, `\\` and `\]`, and control characters are replaced with
//!   U+FFFD so that no value can break a line;
//! - MSG is the formatted payload (CEF, LEEF, JSON...) preceded by a UTF-8 BOM (RFC 5424 §6.4)
//!   when it holds any non-ASCII character, and without one when it is pure ASCII (a valid
//!   MSG-ANY, and what JSON and CEF parsers downstream read most easily). Bytes that are not
//!   UTF-8 are replaced with U+FFFD. An empty payload sends no MSG.
//!
//! RFC 3164:
//!
//! ```text
//! <PRI>Mmm dd hh:mm:ss HOSTNAME APP-NAME[PROCID]: event_id="…" chain_id="…" seq="…" hash="…" kind="…" [tenant="…" principal="…"] MSG
//! ```
//!
//! with the timestamp in UTC, day space-padded, and the same escaping in the prefix (`"` and
//! `\`; `]` needs none). RFC 3164 says a message should not exceed 1024 bytes: for a strict
//! legacy receiver, set `max_message_bytes = 1024`.
//!
//! Only MSG is shortened to fit `max_message_bytes`, at a character boundary, ending with
//! [`TRUNCATION_MARKER`]. With LF framing a LF in MSG would end the message early, so it is
//! sent as a space.

use chrono::{DateTime, Utc};

use super::config::{Framing, SyslogConfig, SyslogRfc, printable, sd_name};
use crate::forward::event::EventMeta;
use crate::forward::transport::Message;

/// What ends a shortened MSG.
pub const TRUNCATION_MARKER: &str = "...[truncated]";

/// The UTF-8 byte order mark that starts a UTF-8 MSG (RFC 5424 §6.4).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An event whose header and structured data alone exceed `max_message_bytes`: retrying cannot
/// help, so it is rejected (to the dead-letter file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the syslog header and structured data of this event take {needed} bytes, more than max_message_bytes ({max}) allows"
)]
pub struct TooLarge {
    /// Bytes the header, structured data and truncation marker need.
    pub needed: usize,
    /// The configured limit.
    pub max: usize,
}

/// Builds the syslog messages of one destination.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    rfc: SyslogRfc,
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
    sd_id: String,
    max_bytes: usize,
    lf_framing: bool,
}

impl MessageBuilder {
    /// The builder for a destination configured by `config` (validated): the host name is the
    /// configured one or the machine's, PROCID this process's id.
    pub fn new(config: &SyslogConfig) -> Self {
        let hostname = config
            .hostname
            .clone()
            .or_else(machine_hostname)
            .unwrap_or_default();
        Self::with_identity(config, &hostname, &std::process::id().to_string())
    }

    /// The builder for `config` with a given HOSTNAME and PROCID (sanitised like any field).
    pub fn with_identity(config: &SyslogConfig, hostname: &str, procid: &str) -> Self {
        Self {
            rfc: config.rfc,
            facility: config.facility.min(23),
            hostname: header_field(hostname, 255),
            app_name: header_field(&config.app_name, 48),
            procid: header_field(procid, 128),
            sd_id: sd_id(&config.sd_id),
            max_bytes: config.effective_max_message_bytes(),
            lf_framing: config.effective_framing() == Some(Framing::Lf),
        }
    }

    /// The syslog message of `message` (without framing).
    pub fn build(&self, message: &Message) -> Result<Vec<u8>, TooLarge> {
        let meta = &message.meta;
        let mut head = match self.rfc {
            SyslogRfc::Rfc5424 => self.header_5424(meta),
            SyslogRfc::Rfc3164 => self.header_3164(meta),
        };
        let mut text = String::from_utf8_lossy(&message.payload).into_owned();
        if self.lf_framing && text.contains('\n') {
            text = text.replace('\n', " ");
        }
        let bom = self.rfc == SyslogRfc::Rfc5424;
        fit(&mut head, &text, bom, self.max_bytes)?;
        Ok(head)
    }

    fn pri(&self, meta: &EventMeta) -> u16 {
        u16::from(self.facility) * 8 + u16::from(meta.severity.min(7))
    }

    fn header_5424(&self, meta: &EventMeta) -> Vec<u8> {
        let mut out = format!(
            "<{}>1 {} {} {} {} {} [{}",
            self.pri(meta),
            timestamp_5424(meta.time_ns),
            self.hostname,
            self.app_name,
            self.procid,
            header_field(meta.kind.as_str(), 32),
            self.sd_id,
        );
        for (name, value) in params(meta) {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_into(&mut out, &value, true);
            out.push('"');
        }
        out.push(']');
        out.into_bytes()
    }

    fn header_3164(&self, meta: &EventMeta) -> Vec<u8> {
        let hostname = if self.hostname == "-" {
            "localhost"
        } else {
            &self.hostname
        };
        let mut out = format!(
            "<{}>{} {} {}[{}]:",
            self.pri(meta),
            timestamp_3164(meta.time_ns),
            hostname,
            self.app_name,
            self.procid,
        );
        for (name, value) in params(meta) {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_into(&mut out, &value, false);
            out.push('"');
        }
        out.into_bytes()
    }
}

/// The event's parameters, in order; `tenant` and `principal` only when known.
fn params(meta: &EventMeta) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("event_id", meta.event_id.clone()),
        ("chain_id", meta.chain_id.clone()),
        ("seq", meta.seq.to_string()),
        ("hash", meta.hash.clone()),
        ("kind", meta.kind.as_str().to_owned()),
    ];
    if let Some(t) = &meta.tenant {
        p.push(("tenant", t.clone()));
    }
    if let Some(pr) = &meta.principal {
        p.push(("principal", pr.clone()));
    }
    p
}

/// Appends ` [BOM]MSG` to `head`, MSG shortened (and marked) to keep the whole within `max`
/// bytes. The BOM is written when the MSG sent holds a non-ASCII character and `bom` is set.
fn fit(head: &mut Vec<u8>, text: &str, bom: bool, max: usize) -> Result<(), TooLarge> {
    if text.is_empty() {
        return if head.len() <= max {
            Ok(())
        } else {
            Err(TooLarge {
                needed: head.len(),
                max,
            })
        };
    }
    let bom_len = |s: &str| if bom && !s.is_ascii() { BOM.len() } else { 0 };
    let (text, marker) = if head.len() + 1 + bom_len(text) + text.len() <= max {
        (text, "")
    } else {
        let fixed = head.len() + 1 + bom_len(text) + TRUNCATION_MARKER.len();
        if fixed > max {
            return Err(TooLarge { needed: fixed, max });
        }
        (
            &text[..text.floor_char_boundary(max - fixed)],
            TRUNCATION_MARKER,
        )
    };
    head.push(b' ');
    if bom_len(text) > 0 {
        head.extend_from_slice(BOM);
    }
    head.extend_from_slice(text.as_bytes());
    head.extend_from_slice(marker.as_bytes());
    Ok(())
}

/// The SD-ID as configured when valid (validation refuses anything else); otherwise made valid,
/// so that an unvalidated setting cannot break the structured data.
fn sd_id(configured: &str) -> String {
    if sd_name(configured) {
        return configured.to_owned();
    }
    let s: String = configured
        .chars()
        .map(|c| {
            if c.is_ascii() && printable(c as u8) && !matches!(c, '=' | ']' | '"') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if s.is_empty() {
        "calltrail@32473".into()
    } else {
        s
    }
}

/// A header field: printable US-ASCII (anything else becomes `_`), at most `max` characters,
/// `-` (NILVALUE) when empty.
pub fn header_field(value: &str, max: usize) -> String {
    let s: String = value
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii() && printable(c as u8) {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// Appends `value` as an SD PARAM-VALUE (RFC 5424 §6.3.3): `"`, `\` and `]` escaped with a
/// backslash (`]` only when `bracket`), control characters replaced with U+FFFD.
pub fn escape_into(out: &mut String, value: &str, bracket: bool) {
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ']' if bracket => out.push_str("\\]"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// RFC 5424 TIMESTAMP of `ns` since the epoch: UTC, microseconds, `Z`.
pub fn timestamp_5424(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// RFC 3164 TIMESTAMP of `ns` since the epoch: `Mmm dd hh:mm:ss` in UTC, day space-padded.
pub fn timestamp_3164(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns)
        .format("%b %e %H:%M:%S")
        .to_string()
}

/// The machine's host name, from the kernel (`/proc/sys/kernel/hostname`) or `/etc/hostname`.
fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::event::EventKind;
    use crate::forward::syslog::config::SyslogProtocol;

    fn config(protocol: SyslogProtocol, rfc: SyslogRfc) -> SyslogConfig {
        SyslogConfig {
            address: "siem.example:6514".into(),
            protocol,
            framing: None,
            rfc,
            facility: 13,
            app_name: "calltrail".into(),
            hostname: None,
            sd_id: "calltrail@32473".into(),
            max_message_bytes: None,
            tls: None,
            connect_timeout_ms: 1000,
            write_timeout_ms: 1000,
        }
    }

    fn builder(c: &SyslogConfig) -> MessageBuilder {
        MessageBuilder::with_identity(c, "collector-1.bank.example", "4242")
    }

    fn meta() -> EventMeta {
        EventMeta {
            kind: EventKind::ToolCall,
            event_id: "ev-1".into(),
            chain_id: "chain-a".into(),
            seq: 17,
            hash: "ab".repeat(32),
            // 2026-11-23T10:20:30.123456789Z
            time_ns: 1_795_429_230_123_456_789,
            tenant: Some("acme-bank-eu".into()),
            principal: Some("alice@acme-bank.example".into()),
            severity: 5,
        }
    }

    fn message(payload: &str) -> Message {
        Message {
            payload: payload.as_bytes().to_vec(),
            meta: meta(),
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn rfc5424_layout_is_exact() {
        let c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        let out = builder(&c).build(&message("CEF:0|Calltrail|x")).unwrap();
        let hash = "ab".repeat(32);
        assert_eq!(
            text(&out),
            format!(
                "<109>1 2026-11-23T10:20:30.123456Z collector-1.bank.example calltrail 4242 tool_call \
                 [calltrail@32473 event_id=\"ev-1\" chain_id=\"chain-a\" seq=\"17\" hash=\"{hash}\" \
                 kind=\"tool_call\" tenant=\"acme-bank-eu\" principal=\"alice@acme-bank.example\"] CEF:0|Calltrail|x"
            )
        );
    }

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        let mut c = config(SyslogProtocol::Udp, SyslogRfc::Rfc5424);
        for (facility, severity, pri) in [
            (13, 5, "<109>"),
            (10, 4, "<84>"),
            (0, 0, "<0>"),
            (23, 7, "<191>"),
        ] {
            c.facility = facility;
            let mut m = message("x");
            m.meta.severity = severity;
            let out = text(&builder(&c).build(&m).unwrap());
            assert!(out.starts_with(&format!("{pri}1 ")), "{out}");
        }
        // A severity out of range is capped, never spills into the facility.
        let mut m = message("x");
        m.meta.severity = 9;
        c.facility = 13;
        assert!(text(&builder(&c).build(&m).unwrap()).starts_with("<111>1 "));
    }

    #[test]
    fn timestamps_are_utc_with_six_fraction_digits() {
        assert_eq!(timestamp_5424(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            timestamp_5424(1_795_429_230_123_456_789),
            "2026-11-23T10:20:30.123456Z",
            "truncated, not rounded"
        );
        assert_eq!(timestamp_5424(1_000), "1970-01-01T00:00:00.000001Z");
        assert_eq!(
            timestamp_5424(-1_000_000_000),
            "1969-12-31T23:59:59.000000Z"
        );
        assert_eq!(timestamp_3164(1_795_429_230_123_456_789), "Nov 23 10:20:30");
        // 2026-03-05T01:02:03Z: the day is space-padded.
        assert_eq!(timestamp_3164(1_772_672_523_000_000_000), "Mar  5 01:02:03");
    }

    #[test]
    fn structured_data_values_escape_quote_backslash_and_bracket() {
        let mut s = String::new();
        escape_into(&mut s, r#"a"b\c]d"#, true);
        assert_eq!(s, r#"a\"b\\c\]d"#);
        let mut s = String::new();
        escape_into(&mut s, r#"\\""]]"#, true);
        assert_eq!(s, r#"\\\\\"\"\]\]"#);
        let mut s = String::new();
        escape_into(&mut s, "trailing\\", true);
        assert_eq!(
            s, "trailing\\\\",
            "a value ending in a backslash cannot eat the quote"
        );
        let mut s = String::new();
        escape_into(&mut s, "line\nbreak\ttab\u{0}nul\u{7f}é[x=y]", true);
        assert_eq!(s, "line\u{FFFD}break\u{FFFD}tab\u{FFFD}nul\u{FFFD}é[x=y\\]");
        let mut s = String::new();
        escape_into(&mut s, r#"a"b\c]d"#, false);
        assert_eq!(s, r#"a\"b\\c]d"#, "RFC 3164 prefix: ] needs no escape");

        let c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        let mut m = message("x");
        m.meta.tenant = Some("t\"1]".into());
        m.meta.principal = Some("DOMAIN\\alice".into());
        let out = text(&builder(&c).build(&m).unwrap());
        assert!(
            out.contains(r#" tenant="t\"1\]" principal="DOMAIN\\alice"]"#),
            "{out}"
        );
    }

    #[test]
    fn absent_tenant_and_principal_are_left_out() {
        let c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        let mut m = message("");
        m.meta.tenant = None;
        m.meta.principal = None;
        m.meta.kind = EventKind::Checkpoint;
        let out = text(&builder(&c).build(&m).unwrap());
        assert!(
            out.ends_with(" kind=\"checkpoint\"]"),
            "no tenant, no principal, and no MSG: {out}"
        );
        assert!(
            out.contains(" checkpoint [calltrail@32473 "),
            "MSGID: {out}"
        );
    }

    #[test]
    fn header_fields_are_sanitised_and_cut_to_their_limits() {
        assert_eq!(header_field("host name\té", 255), "host_name__");
        assert_eq!(header_field("", 48), "-");
        assert_eq!(header_field("  ", 48), "-");
        assert_eq!(header_field(&"h".repeat(300), 255).len(), 255);
        let c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        let b = MessageBuilder::with_identity(&c, &format!("é{}", "x".repeat(300)), "");
        let out = text(&b.build(&message("m")).unwrap());
        let fields: Vec<&str> = out.splitn(7, ' ').collect();
        assert_eq!(fields[2], format!("_{}", "x".repeat(254)));
        assert_eq!(fields[4], "-", "an empty PROCID is the NILVALUE");
        assert!(
            out.bytes()
                .take_while(|b| *b != b'[')
                .all(|b| b == b' ' || printable(b))
        );
    }

    #[test]
    fn non_ascii_msg_gets_a_bom_and_ascii_msg_none() {
        let c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        let out = builder(&c).build(&message("{\"tool\":\"créer\"}")).unwrap();
        let at = out.len() - "{\"tool\":\"créer\"}".len();
        assert_eq!(&out[at - 4..at], b" \xEF\xBB\xBF");
        let out = builder(&c).build(&message("plain")).unwrap();
        assert!(out.ends_with(b"] plain"));
        let mut m = message("");
        m.payload = vec![b'a', 0xff, b'b'];
        let out = builder(&c).build(&m).unwrap();
        assert!(
            out.ends_with("] \u{FEFF}a\u{FFFD}b".as_bytes()),
            "invalid UTF-8 is replaced"
        );
    }

    #[test]
    fn truncation_cuts_msg_only_at_a_char_boundary() {
        let mut c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        c.max_message_bytes = Some(600);
        let b = builder(&c);
        let whole = text(&b.build(&message("")).unwrap());
        let head = whole.len();
        // Fits exactly: not cut.
        let payload = "a".repeat(600 - head - 1);
        let out = b.build(&message(&payload)).unwrap();
        assert_eq!(out.len(), 600);
        assert!(out.ends_with(payload.as_bytes()));
        // One more byte: cut, with the marker, to exactly the limit.
        let payload = "a".repeat(600 - head);
        let out = b.build(&message(&payload)).unwrap();
        assert_eq!(out.len(), 600);
        assert!(out.starts_with(whole.as_bytes()), "header and SD intact");
        assert!(out.ends_with(TRUNCATION_MARKER.as_bytes()));
        // Multi-byte characters are never split, and the BOM stays.
        for shift in 0..4 {
            let payload = format!("{}{}", "a".repeat(shift), "€".repeat(400));
            let out = b.build(&message(&payload)).unwrap();
            assert!(out.len() <= 600 && out.len() >= 597, "{}", out.len());
            let s = text(&out);
            assert!(s.starts_with(&whole));
            let msg = &s[head + 1..];
            assert!(msg.starts_with('\u{FEFF}'), "{msg}");
            let kept = msg
                .trim_start_matches('\u{FEFF}')
                .trim_end_matches(TRUNCATION_MARKER);
            assert_eq!(kept, &payload[..kept.len()]);
        }
        // A cut that leaves only ASCII drops the BOM.
        let payload = format!("{}é", "a".repeat(1000));
        let s = text(&b.build(&message(&payload)).unwrap());
        assert!(!s.contains('\u{FEFF}'));
        assert_eq!(s.len(), 597, "the 3 bytes kept for the BOM stay unused");
    }

    #[test]
    fn an_event_whose_header_does_not_fit_is_too_large() {
        let mut c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        c.max_message_bytes = Some(480);
        let mut m = message("payload");
        m.meta.principal = Some("p".repeat(400));
        let e = builder(&c).build(&m).unwrap_err();
        assert_eq!(e.max, 480);
        assert!(e.needed > 480);
        assert!(e.to_string().contains("max_message_bytes (480)"), "{e}");
    }

    #[test]
    fn lf_framing_turns_newlines_in_msg_into_spaces() {
        let mut c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        let multi = message("line one\nline two\r\n");
        let out = text(&builder(&c).build(&multi).unwrap());
        assert!(
            out.ends_with(" line one\nline two\r\n"),
            "octet counting keeps them"
        );
        c.framing = Some(Framing::Lf);
        let out = text(&builder(&c).build(&multi).unwrap());
        assert!(out.ends_with(" line one line two\r "), "{out:?}");
        assert!(!out.contains('\n'));
        let c = config(SyslogProtocol::Udp, SyslogRfc::Rfc5424);
        let out = text(&builder(&c).build(&multi).unwrap());
        assert!(out.contains('\n'), "a datagram keeps them");
    }

    #[test]
    fn an_unvalidated_sd_id_cannot_break_the_structured_data() {
        let mut c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc5424);
        c.sd_id = "bad id]=\"x@1".into();
        let out = text(&builder(&c).build(&message("m")).unwrap());
        assert!(out.contains(" [bad_id___x@1 event_id="), "{out}");
        c.sd_id = String::new();
        let out = text(&builder(&c).build(&message("m")).unwrap());
        assert!(out.contains(" [calltrail@32473 event_id="), "{out}");
    }

    #[test]
    fn rfc3164_form() {
        let c = config(SyslogProtocol::Tcp, SyslogRfc::Rfc3164);
        let mut m = message("CEF:0|Calltrail|x");
        m.meta.principal = Some("DOMAIN\\\"al]ice".into());
        let out = text(&builder(&c).build(&m).unwrap());
        let hash = "ab".repeat(32);
        assert_eq!(
            out,
            format!(
                "<109>Nov 23 10:20:30 collector-1.bank.example calltrail[4242]: event_id=\"ev-1\" \
                 chain_id=\"chain-a\" seq=\"17\" hash=\"{hash}\" kind=\"tool_call\" \
                 tenant=\"acme-bank-eu\" principal=\"DOMAIN\\\\\\\"al]ice\" CEF:0|Calltrail|x"
            )
        );
        let out = builder(&c).build(&message("é")).unwrap();
        assert!(!out.windows(3).any(|w| w == BOM), "no BOM in RFC 3164");
        let b = MessageBuilder::with_identity(&c, "", "1");
        let out = text(&b.build(&message("x")).unwrap());
        assert!(
            out.starts_with("<109>Nov 23 10:20:30 localhost calltrail[1]: "),
            "{out}"
        );
    }
}
