//! A destination's filter: which events it is sent. Every field given must match; within a
//! field, any listed value; `tenant`, `server` and `tool` take `*`/`?` globs. An empty filter
//! passes everything. A field an event's kind does not have never excludes it: checkpoints
//! pass every field filter, and findings every one but `tenant`, `server` and `tool`; `kinds`
//! is how a destination leaves them out.

use calltrail_schemas::glob::Glob;
use serde::Deserialize;

use super::event::{Event, EventKind};

/// `[forward.destinations.filter]` as configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Event kinds: `tool_call`, `llm_call`, `audit`, `checkpoint`, `finding`. Default: all.
    pub kinds: Vec<String>,
    /// Operation classes of tool calls: `read`, `write`, `delete`, `admin`, `unknown`.
    pub operation_class: Vec<String>,
    /// Outcomes of tool calls: `ok`, `tool_error`, `protocol_error`, `denied`.
    pub outcome: Vec<String>,
    /// Tenant globs (records and findings).
    pub tenant: Vec<String>,
    /// MCP server globs (records and findings).
    pub server: Vec<String>,
    /// Tool globs (records and findings).
    pub tool: Vec<String>,
    /// Principal kinds: `human`, `service_account`, `unattributed`.
    pub principal_kind: Vec<String>,
}

const KINDS: &[&str] = &["tool_call", "llm_call", "audit", "checkpoint", "finding"];
const OPERATION_CLASSES: &[&str] = &["read", "write", "delete", "admin", "unknown"];
const OUTCOMES: &[&str] = &["ok", "tool_error", "protocol_error", "denied"];
const PRINCIPAL_KINDS: &[&str] = &["human", "service_account", "unattributed"];

impl FilterConfig {
    /// Checks every value; the error names the key under `key` (e.g.
    /// `forward.destinations[0].filter`).
    pub fn validate(&self, key: &str) -> Result<(), String> {
        for (field, values, allowed) in [
            ("kinds", &self.kinds, KINDS),
            ("operation_class", &self.operation_class, OPERATION_CLASSES),
            ("outcome", &self.outcome, OUTCOMES),
            ("principal_kind", &self.principal_kind, PRINCIPAL_KINDS),
        ] {
            if let Some(v) = values.iter().find(|v| !allowed.contains(&v.as_str())) {
                return Err(format!(
                    "{key}.{field}: {v:?} is not one of {}",
                    allowed.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The filter these settings describe (validate first).
    pub fn compile(&self) -> Filter {
        let globs = |v: &[String]| v.iter().map(|g| Glob::new(g)).collect();
        Filter {
            kinds: self.kinds.clone(),
            operation_class: self.operation_class.clone(),
            outcome: self.outcome.clone(),
            tenant: globs(&self.tenant),
            server: globs(&self.server),
            tool: globs(&self.tool),
            principal_kind: self.principal_kind.clone(),
        }
    }
}

/// A compiled filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    kinds: Vec<String>,
    operation_class: Vec<String>,
    outcome: Vec<String>,
    tenant: Vec<Glob>,
    server: Vec<Glob>,
    tool: Vec<Glob>,
    principal_kind: Vec<String>,
}

fn any_eq(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

fn any_glob(wanted: &[Glob], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|g| g.matches(v)))
}

impl Filter {
    /// True when `kind` may pass at all (checked before reading a record's fields).
    pub fn wants_kind(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind.as_str())
    }

    /// True when the destination is sent `event`. Checkpoints pass every field filter: they
    /// concern the whole chain. Findings have no operation class, outcome or principal kind,
    /// so only the tenant, server and tool filters apply to them (a finding that names none
    /// fails a filter on it, as a record would).
    pub fn passes(&self, event: &Event<'_>) -> bool {
        match event {
            Event::Checkpoint(_) => self.wants_kind(EventKind::Checkpoint),
            Event::Finding(f) => {
                self.wants_kind(EventKind::Finding)
                    && any_glob(&self.tenant, f.str("tenant"))
                    && any_glob(&self.server, f.str("server_name"))
                    && any_glob(&self.tool, f.str("tool_name"))
            }
            Event::Record(r) => {
                self.wants_kind(r.kind())
                    && any_eq(&self.operation_class, r.str("operation_class"))
                    && any_eq(&self.outcome, r.str("outcome"))
                    && any_glob(&self.tenant, r.str("tenant"))
                    && any_glob(&self.server, r.str("server_name"))
                    && any_glob(&self.tool, r.str("tool_name"))
                    && any_eq(&self.principal_kind, r.str("principal_kind"))
            }
        }
    }
}
