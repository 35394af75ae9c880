//! OCSF JSON, version 1.3.0 (the newest AWS Security Lake accepts), one event per document.
//!
//! Classes: a tool call, an LLM call and an audit event are **API Activity** (`class_uid`
//! 6003, category 6 Application Activity): each is one API operation by an actor against a
//! service; one class for every record also keeps Security Lake's one-class-per-object rule
//! simple. A signed checkpoint is a **Base Event** (`class_uid` 0, activity 99 Other): it is
//! no activity of anyone, only a statement of the chain head, and no other class fits. An
//! anomaly finding is a **Detection Finding** (`class_uid` 2004, category 2 Findings, activity
//! 1 Create): see `ocsf_finding.rs`.
//!
//! Every event carries its event id in `metadata.uid`, its seq in `metadata.sequence`, and the
//! chain id, seq and leaf hash (a checkpoint's tree size and root) under `unmapped.calltrail`.
//! With `ocsf_ai_operation`, LLM calls also carry the OCSF 1.8 `ai_operation` profile
//! (`ai_model`, `message_context`) and every event declares version 1.8.0.
//!
//! OCSF strings are at most 65,535 characters (`string_t`): longer values are cut (at a
//! character boundary) so that the event stays valid.

use serde_json::Value;

use super::common::{
    Activity, Addr, Obj, PRODUCT, VENDOR, VERSION, addr, audit_activity, map_object, ms, port,
    span_ns, succeeded, summary, tool_activity,
};
use super::{FormatError, FormatOptions};
use crate::forward::event::{CheckpointEvent, Event, EventKind, EventMeta, RecordRow};

/// Schema version declared by default.
const OCSF_VERSION: &str = "1.3.0";
/// Schema version declared with the `ai_operation` profile (added in 1.8.0).
const OCSF_AI_VERSION: &str = "1.8.0";
/// `string_t`'s `max_len`, in the 1.3.0 schema.
const MAX_STRING: usize = 65_535;

/// An OCSF event class.
struct Class {
    uid: u32,
    name: &'static str,
    category_uid: u32,
    category_name: &'static str,
}

const API_ACTIVITY: Class = Class {
    uid: 6003,
    name: "API Activity",
    category_uid: 6,
    category_name: "Application Activity",
};

const BASE_EVENT: Class = Class {
    uid: 0,
    name: "Base Event",
    category_uid: 0,
    category_name: "Uncategorized",
};

/// Appends `event` as an OCSF JSON document.
pub(super) fn encode(
    event: &Event<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let mut doc = match event {
        Event::Record(row) => match row.kind() {
            EventKind::ToolCall => tool_call(event, row, options),
            EventKind::LlmCall => llm_call(event, row, options),
            EventKind::Audit => audit(event, row, options),
            // Not tables of records (`record_kind` refuses them before we get here).
            EventKind::Checkpoint | EventKind::Finding => base(event, &row.meta(), options),
        },
        Event::Checkpoint(c) => checkpoint(event, c, options),
        Event::Finding(f) => finding::finding(f, options),
    };
    clamp_strings(&mut doc);
    serde_json::to_writer(&mut *out, &doc)?;
    Ok(())
}

/// The classification and status attributes every event has.
fn classify(class: &Class, activity: Activity, event: &Event<'_>, meta: &EventMeta) -> Obj {
    let (severity_id, severity) = match meta.severity {
        6.. => (1, "Informational"),
        5 => (2, "Low"),
        4 => (3, "Medium"),
        3 => (4, "High"),
        2 => (5, "Critical"),
        _ => (6, "Fatal"),
    };
    let (status_id, status) = match succeeded(event) {
        Some(true) => (1, "Success"),
        Some(false) => (2, "Failure"),
        None => (0, "Unknown"),
    };
    let activity_id = activity.id();
    Obj::new()
        .set("class_uid", class.uid)
        .set("class_name", class.name)
        .set("category_uid", class.category_uid)
        .set("category_name", class.category_name)
        .set("activity_id", activity_id)
        .set("activity_name", activity.caption())
        .set("type_uid", class.uid * 100 + u32::from(activity_id))
        .set(
            "type_name",
            format!("{}: {}", class.name, activity.caption()),
        )
        .set("severity_id", severity_id)
        .set("severity", severity)
        .set("status_id", status_id)
        .set("status", status)
        .set("time", ms(meta.time_ns))
        .set("message", summary(event))
}

/// `metadata`: schema version, product, event id, seq, tenant.
fn metadata(meta: &EventMeta, options: &FormatOptions, log_name: &str) -> Obj {
    let version = if options.ocsf_ai_operation {
        OCSF_AI_VERSION
    } else {
        OCSF_VERSION
    };
    Obj::new()
        .set("version", version)
        .obj(
            "product",
            Obj::new()
                .set("name", PRODUCT)
                .set("vendor_name", VENDOR)
                .set("version", VERSION),
        )
        .set("uid", meta.event_id.as_str())
        // `sequence` is an `integer_t` (32 bits): past that the seq is only in `unmapped`.
        // Findings are not chained: they have no seq.
        .opt(
            "sequence",
            (meta.kind != EventKind::Finding)
                .then(|| i32::try_from(meta.seq).ok())
                .flatten(),
        )
        .set("log_name", log_name)
        .set("log_provider", "calltrail")
        .opt("tenant_uid", meta.tenant.as_deref())
}

/// `unmapped.calltrail`: the chain position and what OCSF has no attribute for.
fn unmapped(meta: &EventMeta, row: Option<&RecordRow<'_>>, extra: Obj) -> Obj {
    let o = extra
        .set("kind", meta.kind.as_str())
        .set("event_id", meta.event_id.as_str())
        .set("chain_id", meta.chain_id.as_str());
    let o = match row {
        Some(row) => o
            .set("seq", meta.seq)
            .set("leaf_hash", meta.hash.as_str())
            .opt("chain_hash", row.hash_hex("chain_hash")),
        None => o,
    };
    Obj::new().obj("calltrail", o)
}

/// A `network_endpoint`: `ip`, else `hostname` when the address is a valid host name, else
/// `name`; `port`; `svc_name`. OCSF requires one of them: when nothing is known, the name
/// `unknown`.
fn endpoint(address: Option<&str>, port: Option<u16>, service: Option<&str>) -> Obj {
    let o = match address.map(addr) {
        Some(Addr::Ip(ip)) => Obj::new().set("ip", ip.to_string()),
        Some(Addr::Host(h)) if is_hostname(h) => Obj::new().set("hostname", h),
        Some(Addr::Host(h)) => Obj::new().set("name", h),
        None => Obj::new(),
    };
    let o = o.opt("port", port).opt("svc_name", service);
    if o.is_empty() {
        Obj::new().set("name", "unknown")
    } else {
        o
    }
}

/// Whether `s` matches OCSF's `hostname_t`: dot-separated labels of letters, digits and
/// inner hyphens.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `actor.user` from the principal; `None` when there is none.
fn user(principal: Option<&str>, kind: Option<&str>) -> Option<Obj> {
    let p = principal?;
    let (type_id, type_name) = match kind {
        Some("human") => (1, "User"),
        // OCSF 1.3 has no service-account type: Other, named.
        Some("service_account") => (99, "Service Account"),
        _ => (0, "Unknown"),
    };
    Some(
        Obj::new()
            .set("uid", p)
            .set("name", p)
            .set("type_id", type_id)
            .set("type", type_name),
    )
}

/// `actor`: the user, the application, the session. OCSF requires one of them, so when the
/// record names none the application is `unknown`.
fn actor(user: Option<Obj>, app: Option<&str>, session: Option<&str>) -> Obj {
    let mut o = Obj::new();
    if let Some(u) = user {
        o = o.obj("user", u);
    }
    let o = o
        .opt("app_name", app)
        .obj("session", Obj::new().opt("uid", session));
    if o.is_empty() {
        Obj::new().set("app_name", "unknown")
    } else {
        o
    }
}

/// Start, end and duration (ms).
fn times(o: Obj, row: &RecordRow<'_>) -> Obj {
    let (start, end) = span_ns(row);
    o.opt("start_time", start.map(ms))
        .opt("end_time", end.map(ms))
        .opt(
            "duration",
            start.zip(end).map(|(s, e)| ms(e.saturating_sub(s))),
        )
}

fn tool_call(event: &Event<'_>, row: &RecordRow<'_>, options: &FormatOptions) -> Value {
    let meta = row.meta();
    let activity = tool_activity(row);
    let resource_type = if row.str("tool_name").is_some() {
        "tool"
    } else if row.str("prompt_name").is_some() {
        "prompt"
    } else {
        "resource"
    };
    let resources = row.str("target").map(|t| {
        vec![
            Obj::new()
                .set("name", t)
                .set("type", resource_type)
                .opt("uid", row.str("resource_uri"))
                .into_value(),
        ]
    });
    let response = Obj::new()
        // `code` is an `integer_t` (32 bits); JSON-RPC codes are, an odd one is left out.
        .opt(
            "code",
            row.int("jsonrpc_code").and_then(|c| i32::try_from(c).ok()),
        )
        .opt("error", row.str("error_type"))
        .opt("error_message", row.str("error_message"));
    let api = Obj::new()
        .set("operation", row.str("method").unwrap_or("unknown"))
        .obj("service", Obj::new().opt("name", row.str("server_name")))
        .obj("request", Obj::new().opt("uid", row.str("request_id")))
        .obj("response", response)
        .opt("version", row.str("protocol_version"));
    let mut extra = Obj::new()
        .opt("trace_id", row.str("trace_id"))
        .opt("span_id", row.str("span_id"))
        .opt("parent_span_id", row.str("parent_span_id"))
        .opt("call_id", row.str("call_id"))
        .opt("is_request", row.boolean("is_request"))
        .opt("side", row.str("side"))
        .opt("tool_name", row.str("tool_name"))
        .opt("prompt_name", row.str("prompt_name"))
        .opt("resource_uri", row.str("resource_uri"))
        .opt("operation_class", row.str("operation_class"))
        .opt("outcome", row.str("outcome"))
        .opt("principal_kind", row.str("principal_kind"))
        .opt("principal_source", row.str("principal_source"))
        .opt("principal_reason", row.str("principal_reason"))
        .opt("team", row.str("team"))
        .opt("cost_center", row.str("cost_center"))
        .opt("network_transport", row.str("network_transport"))
        .opt("source_service", row.str("source_service"))
        .opt("source_instance", row.str("source_instance"))
        .opt("ingest_protocol", row.str("ingest_protocol"))
        .opt("ingest_peer", row.str("ingest_peer"))
        .opt("ingest_source", row.str("ingest_source"));
    if options.include_payloads {
        for column in super::common::PAYLOAD_COLUMNS {
            extra = extra
                .opt(column, row.str(column))
                .opt(column, row.int(column));
        }
    }
    let doc = classify(&API_ACTIVITY, activity, event, &meta)
        .opt("status_code", row.str("outcome"))
        .opt("status_detail", row.str("error_message"))
        .obj(
            "metadata",
            metadata(&meta, options, "tool_calls").opt("correlation_uid", row.str("trace_id")),
        )
        .obj(
            "actor",
            actor(
                user(row.str("principal"), row.str("principal_kind")),
                row.str("client_name"),
                row.str("session_id"),
            ),
        )
        .obj("api", api)
        .obj(
            "src_endpoint",
            endpoint(
                row.str("client_address"),
                port(row, "client_port"),
                row.str("client_name"),
            ),
        )
        .opt("resources", resources)
        .obj("unmapped", unmapped(&meta, Some(row), extra));
    let dst = row.str("server_address").or_else(|| row.str("server_name"));
    let doc = match dst {
        Some(_) => doc.obj(
            "dst_endpoint",
            endpoint(
                row.str("server_address"),
                port(row, "server_port"),
                row.str("server_name"),
            ),
        ),
        None => doc,
    };
    times(doc, row).into_value()
}

fn llm_call(event: &Event<'_>, row: &RecordRow<'_>, options: &FormatOptions) -> Value {
    let meta = row.meta();
    let provider = row.str("provider");
    let api = Obj::new()
        .set("operation", row.str("operation").unwrap_or("inference"))
        .obj("service", Obj::new().opt("name", provider))
        .obj("response", Obj::new().opt("error", row.str("error_type")));
    let extra = Obj::new()
        .opt("trace_id", row.str("trace_id"))
        .opt("span_id", row.str("span_id"))
        .opt("parent_span_id", row.str("parent_span_id"))
        .opt("provider", provider)
        .opt("request_model", row.str("request_model"))
        .opt("response_model", row.str("response_model"))
        .opt("input_tokens", row.int("input_tokens"))
        .opt("output_tokens", row.int("output_tokens"))
        .opt(
            "cache_read_input_tokens",
            row.int("cache_read_input_tokens"),
        )
        .opt(
            "cache_write_input_tokens",
            row.int("cache_write_input_tokens"),
        )
        .opt(
            "reasoning_output_tokens",
            row.int("reasoning_output_tokens"),
        )
        .opt("principal_kind", row.str("principal_kind"))
        .opt("principal_source", row.str("principal_source"))
        .opt("principal_reason", row.str("principal_reason"))
        .opt("team", row.str("team"))
        .opt("cost_center", row.str("cost_center"))
        .opt("source_service", row.str("source_service"))
        .opt("source_instance", row.str("source_instance"))
        .opt("ingest_protocol", row.str("ingest_protocol"));
    let mut md = metadata(&meta, options, "llm_calls").opt("correlation_uid", row.str("trace_id"));
    let mut doc = classify(&API_ACTIVITY, Activity::Other, event, &meta)
        .opt("status_detail", row.str("error_type"))
        .obj(
            "actor",
            actor(
                user(row.str("principal"), row.str("principal_kind")),
                row.str("source_service"),
                None,
            ),
        )
        .obj("api", api)
        .obj(
            "src_endpoint",
            endpoint(None, None, row.str("source_service")),
        )
        .obj("dst_endpoint", endpoint(None, None, provider))
        .obj("unmapped", unmapped(&meta, Some(row), extra));
    if options.ocsf_ai_operation {
        md = md.set("profiles", vec!["ai_operation"]);
        doc = ai_operation(doc, row);
    }
    times(doc.obj("metadata", md), row).into_value()
}

/// The OCSF 1.8 `ai_operation` profile: `ai_model` (name and provider are required by the
/// object, so it is left out when the model is unknown) and `message_context` with the token
/// counts, the model's role (Assistant) and the service.
fn ai_operation(doc: Obj, row: &RecordRow<'_>) -> Obj {
    let provider = row.str("provider");
    let model = row
        .str("response_model")
        .or_else(|| row.str("request_model"));
    let doc = match model {
        Some(name) => doc.obj(
            "ai_model",
            Obj::new()
                .set("name", name)
                .set("ai_provider", provider.unwrap_or("unknown")),
        ),
        None => doc,
    };
    let (input, output) = (row.int("input_tokens"), row.int("output_tokens"));
    let total = input.zip(output).map(|(i, o)| i.saturating_add(o));
    doc.obj(
        "message_context",
        Obj::new()
            .set("ai_role_id", 2)
            .set("ai_role", "Assistant")
            .opt("prompt_tokens", input)
            .opt("completion_tokens", output)
            .opt("total_tokens", total)
            .obj("service", Obj::new().opt("name", provider)),
    )
}

fn audit(event: &Event<'_>, row: &RecordRow<'_>, options: &FormatOptions) -> Value {
    let meta = row.meta();
    let action = row.str("action");
    let resources = row.str("subject").map(|s| {
        vec![
            Obj::new()
                .set("uid", s)
                .set("type", "legal_hold")
                .into_value(),
        ]
    });
    let extra = Obj::new()
        .opt("reason", row.str("reason"))
        .set("details", map_object(row, "details"));
    let doc = classify(&API_ACTIVITY, audit_activity(action), event, &meta)
        .opt("status_detail", row.str("reason"))
        .obj("metadata", metadata(&meta, options, "audit_events"))
        .obj(
            "actor",
            actor(user(row.str("actor"), None), Some("calltrail"), None),
        )
        .obj(
            "api",
            Obj::new()
                .set("operation", action.unwrap_or("unknown"))
                .obj("service", Obj::new().set("name", "calltrail")),
        )
        .obj("src_endpoint", endpoint(None, None, Some("calltrail")))
        .opt("resources", resources)
        .obj("unmapped", unmapped(&meta, Some(row), extra));
    doc.into_value()
}

/// A record of no known class (never reached: unknown tables are refused earlier).
fn base(event: &Event<'_>, meta: &EventMeta, options: &FormatOptions) -> Value {
    classify(&BASE_EVENT, Activity::Other, event, meta)
        .obj("metadata", metadata(meta, options, "calltrail"))
        .obj("unmapped", unmapped(meta, None, Obj::new()))
        .into_value()
}

fn checkpoint(event: &Event<'_>, c: &CheckpointEvent, options: &FormatOptions) -> Value {
    let meta = c.meta();
    let extra = Obj::new()
        .set("origin", c.origin.as_str())
        .set("size", c.size)
        .set("root", c.root_hex.as_str())
        .opt("timestamp", c.timestamp)
        .set("note", c.note.as_str());
    classify(&BASE_EVENT, Activity::Other, event, &meta)
        .obj("metadata", metadata(&meta, options, "checkpoints"))
        .obj("unmapped", unmapped(&meta, None, extra))
        .into_value()
}

/// Cuts every string longer than `string_t` allows.
fn clamp_strings(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > MAX_STRING => {
            let mut end = MAX_STRING;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        Value::Array(a) => a.iter_mut().for_each(clamp_strings),
        Value::Object(o) => o.values_mut().for_each(clamp_strings),
        _ => {}
    }
}

#[path = "ocsf_finding.rs"]
mod finding;

#[cfg(test)]
#[path = "ocsf_tests.rs"]
mod tests;
