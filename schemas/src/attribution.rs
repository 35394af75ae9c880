//! Who a call is attributed to: principal, principal kind, team, tenant and cost centre.
//!
//! The principal comes from an ordered, configurable list of attribute sources (span first,
//! then resource); a directory maps principals to team, tenant and cost centre; patterns mark
//! shared service accounts and OAuth client ids (FastMCP sets `enduser.id` to the client id,
//! e.g. `claude-desktop`) as `service_account`. A call with no principal is `unattributed`:
//! kept, never dropped. Specified in `docs/specs/attribution.md`.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;

use crate::catalog::ToolCatalog;
use crate::glob::Glob;
use crate::otlp_value::attr_string;
use crate::record::{Attribution, PrincipalKind};
use crate::sensitive::SensitivePolicy;
use crate::{Error, Result};

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeScope {
    /// The span's own attributes.
    Span,
    /// The resource (process) attributes.
    Resource,
}

/// One place to look for a value: `{ from = "span", key = "enduser.id" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSource {
    /// Span or resource.
    pub from: AttributeScope,
    /// Attribute key.
    pub key: String,
}

impl AttributeSource {
    fn new(from: AttributeScope, key: &str) -> Self {
        Self {
            from,
            key: key.to_string(),
        }
    }

    fn label(&self) -> String {
        let scope = match self.from {
            AttributeScope::Span => "span",
            AttributeScope::Resource => "resource",
        };
        format!("{scope}:{}", self.key)
    }
}

fn sources(span: &[&str], resource: &[&str]) -> Vec<AttributeSource> {
    span.iter()
        .map(|k| AttributeSource::new(AttributeScope::Span, k))
        .chain(
            resource
                .iter()
                .map(|k| AttributeSource::new(AttributeScope::Resource, k)),
        )
        .collect()
}

/// The `[attribution]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// Ordered places to find the principal; the first non-empty value wins.
    pub identity_sources: Vec<AttributeSource>,
    /// Ordered places to find the team when the directory has none.
    pub team_sources: Vec<AttributeSource>,
    /// Ordered places to find the tenant or legal entity when the directory has none.
    pub tenant_sources: Vec<AttributeSource>,
    /// Ordered places to find the cost centre when the directory has none.
    pub cost_center_sources: Vec<AttributeSource>,
    /// CSV file `principal,team,tenant,cost_center[,kind]` mapping principals to their
    /// organisation (read by the binary; this crate does no I/O).
    pub directory: Option<std::path::PathBuf>,
    /// TOML tool catalog (`[[rule]] server, tool, class`).
    pub tool_catalog: Option<std::path::PathBuf>,
    /// Globs over the principal marking shared service accounts.
    pub service_account_patterns: Vec<String>,
    /// Globs over the principal marking OAuth client ids (an app, not a person).
    pub client_id_patterns: Vec<String>,
    /// What is kept of tool arguments and results: `hash` (default), `full` or `none`.
    pub sensitive: SensitivePolicy,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            identity_sources: sources(
                &[
                    "enduser.id",
                    "user.id",
                    "user.email",
                    "user.name",
                    "enduser.pseudo.id",
                ],
                &["enduser.id", "user.id"],
            ),
            team_sources: sources(
                &["team.id", "team", "team.name"],
                &["team.id", "team", "team.name"],
            ),
            tenant_sources: sources(
                &["tenant.id", "tenant", "legal_entity"],
                &["tenant.id", "tenant", "legal_entity"],
            ),
            cost_center_sources: sources(
                &["cost_center", "cost_center.id"],
                &["cost_center", "cost_center.id"],
            ),
            directory: None,
            tool_catalog: None,
            service_account_patterns: [
                "svc-*",
                "svc_*",
                "sa-*",
                "*-bot",
                "bot-*",
                "*[bot]",
                "service-account-*",
                "*-service-account",
                "system:serviceaccount:*",
                "*@*.iam.gserviceaccount.com",
            ]
            .map(String::from)
            .to_vec(),
            client_id_patterns: [
                "claude-desktop",
                "claude-code",
                "claude-ai",
                "cursor",
                "vscode*",
                "copilot*",
                "windsurf",
                "chatgpt*",
                "mcp-inspector",
                "goose",
                "cline",
                "continue",
                "zed",
                "mcp-remote",
                "gemini-cli",
            ]
            .map(String::from)
            .to_vec(),
            sensitive: SensitivePolicy::Hash,
        }
    }
}

impl AttributionConfig {
    /// Checks values serde cannot: empty keys and patterns. Errors name the key.
    pub fn validate(&self) -> Result<()> {
        let lists = [
            ("identity_sources", &self.identity_sources),
            ("team_sources", &self.team_sources),
            ("tenant_sources", &self.tenant_sources),
            ("cost_center_sources", &self.cost_center_sources),
        ];
        for (name, list) in lists {
            for (i, s) in list.iter().enumerate() {
                if s.key.trim().is_empty() {
                    return Err(Error::Config {
                        key: format!("attribution.{name}[{i}].key"),
                        message: "must not be empty".into(),
                    });
                }
            }
        }
        for (name, list) in [
            ("service_account_patterns", &self.service_account_patterns),
            ("client_id_patterns", &self.client_id_patterns),
        ] {
            if let Some(i) = list.iter().position(|p| p.trim().is_empty()) {
                return Err(Error::Config {
                    key: format!("attribution.{name}[{i}]"),
                    message: "must not be empty".into(),
                });
            }
        }
        Ok(())
    }
}

/// One principal's organisational data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryEntry {
    /// Team.
    pub team: Option<String>,
    /// Tenant or legal entity.
    pub tenant: Option<String>,
    /// Cost centre.
    pub cost_center: Option<String>,
    /// Kind when the directory states it.
    pub kind: Option<PrincipalKind>,
}

/// Principal → organisation, keyed case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: HashMap<String, DirectoryEntry>,
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

impl Directory {
    /// Parses the CSV directory: a header with `principal` and any of `team`, `tenant`,
    /// `cost_center`, `kind` (`human` or `service_account`).
    pub fn from_csv(text: &str) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| Error::Directory {
                line: 1,
                message: e.to_string(),
            })?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let principal = col("principal").ok_or_else(|| Error::Directory {
            line: 1,
            message: "header must name a `principal` column".into(),
        })?;
        let (team, tenant, cost, kind) =
            (col("team"), col("tenant"), col("cost_center"), col("kind"));
        let mut entries = HashMap::new();
        for (i, row) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let row = row.map_err(|e| Error::Directory {
                line,
                message: e.to_string(),
            })?;
            let Some(p) = non_empty(row.get(principal)) else {
                return Err(Error::Directory {
                    line,
                    message: "empty principal".into(),
                });
            };
            let kind = match kind.and_then(|k| non_empty(row.get(k))).as_deref() {
                None => None,
                Some("human") => Some(PrincipalKind::Human),
                Some("service_account") => Some(PrincipalKind::ServiceAccount),
                Some(other) => {
                    return Err(Error::Directory {
                        line,
                        message: format!("kind `{other}`: expected `human` or `service_account`"),
                    });
                }
            };
            let get = |c: Option<usize>| c.and_then(|c| non_empty(row.get(c)));
            let entry = DirectoryEntry {
                team: get(team),
                tenant: get(tenant),
                cost_center: get(cost),
                kind,
            };
            entries.insert(p.to_lowercase(), entry);
        }
        Ok(Self { entries })
    }

    /// The entry of a principal, if listed.
    pub fn get(&self, principal: &str) -> Option<&DirectoryEntry> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries.get(&principal.to_lowercase())
    }

    /// Number of principals listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no principal is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Attribution rules compiled for the hot path.
#[derive(Debug, Clone)]
pub struct Attributor {
    config: AttributionConfig,
    directory: Directory,
    catalog: ToolCatalog,
    service_accounts: Vec<Glob>,
    client_ids: Vec<Glob>,
}

impl Default for Attributor {
    fn default() -> Self {
        Self::new(
            AttributionConfig::default(),
            Directory::default(),
            ToolCatalog::default(),
        )
    }
}

fn lookup(
    sources: &[AttributeSource],
    span: &[KeyValue],
    resource: &[KeyValue],
) -> Option<(String, String)> {
    sources.iter().find_map(|s| {
        let kvs = match s.from {
            AttributeScope::Span => span,
            AttributeScope::Resource => resource,
        };
        let v = attr_string(kvs, &s.key)?;
        let v = v.trim();
        (!v.is_empty()).then(|| (v.to_string(), s.label()))
    })
}

impl Attributor {
    /// Compiles a configuration with its loaded directory and catalog.
    pub fn new(config: AttributionConfig, directory: Directory, catalog: ToolCatalog) -> Self {
        let service_accounts = config
            .service_account_patterns
            .iter()
            .map(|p| Glob::new(p))
            .collect();
        let client_ids = config
            .client_id_patterns
            .iter()
            .map(|p| Glob::new(p))
            .collect();
        Self {
            config,
            directory,
            catalog,
            service_accounts,
            client_ids,
        }
    }

    /// The tool catalog.
    pub fn catalog(&self) -> &ToolCatalog {
        &self.catalog
    }

    /// The policy for tool arguments and results.
    pub fn sensitive(&self) -> SensitivePolicy {
        self.config.sensitive
    }

    /// Resolves who a span is attributed to.
    pub fn attribute(&self, span: &[KeyValue], resource: &[KeyValue]) -> Attribution {
        let found = lookup(&self.config.identity_sources, span, resource);
        let entry = found.as_ref().and_then(|(p, _)| self.directory.get(p));
        let from_attrs = |list: &[AttributeSource]| lookup(list, span, resource).map(|(v, _)| v);
        let team = entry
            .and_then(|e| e.team.clone())
            .or_else(|| from_attrs(&self.config.team_sources));
        let tenant = entry
            .and_then(|e| e.tenant.clone())
            .or_else(|| from_attrs(&self.config.tenant_sources));
        let cost_center = entry
            .and_then(|e| e.cost_center.clone())
            .or_else(|| from_attrs(&self.config.cost_center_sources));
        let Some((principal, source)) = found else {
            return Attribution {
                principal_kind: Some(PrincipalKind::Unattributed),
                principal_reason: "no_principal".into(),
                team,
                tenant,
                cost_center,
                ..Attribution::default()
            };
        };
        let (kind, reason) = self.classify(&principal, entry);
        Attribution {
            principal: Some(principal),
            principal_source: Some(source),
            principal_kind: Some(kind),
            principal_reason: reason,
            team,
            tenant,
            cost_center,
        }
    }

    fn classify(&self, principal: &str, entry: Option<&DirectoryEntry>) -> (PrincipalKind, String) {
        if let Some(kind) = entry.and_then(|e| e.kind) {
            return (kind, "directory".into());
        }
        if let Some(g) = self.service_accounts.iter().find(|g| g.matches(principal)) {
            return (
                PrincipalKind::ServiceAccount,
                format!("service_account_pattern:{}", g.as_str()),
            );
        }
        if let Some(g) = self.client_ids.iter().find(|g| g.matches(principal)) {
            return (
                PrincipalKind::ServiceAccount,
                format!("client_id_pattern:{}", g.as_str()),
            );
        }
        if entry.is_some() {
            (PrincipalKind::Human, "directory".into())
        } else {
            (PrincipalKind::Human, "default_human".into())
        }
    }

    /// True when the principal was recognised as an OAuth client id (an application).
    pub fn is_client_id(attribution: &Attribution) -> bool {
        attribution
            .principal_reason
            .starts_with("client_id_pattern:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn attributor(dir: &str) -> Attributor {
        Attributor::new(
            AttributionConfig::default(),
            Directory::from_csv(dir).unwrap(),
            ToolCatalog::default(),
        )
    }

    const DIR: &str = "principal,team,tenant,cost_center,kind\n\
        alice@example.com,payments,acme-bank-eu,CC-100,\n\
        ci-runner,platform,acme-bank-eu,CC-900,service_account\n";

    #[test]
    fn directory_fills_team_tenant_cost_center() {
        let a = attributor(DIR).attribute(&[kv("enduser.id", "Alice@Example.com")], &[]);
        assert_eq!(a.principal.as_deref(), Some("Alice@Example.com"));
        assert_eq!(a.principal_source.as_deref(), Some("span:enduser.id"));
        assert_eq!(a.kind(), PrincipalKind::Human);
        assert_eq!(a.principal_reason, "directory");
        assert_eq!(a.team.as_deref(), Some("payments"));
        assert_eq!(a.tenant.as_deref(), Some("acme-bank-eu"));
        assert_eq!(a.cost_center.as_deref(), Some("CC-100"));
    }

    #[test]
    fn directory_kind_and_patterns_mark_service_accounts() {
        let at = attributor(DIR);
        let a = at.attribute(&[kv("user.id", "ci-runner")], &[]);
        assert_eq!(
            (a.kind(), a.principal_reason.as_str()),
            (PrincipalKind::ServiceAccount, "directory")
        );
        let a = at.attribute(&[kv("user.id", "svc-reporting")], &[]);
        assert_eq!(a.kind(), PrincipalKind::ServiceAccount);
        assert_eq!(a.principal_reason, "service_account_pattern:svc-*");
        let a = at.attribute(&[kv("enduser.id", "claude-desktop")], &[]);
        assert_eq!(a.kind(), PrincipalKind::ServiceAccount);
        assert!(Attributor::is_client_id(&a));
    }

    #[test]
    fn span_beats_resource_and_resource_fills_in() {
        let at = attributor(DIR);
        let a = at.attribute(
            &[kv("user.id", "bob")],
            &[kv("user.id", "carol"), kv("team", "risk")],
        );
        assert_eq!(a.principal.as_deref(), Some("bob"));
        assert_eq!(a.team.as_deref(), Some("risk"));
        let a = at.attribute(&[], &[kv("enduser.id", "carol")]);
        assert_eq!(a.principal_source.as_deref(), Some("resource:enduser.id"));
        assert_eq!(a.principal_reason, "default_human");
    }

    #[test]
    fn no_principal_is_unattributed_but_kept() {
        let a = attributor(DIR).attribute(&[kv("enduser.id", "  ")], &[kv("team", "ops")]);
        assert_eq!(a.kind(), PrincipalKind::Unattributed);
        assert_eq!(a.principal, None);
        assert_eq!(a.team.as_deref(), Some("ops"));
    }

    #[test]
    fn directory_errors_name_the_line() {
        let e = Directory::from_csv("principal,kind\nalice,robot\n").unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("robot"),
            "{e}"
        );
        let e = Directory::from_csv("user,team\nalice,x\n").unwrap_err();
        assert!(e.to_string().contains("principal"), "{e}");
    }

    #[test]
    fn config_rejects_unknown_keys_and_empty_values() {
        let e = toml::from_str::<AttributionConfig>("identity_source = []").unwrap_err();
        assert!(e.to_string().contains("identity_source"), "{e}");
        let c: AttributionConfig =
            toml::from_str("identity_sources = [{ from = \"span\", key = \"\" }]").unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "attribution.identity_sources[0].key: must not be empty"
        );
    }
}
