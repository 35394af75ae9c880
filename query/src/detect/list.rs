//! Reading findings back: through the engine's `anomalies` table, so a caller's scope (teams,
//! tenants) filters them in the plan exactly as it filters calls.

use calltrail_schemas::finding::{Finding, Severity, findings_from_batch};

use super::store::date_of;
use crate::engine::{DateRange, Engine, Scope};
use crate::{Error, Result};

/// Which findings to list.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    /// Findings whose window ends after this, ns.
    pub from_ns: i64,
    /// Findings whose window starts before this, ns.
    pub to_ns: i64,
    /// The lowest severity listed.
    pub min_severity: Option<Severity>,
    /// Only this detector (`D1` … `D9`).
    pub detector: Option<String>,
    /// Only findings about this entity: the entity itself, or its principal, team or server.
    pub entity: Option<String>,
}

/// The findings `scope` may see that match `filter`, newest window first, then most severe.
pub async fn list(engine: &Engine, scope: &Scope, filter: &AnomalyFilter) -> Result<Vec<Finding>> {
    if filter.from_ns >= filter.to_ns {
        return Err(Error::Plan("from must be before to".into()));
    }
    // Findings are partitioned by the date their window starts; a D6 day or a D9 gap window
    // may start up to a day before the range.
    let dates = DateRange {
        first: date_of(filter.from_ns - 86_400_000_000_000),
        last: date_of(filter.to_ns),
    };
    let batches = engine
        .query_within(
            "SELECT * FROM anomalies ORDER BY window_start DESC",
            scope,
            Some(&dates),
        )
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(findings_from_batch(b).map_err(|e| Error::Internal(e.to_string()))?);
    }
    let entity = filter.entity.as_deref();
    out.retain(|f| {
        f.window_end_ns > filter.from_ns
            && f.window_start_ns < filter.to_ns
            && filter.min_severity.is_none_or(|s| f.severity >= s)
            && filter.detector.as_deref().is_none_or(|d| f.detector == d)
            && entity.is_none_or(|e| {
                f.entity == e
                    || f.principal.as_deref() == Some(e)
                    || f.team.as_deref() == Some(e)
                    || f.server_name.as_deref() == Some(e)
            })
    });
    out.sort_by(|a, b| {
        b.window_start_ns
            .cmp(&a.window_start_ns)
            .then(b.severity.cmp(&a.severity))
            .then(a.finding_id.cmp(&b.finding_id))
    });
    Ok(out)
}
