//! `GET /api/v1/calls?principal&team&server&tool&outcome&from&to&limit`: the audit search of
//! the web UI. Tool-call records (every span as recorded, newest first, at most [`MAX_LIMIT`])
//! matching every filter given, over the rows the caller's role may see (finance sees no rows),
//! each with its place in the chain (`chain_id`, `seq`) and its hashes, so a compliance officer
//! can prove it (`calltrail prove EVENT_ID`) or export the range.
//!
//! Filter values reach the SQL as escaped string literals of a fixed query; the caller's scope
//! is not among them (it is the only table provider the session has), so no value can widen
//! what is read.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, ApiState, authenticate};
use crate::api_reports::{fail, failure, range, record, refuse, unknown_params};
use crate::chargeback::{dates_for, quote, timestamp};
use crate::output::{Format, render};

/// The most rows one search returns.
pub(crate) const MAX_LIMIT: usize = 200;

/// Columns the search returns: who, what, when, the outcome, and the chain position.
const COLUMNS: &str = "chain_id, seq, event_id, encode(leaf_hash, 'hex') AS leaf_hash, \
    encode(chain_hash, 'hex') AS chain_hash, start_time, duration_ms, principal, principal_kind, \
    principal_reason, team, tenant, cost_center, server_name, tool_name, method, \
    operation_class, outcome, error_type, side, trace_id, span_id, session_id, client_name, \
    ingest_protocol";

/// The filters, each an equality on one column.
const FILTERS: [(&str, &str); 5] = [
    ("principal", "principal"),
    ("team", "team"),
    ("server", "server_name"),
    ("tool", "tool_name"),
    ("outcome", "outcome"),
];

type Params = HashMap<String, String>;

/// The search's SQL for `params`, and the row limit.
fn search_sql(
    params: &Params,
) -> Result<
    (
        String,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    ),
    ApiError,
> {
    let mut known: Vec<&str> = FILTERS.iter().map(|(p, _)| *p).collect();
    known.extend(["from", "to", "limit"]);
    unknown_params(params, &known)?;
    let (from, to) = range(params)?;
    let limit = match params.get("limit") {
        None => MAX_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("limit: {text:?} is not a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let mut conditions = vec![
        format!("start_time >= {}", timestamp(from)),
        format!("start_time < {}", timestamp(to)),
    ];
    for (param, column) in FILTERS {
        if let Some(value) = params.get(param).filter(|v| !v.is_empty()) {
            if value.len() > 512 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{param} is longer than 512 bytes"),
                ));
            }
            conditions.push(format!("{column} = {}", quote(value)));
        }
    }
    Ok((
        format!(
            "SELECT {COLUMNS} FROM tool_calls WHERE {} ORDER BY start_time DESC, chain_id, seq LIMIT {limit}",
            conditions.join(" AND ")
        ),
        from,
        to,
    ))
}

/// `GET /api/v1/calls`: `{"rows": [...]}`.
pub(crate) async fn calls(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/calls {params:?}");
    let Some(scope) = who.scope.clone() else {
        record(&state, &who, &described, None, "refused");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "this role reads the chargeback and ROI aggregates, not call records",
        )
        .into_response();
    };
    let (sql, from, to) = match search_sql(&params) {
        Ok(s) => s,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    let dates = dates_for(from, to);
    let batches = match state.engine.query_within(&sql, &scope, Some(&dates)).await {
        Ok(b) => b,
        Err(e) => return fail(&state, &who, &described, &e),
    };
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    record(&state, &who, &described, Some(rows as u64), "ok");
    match render(&batches, Format::Json) {
        Ok(json) => {
            let mut body = b"{\"rows\":".to_vec();
            body.extend_from_slice(&json);
            body.push(b'}');
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(e) => failure(&e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_become_escaped_equalities() {
        let (sql, _, _) = search_sql(&params(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-02"),
            ("principal", "o'brien@bank"),
            ("tool", "delete_account"),
            ("team", ""),
        ]))
        .unwrap();
        assert!(sql.contains("principal = 'o''brien@bank'"), "{sql}");
        assert!(sql.contains("tool_name = 'delete_account'"), "{sql}");
        assert!(
            !sql.contains("team ="),
            "an empty filter is no filter: {sql}"
        );
        assert!(sql.ends_with(&format!("LIMIT {MAX_LIMIT}")), "{sql}");
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            (params(&[("from", "2026-01-01")]), "to"),
            (
                params(&[
                    ("from", "2026-01-01"),
                    ("to", "2026-01-02"),
                    ("limit", "5000"),
                ]),
                "limit",
            ),
            (
                params(&[("from", "2026-01-01"), ("to", "2026-01-02"), ("sql", "x")]),
                "unknown query parameter sql",
            ),
        ];
        for (p, want) in cases {
            let e = search_sql(&p).expect_err("refused");
            assert!(e.message().contains(want), "{want}: {}", e.message());
        }
    }
}
