//! IBM QRadar Log Event Extended Format 2.0, one line per event:
//!
//! `LEEF:2.0|Calltrail|Calltrail|<version>|<event id>|<delimiter>|k=v<d>k=v...`
//!
//! The event id is the same fixed-vocabulary type as CEF's signature (`tool_call.write.denied`,
//! `llm_call.ok`, `audit.hold.placed`, `checkpoint`), which QRadar maps to a QID. The
//! delimiter (option `leef_delimiter`, default TAB) is written literally when it is a printable
//! character other than `|`, else as `0xNN`.
//!
//! LEEF has no escape for the delimiter, so in values the delimiter and every control
//! character (CR, LF, TAB, ...) is replaced by a space; `=` and `|` stay (QRadar splits a pair
//! at its first `=`). Empty values are left out.
//!
//! Predefined keys: `devTime` (with `devTimeFormat`, RFC 3339 with milliseconds), `cat`, `sev`
//! (1–10), `usrName`, `src`, `srcPort`, `dst`, `dstPort`. The rest are Calltrail's own keys:
//! `eventId`, `chainId`, `seq`, `leafHash` (a checkpoint's `treeSize` and `rootHash`), ...
//! A finding (event id `finding.<detector>.<rule>`) has `devTime` its detection, `msg` its
//! explanation, and `windowStart`, `windowEnd`, `detector`, `rule`, `findingSeverity`,
//! `entityKind`, `entity`, `observed`, `expected`, `score`; `sev` as CEF's (3, 5, 7, 9).

use std::io::Write as _;

use super::common::{PRODUCT, VENDOR, VERSION, event_severity_0_10, rfc3339_ms, signature, token};
use super::fields::{Key, Val, fields};
use super::{FormatError, FormatOptions};
use crate::forward::event::Event;

/// `devTimeFormat`: Java `SimpleDateFormat` for [`rfc3339_ms`]'s output.
const DEV_TIME_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSX";

/// Refuses delimiters that cannot separate pairs unambiguously.
pub(super) fn check_delimiter(d: char) -> Result<(), FormatError> {
    if !d.is_ascii()
        || d.is_ascii_alphanumeric()
        || matches!(d, '=' | '\\' | '\r' | '\n' | '\0' | ' ')
    {
        return Err(FormatError::LeefDelimiter(d));
    }
    Ok(())
}

/// Appends `event` as one LEEF 2.0 line (no newline).
pub(super) fn encode(
    event: &Event<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let d = options.leef_delimiter;
    check_delimiter(d)?;
    let meta = event.meta();
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "LEEF:2.0|{VENDOR}|{PRODUCT}|{}|{}|",
        token(VERSION),
        signature(event)
    );
    if d.is_ascii_graphic() && d != '|' {
        out.push(d as u8);
    } else {
        let _ = write!(out, "0x{:02x}", d as u32);
    }
    out.push(b'|');
    let mut w = Pairs {
        out,
        delimiter: d,
        first: true,
    };
    w.pair("sev", &event_severity_0_10(event, &meta).max(1).to_string());
    for (key, value) in fields(event, options) {
        let text = match value {
            Val::Text(s) => s.into_owned(),
            Val::Int(i) => i.to_string(),
            Val::UInt(u) => u.to_string(),
            Val::Float(f) => f.to_string(),
            Val::Time(ns) => rfc3339_ms(ns),
        };
        if key == Key::Start {
            w.pair("devTimeFormat", DEV_TIME_FORMAT);
        }
        w.pair(leef_key(key), &text);
    }
    Ok(())
}

/// Writes pairs separated by the delimiter.
struct Pairs<'a> {
    out: &'a mut Vec<u8>,
    delimiter: char,
    first: bool,
}

impl Pairs<'_> {
    fn pair(&mut self, key: &str, value: &str) {
        if !self.first {
            self.out.push(self.delimiter as u8);
        }
        self.first = false;
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(b'=');
        sanitize(value, self.delimiter, self.out);
    }
}

/// Value text with the delimiter and control characters replaced by spaces.
pub(super) fn sanitize(s: &str, delimiter: char, out: &mut Vec<u8>) {
    for c in s.chars() {
        if c == delimiter || c.is_control() {
            out.push(b' ');
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// The LEEF key of a field.
fn leef_key(key: Key) -> &'static str {
    match key {
        Key::Start => "devTime",
        Key::End => "endTime",
        Key::EventId => "eventId",
        Key::Kind => "cat",
        Key::Action => "action",
        Key::Success => "outcome",
        Key::Reason => "reason",
        Key::Principal => "usrName",
        Key::SrcIp => "src",
        Key::SrcHost => "srcHost",
        Key::SrcPort => "srcPort",
        Key::DstIp => "dst",
        Key::DstHost => "dstHost",
        Key::DstPort => "dstPort",
        Key::Client => "client",
        Key::Message => "msg",
        Key::ChainId => "chainId",
        Key::Seq => "seq",
        Key::TreeSize => "treeSize",
        Key::LeafHash => "leafHash",
        Key::RootHash => "rootHash",
        Key::Target => "target",
        Key::Model => "model",
        Key::Subject => "subject",
        Key::Origin => "origin",
        Key::Server => "mcpServer",
        Key::Provider => "provider",
        Key::Details => "details",
        Key::Team => "team",
        Key::Tenant => "tenant",
        Key::JsonrpcCode => "jsonrpcCode",
        Key::InputTokens => "inputTokens",
        Key::OutputTokens => "outputTokens",
        Key::DurationMs => "durationMs",
        Key::PrincipalKind => "principalKind",
        Key::ErrorType => "errorType",
        Key::TraceId => "traceId",
        Key::SpanId => "spanId",
        Key::Side => "side",
        Key::OperationClass => "operationClass",
        Key::ArgumentsSha256 => "argumentsSha256",
        Key::ArgumentsSize => "argumentsSize",
        Key::Arguments => "arguments",
        Key::ResultSha256 => "resultSha256",
        Key::ResultSize => "resultSize",
        Key::Result => "result",
        Key::WindowStart => "windowStart",
        Key::WindowEnd => "windowEnd",
        Key::Detector => "detector",
        Key::Rule => "rule",
        Key::FindingSeverity => "findingSeverity",
        Key::EntityKind => "entityKind",
        Key::Entity => "entity",
        Key::Observed => "observed",
        Key::Expected => "expected",
        Key::Score => "score",
    }
}

#[cfg(test)]
#[path = "leef_tests.rs"]
mod tests;
