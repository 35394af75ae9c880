//! The chargeback views of the web UI:
//!
//! - `GET /api/v1/chargeback/drilldown?from&to&by=team|cost_center|tenant&key=K`: one group's
//!   cost by server and tool (an empty `key` is the group of calls not attributed);
//! - `GET /api/v1/chargeback/focus?from&to`: the FOCUS 1.2 rows of the range as a CSV download,
//!   the same rows `calltrail chargeback --focus out.csv` writes.
//!
//! Both are priced like `GET /api/v1/chargeback`, over the rows the caller's role may see, and
//! recorded like any report.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, ApiState, authenticate};
use crate::api_reports::{fail, range, record, refuse, report_scope, unknown_params};
use crate::chargeback::{self, ChargebackRequest, Dimension, Granularity, RowKind, decimal};
use crate::focus;

type Params = HashMap<String, String>;

fn drilldown_request(params: &Params) -> Result<(ChargebackRequest, Option<String>), ApiError> {
    unknown_params(params, &["from", "to", "by", "key"])?;
    let (from, to) = range(params)?;
    let by_name = params.get("by").map_or("team", String::as_str);
    let by = Dimension::parse(by_name)
        .filter(|d| {
            matches!(
                d,
                Dimension::Team | Dimension::CostCenter | Dimension::Tenant
            )
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("by: {by_name:?} is not one of team, cost_center, tenant"),
            )
        })?;
    let key = params.get("key").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the query parameter key is required",
        )
    })?;
    let key = (!key.is_empty()).then(|| key.clone());
    Ok((
        ChargebackRequest {
            from,
            to,
            by: vec![by, Dimension::Server, Dimension::Tool],
            granularity: Granularity::Month,
        },
        key,
    ))
}

/// One server and tool of a group, summed over the range.
#[derive(Debug, Default, serde::Serialize)]
struct Line {
    server: Option<String>,
    tool: Option<String>,
    calls: i64,
    failed_calls: i64,
    usage_cost_micros: i64,
    total_cost_micros: i64,
    price_table_versions: Vec<String>,
}

/// `GET /api/v1/chargeback/drilldown`.
pub(crate) async fn drilldown(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/chargeback/drilldown {params:?}");
    let (request, key) = match drilldown_request(&params) {
        Ok(r) => r,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    let report = match chargeback::compute(
        &state.engine,
        &state.chargeback,
        &request,
        &report_scope(&who),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return fail(&state, &who, &described, &e),
    };
    // Months of the range fold into one line per server and tool.
    let mut lines: Vec<Line> = Vec::new();
    for row in report
        .rows
        .iter()
        .filter(|r| r.kind == RowKind::Usage && r.key.first() == Some(&key))
    {
        let server = row.key.get(1).cloned().flatten();
        let tool = row.key.get(2).cloned().flatten();
        let at = match lines
            .iter()
            .position(|l| l.server == server && l.tool == tool)
        {
            Some(i) => i,
            None => {
                lines.push(Line {
                    server,
                    tool,
                    ..Line::default()
                });
                lines.len() - 1
            }
        };
        let line = &mut lines[at];
        line.calls += row.calls;
        line.failed_calls += row.failed_calls;
        line.usage_cost_micros += row.usage_cost_micros();
        line.total_cost_micros += row.total_cost_micros();
        if !line.price_table_versions.contains(&row.price_table_version) {
            line.price_table_versions
                .push(row.price_table_version.clone());
        }
    }
    lines.sort_by(|a, b| {
        b.total_cost_micros
            .cmp(&a.total_cost_micros)
            .then_with(|| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)))
    });
    record(&state, &who, &described, Some(lines.len() as u64), "ok");
    let rows: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "server": l.server,
                "tool": l.tool,
                "calls": l.calls,
                "failed_calls": l.failed_calls,
                "usage_cost": decimal(l.usage_cost_micros),
                "total_cost": decimal(l.total_cost_micros),
                "price_table_versions": l.price_table_versions,
            })
        })
        .collect();
    let body = serde_json::json!({
        "from": report.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "to": report.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "by": request.by.first().map(|d| d.as_str()),
        "key": key,
        "currency": report.currency,
        "rows": rows,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /api/v1/chargeback/focus`: a `text/csv` attachment named after the range.
pub(crate) async fn focus_csv(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let who = match authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let described = format!("GET /api/v1/chargeback/focus {params:?}");
    let (from, to) = match unknown_params(&params, &["from", "to"]).and_then(|()| range(&params)) {
        Ok(r) => r,
        Err(e) => return refuse(&state, &who, &described, e),
    };
    let csv = async {
        let report = chargeback::compute(
            &state.engine,
            &state.chargeback,
            &focus::request(from, to),
            &report_scope(&who),
        )
        .await?;
        let batch = focus::rows(&report, &state.chargeback)?;
        let bytes = crate::files::csv_bytes(&batch)?;
        Ok::<_, crate::Error>((batch.num_rows(), bytes))
    };
    match csv.await {
        Ok((rows, bytes)) => {
            record(&state, &who, &described, Some(rows as u64), "ok");
            let name = format!(
                "attachment; filename=\"focus-{}-{}.csv\"",
                from.format("%Y%m%d"),
                to.format("%Y%m%d")
            );
            let mut response = (StatusCode::OK, bytes).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Err(e) => fail(&state, &who, &described, &e),
    }
}
