//! `POST /api/v1/charts`: draws a chart of figures the caller already holds (the UI sends the
//! series of a report it fetched) as SVG. The server computes every aggregate once, in the
//! report endpoints; this endpoint only draws, so a page with three charts costs one report.
//! Any authenticated caller may draw; the body is bounded.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::{ApiError, ApiState, authenticate};
use crate::charts::{self, Kind, Point};

/// The most points one chart draws.
pub(crate) const MAX_POINTS: usize = 400;
/// The longest title, axis name or label, in characters.
pub(crate) const MAX_TEXT: usize = 80;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartRequest {
    kind: String,
    title: String,
    y_label: String,
    points: Vec<PointIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointIn {
    label: String,
    value: f64,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn text(name: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > MAX_TEXT {
        return Err(bad(format!("{name} is longer than {MAX_TEXT} characters")));
    }
    Ok(())
}

fn parse(body: &[u8]) -> Result<(Kind, ChartRequest), ApiError> {
    let request: ChartRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be {{\"kind\": \"bars\"|\"line\", \"title\", \"y_label\", \"points\": [{{\"label\", \"value\"}}]}}: {e}"
        ))
    })?;
    let kind = match request.kind.as_str() {
        "bars" => Kind::Bars,
        "line" => Kind::Line,
        other => return Err(bad(format!("kind: {other:?} is not bars or line"))),
    };
    if request.points.len() > MAX_POINTS {
        return Err(bad(format!(
            "points: {} given, at most {MAX_POINTS}",
            request.points.len()
        )));
    }
    text("title", &request.title)?;
    text("y_label", &request.y_label)?;
    for (i, p) in request.points.iter().enumerate() {
        text(&format!("points[{i}].label"), &p.label)?;
        if !p.value.is_finite() {
            return Err(bad(format!("points[{i}].value is not a finite number")));
        }
    }
    Ok((kind, request))
}

/// `POST /api/v1/charts`: the chart as `image/svg+xml`, with the number of points drawn in
/// `x-calltrail-points`.
pub(crate) async fn chart(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = authenticate(&state, &headers).await {
        return e.into_response();
    }
    let (kind, request) = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let points: Vec<Point> = request
        .points
        .into_iter()
        .map(|p| Point {
            label: p.label,
            value: p.value,
        })
        .collect();
    match charts::render(kind, &request.title, &request.y_label, &points) {
        Ok(svg) => {
            let mut response = (StatusCode::OK, svg).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            h.insert("x-calltrail-points", HeaderValue::from(points.len()));
            response
        }
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_and_errors_name_the_field() {
        let ok = br#"{"kind":"line","title":"t","y_label":"y","points":[{"label":"a","value":1}]}"#;
        assert!(parse(ok).is_ok());
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"kind":"pie","title":"t","y_label":"y","points":[]}"#,
                "kind",
            ),
            (
                br#"{"kind":"bars","title":"t","y_label":"y","points":[],"x":1}"#,
                "unknown field",
            ),
            (b"not json", "the body must be"),
            (
                br#"{"kind":"bars","title":"t","y_label":"y","points":[{"label":"a"}]}"#,
                "value",
            ),
        ];
        for (body, want) in cases {
            let Err(e) = parse(body) else {
                panic!("{want}: accepted")
            };
            assert!(e.message().contains(want), "{}: {}", want, e.message());
        }
        let many = format!(
            r#"{{"kind":"bars","title":"t","y_label":"y","points":[{}]}}"#,
            vec![r#"{"label":"a","value":1}"#; MAX_POINTS + 1].join(",")
        );
        assert!(
            parse(many.as_bytes())
                .err()
                .unwrap()
                .message()
                .contains("at most")
        );
        let long = format!(
            r#"{{"kind":"bars","title":"{}","y_label":"y","points":[]}}"#,
            "x".repeat(MAX_TEXT + 1)
        );
        assert!(
            parse(long.as_bytes())
                .err()
                .unwrap()
                .message()
                .contains("title")
        );
    }
}
