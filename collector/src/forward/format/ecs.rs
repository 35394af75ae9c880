//! Elastic Common Schema (ECS 8.17, with the beta `gen_ai` fieldset) as one JSON document per
//! event. Fields ECS has are used as ECS means them; what only Calltrail knows (the chain
//! position, the attribution details, the MCP specifics) is under a `calltrail` object.
//! The event id is `event.id`, the seq `event.sequence`, the leaf hash `event.hash` (ECS:
//! "hash of the raw event to demonstrate log integrity"), and all three again, with the chain
//! id, under `calltrail`.
//!
//! A finding is an alert: `event.kind` `alert` (ECS: an alert "triggered by a detection rule
//! executing externally to the Elastic Stack"), `event.category` `intrusion_detection` (whose
//! expected `event.type` is `info`, `allowed` or `denied`; `threat` is for threat intelligence
//! indicators), the rule in `rule.*`, the explanation in `message`.

use super::common::{
    Activity, Addr, Obj, PRODUCT, VENDOR, VERSION, addr, audit_activity, finding_rule, map_object,
    port, rfc3339, span_ns, succeeded, summary, tool_activity,
};
use super::{FormatError, FormatOptions};
use crate::forward::event::{CheckpointEvent, Event, EventKind, EventMeta, FindingRow, RecordRow};

/// The ECS version the documents follow (the first with `gen_ai`).
const ECS_VERSION: &str = "8.17.0";

/// Appends `event` as an ECS JSON document.
pub(super) fn encode(
    event: &Event<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let doc = match event {
        Event::Record(row) => match row.kind() {
            EventKind::ToolCall => tool_call(event, row, options),
            EventKind::LlmCall => llm_call(event, row),
            EventKind::Audit => audit(event, row),
            // Not tables of records (`record_kind` refuses them before we get here).
            EventKind::Checkpoint | EventKind::Finding => {
                common_fields(event, &row.meta(), Obj::new())
            }
        },
        Event::Checkpoint(c) => checkpoint(event, c),
        Event::Finding(f) => finding(f),
    };
    serde_json::to_writer(&mut *out, &doc.into_value())?;
    Ok(())
}

/// The fields every document has: time, `event.*` less the type, `observer`, the chain.
fn common_fields(event: &Event<'_>, meta: &EventMeta, event_obj: Obj) -> Obj {
    let outcome = match succeeded(event) {
        Some(true) => "success",
        Some(false) => "failure",
        None => "unknown",
    };
    let dataset = match meta.kind {
        EventKind::ToolCall => "calltrail.tool_calls",
        EventKind::LlmCall => "calltrail.llm_calls",
        EventKind::Audit => "calltrail.audit_events",
        EventKind::Checkpoint => "calltrail.checkpoints",
        EventKind::Finding => "calltrail.anomalies",
    };
    let event_obj = event_obj
        .set("kind", "event")
        .set("category", vec!["api"])
        .set("outcome", outcome)
        .set("id", meta.event_id.as_str())
        .set("sequence", meta.seq)
        .set("hash", meta.hash.as_str())
        .set("severity", meta.severity)
        .set("dataset", dataset)
        .set("module", "calltrail");
    Obj::new()
        .set("@timestamp", rfc3339(meta.time_ns))
        .set("message", summary(event))
        .obj("ecs", Obj::new().set("version", ECS_VERSION))
        .obj("event", event_obj)
        .obj("observer", observer())
}

/// `observer`: Calltrail.
fn observer() -> Obj {
    Obj::new()
        .set("vendor", VENDOR)
        .set("product", PRODUCT)
        .set("version", VERSION)
}

/// The chain position under `calltrail`, plus `extra`: a record's seq, leaf and chained
/// hash; a checkpoint's size and root are in `extra`.
fn calltrail(meta: &EventMeta, row: Option<&RecordRow<'_>>, extra: Obj) -> Obj {
    let o = extra
        .set("kind", meta.kind.as_str())
        .set("event_id", meta.event_id.as_str())
        .set("chain_id", meta.chain_id.as_str());
    match row {
        Some(row) => o
            .set("seq", meta.seq)
            .set("leaf_hash", meta.hash.as_str())
            .opt("chain_hash", row.hash_hex("chain_hash")),
        None => o,
    }
}

/// ECS `event.type` for an activity: creation, access, change, deletion, admin or info.
fn event_types(activity: Activity, ok: Option<bool>, denied: bool) -> Vec<&'static str> {
    let mut types = match activity {
        Activity::Create => vec!["creation"],
        Activity::Read => vec!["access"],
        Activity::Update => vec!["change"],
        Activity::Delete => vec!["deletion"],
        Activity::Other => vec!["admin"],
        Activity::Unknown => vec!["info"],
    };
    if denied {
        types.push("denied");
    } else if ok == Some(false) {
        types.push("error");
    }
    types
}

/// `source`/`destination`: `address`, and `ip` or `domain`, and `port`.
fn endpoint(address: Option<&str>, port: Option<u16>) -> Obj {
    let mut o = Obj::new().opt("address", address).opt("port", port);
    match address.map(addr) {
        Some(Addr::Ip(ip)) => o = o.set("ip", ip.to_string()),
        Some(Addr::Host(h)) => o = o.set("domain", h),
        None => {}
    }
    o
}

/// The attribution fields: `user`, `group` (team), `organization` (tenant).
fn who(o: Obj, row: &RecordRow<'_>) -> Obj {
    let p = row.str("principal");
    o.obj("user", Obj::new().opt("id", p).opt("name", p))
        .obj("group", Obj::new().opt("name", row.str("team")))
        .obj("organization", Obj::new().opt("id", row.str("tenant")))
}

/// `error`: type, message and the JSON-RPC code.
fn error(row: &RecordRow<'_>) -> Obj {
    Obj::new()
        .opt("type", row.str("error_type"))
        .opt("message", row.str("error_message"))
        .opt("code", row.int("jsonrpc_code").map(|c| c.to_string()))
}

/// Attribution and source columns only Calltrail has.
fn provenance(o: Obj, row: &RecordRow<'_>) -> Obj {
    o.obj(
        "principal",
        Obj::new()
            .opt("kind", row.str("principal_kind"))
            .opt("source", row.str("principal_source"))
            .opt("reason", row.str("principal_reason")),
    )
    .opt("cost_center", row.str("cost_center"))
    .obj(
        "source",
        Obj::new()
            .opt("service", row.str("source_service"))
            .opt("instance", row.str("source_instance"))
            .opt("sdk", row.str("source_sdk"))
            .opt("scope", row.str("source_scope")),
    )
    .obj(
        "ingest",
        Obj::new()
            .opt("protocol", row.str("ingest_protocol"))
            .opt("peer", row.str("ingest_peer"))
            .opt("source", row.str("ingest_source")),
    )
}

fn tool_call(event: &Event<'_>, row: &RecordRow<'_>, options: &FormatOptions) -> Obj {
    let meta = row.meta();
    let (start, end) = span_ns(row);
    let ok = succeeded(event);
    let denied = row.str("outcome") == Some("denied");
    let ev = Obj::new()
        .set("type", event_types(tool_activity(row), ok, denied))
        .opt("action", row.str("method"))
        .opt("start", start.map(rfc3339))
        .opt("end", end.map(rfc3339))
        .opt("created", row.time_ns("observed_time").map(rfc3339))
        .opt("duration", start.zip(end).map(|(s, e)| e.saturating_sub(s)));
    let mut call = Obj::new().opt("id", row.str("request_id"));
    let mut extra = Obj::new()
        .opt("side", row.str("side"))
        .opt("call_id", row.str("call_id"))
        .opt("is_request", row.boolean("is_request"))
        .opt("method", row.str("method"))
        .opt("target", row.str("target"))
        .opt("prompt_name", row.str("prompt_name"))
        .opt("resource_uri", row.str("resource_uri"))
        .opt("operation_class", row.str("operation_class"))
        .opt("outcome", row.str("outcome"))
        .opt("server_name", row.str("server_name"))
        .opt("client_name", row.str("client_name"))
        .opt("session_id", row.str("session_id"))
        .opt("protocol_version", row.str("protocol_version"))
        .opt("parent_span_id", row.str("parent_span_id"));
    if options.include_payloads {
        call = call
            .opt("arguments", row.str("arguments"))
            .opt("result", row.str("result"));
        extra = extra
            .obj(
                "arguments",
                Obj::new()
                    .opt("sha256", row.str("arguments_sha256"))
                    .opt("size", row.int("arguments_size")),
            )
            .obj(
                "result",
                Obj::new()
                    .opt("sha256", row.str("result_sha256"))
                    .opt("size", row.int("result_size")),
            );
    }
    let extra = provenance(extra, row);
    let doc = common_fields(event, &meta, ev);
    who(doc, row)
        .obj(
            "service",
            Obj::new().opt(
                "name",
                row.str("server_name").or_else(|| row.str("source_service")),
            ),
        )
        .obj(
            "source",
            endpoint(row.str("client_address"), port(row, "client_port")),
        )
        .obj(
            "destination",
            endpoint(row.str("server_address"), port(row, "server_port")),
        )
        .obj(
            "network",
            Obj::new()
                .opt("transport", row.str("network_transport"))
                .set("protocol", "mcp"),
        )
        .obj("trace", Obj::new().opt("id", row.str("trace_id")))
        .obj("span", Obj::new().opt("id", row.str("span_id")))
        .obj("error", error(row))
        .obj(
            "gen_ai",
            Obj::new()
                .obj("operation", Obj::new().set("name", "execute_tool"))
                .obj(
                    "tool",
                    Obj::new()
                        .opt("name", row.str("tool_name"))
                        .obj("call", call),
                ),
        )
        .obj("calltrail", calltrail(&meta, Some(row), extra))
}

fn llm_call(event: &Event<'_>, row: &RecordRow<'_>) -> Obj {
    let meta = row.meta();
    let (start, end) = span_ns(row);
    let ok = succeeded(event);
    // An inference is `info`, and also `error` when it failed.
    let types = match ok {
        Some(false) => vec!["info", "error"],
        _ => vec!["info"],
    };
    let ev = Obj::new()
        .set("type", types)
        .set("action", row.str("operation").unwrap_or("inference"))
        .opt("start", start.map(rfc3339))
        .opt("end", end.map(rfc3339))
        .opt("created", row.time_ns("observed_time").map(rfc3339))
        .opt("duration", start.zip(end).map(|(s, e)| e.saturating_sub(s)));
    let extra = Obj::new()
        .opt("parent_span_id", row.str("parent_span_id"))
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
        );
    let extra = provenance(extra, row);
    let doc = common_fields(event, &meta, ev);
    who(doc, row)
        .obj("service", Obj::new().opt("name", row.str("source_service")))
        .obj("trace", Obj::new().opt("id", row.str("trace_id")))
        .obj("span", Obj::new().opt("id", row.str("span_id")))
        .obj("error", Obj::new().opt("type", row.str("error_type")))
        .obj(
            "gen_ai",
            Obj::new()
                .obj("operation", Obj::new().opt("name", row.str("operation")))
                .opt("system", row.str("provider"))
                .obj("request", Obj::new().opt("model", row.str("request_model")))
                .obj(
                    "response",
                    Obj::new().opt("model", row.str("response_model")),
                )
                .obj(
                    "usage",
                    Obj::new()
                        .opt("input_tokens", row.int("input_tokens"))
                        .opt("output_tokens", row.int("output_tokens")),
                ),
        )
        .obj("calltrail", calltrail(&meta, Some(row), extra))
}

fn audit(event: &Event<'_>, row: &RecordRow<'_>) -> Obj {
    let meta = row.meta();
    let action = row.str("action");
    let types = event_types(audit_activity(action), Some(true), false);
    let ev = Obj::new()
        .set("type", types)
        .opt("action", action)
        .opt("reason", row.str("reason"));
    let actor = row.str("actor");
    let extra = Obj::new()
        .opt("subject", row.str("subject"))
        .set("details", map_object(row, "details"));
    common_fields(event, &meta, ev)
        .obj("user", Obj::new().opt("id", actor).opt("name", actor))
        .obj("service", Obj::new().set("name", "calltrail"))
        .obj("calltrail", calltrail(&meta, Some(row), extra))
}

fn checkpoint(event: &Event<'_>, c: &CheckpointEvent) -> Obj {
    let meta = c.meta();
    let ev = Obj::new()
        .set("type", vec!["info"])
        .set("action", "checkpoint");
    let extra = Obj::new().obj(
        "checkpoint",
        Obj::new()
            .set("origin", c.origin.as_str())
            .set("size", c.size)
            .set("root", c.root_hex.as_str())
            .opt("timestamp", c.timestamp)
            .set("note", c.note.as_str()),
    );
    common_fields(event, &meta, ev)
        .obj("service", Obj::new().set("name", "calltrail"))
        .obj("calltrail", calltrail(&meta, None, extra))
}

/// A finding as an ECS alert. `event.severity` is the syslog severity, as for every event
/// (low 5, medium 4, high 3, critical 2); the severity's name is `calltrail.finding.severity`.
/// Findings are not chained: no `event.sequence` or `event.hash`.
fn finding(f: &FindingRow<'_>) -> Obj {
    let meta = f.meta();
    let (detector, rule) = finding_rule(f);
    let ev = Obj::new()
        .set("kind", "alert")
        .set("category", vec!["intrusion_detection"])
        .set("type", vec!["info"])
        .set("id", meta.event_id.as_str())
        .set("severity", meta.severity)
        .opt("start", f.time_ns("window_start").map(rfc3339))
        .opt("end", f.time_ns("window_end").map(rfc3339))
        .set("dataset", "calltrail.anomalies")
        .set("module", "calltrail");
    let principal = f.str("principal");
    let details = Obj::new()
        .set("detector", detector)
        .set("rule", rule)
        .opt("severity", f.str("severity"))
        .opt("entity_kind", f.str("entity_kind"))
        .opt("entity", f.str("entity"))
        .opt("observed", f.float("observed"))
        .opt("expected", f.float("expected"))
        .opt("score", f.float("score"));
    Obj::new()
        .set("@timestamp", rfc3339(meta.time_ns))
        .set("message", f.str("explanation").unwrap_or_default())
        .obj("ecs", Obj::new().set("version", ECS_VERSION))
        .obj("event", ev)
        .obj(
            "rule",
            Obj::new()
                .set("id", detector)
                .set("name", rule)
                .set("ruleset", "calltrail"),
        )
        .obj("observer", observer())
        .obj(
            "user",
            Obj::new().opt("id", principal).opt("name", principal),
        )
        .obj("group", Obj::new().opt("name", f.str("team")))
        .obj("organization", Obj::new().opt("id", f.str("tenant")))
        .obj("service", Obj::new().opt("name", f.str("server_name")))
        .obj(
            "gen_ai",
            Obj::new().obj("tool", Obj::new().opt("name", f.str("tool_name"))),
        )
        .obj(
            "calltrail",
            Obj::new()
                .set("kind", EventKind::Finding.as_str())
                .set("event_id", meta.event_id.as_str())
                .obj("finding", details),
        )
}

#[cfg(test)]
#[path = "ecs_tests.rs"]
mod tests;
