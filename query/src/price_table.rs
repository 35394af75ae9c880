//! The `[chargeback]` settings: versioned price tables and how the platform's fixed cost is
//! shared out.
//!
//! No OpenTelemetry attribute carries cost, so cost is computed from what the record does carry
//! (calls, durations, token counts) with a price table, and every computed cost names the
//! version of the table that priced it. A table applies from its `effective_from` date until the
//! next table's: changing a price adds a table, so past months keep their prices.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// `[chargeback]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChargebackConfig {
    /// ISO 4217 code of every price. Default `USD`.
    pub currency: String,
    /// FOCUS `BillingAccountId` of exported rows. Default `calltrail`.
    pub billing_account_id: String,
    /// FOCUS `BillingAccountName`. Default `MCP platform`.
    pub billing_account_name: String,
    /// FOCUS `ProviderName`, `PublisherName` and `InvoiceIssuerName`: whoever runs the MCP
    /// platform internally. Default `Internal MCP platform`.
    pub provider: String,
    /// Whether the `finance` role may ask for chargeback by user. Default false: finance sees
    /// teams, cost centres, tenants and servers, not people.
    pub finance_sees_users: bool,
    /// The price tables, oldest first. Default: one table, version `unpriced`, all prices 0.
    pub price_tables: Vec<PriceTable>,
}

impl Default for ChargebackConfig {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            billing_account_id: "calltrail".into(),
            billing_account_name: "MCP platform".into(),
            provider: "Internal MCP platform".into(),
            finance_sees_users: false,
            price_tables: vec![PriceTable::unpriced()],
        }
    }
}

/// How a period's platform cost is shared among the groups that used the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// In proportion to calls: each call carries the same share.
    Proportional,
    /// The same share for every group with at least one call.
    Even,
}

/// One version of the prices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// The name every cost it computes carries, e.g. `2026-01`.
    pub version: String,
    /// First UTC day it applies to (`YYYY-MM-DD`); may be left out on the first table only,
    /// which then applies to everything before the second.
    #[serde(default)]
    pub effective_from: Option<NaiveDate>,
    /// The platform's fixed cost per calendar month, allocated to the groups that used it.
    #[serde(default)]
    pub platform_monthly_cost: f64,
    /// How the fixed cost is allocated. Default proportional.
    #[serde(default = "proportional")]
    pub allocation: Allocation,
    /// Price of a call no rule in `calls` matches.
    #[serde(default)]
    pub default_per_call: f64,
    /// Price per second of call duration, on top of the per-call price.
    #[serde(default)]
    pub per_second: f64,
    /// Per-call prices by server, tool and operation class; the first matching rule applies.
    #[serde(default)]
    pub calls: Vec<CallPrice>,
    /// Token prices by model; the longest matching model prefix applies.
    #[serde(default)]
    pub models: Vec<ModelPrice>,
    /// Price per 1 000 input tokens of a model no rule matches.
    #[serde(default)]
    pub default_per_1k_input_tokens: f64,
    /// Price per 1 000 output tokens of a model no rule matches.
    #[serde(default)]
    pub default_per_1k_output_tokens: f64,
}

fn proportional() -> Allocation {
    Allocation::Proportional
}

/// A per-call price; a rule without a field matches every value of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallPrice {
    /// MCP server name.
    #[serde(default)]
    pub server: Option<String>,
    /// Tool name.
    #[serde(default)]
    pub tool: Option<String>,
    /// Operation class (`read`, `write`, `delete`, `admin`, `other`).
    #[serde(default)]
    pub operation_class: Option<String>,
    /// The price of one call.
    pub per_call: f64,
}

/// Token prices of the models whose name starts with `model`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// A model name or prefix (`claude-sonnet-4` matches `claude-sonnet-4-20250514`).
    pub model: String,
    /// Price per 1 000 input tokens.
    pub per_1k_input_tokens: f64,
    /// Price per 1 000 output tokens.
    pub per_1k_output_tokens: f64,
}

impl PriceTable {
    fn unpriced() -> Self {
        Self {
            version: "unpriced".into(),
            effective_from: None,
            platform_monthly_cost: 0.0,
            allocation: Allocation::Proportional,
            default_per_call: 0.0,
            per_second: 0.0,
            calls: Vec::new(),
            models: Vec::new(),
            default_per_1k_input_tokens: 0.0,
            default_per_1k_output_tokens: 0.0,
        }
    }

    /// Model rules, longest prefix first, so the first match is the most specific.
    pub fn models_by_specificity(&self) -> Vec<&ModelPrice> {
        let mut models: Vec<_> = self.models.iter().collect();
        models.sort_by(|a, b| {
            b.model
                .len()
                .cmp(&a.model.len())
                .then(a.model.cmp(&b.model))
        });
        models
    }
}

fn price(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && (0.0..1e12).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{key}: must be a price between 0 and 1e12, not {v}"
        ))
    }
}

impl ChargebackConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "chargeback.currency: {c:?} is not an ISO 4217 code (three capital letters)"
            ));
        }
        for (key, v) in [
            ("chargeback.billing_account_id", &self.billing_account_id),
            (
                "chargeback.billing_account_name",
                &self.billing_account_name,
            ),
            ("chargeback.provider", &self.provider),
        ] {
            if v.trim().is_empty() {
                return Err(format!("{key}: must not be empty"));
            }
        }
        if self.price_tables.is_empty() {
            return Err("chargeback.price_tables: at least one table is needed".into());
        }
        let mut previous: Option<NaiveDate> = None;
        for (i, t) in self.price_tables.iter().enumerate() {
            let at = format!("chargeback.price_tables[{i}]");
            if t.version.trim().is_empty() {
                return Err(format!("{at}.version: must not be empty"));
            }
            if self.price_tables[..i]
                .iter()
                .any(|o| o.version == t.version)
            {
                return Err(format!("{at}.version: {:?} is used twice", t.version));
            }
            match (i, t.effective_from) {
                (0, _) => {}
                (_, None) => {
                    return Err(format!(
                        "{at}.effective_from: required on every table but the first"
                    ));
                }
                (_, Some(d)) => {
                    if previous.is_some_and(|p| d <= p) {
                        return Err(format!(
                            "{at}.effective_from: {d} must be after the previous table's"
                        ));
                    }
                }
            }
            previous = t.effective_from.or(previous);
            price(
                &format!("{at}.platform_monthly_cost"),
                t.platform_monthly_cost,
            )?;
            price(&format!("{at}.default_per_call"), t.default_per_call)?;
            price(&format!("{at}.per_second"), t.per_second)?;
            price(
                &format!("{at}.default_per_1k_input_tokens"),
                t.default_per_1k_input_tokens,
            )?;
            price(
                &format!("{at}.default_per_1k_output_tokens"),
                t.default_per_1k_output_tokens,
            )?;
            for (j, r) in t.calls.iter().enumerate() {
                price(&format!("{at}.calls[{j}].per_call"), r.per_call)?;
                for (field, v) in [
                    ("server", &r.server),
                    ("tool", &r.tool),
                    ("operation_class", &r.operation_class),
                ] {
                    if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                        return Err(format!("{at}.calls[{j}].{field}: must not be empty"));
                    }
                }
            }
            for (j, m) in t.models.iter().enumerate() {
                if m.model.trim().is_empty() {
                    return Err(format!("{at}.models[{j}].model: must not be empty"));
                }
                price(
                    &format!("{at}.models[{j}].per_1k_input_tokens"),
                    m.per_1k_input_tokens,
                )?;
                price(
                    &format!("{at}.models[{j}].per_1k_output_tokens"),
                    m.per_1k_output_tokens,
                )?;
            }
        }
        Ok(())
    }

    /// The tables that apply within `[from, to)`, each with the part of the range it covers.
    pub fn tables_within(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(&PriceTable, DateTime<Utc>, DateTime<Utc>)> {
        let start_of = |t: &PriceTable| {
            t.effective_from
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        };
        let mut out = Vec::new();
        for (i, t) in self.price_tables.iter().enumerate() {
            // The first table also covers everything before the second.
            let begins = if i == 0 {
                DateTime::<Utc>::MIN_UTC
            } else {
                start_of(t).unwrap_or(DateTime::<Utc>::MIN_UTC)
            };
            let ends = self
                .price_tables
                .get(i + 1)
                .and_then(start_of)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let (a, b) = (from.max(begins), to.min(ends));
            if a < b {
                out.push((t, a, b));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> ChargebackConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn tables_split_a_range_at_their_effective_dates() {
        let c = config(
            r#"
            [[price_tables]]
            version = "v1"
            [[price_tables]]
            version = "v2"
            effective_from = "2026-03-15"
            "#,
        );
        c.validate().unwrap();
        let parts = c.tables_within(at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z"));
        let names: Vec<_> = parts
            .iter()
            .map(|(t, a, b)| (t.version.as_str(), a.to_rfc3339(), b.to_rfc3339()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "v1",
                    "2026-03-01T00:00:00+00:00".to_string(),
                    "2026-03-15T00:00:00+00:00".to_string()
                ),
                (
                    "v2",
                    "2026-03-15T00:00:00+00:00".to_string(),
                    "2026-04-01T00:00:00+00:00".to_string()
                ),
            ]
        );
        let later = c.tables_within(at("2026-05-01T00:00:00Z"), at("2026-06-01T00:00:00Z"));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].0.version, "v2");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            ("currency = \"usd\"", "chargeback.currency"),
            (
                "[[price_tables]]\nversion = \"a\"\n[[price_tables]]\nversion = \"b\"",
                "chargeback.price_tables[1].effective_from",
            ),
            (
                "[[price_tables]]\nversion = \"a\"\n[[price_tables]]\nversion = \"a\"\neffective_from = \"2026-01-01\"",
                "chargeback.price_tables[1].version",
            ),
            (
                "[[price_tables]]\nversion = \"a\"\nper_second = -1.0",
                "chargeback.price_tables[0].per_second",
            ),
            (
                "[[price_tables]]\nversion = \"a\"\n[[price_tables.calls]]\nserver = \"\"\nper_call = 1.0",
                "chargeback.price_tables[0].calls[0].server",
            ),
            ("price_tables = []", "chargeback.price_tables"),
        ];
        for (text, key) in cases {
            let err = config(text).validate().unwrap_err();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        assert!(
            toml::from_str::<ChargebackConfig>("currency_code = \"EUR\"").is_err(),
            "unknown keys are refused"
        );
        ChargebackConfig::default().validate().unwrap();
    }

    #[test]
    fn model_rules_prefer_the_longest_prefix() {
        let c = config(
            r#"
            [[price_tables]]
            version = "v1"
            [[price_tables.models]]
            model = "gpt-4o"
            per_1k_input_tokens = 1.0
            per_1k_output_tokens = 1.0
            [[price_tables.models]]
            model = "gpt-4o-mini"
            per_1k_input_tokens = 0.1
            per_1k_output_tokens = 0.1
            "#,
        );
        let order: Vec<_> = c.price_tables[0]
            .models_by_specificity()
            .iter()
            .map(|m| m.model.as_str())
            .collect();
        assert_eq!(order, ["gpt-4o-mini", "gpt-4o"]);
    }
}
