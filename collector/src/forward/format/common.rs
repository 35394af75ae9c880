//! What several formats share: the product's identity, time conversions, the normalised
//! classification of an event (activity, success, severity, signature), address parsing, and
//! a JSON object builder that leaves absent values out.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

use calltrail_schemas::finding::Severity;

use crate::forward::event::{Event, EventKind, EventMeta, FindingRow, RecordRow};

/// Vendor in CEF/LEEF headers, OCSF `metadata.product.vendor_name`, ECS `observer.vendor`.
pub(super) const VENDOR: &str = "Calltrail";
/// Product name in the same places.
pub(super) const PRODUCT: &str = "Calltrail";
/// Product version: the crate's.
pub(super) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The columns that hold (or describe) tool arguments and results: forwarded only with
/// `include_payloads`, because a hash of a short argument can be reversed by guessing.
pub(super) const PAYLOAD_COLUMNS: [&str; 6] = [
    "arguments_sha256",
    "arguments_size",
    "arguments",
    "result_sha256",
    "result_size",
    "result",
];

/// `ns` since the epoch as RFC 3339 UTC with nanoseconds (chrono covers every i64).
pub(super) fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// `ns` since the epoch as RFC 3339 UTC with milliseconds (LEEF `devTime`).
pub(super) fn rfc3339_ms(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Nanoseconds to whole milliseconds, rounding down (also before 1970).
pub(super) fn ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000)
}

/// A record's start (or audit time) and end, in ns.
pub(super) fn span_ns(row: &RecordRow<'_>) -> (Option<i64>, Option<i64>) {
    let start = row.time_ns("start_time").or_else(|| row.time_ns("time"));
    (start, row.time_ns("end_time"))
}

/// The OCSF activity of an event; ECS derives `event.type` from it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activity {
    /// Not known.
    Unknown,
    /// Creates something.
    Create,
    /// Reads.
    Read,
    /// Changes something.
    Update,
    /// Removes something.
    Delete,
    /// Something else (admin calls, inference, checkpoints).
    Other,
}

impl Activity {
    /// OCSF `activity_id`.
    pub(super) fn id(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Create => 1,
            Self::Read => 2,
            Self::Update => 3,
            Self::Delete => 4,
            Self::Other => 99,
        }
    }

    /// OCSF `activity_name` (the enum's caption).
    pub(super) fn caption(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Create => "Create",
            Self::Read => "Read",
            Self::Update => "Update",
            Self::Delete => "Delete",
            Self::Other => "Other",
        }
    }
}

/// The activity of a tool call, from its operation class: a write whose tool name says
/// "create" is a Create, any other write an Update; admin calls are Other.
pub(super) fn tool_activity(row: &RecordRow<'_>) -> Activity {
    match row.str("operation_class") {
        Some("read") => Activity::Read,
        Some("write") => {
            let name = row.str("tool_name").or_else(|| row.str("target"));
            if name.is_some_and(|n| n.to_ascii_lowercase().contains("create")) {
                Activity::Create
            } else {
                Activity::Update
            }
        }
        Some("delete") => Activity::Delete,
        Some("admin") => Activity::Other,
        _ => Activity::Unknown,
    }
}

/// The activity of an audit event, from the last word of its action: a hold placed is
/// created; a hold released is kept, marked released, so it is updated.
pub(super) fn audit_activity(action: Option<&str>) -> Activity {
    let verb = action
        .and_then(|a| a.rsplit('.').next())
        .unwrap_or_default();
    match verb {
        "placed" | "created" => Activity::Create,
        "released" | "updated" | "changed" => Activity::Update,
        "deleted" | "removed" => Activity::Delete,
        _ => Activity::Other,
    }
}

/// Whether the event succeeded; `None` when the record does not say, and for a finding
/// (an observation, neither a success nor a failure).
pub(super) fn succeeded(event: &Event<'_>) -> Option<bool> {
    let row = match event {
        Event::Record(row) => row,
        Event::Checkpoint(_) => return Some(true),
        Event::Finding(_) => return None,
    };
    match row.kind() {
        EventKind::ToolCall => match row.str("outcome") {
            Some("ok") => Some(true),
            Some("tool_error" | "protocol_error" | "denied") => Some(false),
            _ => None,
        },
        EventKind::LlmCall => row.boolean("is_error").map(|e| !e),
        EventKind::Audit | EventKind::Checkpoint | EventKind::Finding => Some(true),
    }
}

/// CEF severity (0–10; LEEF takes it with a floor of 1) of an event: a finding's from its own
/// severity ([`finding_severity_0_10`]), anything else's from its syslog severity
/// ([`severity_0_10`]).
pub(super) fn event_severity_0_10(event: &Event<'_>, meta: &EventMeta) -> u8 {
    match event {
        Event::Finding(f) => finding_severity_0_10(f.severity()),
        _ => severity_0_10(meta),
    }
}

/// A finding's CEF severity, in the middle of ArcSight's band of the same name: low 3 (Low,
/// 0–3), medium 5 (Medium, 4–6), high 7 (High, 7–8), critical 9 (Very-High, 9–10); an
/// unknown severity is medium.
pub(super) fn finding_severity_0_10(severity: Option<Severity>) -> u8 {
    match severity {
        Some(Severity::Low) => 3,
        Some(Severity::Medium) | None => 5,
        Some(Severity::High) => 7,
        Some(Severity::Critical) => 9,
    }
}

/// CEF severity (0–10; LEEF takes it with a floor of 1) from the syslog severity of
/// [`EventMeta`]: info 1, notice (writes, deletes, admin, audit, checkpoints) 3, warning
/// (denied calls and errors) 5, and up to 10 for emergencies.
pub(super) fn severity_0_10(meta: &EventMeta) -> u8 {
    match meta.severity {
        0 => 10,
        1 => 9,
        2 => 8,
        3 => 7,
        4 => 5,
        5 => 3,
        6 => 1,
        _ => 0,
    }
}

/// Keeps `[A-Za-z0-9_.:/-]` and replaces anything else with `_`, at most 100 characters: for
/// header fields (CEF signature, LEEF event id) that SIEMs map to event types, where only a
/// small fixed vocabulary is wanted and no escaping should ever be needed.
pub(super) fn token(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The event's type for CEF's signature id and LEEF's event id: `tool_call.<class>.<outcome>`,
/// `llm_call.ok|error`, `audit.<action>`, `finding.<detector>.<rule>` or `checkpoint`.
pub(super) fn signature(event: &Event<'_>) -> String {
    let row = match event {
        Event::Record(row) => row,
        Event::Checkpoint(_) => return "checkpoint".into(),
        Event::Finding(f) => {
            let (detector, rule) = finding_rule(f);
            return token(&format!("finding.{detector}.{rule}"));
        }
    };
    match row.kind() {
        EventKind::ToolCall => token(&format!(
            "tool_call.{}.{}",
            row.str("operation_class").unwrap_or("unknown"),
            row.str("outcome").unwrap_or("unknown")
        )),
        EventKind::LlmCall => match succeeded(event) {
            Some(false) => "llm_call.error".into(),
            _ => "llm_call.ok".into(),
        },
        EventKind::Audit => token(&format!("audit.{}", row.str("action").unwrap_or("unknown"))),
        EventKind::Checkpoint => "checkpoint".into(),
        EventKind::Finding => "finding".into(),
    }
}

/// A finding's detector (`D1`...) and rule (`volume_spike`...), `unknown` when absent.
pub(super) fn finding_rule<'a>(f: &FindingRow<'a>) -> (&'a str, &'a str) {
    (
        f.str("detector").unwrap_or("unknown"),
        f.str("rule").unwrap_or("unknown"),
    )
}

/// A human-readable name of the event's type, from the same fixed vocabulary (CEF `Name`).
pub(super) fn title(event: &Event<'_>) -> String {
    let row = match event {
        Event::Record(row) => row,
        Event::Checkpoint(_) => return "Signed checkpoint".into(),
        Event::Finding(f) => {
            let (detector, rule) = finding_rule(f);
            return token(&format!("Finding {detector} {rule}")).replace('_', " ");
        }
    };
    let name = match row.kind() {
        EventKind::ToolCall => format!(
            "MCP {} call {}",
            row.str("operation_class").unwrap_or("unknown"),
            row.str("outcome").unwrap_or("unknown")
        ),
        EventKind::LlmCall => match succeeded(event) {
            Some(false) => "LLM call failed".into(),
            _ => "LLM call".into(),
        },
        EventKind::Audit => format!("Audit {}", row.str("action").unwrap_or("unknown")),
        EventKind::Checkpoint => "Signed checkpoint".into(),
        EventKind::Finding => "Finding".into(),
    };
    token(&name).replace('_', " ")
}

/// A one-line description of what happened (OCSF `message`, ECS `message`); a finding's is
/// its explanation.
pub(super) fn summary(event: &Event<'_>) -> String {
    let row = match event {
        Event::Checkpoint(c) => {
            return format!(
                "signed checkpoint of chain {} at size {}",
                c.chain_id, c.size
            );
        }
        Event::Finding(f) => return f.str("explanation").unwrap_or_default().to_owned(),
        Event::Record(row) => row,
    };
    let who = row
        .str("principal")
        .or_else(|| row.str("actor"))
        .unwrap_or("unattributed");
    match row.kind() {
        EventKind::ToolCall => {
            let mut s = format!("{who} {}", row.str("method").unwrap_or("call"));
            if let Some(t) = row.str("target") {
                s.push(' ');
                s.push_str(t);
            }
            if let Some(server) = row.str("server_name") {
                s.push_str(" on ");
                s.push_str(server);
            }
            s.push_str(": ");
            s.push_str(row.str("outcome").unwrap_or("unknown"));
            s
        }
        EventKind::LlmCall => {
            let model = row
                .str("response_model")
                .or_else(|| row.str("request_model"))
                .unwrap_or("unknown model");
            let op = row.str("operation").unwrap_or("inference");
            let status = if succeeded(event) == Some(false) {
                "error"
            } else {
                "ok"
            };
            format!("{who} {op} {model}: {status}")
        }
        EventKind::Audit | EventKind::Checkpoint | EventKind::Finding => format!(
            "{who} {} {}",
            row.str("action").unwrap_or("acted on"),
            row.str("subject").unwrap_or_default()
        ),
    }
}

/// An address column: an IP (brackets of `[::1]` removed) or a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Addr<'a> {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// Anything else, as given.
    Host(&'a str),
}

/// Parses an address column's value.
pub(super) fn addr(s: &str) -> Addr<'_> {
    let bare = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    match bare.parse::<IpAddr>() {
        Ok(ip) => Addr::Ip(ip),
        Err(_) => Addr::Host(s),
    }
}

/// A port column's value when it is a valid port.
pub(super) fn port(row: &RecordRow<'_>, column: &str) -> Option<u16> {
    row.int(column).and_then(|p| u16::try_from(p).ok())
}

/// A JSON object under construction that leaves out absent values and empty objects, so
/// that a record with nulls yields fewer keys rather than `null`s a schema may refuse.
#[derive(Debug, Default)]
pub(super) struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub(super) fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `key` to `value` when there is one.
    pub(super) fn opt<T: Into<Value>>(self, key: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Sets `key` to the object `value` unless it is empty.
    pub(super) fn obj(mut self, key: &str, value: Obj) -> Self {
        if !value.0.is_empty() {
            self.0.insert(key.to_owned(), Value::Object(value.0));
        }
        self
    }

    /// Whether nothing is set.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object as a JSON value.
    pub(super) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// A map column as a JSON object (values as text, null values as null). Keys repeated in
/// the stored map keep their last value.
pub(super) fn map_object(row: &RecordRow<'_>, column: &str) -> Value {
    Value::Object(
        row.map(column)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.map_or(Value::Null, Value::from)))
            .collect(),
    )
}
