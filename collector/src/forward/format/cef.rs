//! ArcSight Common Event Format (CEF 0), one line per event (Sentinel stores it in
//! `CommonSecurityLog`):
//!
//! `CEF:0|Calltrail|Calltrail|<version>|<signature>|<name>|<severity>|<extension>`
//!
//! The signature (`tool_call.write.denied`, `llm_call.ok`, `audit.hold.placed`, `checkpoint`)
//! and the name come from a fixed vocabulary, so header fields never need escaping in
//! practice; they are escaped anyway (`\` → `\\`, `|` → `\|`, CR/LF → space). Severity is
//! 0–10. Extension values escape `\` → `\\`, `=` → `\=`, LF → `\n` and CR → `\r`; other
//! characters (including `|`, quotes and non-ASCII) are written as they are. Empty values are
//! left out.
//!
//! Keys are from the CEF dictionary where one fits: `rt`/`end` (ms since the epoch),
//! `externalId` (the event id), `cat`, `act`, `outcome`, `reason`, `suser`, `src`/`shost`,
//! `spt`, `dst`/`dhost`, `dpt`, `requestClientApplication`, `msg`, and labelled custom fields:
//! `cs1` chainId, `cn1` seq (a checkpoint's treeSize), `cs2` leafHash (a checkpoint's
//! rootHash), `cs3`–`cs6`, `cn2`, `cn3`, `cfp1` durationMs, `flexString1` principalKind,
//! `flexString2` errorType. What the dictionary has no key for goes in `calltrail*` keys.
//!
//! A finding (signature `finding.<detector>.<rule>`, severity low 3, medium 5, high 7,
//! critical 9) has no chain position, so its custom slots say other things, each labelled:
//! `rt` detected, `start`/`end` its window, `msg` the explanation, `cs1` detector, `cs2` rule,
//! `cs3` tool, `cs4` mcpServer, `cs5` team, `cs6` tenant, `flexString1` entityKind,
//! `flexString2` entity, `cfp2` observed, `cfp3` expected, `cfp4` score.

use std::io::Write as _;

use super::FormatOptions;
use super::common::{PRODUCT, VENDOR, VERSION, event_severity_0_10, ms, signature, title};
use super::fields::{Key, Val, fields};
use crate::forward::event::Event;

/// Appends `event` as one CEF line (no newline).
pub(super) fn encode(event: &Event<'_>, options: &FormatOptions, out: &mut Vec<u8>) {
    let meta = event.meta();
    out.extend_from_slice(b"CEF:0|");
    for field in [VENDOR, PRODUCT, VERSION, &signature(event), &title(event)] {
        escape_header(field, out);
        out.push(b'|');
    }
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}|", event_severity_0_10(event, &meta));
    let mut first = true;
    for (key, value) in fields(event, options) {
        let (name, label) = cef_key(key);
        if let Some(label) = label {
            pair(out, &mut first, &format!("{name}Label"), label);
        }
        let text = match value {
            Val::Text(s) => s.into_owned(),
            Val::Int(i) => i.to_string(),
            Val::UInt(u) => u.to_string(),
            Val::Float(f) => f.to_string(),
            Val::Time(ns) => ms(ns).to_string(),
        };
        pair(out, &mut first, name, &text);
    }
}

/// Writes ` key=value` (no space before the first pair), the value escaped.
fn pair(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &str) {
    if !*first {
        out.push(b' ');
    }
    *first = false;
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    escape_value(value, out);
}

/// The CEF key of a field, and its label when it is a custom field.
fn cef_key(key: Key) -> (&'static str, Option<&'static str>) {
    match key {
        Key::Start => ("rt", None),
        Key::End => ("end", None),
        Key::EventId => ("externalId", None),
        Key::Kind => ("cat", None),
        Key::Action => ("act", None),
        Key::Success => ("outcome", None),
        Key::Reason => ("reason", None),
        Key::Principal => ("suser", None),
        Key::SrcIp => ("src", None),
        Key::SrcHost => ("shost", None),
        Key::SrcPort => ("spt", None),
        Key::DstIp => ("dst", None),
        Key::DstHost => ("dhost", None),
        Key::DstPort => ("dpt", None),
        Key::Client => ("requestClientApplication", None),
        Key::Message => ("msg", None),
        Key::ChainId => ("cs1", Some("chainId")),
        Key::Seq => ("cn1", Some("seq")),
        Key::TreeSize => ("cn1", Some("treeSize")),
        Key::LeafHash => ("cs2", Some("leafHash")),
        Key::RootHash => ("cs2", Some("rootHash")),
        Key::Target => ("cs3", Some("target")),
        Key::Model => ("cs3", Some("model")),
        Key::Subject => ("cs3", Some("subject")),
        Key::Origin => ("cs3", Some("origin")),
        Key::Server => ("cs4", Some("mcpServer")),
        Key::Provider => ("cs4", Some("provider")),
        Key::Details => ("cs4", Some("details")),
        Key::Team => ("cs5", Some("team")),
        Key::Tenant => ("cs6", Some("tenant")),
        Key::JsonrpcCode => ("cn2", Some("jsonrpcCode")),
        Key::InputTokens => ("cn2", Some("inputTokens")),
        Key::OutputTokens => ("cn3", Some("outputTokens")),
        Key::DurationMs => ("cfp1", Some("durationMs")),
        Key::PrincipalKind => ("flexString1", Some("principalKind")),
        Key::ErrorType => ("flexString2", Some("errorType")),
        Key::TraceId => ("calltrailTraceId", None),
        Key::SpanId => ("calltrailSpanId", None),
        Key::Side => ("calltrailSide", None),
        Key::OperationClass => ("calltrailOperationClass", None),
        Key::ArgumentsSha256 => ("calltrailArgumentsSha256", None),
        Key::ArgumentsSize => ("calltrailArgumentsSize", None),
        Key::Arguments => ("calltrailArguments", None),
        Key::ResultSha256 => ("calltrailResultSha256", None),
        Key::ResultSize => ("calltrailResultSize", None),
        Key::Result => ("calltrailResult", None),
        Key::WindowStart => ("start", None),
        Key::WindowEnd => ("end", None),
        Key::Detector => ("cs1", Some("detector")),
        Key::Rule => ("cs2", Some("rule")),
        Key::FindingSeverity => ("calltrailSeverity", None),
        Key::EntityKind => ("flexString1", Some("entityKind")),
        Key::Entity => ("flexString2", Some("entity")),
        Key::Observed => ("cfp2", Some("observed")),
        Key::Expected => ("cfp3", Some("expected")),
        Key::Score => ("cfp4", Some("score")),
    }
}

/// Header field escaping: `\` and `|` escaped; CR and LF (which would end the event) become
/// spaces, as the header has no escape for them.
pub(super) fn escape_header(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '|' => out.extend_from_slice(b"\\|"),
            '\r' | '\n' => out.push(b' '),
            c => push_char(c, out),
        }
    }
}

/// Extension value escaping: `\`, `=`, LF and CR.
pub(super) fn escape_value(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '=' => out.extend_from_slice(b"\\="),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            c => push_char(c, out),
        }
    }
}

fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
#[path = "cef_tests.rs"]
mod tests;
