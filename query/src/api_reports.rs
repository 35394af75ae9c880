//! The report endpoints of the query API:
//!
//! - `GET /api/v1/chargeback?from&to&by=team|cost_center|tenant|user|server&granularity=day|month`
//! - `GET /api/v1/roi?from&to&by=team|tenant|cost_center|server`
//!
//! `from` and `to` are RFC 3339 times or `YYYY-MM-DD` days (UTC midnight); `to` is exclusive.
//! Answers are JSON, or CSV with `Accept: text/csv`. Every role may ask: finance sees the
//! aggregates of everyone (by user only when `[chargeback] finance_sees_users`), a team lead
//! their teams', a tenant auditor their tenants'. Each report is recorded like a query.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::api::{ApiError, ApiState, QueryRecord, authenticate};
use crate::auth::{Caller, Role};
use crate::chargeback::{self, ChargebackRequest, Dimension, Granularity};
use crate::engine::Scope;
use crate::output::{Format, render};
use crate::roi::{self, RoiRequest};

/// The longest range a report covers, in days: bounds the work one request can ask for.
const MAX_RANGE_DAYS: i64 = 3660;

type Params = HashMap<String, String>;

fn param<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params.get(name).map(String::as_str).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the query parameter {name} is required"),
        )
    })
}

fn time(params: &Params, name: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = param(params, name)?;
    chargeback::parse_time(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{name}: {text:?} is neither an RFC 3339 time nor a YYYY-MM-DD day"),
        )
    })
}

pub(crate) fn range(params: &Params) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (from, to) = (time(params, "from")?, time(params, "to")?);
    if from >= to {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "from must be before to",
        ));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the range may cover at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

pub(crate) fn unknown_params(params: &Params, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown query parameter {k}; expected {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Whether the caller wants CSV rather than JSON.
pub(crate) fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"))
}

pub(crate) fn record(
    state: &ApiState,
    who: &Caller,
    request: &str,
    rows: Option<u64>,
    outcome: &'static str,
) {
    if let Some(hook) = &state.audit {
        hook(QueryRecord {
            subject: who.subject.clone(),
            role: who.role.as_str(),
            sql_sha256: hex::encode(Sha256::digest(request.as_bytes())),
            rows,
            outcome,
        });
    }
}

/// Records a request refused for `e` (a bad parameter, a role) and answers it.
pub(crate) fn refuse(state: &ApiState, who: &Caller, request: &str, e: ApiError) -> Response {
    record(state, who, request, None, "refused");
    e.into_response()
}

/// Records a request that failed for `e` and answers it with the status [`failure`] picks.
pub(crate) fn fail(state: &ApiState, who: &Caller, request: &str, e: &Error) -> Response {
    record(state, who, request, None, "failed");
    failure(e).into_response()
}

pub(crate) fn failure(e: &Error) -> ApiError {
    let status = match e {
        Error::Plan(_) => StatusCode::BAD_REQUEST,
        Error::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

pub(crate) fn respond(
    json: &serde_json::Value,
    batch: Result<arrow::array::RecordBatch, Error>,
    csv: bool,
) -> Response {
    if !csv {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json.to_string(),
        )
            .into_response();
    }
    match batch.and_then(|b| render(&[b], Format::Csv)) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(e) => failure(&e).into_response(),
    }
}

/// The rows a caller's reports cover: finance reads everyone's aggregates.
pub(crate) fn report_scope(who: &Caller) -> Scope {
    who.scope.clone().unwrap_or(Scope::All)
}

/// `GET /api/v1/chargeback`.
pub(crate) async fn chargeback(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/chargeback {params:?}");
    let request = match chargeback_request(&state, &who, &params) {
        Ok(r) => r,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    match chargeback::compute(
        &state.engine,
        &state.chargeback,
        &request,
        &report_scope(&who),
    )
    .await
    {
        Ok(report) => {
            record(
                &state,
                &who,
                &described,
                Some(report.rows.len() as u64),
                "ok",
            );
            respond(&report.to_json(), report.to_batch(), wants_csv(&headers))
        }
        Err(e) => fail(&state, &who, &described, &e),
    }
}

fn chargeback_request(
    state: &ApiState,
    who: &Caller,
    params: &Params,
) -> Result<ChargebackRequest, ApiError> {
    unknown_params(params, &["from", "to", "by", "granularity"])?;
    let (from, to) = range(params)?;
    let by_name = params.get("by").map_or("team", String::as_str);
    let by = Dimension::parse(by_name)
        .filter(|d| *d != Dimension::Tool)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("by: {by_name:?} is not one of team, cost_center, tenant, user, server"),
            )
        })?;
    if by == Dimension::User && who.role == Role::Finance && !state.chargeback.finance_sees_users {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the finance role sees chargeback by team, cost_center, tenant or server; \
             by=user needs [chargeback] finance_sees_users = true",
        ));
    }
    let g_name = params.get("granularity").map_or("month", String::as_str);
    let granularity = Granularity::parse(g_name)
        .filter(|g| *g != Granularity::Hour)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("granularity: {g_name:?} is not one of day, month"),
            )
        })?;
    Ok(ChargebackRequest {
        from,
        to,
        by: vec![by],
        granularity,
    })
}

/// `GET /api/v1/roi`.
pub(crate) async fn roi(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/roi {params:?}");
    let request = match roi_request(&params) {
        Ok(r) => r,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    match roi::compute(&state.engine, &request, &report_scope(&who)).await {
        Ok(report) => {
            record(
                &state,
                &who,
                &described,
                Some(report.weeks.len() as u64),
                "ok",
            );
            let json = serde_json::to_value(&report).unwrap_or_default();
            respond(&json, report.to_batch(), wants_csv(&headers))
        }
        Err(e) => fail(&state, &who, &described, &e),
    }
}

fn roi_request(params: &Params) -> Result<RoiRequest, ApiError> {
    unknown_params(params, &["from", "to", "by"])?;
    let (from, to) = range(params)?;
    let by = match params.get("by").map(String::as_str) {
        None | Some("all") => None,
        Some(name) => Some(
            Dimension::parse(name)
                .filter(|d| {
                    matches!(
                        d,
                        Dimension::Team
                            | Dimension::Tenant
                            | Dimension::CostCenter
                            | Dimension::Server
                    )
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "by: {name:?} is not one of team, tenant, cost_center, server, all"
                        ),
                    )
                })?,
        ),
    };
    Ok(RoiRequest { from, to, by })
}
