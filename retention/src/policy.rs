//! The `[retention]` policy: ordered rules, each a predicate over record fields and a keep
//! duration, and a default rule. The first rule whose predicate a record matches names its
//! retention class; the writer routes records to segments of one class, so a segment expires
//! whole. Each segment records its class and keep duration at write time, so a later, shorter
//! policy can never expire a segment earlier than it was promised.

use calltrail_schemas::glob::Glob;
use calltrail_schemas::{LlmCall, ToolCall};
use serde::Deserialize;

use crate::{Error, Result};

/// The longest keep duration accepted: 100 years.
const MAX_KEEP_DAYS: u64 = 36_500;

/// One rule as configured. Every field given must match (an empty list matches anything);
/// within a field, any listed value matches. `tenant`, `server` and `tool` take `*`/`?` globs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The class's name, recorded with every segment (`[A-Za-z0-9._-]`).
    pub name: String,
    /// How long records of this class are kept, in days.
    pub keep_days: u64,
    /// `read`, `write`, `delete`, `admin`, `unknown`.
    #[serde(default)]
    pub operation_class: Vec<String>,
    /// Tenant (legal entity) globs.
    #[serde(default)]
    pub tenant: Vec<String>,
    /// MCP server name globs.
    #[serde(default)]
    pub server: Vec<String>,
    /// Tool name globs.
    #[serde(default)]
    pub tool: Vec<String>,
    /// `ok`, `tool_error`, `protocol_error`, `denied`.
    #[serde(default)]
    pub outcome: Vec<String>,
    /// `human`, `service_account`, `unattributed`.
    #[serde(default)]
    pub principal_kind: Vec<String>,
}

/// The class of records no rule matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultRule {
    /// Its name. Default `other`.
    pub name: String,
    /// How long it is kept, in days. Default 400.
    pub keep_days: u64,
}

impl Default for DefaultRule {
    fn default() -> Self {
        Self {
            name: "other".into(),
            keep_days: 400,
        }
    }
}

/// The `[retention]` section. Without one, the shipped policy applies: writes, deletes and
/// admin calls 7 years (SEC 17a-4, SOX), reads 13 months (PCI DSS 10.5.1's 12, with a margin),
/// everything else 400 days.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Rules in order; the first match wins.
    pub rules: Vec<RuleConfig>,
    /// The class of everything else.
    pub default: DefaultRule,
    /// How often `calltrail serve` applies the policy, in seconds; 0 leaves it to
    /// `calltrail retention apply`. Default 3600.
    pub apply_every_secs: u64,
}

fn shipped_rule(name: &str, keep_days: u64, classes: &[&str]) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        keep_days,
        operation_class: classes.iter().map(|c| (*c).to_owned()).collect(),
        tenant: Vec::new(),
        server: Vec::new(),
        tool: Vec::new(),
        outcome: Vec::new(),
        principal_kind: Vec::new(),
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            rules: vec![
                shipped_rule("writes-deletes", 2557, &["write", "delete", "admin"]),
                shipped_rule("reads", 396, &["read"]),
            ],
            default: DefaultRule::default(),
            apply_every_secs: 3600,
        }
    }
}

/// The reserved class of audit events.
pub const AUDIT_CLASS: &str = "audit";

const OPERATION_CLASSES: &[&str] = &["read", "write", "delete", "admin", "unknown"];
const OUTCOMES: &[&str] = &["ok", "tool_error", "protocol_error", "denied"];
const PRINCIPAL_KINDS: &[&str] = &["human", "service_account", "unattributed"];

fn bad(key: String, message: impl Into<String>) -> Error {
    Error::Config {
        key,
        message: message.into(),
    }
}

fn check_name(key: String, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad(
            key,
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
        ));
    }
    Ok(())
}

fn check_keep(key: String, days: u64) -> Result<()> {
    if !(1..=MAX_KEEP_DAYS).contains(&days) {
        return Err(bad(
            key,
            format!("must be between 1 and {MAX_KEEP_DAYS} days"),
        ));
    }
    Ok(())
}

fn check_values(key: String, values: &[String], allowed: &[&str]) -> Result<()> {
    match values.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(v) => Err(bad(
            key,
            format!("{v:?} is not one of {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

impl RetentionConfig {
    /// Checks names, durations and values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let mut names = vec![AUDIT_CLASS, self.default.name.as_str()];
        check_name("retention.default.name".into(), &self.default.name)?;
        if self.default.name == AUDIT_CLASS {
            return Err(bad(
                "retention.default.name".into(),
                format!("\"{AUDIT_CLASS}\" is reserved for audit events"),
            ));
        }
        check_keep("retention.default.keep_days".into(), self.default.keep_days)?;
        if self.apply_every_secs > 604_800 {
            return Err(bad(
                "retention.apply_every_secs".into(),
                "must be at most 604800 (a week); 0 turns the schedule off",
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("retention.rules[{i}].{field}");
            check_name(key("name"), &r.name)?;
            if names.contains(&r.name.as_str()) {
                return Err(bad(
                    key("name"),
                    format!(
                        "{:?} names two classes (\"{AUDIT_CLASS}\" is reserved)",
                        r.name
                    ),
                ));
            }
            names.push(&r.name);
            check_keep(key("keep_days"), r.keep_days)?;
            check_values(
                key("operation_class"),
                &r.operation_class,
                OPERATION_CLASSES,
            )?;
            check_values(key("outcome"), &r.outcome, OUTCOMES)?;
            check_values(key("principal_kind"), &r.principal_kind, PRINCIPAL_KINDS)?;
        }
        Ok(())
    }

    /// The policy these rules describe (call [`RetentionConfig::validate`] first).
    pub fn compile(&self) -> RetentionPolicy {
        let globs = |v: &[String]| v.iter().map(|g| Glob::new(g)).collect();
        RetentionPolicy {
            rules: self
                .rules
                .iter()
                .map(|r| Rule {
                    class: RetentionClass {
                        name: r.name.clone(),
                        keep_days: r.keep_days,
                    },
                    operation_class: r.operation_class.clone(),
                    tenant: globs(&r.tenant),
                    server: globs(&r.server),
                    tool: globs(&r.tool),
                    outcome: r.outcome.clone(),
                    principal_kind: r.principal_kind.clone(),
                })
                .collect(),
            default: RetentionClass {
                name: self.default.name.clone(),
                keep_days: self.default.keep_days,
            },
        }
    }
}

/// A retention class: a name and how long its records are kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RetentionClass {
    /// The class's name.
    pub name: String,
    /// Days its records are kept.
    pub keep_days: u64,
}

#[derive(Debug, Clone)]
struct Rule {
    class: RetentionClass,
    operation_class: Vec<String>,
    tenant: Vec<Glob>,
    server: Vec<Glob>,
    tool: Vec<Glob>,
    outcome: Vec<String>,
    principal_kind: Vec<String>,
}

/// The fields a rule looks at; `None` where a record has no such field.
struct Fields<'a> {
    operation_class: Option<&'a str>,
    tenant: Option<&'a str>,
    server: Option<&'a str>,
    tool: Option<&'a str>,
    outcome: Option<&'a str>,
    principal_kind: &'a str,
}

fn any_eq(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

fn any_glob(wanted: &[Glob], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|g| g.matches(v)))
}

impl Rule {
    fn matches(&self, f: &Fields<'_>) -> bool {
        any_eq(&self.operation_class, f.operation_class)
            && any_glob(&self.tenant, f.tenant)
            && any_glob(&self.server, f.server)
            && any_glob(&self.tool, f.tool)
            && any_eq(&self.outcome, f.outcome)
            && any_eq(&self.principal_kind, Some(f.principal_kind))
    }
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    rules: Vec<Rule>,
    default: RetentionClass,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionConfig::default().compile()
    }
}

impl RetentionPolicy {
    /// The class of audit events (legal holds): kept as long as the longest class, so the
    /// record of a hold outlives anything it could have held. Retention never deletes one
    /// naming a hold still in force.
    pub fn audit_class(&self) -> RetentionClass {
        let keep_days = self
            .rules
            .iter()
            .map(|r| r.class.keep_days)
            .chain([self.default.keep_days])
            .max()
            .unwrap_or(self.default.keep_days);
        RetentionClass {
            name: AUDIT_CLASS.into(),
            keep_days,
        }
    }

    /// The keep duration the policy now gives the class `name`, if it has one.
    pub fn keep_days_of(&self, name: &str) -> Option<u64> {
        if name == AUDIT_CLASS {
            return Some(self.audit_class().keep_days);
        }
        self.rules
            .iter()
            .map(|r| &r.class)
            .chain([&self.default])
            .find(|c| c.name == name)
            .map(|c| c.keep_days)
    }

    fn class(&self, f: &Fields<'_>) -> &RetentionClass {
        self.rules
            .iter()
            .find(|r| r.matches(f))
            .map_or(&self.default, |r| &r.class)
    }

    /// The class of a tool call.
    pub fn tool_call(&self, r: &ToolCall) -> &RetentionClass {
        self.class(&Fields {
            operation_class: Some(r.operation_class.as_str()),
            tenant: r.attribution.tenant.as_deref(),
            server: r.server_name.as_deref(),
            tool: r.tool_name.as_deref(),
            outcome: Some(r.outcome.as_str()),
            principal_kind: r.attribution.kind().as_str(),
        })
    }

    /// The class of an LLM call: it has a tenant and a principal kind, but no operation class,
    /// server, tool or outcome, so rules that name those never match it.
    pub fn llm_call(&self, r: &LlmCall) -> &RetentionClass {
        self.class(&Fields {
            operation_class: None,
            tenant: r.attribution.tenant.as_deref(),
            server: None,
            tool: None,
            outcome: None,
            principal_kind: r.attribution.kind().as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{T0, call};
    use calltrail_schemas::OperationClass;

    fn policy(toml_text: &str) -> Result<RetentionPolicy> {
        let c: RetentionConfig =
            toml::from_str(toml_text).map_err(|e| bad("toml".into(), e.to_string()))?;
        c.validate()?;
        Ok(c.compile())
    }

    const SHIPPED: &str = r#"
[[rules]]
name = "writes-deletes"
keep_days = 2557
operation_class = ["write", "delete", "admin"]

[[rules]]
name = "reads"
keep_days = 396
operation_class = ["read"]

[default]
name = "other"
keep_days = 400
"#;

    #[test]
    fn the_first_matching_rule_names_the_class() {
        let p = policy(SHIPPED).unwrap();
        let shipped = RetentionPolicy::default();
        for class in [
            OperationClass::Read,
            OperationClass::Delete,
            OperationClass::Unknown,
        ] {
            let mut c = call(0, T0);
            c.operation_class = class;
            assert_eq!(
                p.tool_call(&c),
                shipped.tool_call(&c),
                "the example file is the default"
            );
        }
        let mut c = call(1, T0);
        assert_eq!(p.tool_call(&c).name, "reads");
        c.operation_class = OperationClass::Delete;
        assert_eq!(
            p.tool_call(&c),
            &RetentionClass {
                name: "writes-deletes".into(),
                keep_days: 2557
            }
        );
        c.operation_class = OperationClass::Unknown;
        assert_eq!(p.tool_call(&c).name, "other");

        let p = policy(
            r#"
[[rules]]
name = "eu-payments"
keep_days = 3650
tenant = ["acme-*-eu"]
server = ["payments*"]
[[rules]]
name = "bots"
keep_days = 30
principal_kind = ["service_account", "unattributed"]
"#,
        )
        .unwrap();
        let mut c = call(2, T0);
        assert_eq!(p.tool_call(&c).name, "bots", "no principal: unattributed");
        c.attribution.tenant = Some("ACME-bank-EU".into());
        c.server_name = Some("payments-mcp".into());
        assert_eq!(
            p.tool_call(&c).name,
            "eu-payments",
            "globs, case-insensitive"
        );
        c.server_name = Some("crm".into());
        assert_eq!(p.tool_call(&c).name, "bots");
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, key) in [
            (
                "[[rules]]\nname = \"a\"\nkeep_days = 0",
                "retention.rules[0].keep_days",
            ),
            (
                "[[rules]]\nname = \"a b\"\nkeep_days = 1",
                "retention.rules[0].name",
            ),
            (
                "[[rules]]\nname = \"other\"\nkeep_days = 1",
                "retention.rules[0].name",
            ),
            (
                "[[rules]]\nname = \"a\"\nkeep_days = 1\noperation_class = [\"wrote\"]",
                "retention.rules[0].operation_class",
            ),
            (
                "[[rules]]\nname = \"a\"\nkeep_days = 1\noutcome = [\"fine\"]",
                "retention.rules[0].outcome",
            ),
            (
                "[[rules]]\nname = \"audit\"\nkeep_days = 1",
                "retention.rules[0].name",
            ),
            (
                "[default]\nkeep_days = 40000",
                "retention.default.keep_days",
            ),
        ] {
            let e = policy(text).unwrap_err().to_string();
            assert!(e.starts_with(key), "{text}: {e}");
        }
        assert!(
            policy("[[rules]]\nname = \"a\"\nkeep_days = 1\nkeep = 2").is_err(),
            "unknown keys"
        );
    }
}
