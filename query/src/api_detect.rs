//! The detection endpoints of the query API:
//!
//! - `GET /api/v1/anomalies?from&to[&severity][&detector][&entity]`: findings whose window
//!   overlaps the range, newest first; `severity` is the lowest listed.
//! - `GET /api/v1/baselines?entity=user|team|server&id=...`: an entity's hour-of-week profile.
//!
//! Both are scoped like SQL (finance, whose tokens read aggregates only, is refused): a team
//! lead sees findings and profiles of their teams, a tenant auditor of their tenants. Server
//! profiles span teams, so only unscoped roles read them. Each request is recorded.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calltrail_schemas::finding::{Severity, findings_batch};

use crate::api::{ApiError, ApiState, authenticate};
use crate::api_reports::{fail, range, record, refuse, respond, unknown_params, wants_csv};
use crate::auth::Caller;
use crate::detect::baseline::{self, ENTITIES, ProfileRow};
use crate::detect::config::DETECTORS;
use crate::detect::{AnomalyFilter, list};
use crate::engine::Scope;

type Params = HashMap<String, String>;

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("this token's role may not read {what}"),
    )
}

fn anomaly_filter(params: &Params) -> Result<AnomalyFilter, ApiError> {
    unknown_params(params, &["from", "to", "severity", "detector", "entity"])?;
    let (from, to) = range(params)?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let min_severity = params
        .get("severity")
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                bad(format!(
                    "severity: {s:?} is not low, medium, high or critical"
                ))
            })
        })
        .transpose()?;
    let detector = params.get("detector").map(|d| d.to_ascii_uppercase());
    if let Some(d) = &detector
        && !DETECTORS.contains(&d.as_str())
    {
        return Err(bad(format!("detector: {d:?} is not one of D1 … D9")));
    }
    let ns = |t: chrono::DateTime<chrono::Utc>| t.timestamp_nanos_opt().unwrap_or(i64::MAX);
    Ok(AnomalyFilter {
        from_ns: ns(from),
        to_ns: ns(to),
        min_severity,
        detector,
        entity: params.get("entity").cloned(),
    })
}

/// `GET /api/v1/anomalies`.
pub(crate) async fn anomalies(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/anomalies {params:?}");
    let Some(scope) = who.scope.clone() else {
        record(&state, &who, &described, None, "refused");
        return forbidden("findings").into_response();
    };
    let filter = match anomaly_filter(&params) {
        Ok(f) => f,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    match list(&state.engine, &scope, &filter).await {
        Ok(findings) => {
            record(&state, &who, &described, Some(findings.len() as u64), "ok");
            let json = serde_json::json!({ "findings": findings });
            let batch =
                findings_batch(&findings).map_err(|e| crate::Error::Internal(e.to_string()));
            respond(&json, batch, wants_csv(&headers))
        }
        Err(e) => fail(&state, &who, &described, &e),
    }
}

/// Whether `scope` may read the profile `rows` of an entity of `kind`.
fn profile_visible(scope: &Scope, kind: &str, id: &str, rows: &[ProfileRow]) -> bool {
    let within = |allowed: &[String], value: Option<&str>| {
        value.is_some_and(|v| allowed.iter().any(|a| a == v))
    };
    match (scope, kind) {
        (Scope::All, _) => true,
        (Scope::Teams(teams), "team") => teams.iter().any(|t| t == id),
        (Scope::Teams(teams), "user") => rows.iter().all(|r| within(teams, r.team.as_deref())),
        (Scope::Tenants(tenants), "user") => {
            rows.iter().all(|r| within(tenants, r.tenant.as_deref()))
        }
        _ => false,
    }
}

fn baseline_request(params: &Params) -> Result<(String, String), ApiError> {
    unknown_params(params, &["entity", "id"])?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let kind = params
        .get("entity")
        .ok_or_else(|| bad("the query parameter entity is required".into()))?;
    if !ENTITIES.contains(&kind.as_str()) {
        return Err(bad(format!("entity: {kind:?} is not user, team or server")));
    }
    let id = params
        .get("id")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("the query parameter id is required".into()))?;
    Ok((kind.clone(), id.clone()))
}

fn caller_scope(who: &Caller) -> Option<Scope> {
    who.scope.clone()
}

/// `GET /api/v1/baselines`.
pub(crate) async fn baselines(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/baselines {params:?}");
    let Some(scope) = caller_scope(&who) else {
        record(&state, &who, &described, None, "refused");
        return forbidden("baselines").into_response();
    };
    let (kind, id) = match baseline_request(&params) {
        Ok(r) => r,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    let rows = match baseline::load(state.engine.data_dir(), &kind, &id) {
        Ok(r) => r,
        Err(e) => return fail(&state, &who, &described, &e),
    };
    // An entity outside the scope looks exactly like one without a profile.
    if rows.is_empty() || !profile_visible(&scope, &kind, &id, &rows) {
        record(&state, &who, &described, Some(0), "ok");
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no baseline for {kind} {id:?} (none computed yet, or not in this token's scope)"
            ),
        )
        .into_response();
    }
    record(&state, &who, &described, Some(rows.len() as u64), "ok");
    let json = serde_json::json!({ "entity_kind": kind, "entity": id, "profile": rows });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(team: &str, tenant: &str) -> ProfileRow {
        ProfileRow {
            entity_kind: "user".into(),
            entity: "alice".into(),
            team: Some(team.into()),
            tenant: Some(tenant.into()),
            hour_of_week: 0,
            weeks: 4,
            calls_median: 1.0,
            calls_mad: 0.0,
            error_rate: 0.0,
            denied_rate: 0.0,
            distinct_tools_median: 1.0,
            tokens_median: 0.0,
            window_start_ns: 0,
            window_end_ns: 1,
        }
    }

    #[test]
    fn profiles_follow_the_scope() {
        let rows = [row("payments", "acme-uk")];
        let teams = Scope::Teams(vec!["payments".into()]);
        let other = Scope::Teams(vec!["crm".into()]);
        let tenants = Scope::Tenants(vec!["acme-uk".into()]);
        assert!(profile_visible(&Scope::All, "server", "x", &[]));
        assert!(profile_visible(&teams, "user", "alice", &rows));
        assert!(!profile_visible(&other, "user", "alice", &rows));
        assert!(profile_visible(&tenants, "user", "alice", &rows));
        assert!(profile_visible(&teams, "team", "payments", &[]));
        assert!(!profile_visible(&teams, "team", "crm", &[]));
        assert!(!profile_visible(&teams, "server", "payments-mcp", &[]));
        assert!(!profile_visible(&tenants, "team", "payments", &[]));
    }

    #[test]
    fn bad_parameters_are_named() {
        let p = |pairs: &[(&str, &str)]| -> Params {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let e = anomaly_filter(&p(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-02"),
            ("severity", "urgent"),
        ]))
        .unwrap_err();
        assert!(e.message().contains("severity"));
        let e = anomaly_filter(&p(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-02"),
            ("detector", "D0"),
        ]))
        .unwrap_err();
        assert!(e.message().contains("detector"));
        let e = anomaly_filter(&p(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-02"),
            ("who", "x"),
        ]))
        .unwrap_err();
        assert!(e.message().contains("unknown query parameter who"));
        let f = anomaly_filter(&p(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-02"),
            ("detector", "d1"),
        ]))
        .expect("valid");
        assert_eq!(f.detector.as_deref(), Some("D1"));
        let e = baseline_request(&p(&[("entity", "host"), ("id", "x")])).unwrap_err();
        assert!(e.message().contains("entity"));
        assert!(baseline_request(&p(&[("entity", "user")])).is_err());
    }
}
