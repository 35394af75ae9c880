//! The query API, served by `calltrail serve` on its own port (`[api] listen`,
//! 127.0.0.1:8686 by default):
//!
//! - `POST /api/v1/sql` with `{"sql": "..."}`: the rows as JSON (default), CSV (`Accept:
//!   text/csv`) or Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream`), read-only and
//!   bounded like every query, over the rows the caller's role may see;
//! - `GET /api/v1/chargeback` and `GET /api/v1/roi`: the reports ([`crate::api_reports`]);
//! - `GET /api/v1/anomalies` and `GET /api/v1/baselines`: the detectors' findings and profiles;
//! - the web UI's endpoints: `POST /api/v1/charts` ([`crate::api_charts`]), the chargeback
//!   drill-down and FOCUS download ([`crate::api_drilldown`]), the audit search `GET
//!   /api/v1/calls` ([`crate::api_calls`]), integrity, verify and exports
//!   ([`crate::operations`]);
//! - `GET /api/v1/openapi.json`: the OpenAPI document;
//! - the web UI itself under `/ui/` ([`crate::ui`]).
//!
//! Every request needs a bearer JWT ([`crate::jwt`]); every query is recorded (who, the SQL's
//! SHA-256, rows returned) through the audit hook.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::auth::{AuthConfig, Caller, caller};
use crate::engine::Engine;
use crate::jwks_fetch::KeySource;
use crate::operations::{self, SharedOperations};
use crate::output::{Format, render};
use crate::price_table::ChargebackConfig;
use crate::{api_calls, api_charts, api_detect, api_drilldown, api_reports, ui};

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API at all. Default true.
    pub enabled: bool,
    /// Listen address. Default 127.0.0.1:8686.
    pub listen: SocketAddr,
    /// Authentication.
    pub auth: AuthConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8686)),
            auth: AuthConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.auth.validate()
    }
}

/// A query as the audit log records it.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    /// The caller's `sub`.
    pub subject: String,
    /// Their role.
    pub role: &'static str,
    /// SHA-256 of the SQL text (hex): the record proves what was asked without storing it.
    pub sql_sha256: String,
    /// Rows returned, when it succeeded.
    pub rows: Option<u64>,
    /// `ok`, `refused` or `failed`.
    pub outcome: &'static str,
}

/// Records a query (the server seals it into the chain as an audit event).
pub type AuditHook = Arc<dyn Fn(QueryRecord) + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The token verifier (swapped in place when a JWKS fetched by URL changes).
    pub verifier: Arc<KeySource>,
    /// Claim names and expectations.
    pub auth: Arc<AuthConfig>,
    /// Where queries are recorded.
    pub audit: Option<AuditHook>,
    /// Price tables for the chargeback endpoint.
    pub chargeback: Arc<ChargebackConfig>,
    /// The server's integrity and export operations (`None`: those endpoints answer 501).
    pub operations: Option<SharedOperations>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.engine.limits().max_sql_bytes + 4096;
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/chargeback", get(api_reports::chargeback))
        .route("/api/v1/roi", get(api_reports::roi))
        .route("/api/v1/anomalies", get(api_detect::anomalies))
        .route("/api/v1/baselines", get(api_detect::baselines))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/charts", post(api_charts::chart))
        .route(
            "/api/v1/chargeback/drilldown",
            get(api_drilldown::drilldown),
        )
        .route("/api/v1/chargeback/focus", get(api_drilldown::focus_csv))
        .route("/api/v1/calls", get(api_calls::calls))
        .route("/api/v1/integrity", get(operations::integrity))
        .route("/api/v1/verify", post(operations::verify))
        .route(
            "/api/v1/exports",
            get(operations::exports).post(operations::start_export),
        )
        .merge(ui::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves the API on `listener` until the task running it is aborted.
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    r
}

/// A refusal, answered as `{"error": ...}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// What went wrong, as the response body says it.
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, &self.message)
    }
}

/// The caller of a request, from its bearer token. Async: a token naming a key the JWKS lacks
/// may wait for one (rate-limited) fetch of the identity provider's set.
pub(crate) async fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is required"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = state
        .verifier
        .verify(token.trim(), now)
        .await
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, format!("invalid token: {e}")))?;
    caller(&claims, &state.auth)
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "the token holds no Calltrail role"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

fn format_of(headers: &HeaderMap) -> Result<(Format, &'static str), ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if accept.contains("application/vnd.apache.arrow.stream") {
        Ok((Format::ArrowIpc, "application/vnd.apache.arrow.stream"))
    } else if accept.contains("text/csv") {
        Ok((Format::Csv, "text/csv; charset=utf-8"))
    } else if accept.contains("application/json") || accept.contains("*/*") {
        Ok((Format::Json, "application/json"))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Accept one of application/json, text/csv, application/vnd.apache.arrow.stream",
        ))
    }
}

async fn sql(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let (format, content_type) = match format_of(&headers) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be {{\"sql\": \"...\"}}: {e}"),
            );
        }
    };
    let digest = hex::encode(Sha256::digest(request.sql.as_bytes()));
    let record = |rows: Option<u64>, outcome: &'static str| {
        if let Some(hook) = &state.audit {
            hook(QueryRecord {
                subject: who.subject.clone(),
                role: who.role.as_str(),
                sql_sha256: digest.clone(),
                rows,
                outcome,
            });
        }
    };
    let Some(scope) = &who.scope else {
        record(None, "refused");
        return error(
            StatusCode::FORBIDDEN,
            "this role reads the chargeback and ROI aggregates, not rows through SQL",
        );
    };
    let batches = match state.engine.query_scoped(&request.sql, scope).await {
        Ok(b) => b,
        Err(e) => {
            let (status, outcome) = match &e {
                Error::Plan(_) => (StatusCode::BAD_REQUEST, "refused"),
                Error::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "failed"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
            };
            record(None, outcome);
            return error(status, &e.to_string());
        }
    };
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    record(Some(rows), "ok");
    match render(&batches, format) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type)],
            bytes,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
