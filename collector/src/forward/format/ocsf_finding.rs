//! An anomaly finding as an OCSF **Detection Finding** (`class_uid` 2004, category 2 Findings),
//! activity 1 Create (`type_uid` 200401): a detector run creates each finding once and never
//! updates it (the same detector, entity and window is the same finding id).
//!
//! Attributes, as the OCSF 1.3.0 schema defines the class (`detection_finding`, which extends
//! `finding` and includes the `host` profile, whose `actor` carries the principal):
//!
//! - `finding_info` (required): `uid` the finding id, `title` `<rule> (<detector>)`, `desc`
//!   the explanation, `types` `[<detector>]`, `analytic` (`uid` the detector, `name` the rule,
//!   `type_id` 2 Behavioral: the detectors flag deviations from a baseline of behaviour),
//!   `created_time` when it was detected, `first_seen_time`/`last_seen_time` the window;
//! - `time` when it was detected, `start_time`/`end_time` the window (ms), `message` the
//!   explanation;
//! - `severity_id` low 2, medium 3, high 4, critical 5 (an unknown one is medium);
//!   `status_id` 1 New (triage is the SIEM's);
//! - `actor.user` the principal, when there is one (then `metadata.profiles` `["host"]`);
//! - `resources`: the MCP server (`type` `mcp_server`) and the tool (`type` `tool`), when named;
//! - `evidences[0].data`: `observed`, `expected`, `score`;
//! - `metadata.uid` the finding id, `metadata.log_name` `anomalies`, no `sequence` (findings
//!   are not chained);
//! - `unmapped.calltrail`: what OCSF has no attribute for (entity, team, the severity's name).

use calltrail_schemas::finding::{ANOMALIES, Severity};
use serde_json::Value;

use super::super::FormatOptions;
use super::super::common::{Obj, finding_rule, ms};
use super::{Class, metadata, user};
use crate::forward::event::{EventKind, EventMeta, FindingRow};

const DETECTION_FINDING: Class = Class {
    uid: 2004,
    name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
};

/// `activity_id` 1 Create.
const CREATE: (u32, &str) = (1, "Create");

/// `analytic.type_id` 2 Behavioral: "monitoring and analyzing user or system actions to
/// identify deviations from established patterns".
const BEHAVIORAL: (u32, &str) = (2, "Behavioral");

/// `status_id` 1 New: "the Finding is new and yet to be reviewed".
const NEW: (u32, &str) = (1, "New");

/// The Detection Finding of `f`.
pub(super) fn finding(f: &FindingRow<'_>, options: &FormatOptions) -> Value {
    let meta = f.meta();
    let (severity_id, severity) = severity(f.severity().unwrap_or(Severity::Medium));
    let c = &DETECTION_FINDING;
    let (activity_id, activity) = CREATE;
    let mut md = metadata(&meta, options, ANOMALIES);
    let mut doc = Obj::new()
        .set("class_uid", c.uid)
        .set("class_name", c.name)
        .set("category_uid", c.category_uid)
        .set("category_name", c.category_name)
        .set("activity_id", activity_id)
        .set("activity_name", activity)
        .set("type_uid", c.uid * 100 + activity_id)
        .set("type_name", format!("{}: {activity}", c.name))
        .set("severity_id", severity_id)
        .set("severity", severity)
        .set("status_id", NEW.0)
        .set("status", NEW.1)
        .set("time", ms(meta.time_ns))
        .opt("start_time", f.time_ns("window_start").map(ms))
        .opt("end_time", f.time_ns("window_end").map(ms))
        .set("message", f.str("explanation").unwrap_or_default())
        .obj("finding_info", finding_info(f, &meta))
        .opt("resources", resources(f))
        .opt("evidences", evidences(f))
        .obj("unmapped", unmapped(f, &meta));
    if let Some(u) = user(f.str("principal"), None) {
        // `actor` is the `host` profile's attribute in this class.
        md = md.set("profiles", vec!["host"]);
        doc = doc.obj("actor", Obj::new().obj("user", u));
    }
    doc.obj("metadata", md).into_value()
}

/// `severity_id` and its caption.
fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// `finding_info`: what was found, by which analytic, over which window.
fn finding_info(f: &FindingRow<'_>, meta: &EventMeta) -> Obj {
    let (detector, rule) = finding_rule(f);
    let (type_id, type_name) = BEHAVIORAL;
    Obj::new()
        .set("uid", meta.event_id.as_str())
        .set("title", format!("{rule} ({detector})"))
        .opt("desc", f.str("explanation"))
        .set("types", vec![detector])
        .obj(
            "analytic",
            Obj::new()
                .set("uid", detector)
                .set("name", rule)
                .set("type_id", type_id)
                .set("type", type_name),
        )
        .opt("created_time", f.time_ns("detected_at").map(ms))
        .opt("first_seen_time", f.time_ns("window_start").map(ms))
        .opt("last_seen_time", f.time_ns("window_end").map(ms))
}

/// The MCP server and the tool the finding names, if any.
fn resources(f: &FindingRow<'_>) -> Option<Vec<Value>> {
    let resource = |name: &str, kind: &str| Obj::new().set("name", name).set("type", kind);
    let list: Vec<Value> = [
        f.str("server_name").map(|s| resource(s, "mcp_server")),
        f.str("tool_name").map(|t| resource(t, "tool")),
    ]
    .into_iter()
    .flatten()
    .map(Obj::into_value)
    .collect();
    (!list.is_empty()).then_some(list)
}

/// The numbers behind the finding as one evidence's `data` (the `evidences` object needs at
/// least one attribute, so none when there are no numbers).
fn evidences(f: &FindingRow<'_>) -> Option<Vec<Value>> {
    let data = Obj::new()
        .opt("observed", f.float("observed"))
        .opt("expected", f.float("expected"))
        .opt("score", f.float("score"));
    (!data.is_empty()).then(|| vec![Obj::new().obj("data", data).into_value()])
}

/// `unmapped.calltrail`: the kind and id, and the columns OCSF has no attribute for.
fn unmapped(f: &FindingRow<'_>, meta: &EventMeta) -> Obj {
    let (detector, rule) = finding_rule(f);
    let calltrail = Obj::new()
        .set("kind", EventKind::Finding.as_str())
        .set("event_id", meta.event_id.as_str())
        .set("detector", detector)
        .set("rule", rule)
        .opt("severity", f.str("severity"))
        .opt("entity_kind", f.str("entity_kind"))
        .opt("entity", f.str("entity"))
        .opt("team", f.str("team"))
        .opt("tenant", f.str("tenant"))
        .opt("server_name", f.str("server_name"))
        .opt("tool_name", f.str("tool_name"));
    Obj::new().obj("calltrail", calltrail)
}
