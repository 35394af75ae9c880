//! Anomaly findings: what a detector (D1–D9) saw in one window, with the numbers behind it and
//! a sentence a SOC analyst can read. The `anomalies` table holds them, one row per finding;
//! detectors write it (`calltrail_query::detect`), the API and the SIEM forwarders read it.
//!
//! Layout: `<data_dir>/anomalies/date=YYYY-MM-DD/<run>.parquet`, partitioned by the window's
//! start (UTC); each file is written once, atomically, by one detector run, and holds only
//! findings no earlier file has (`finding_id` is the dedup key).

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampNanosecondArray, TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::arrow_schema::{ts, with_metadata};

/// Name of the anomalies table.
pub const ANOMALIES: &str = "anomalies";

/// How urgent a finding is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look when triaging.
    Low,
    /// Review today.
    Medium,
    /// Review now.
    High,
    /// The audit record itself is at risk, or an attack is likely under way.
    Critical,
}

impl Severity {
    /// The lowercase name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Dedup key: hex SHA-256 of detector, entity kind, entity and window start.
    pub finding_id: String,
    /// `D1` … `D9`.
    pub detector: String,
    /// The rule's short name (`volume_spike`, `first_destructive_use`, ...).
    pub rule: String,
    /// How urgent it is.
    pub severity: Severity,
    /// What the entity is: `user`, `team`, `server`, `chain`, `pipeline`.
    pub entity_kind: String,
    /// The entity: a principal, team, server name, chain id or component.
    pub entity: String,
    /// The principal concerned, when one is.
    pub principal: Option<String>,
    /// The team concerned (scopes the row for team leads).
    pub team: Option<String>,
    /// The tenant or legal entity concerned (scopes the row for tenant auditors).
    pub tenant: Option<String>,
    /// The MCP server concerned.
    pub server_name: Option<String>,
    /// The tool concerned.
    pub tool_name: Option<String>,
    /// Start of the scored window, ns since the Unix epoch (UTC).
    pub window_start_ns: i64,
    /// End of the scored window (exclusive).
    pub window_end_ns: i64,
    /// The value seen in the window.
    pub observed: f64,
    /// The baseline it was compared with, when the rule has one.
    pub expected: Option<f64>,
    /// The rule's score (robust z, probability, ratio: see the rule).
    pub score: f64,
    /// One sentence that says what happened, with the numbers.
    pub explanation: String,
    /// When the run that found it ran, ns since the Unix epoch.
    pub detected_at_ns: i64,
}

/// The dedup key of a finding: the same detector, entity and window is the same finding,
/// whichever run (scheduled or backfill) finds it.
pub fn finding_id(detector: &str, entity_kind: &str, entity: &str, window_start_ns: i64) -> String {
    let mut h = Sha256::new();
    for part in [detector, entity_kind, entity] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(window_start_ns.to_be_bytes());
    hex::encode(h.finalize())
}

static ANOMALIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let s = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let f = vec![
        s("finding_id", false),
        s("detector", false),
        s("rule", false),
        s("severity", false),
        s("entity_kind", false),
        s("entity", false),
        s("principal", true),
        s("team", true),
        s("tenant", true),
        s("server_name", true),
        s("tool_name", true),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("observed", DataType::Float64, false),
        Field::new("expected", DataType::Float64, true),
        Field::new("score", DataType::Float64, false),
        s("explanation", false),
        Field::new("detected_at", ts(), false),
    ];
    with_metadata(f, ANOMALIES)
});

/// Schema of the `anomalies` table (without the `date` partition column).
pub fn anomalies_schema() -> SchemaRef {
    ANOMALIES_SCHEMA.clone()
}

/// A batch of findings in [`anomalies_schema`].
pub fn findings_batch(rows: &[Finding]) -> Result<RecordBatch, ArrowError> {
    let text = |get: &dyn Fn(&Finding) -> Option<&str>| {
        let mut b = StringBuilder::new();
        for r in rows {
            b.append_option(get(r));
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let time = |get: &dyn Fn(&Finding) -> i64| {
        let mut b = TimestampNanosecondBuilder::new().with_timezone("UTC");
        for r in rows {
            b.append_value(get(r));
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let number = |get: &dyn Fn(&Finding) -> Option<f64>| {
        let mut b = Float64Builder::new();
        for r in rows {
            b.append_option(get(r));
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let cols = vec![
        text(&|r| Some(&r.finding_id)),
        text(&|r| Some(&r.detector)),
        text(&|r| Some(&r.rule)),
        text(&|r| Some(r.severity.as_str())),
        text(&|r| Some(&r.entity_kind)),
        text(&|r| Some(&r.entity)),
        text(&|r| r.principal.as_deref()),
        text(&|r| r.team.as_deref()),
        text(&|r| r.tenant.as_deref()),
        text(&|r| r.server_name.as_deref()),
        text(&|r| r.tool_name.as_deref()),
        time(&|r| r.window_start_ns),
        time(&|r| r.window_end_ns),
        number(&|r| Some(r.observed)),
        number(&|r| r.expected),
        number(&|r| Some(r.score)),
        text(&|r| Some(&r.explanation)),
        time(&|r| r.detected_at_ns),
    ];
    RecordBatch::try_new(anomalies_schema(), cols)
}

/// The findings in a batch read from the `anomalies` table (extra columns, such as the `date`
/// partition, are ignored).
pub fn findings_from_batch(batch: &RecordBatch) -> Result<Vec<Finding>, ArrowError> {
    let column = |name: &str| {
        batch.column_by_name(name).ok_or_else(|| {
            ArrowError::SchemaError(format!("the anomalies batch has no column {name:?}"))
        })
    };
    let strings = |name: &str| -> Result<&StringArray, ArrowError> {
        column(name)?
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| ArrowError::SchemaError(format!("column {name:?} is not Utf8")))
    };
    let times = |name: &str| -> Result<&TimestampNanosecondArray, ArrowError> {
        column(name)?
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| {
                ArrowError::SchemaError(format!("column {name:?} is not a ns timestamp"))
            })
    };
    let numbers = |name: &str| -> Result<&Float64Array, ArrowError> {
        column(name)?
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| ArrowError::SchemaError(format!("column {name:?} is not Float64")))
    };
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    let (id, detector, rule, severity) = (
        strings("finding_id")?,
        strings("detector")?,
        strings("rule")?,
        strings("severity")?,
    );
    let (entity_kind, entity, principal, team, tenant, server, tool) = (
        strings("entity_kind")?,
        strings("entity")?,
        strings("principal")?,
        strings("team")?,
        strings("tenant")?,
        strings("server_name")?,
        strings("tool_name")?,
    );
    let (start, end, detected) = (
        times("window_start")?,
        times("window_end")?,
        times("detected_at")?,
    );
    let (observed, expected, score) = (
        numbers("observed")?,
        numbers("expected")?,
        numbers("score")?,
    );
    let explanation = strings("explanation")?;
    (0..batch.num_rows())
        .map(|i| {
            let severity = Severity::parse(severity.value(i)).ok_or_else(|| {
                ArrowError::InvalidArgumentError(format!(
                    "severity {:?} is not low, medium, high or critical",
                    severity.value(i)
                ))
            })?;
            Ok(Finding {
                finding_id: id.value(i).to_string(),
                detector: detector.value(i).to_string(),
                rule: rule.value(i).to_string(),
                severity,
                entity_kind: entity_kind.value(i).to_string(),
                entity: entity.value(i).to_string(),
                principal: opt(principal, i),
                team: opt(team, i),
                tenant: opt(tenant, i),
                server_name: opt(server, i),
                tool_name: opt(tool, i),
                window_start_ns: start.value(i),
                window_end_ns: end.value(i),
                observed: observed.value(i),
                expected: (!expected.is_null(i)).then(|| expected.value(i)),
                score: score.value(i),
                explanation: explanation.value(i).to_string(),
                detected_at_ns: detected.value(i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Finding {
        Finding {
            finding_id: finding_id("D1", "user", "alice@corp.example", 7_200_000_000_000),
            detector: "D1".into(),
            rule: "volume_spike".into(),
            severity: Severity::High,
            entity_kind: "user".into(),
            entity: "alice@corp.example".into(),
            principal: Some("alice@corp.example".into()),
            team: Some("payments".into()),
            tenant: None,
            server_name: Some("payments-mcp".into()),
            tool_name: None,
            window_start_ns: 7_200_000_000_000,
            window_end_ns: 10_800_000_000_000,
            observed: 412.0,
            expected: Some(0.0),
            score: 11.5,
            explanation: "alice made 412 calls".into(),
            detected_at_ns: 11_000_000_000_000,
        }
    }

    #[test]
    fn findings_round_trip_through_a_batch() {
        let mut other = sample();
        other.expected = None;
        other.team = None;
        other.severity = Severity::Critical;
        let rows = vec![sample(), other];
        let batch = findings_batch(&rows).expect("batch");
        assert_eq!(batch.schema(), anomalies_schema());
        assert_eq!(findings_from_batch(&batch).expect("rows"), rows);
    }

    #[test]
    fn the_id_depends_on_every_part_and_not_on_where_one_ends() {
        let base = finding_id("D1", "user", "alice", 1);
        assert_ne!(base, finding_id("D2", "user", "alice", 1));
        assert_ne!(base, finding_id("D1", "team", "alice", 1));
        assert_ne!(base, finding_id("D1", "user", "alicf", 1));
        assert_ne!(base, finding_id("D1", "user", "alice", 2));
        assert_ne!(
            finding_id("D1", "ab", "c", 0),
            finding_id("D1", "a", "bc", 0)
        );
        assert_eq!(base, finding_id("D1", "user", "alice", 1));
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
        assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
        assert_eq!(Severity::parse("urgent"), None);
    }
}
