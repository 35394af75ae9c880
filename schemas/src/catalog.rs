//! The operation class of a call: from the tool catalog when a rule matches, else from the
//! MCP method, else from the verb the tool name starts with (`docs/specs/attribution.md`).

use serde::Deserialize;

use crate::glob::Glob;
use crate::record::OperationClass;
use crate::{Error, Result};

/// One catalog rule as written in the catalog file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRule {
    /// Glob over the server name; absent matches every server.
    #[serde(default)]
    pub server: Option<String>,
    /// Glob over the tool name.
    pub tool: String,
    /// The class calls of matching tools get.
    pub class: OperationClass,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    rule: Vec<CatalogRule>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    server: Option<Glob>,
    tool: Glob,
    class: OperationClass,
}

/// Ordered tool rules; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct ToolCatalog {
    rules: Vec<CompiledRule>,
}

const READ_VERBS: &[&str] = &[
    "get",
    "list",
    "read",
    "search",
    "find",
    "fetch",
    "query",
    "describe",
    "show",
    "lookup",
    "view",
    "count",
    "check",
    "inspect",
    "browse",
    "download",
    "export",
    "explain",
    "summarize",
    "retrieve",
    "select",
];
const WRITE_VERBS: &[&str] = &[
    "create", "update", "set", "add", "put", "insert", "write", "post", "patch", "upsert",
    "charge", "send", "transfer", "pay", "refund", "approve", "submit", "assign", "move", "rename",
    "modify", "edit", "enable", "disable", "start", "stop", "restart", "deploy", "run", "execute",
    "merge", "commit", "push", "upload", "import", "book", "cancel", "close", "open", "reset",
    "suspend", "activate",
];
const DELETE_VERBS: &[&str] = &[
    "delete",
    "remove",
    "drop",
    "destroy",
    "purge",
    "erase",
    "wipe",
    "truncate",
    "terminate",
];
const ADMIN_VERBS: &[&str] = &[
    "grant",
    "revoke",
    "rotate",
    "configure",
    "admin",
    "impersonate",
];

impl ToolCatalog {
    /// Parses a catalog file (TOML, a list of `[[rule]]` tables with `server`, `tool`, `class`).
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| Error::Catalog(e.to_string()))?;
        Ok(Self::from_rules(file.rule))
    }

    /// Builds a catalog from rules, in priority order.
    pub fn from_rules(rules: Vec<CatalogRule>) -> Self {
        let rules = rules
            .into_iter()
            .map(|r| CompiledRule {
                server: r.server.as_deref().map(Glob::new),
                tool: Glob::new(&r.tool),
                class: r.class,
            })
            .collect();
        Self { rules }
    }

    /// The class of one call.
    pub fn classify(
        &self,
        method: &str,
        server: Option<&str>,
        tool: Option<&str>,
    ) -> OperationClass {
        if let Some(tool) = tool {
            for r in &self.rules {
                let server_ok = match (&r.server, server) {
                    (None, _) => true,
                    (Some(g), Some(s)) => g.matches(s),
                    (Some(_), None) => false,
                };
                if server_ok && r.tool.matches(tool) {
                    return r.class;
                }
            }
        }
        match method {
            "tools/call" => tool.map_or(OperationClass::Unknown, class_from_tool_name),
            "tools/list"
            | "prompts/list"
            | "prompts/get"
            | "resources/list"
            | "resources/read"
            | "resources/templates/list"
            | "completion/complete"
            | "initialize"
            | "server/discover"
            | "ping" => OperationClass::Read,
            "resources/subscribe" | "resources/unsubscribe" => OperationClass::Read,
            "logging/setLevel" => OperationClass::Admin,
            _ => OperationClass::Unknown,
        }
    }
}

/// The class implied by a tool name's leading verb: `get_customer` → read,
/// `deleteAccount` → delete, `charge-card` → write; anything else → unknown.
pub fn class_from_tool_name(tool: &str) -> OperationClass {
    let first = first_word(tool);
    let is = |verbs: &[&str]| verbs.iter().any(|v| *v == first);
    if is(DELETE_VERBS) {
        OperationClass::Delete
    } else if is(ADMIN_VERBS) {
        OperationClass::Admin
    } else if is(WRITE_VERBS) {
        OperationClass::Write
    } else if is(READ_VERBS) {
        OperationClass::Read
    } else {
        OperationClass::Unknown
    }
}

/// The first word of a snake, kebab, dotted or camel-case name, lowercased. A server prefix
/// such as `github.` or `crm__` is skipped when more words follow.
fn first_word(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        // Only the first two words matter; stop before allocating more.
        if words.len() >= 2 {
            break;
        }
        if c == '_' || c == '-' || c == '.' || c == '/' || c == ':' || c == ' ' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
        } else if c.is_uppercase() && prev_lower {
            words.push(std::mem::take(&mut cur));
            cur.extend(c.to_lowercase());
            prev_lower = false;
        } else {
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            cur.extend(c.to_lowercase());
        }
    }
    if !cur.is_empty() && words.len() < 2 {
        words.push(cur);
    }
    let known = |w: &str| {
        [READ_VERBS, WRITE_VERBS, DELETE_VERBS, ADMIN_VERBS]
            .iter()
            .any(|l| l.contains(&w))
    };
    // Namespaced tools (`github.create_issue`): the verb is the first known word, looked
    // for in the first two words only so that `customer_delete_log` stays unknown-ish.
    words
        .iter()
        .take(2)
        .find(|w| known(w))
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_give_classes() {
        assert_eq!(class_from_tool_name("get_customer"), OperationClass::Read);
        assert_eq!(class_from_tool_name("listInvoices"), OperationClass::Read);
        assert_eq!(
            class_from_tool_name("update_account_status"),
            OperationClass::Write
        );
        assert_eq!(
            class_from_tool_name("charge_customer"),
            OperationClass::Write
        );
        assert_eq!(
            class_from_tool_name("deleteAccount"),
            OperationClass::Delete
        );
        assert_eq!(class_from_tool_name("remove-user"), OperationClass::Delete);
        assert_eq!(
            class_from_tool_name("github.create_issue"),
            OperationClass::Write
        );
        assert_eq!(class_from_tool_name("grant_role"), OperationClass::Admin);
        assert_eq!(class_from_tool_name("frobnicate"), OperationClass::Unknown);
        assert_eq!(class_from_tool_name(""), OperationClass::Unknown);
    }

    #[test]
    fn catalog_rules_win_in_order() {
        let cat = ToolCatalog::from_toml(
            r#"
            [[rule]]
            server = "payments-*"
            tool = "get_*"
            class = "admin"
            [[rule]]
            tool = "sync_*"
            class = "write"
            "#,
        )
        .unwrap();
        let c = |s: Option<&str>, t: &str| cat.classify("tools/call", s, Some(t));
        assert_eq!(
            c(Some("payments-mcp"), "get_balance"),
            OperationClass::Admin
        );
        assert_eq!(c(Some("crm"), "get_balance"), OperationClass::Read);
        assert_eq!(c(None, "get_balance"), OperationClass::Read);
        assert_eq!(c(None, "sync_ledger"), OperationClass::Write);
        assert_eq!(
            cat.classify("resources/read", None, None),
            OperationClass::Read
        );
        assert_eq!(
            cat.classify("notifications/initialized", None, None),
            OperationClass::Unknown
        );
    }

    #[test]
    fn bad_catalog_names_the_problem() {
        let err = ToolCatalog::from_toml("[[rule]]\ntool='x'\nclass='nope'\n").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err =
            ToolCatalog::from_toml("[[rule]]\ntool='x'\nclass='read'\nextra=1\n").unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }
}
