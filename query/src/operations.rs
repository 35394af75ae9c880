//! The web UI's integrity and export pages need what only the server binary holds (the chain's
//! head and keys, the forwarders' cursors, retention and holds, the exporter). The binary
//! implements [`Operations`] and hands it to the API state; this crate serves it:
//!
//! - `GET /api/v1/integrity`: newest checkpoint per chain, the last verify result, forwarding
//!   lag per destination, retention status and legal holds;
//! - `POST /api/v1/verify`: verify the store now (one at a time), recording the result;
//! - `POST /api/v1/exports` with `{"from", "to", "tenants"?, "principals"?, "servers"?,
//!   "tools"?, "format"?}`: start a compliance export; `GET /api/v1/exports`: the exports so
//!   far.
//!
//! Auditors and admins may use all of them. A tenant auditor sees the legal holds on their
//! tenants only, exports only their tenants' records, and sees only the exports they started.
//! Team leads and finance are refused: integrity is the compliance officer's view, and an
//! export has no team filter.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ApiState, authenticate};
use crate::api_reports::record;
use crate::auth::{Caller, Role};
use crate::engine::Scope;

/// An export the UI asked for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Start, RFC 3339 or `YYYY-MM-DD`, inclusive.
    pub from: String,
    /// End, exclusive.
    pub to: String,
    /// Only these tenants (forced to the caller's own for a tenant auditor).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Only these principals.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Only these servers.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Only these tools.
    #[serde(default)]
    pub tools: Vec<String>,
    /// `parquet` (default), `jsonl` or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// An export's progress.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExportJob {
    /// Its id (also its directory name).
    pub id: String,
    /// Who asked.
    pub requested_by: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Records exported, when done.
    pub records: Option<u64>,
    /// Where the bundle is, on the server.
    pub dir: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// What the server does for the integrity and export endpoints.
pub trait Operations: Send + Sync {
    /// The integrity status as JSON (see the module doc).
    fn integrity(&self) -> Result<serde_json::Value, String>;
    /// Verifies the store now and returns the result recorded as the last verify.
    fn verify(&self) -> Result<serde_json::Value, String>;
    /// Starts an export for `who`; returns at once with the job.
    fn start_export(&self, who: &str, request: ExportRequest) -> Result<ExportJob, String>;
    /// The exports started since the server started, newest first.
    fn exports(&self) -> Vec<ExportJob>;
}

/// The operations the server provides, shared by the handlers.
pub type SharedOperations = Arc<dyn Operations>;

/// The caller, when their role may use these endpoints.
async fn allowed(state: &ApiState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let who = authenticate(state, headers).await?;
    match who.role {
        Role::Auditor | Role::Admin | Role::TenantAuditor => Ok(who),
        Role::TeamLead | Role::Finance => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "integrity and exports are for auditors and admins",
        )),
    }
}

fn provided(state: &ApiState) -> Result<&SharedOperations, ApiError> {
    state.operations.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this server does not provide integrity and export operations",
        )
    })
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(value).unwrap_or_default(),
    )
        .into_response()
}

/// Runs blocking file work off the runtime's workers; its error is answered with `status`.
async fn blocking<T: Send + 'static>(
    status: StatusCode,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::new(status, e))
}

/// `GET /api/v1/integrity`.
pub(crate) async fn integrity(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let result = async {
        let who = allowed(&state, &headers).await?;
        let ops = Arc::clone(provided(&state)?);
        let mut value =
            blocking(StatusCode::INTERNAL_SERVER_ERROR, move || ops.integrity()).await?;
        if let Some(Scope::Tenants(own)) = &who.scope {
            keep_own_holds(&mut value, own);
        }
        record(&state, &who, "GET /api/v1/integrity", None, "ok");
        Ok::<_, ApiError>(value)
    };
    match result.await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// A tenant auditor sees the legal holds on their tenants only: a hold's scope can name people.
fn keep_own_holds(status: &mut serde_json::Value, own: &[String]) {
    if let Some(holds) = status
        .get_mut("holds")
        .and_then(serde_json::Value::as_array_mut)
    {
        holds.retain(|h| {
            h.pointer("/scope/tenant")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|t| own.iter().any(|o| o == t))
        });
    }
}

/// `POST /api/v1/verify`.
pub(crate) async fn verify(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let result = async {
        let who = allowed(&state, &headers).await?;
        let ops = Arc::clone(provided(&state)?);
        let value = blocking(StatusCode::INTERNAL_SERVER_ERROR, move || ops.verify()).await?;
        record(&state, &who, "POST /api/v1/verify", None, "ok");
        Ok::<_, ApiError>(value)
    };
    match result.await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/exports`: 202 with the job.
pub(crate) async fn start_export(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = async {
        let who = allowed(&state, &headers).await?;
        let ops = Arc::clone(provided(&state)?);
        let mut request: ExportRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"from\", \"to\", \"tenants\"?, \"principals\"?, \"servers\"?, \"tools\"?, \"format\"?}}: {e}"),
            )
        })?;
        if let Some(Scope::Tenants(own)) = &who.scope {
            // A tenant auditor exports their tenants' records, whatever they asked for.
            request.tenants = if request.tenants.is_empty() {
                own.clone()
            } else {
                request
                    .tenants
                    .into_iter()
                    .filter(|t| own.contains(t))
                    .collect()
            };
            if request.tenants.is_empty() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "none of the tenants asked for is yours",
                ));
            }
        }
        let subject = who.subject.clone();
        // A refused request (bad range, unknown format) is the caller's to fix.
        let job = blocking(StatusCode::BAD_REQUEST, move || {
            ops.start_export(&subject, request)
        })
        .await?;
        record(
            &state,
            &who,
            &format!("POST /api/v1/exports {}", job.id),
            None,
            "ok",
        );
        Ok::<_, ApiError>(job)
    };
    match result.await {
        Ok(job) => json(StatusCode::ACCEPTED, &job),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/exports`: `{"exports": [...]}`, a tenant auditor's own only.
pub(crate) async fn exports(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let result = async {
        let who = allowed(&state, &headers).await?;
        let ops = provided(&state)?;
        let mut jobs = ops.exports();
        if who.role == Role::TenantAuditor {
            jobs.retain(|j| j.requested_by == who.subject);
        }
        Ok::<_, ApiError>(serde_json::json!({ "exports": jobs }))
    };
    match result.await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_auditor_sees_only_holds_on_their_tenants() {
        let mut status = serde_json::json!({"holds": [
            {"id": "h1", "scope": {"tenant": "bank-eu"}},
            {"id": "h2", "scope": {"tenant": "bank-us"}},
            {"id": "h3", "scope": {"tenant": null, "principal": "alice"}},
        ]});
        keep_own_holds(&mut status, &["bank-eu".to_owned()]);
        assert_eq!(
            status["holds"],
            serde_json::json!([{"id": "h1", "scope": {"tenant": "bank-eu"}}])
        );
    }
}
