//! OTLP/HTTP receiver: `POST /v1/traces` with `application/x-protobuf` or `application/json`,
//! optionally gzip- or deflate-encoded, with or without `Content-Length` (chunked).
//!
//! Responses follow the OTLP/HTTP spec: 200 with an `ExportTraceServiceResponse` (carrying
//! `partial_success` when spans were rejected) in the request's encoding; 400 for a payload
//! that cannot be decoded, 413 when too large, 415 for an unsupported type or encoding, 503 +
//! `Retry-After` when Calltrail is busy. Error bodies are a `google.rpc.Status`. Every error is
//! mapped to its status in [`HttpError::into_response`], and nowhere else.
//!
//! `GET /healthz` (the process answers) and `GET /readyz` (records are accepted; 503 while
//! shutting down) serve load balancers and orchestrators. `GET /metrics` serves the process's
//! own metrics when the binary provides a renderer ([`metrics_router`]); this crate does not
//! know how they are made.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use calltrail_schemas::IngestContext;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::admission::Charge;
use crate::auth::{AuthError, Authenticator};
use crate::otlp_json;
use crate::pipeline::{IngestError, IngestReport, Pipeline, now_ns};
use crate::receivers::Peer;
use crate::retry_info::{RETRY_AFTER_SECS, RpcStatus};

/// The body encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    fn protocol(self) -> &'static str {
        match self {
            Encoding::Protobuf => "otlp_http_protobuf",
            Encoding::Json => "otlp_http_json",
        }
    }
}

/// Everything that can go wrong with one request, each with its HTTP status.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("unsupported Content-Type `{0}`: send application/x-protobuf or application/json")]
    UnsupportedType(String),
    #[error("unsupported Content-Encoding `{0}`: send gzip, deflate or no encoding")]
    UnsupportedEncoding(String),
    #[error("request body is larger than the {limit}-byte limit (receivers.max_body_bytes)")]
    TooLarge { limit: usize, encoding: Encoding },
    #[error("invalid {what} body: {detail}")]
    Compression {
        what: &'static str,
        detail: String,
        encoding: Encoding,
    },
    #[error("reading the request body failed: {detail}")]
    Body { detail: String, encoding: Encoding },
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(prost::DecodeError),
    #[error("{0}")]
    Json(otlp_json::JsonDecodeError),
    #[error("{source}")]
    Ingest {
        source: IngestError,
        encoding: Encoding,
    },
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::UnsupportedType(_) | HttpError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            HttpError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Compression { .. }
            | HttpError::Body { .. }
            | HttpError::Protobuf(_)
            | HttpError::Json(_) => StatusCode::BAD_REQUEST,
            // Overload is 429 and an unwritable store 503: both retryable, with Retry-After.
            HttpError::Ingest {
                source: IngestError::Busy,
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            HttpError::Ingest { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The encoding to answer in; `None` when the request's own type is unusable.
    fn encoding(&self) -> Option<Encoding> {
        match self {
            HttpError::Unauthorized(_)
            | HttpError::UnsupportedType(_)
            | HttpError::UnsupportedEncoding(_) => None,
            HttpError::TooLarge { encoding, .. }
            | HttpError::Compression { encoding, .. }
            | HttpError::Body { encoding, .. }
            | HttpError::Ingest { encoding, .. } => Some(*encoding),
            HttpError::Protobuf(_) => Some(Encoding::Protobuf),
            HttpError::Json(_) => Some(Encoding::Json),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        // gRPC codes in the Status body: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE.
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 3,
        };
        let body = RpcStatus::new(code, message.clone());
        let mut resp = match self.encoding() {
            Some(Encoding::Protobuf) => (
                [(header::CONTENT_TYPE, Encoding::Protobuf.content_type())],
                body.encode_to_vec(),
            )
                .into_response(),
            Some(Encoding::Json) => {
                let json = serde_json::json!({ "code": code, "message": message });
                (
                    [(header::CONTENT_TYPE, Encoding::Json.content_type())],
                    json.to_string(),
                )
                    .into_response()
            }
            None => message.into_response(),
        };
        *resp.status_mut() = status;
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp
    }
}

#[derive(Debug, Clone)]
struct HttpState {
    pipeline: Pipeline,
    max_body: usize,
    auth: Arc<Authenticator>,
}

/// Renders the body of `GET /metrics` (Prometheus text format 0.0.4) when it is scraped.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The `Content-Type` of `GET /metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` alone, answering with `renderer`'s text. Like the probes it is not
/// authenticated: it shows counters, never records, tokens or source names.
pub fn metrics_router(renderer: MetricsRenderer) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = renderer();
            async move { ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body) }
        }),
    )
}

/// The OTLP/HTTP router. Serve it with `into_make_service_with_connect_info::<Peer>()` (as
/// [`crate::Receivers`] does) so records carry the peer address and client certificates
/// authenticate; `ConnectInfo<SocketAddr>` gives the address alone.
pub fn router(pipeline: Pipeline, max_body_bytes: usize, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        // Probes carry no credentials and reveal nothing: they are not authenticated.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(HttpState {
            pipeline,
            max_body: max_body_bytes,
            auth,
        })
}

/// 200 while records are accepted, 503 while shutting down.
async fn ready(State(st): State<HttpState>) -> Response {
    if st.pipeline.is_ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

async fn export(State(st): State<HttpState>, req: Request) -> Response {
    match handle(&st, req).await {
        Ok((encoding, report)) => success(encoding, &report),
        Err(e) => {
            match e {
                HttpError::Ingest { .. } => {}
                HttpError::Unauthorized(_) => st.pipeline.count_unauthenticated(),
                _ => st.pipeline.count_malformed(),
            }
            tracing::debug!(error = %e, "Refused an OTLP/HTTP request.");
            e.into_response()
        }
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("<not text>"))
}

async fn handle(st: &HttpState, req: Request) -> Result<(Encoding, IngestReport), HttpError> {
    let conn = req.extensions().get::<ConnectInfo<Peer>>().map(|c| &c.0);
    let peer = conn
        .map(|p| p.addr)
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        })
        .map(|a| a.to_string());
    let headers = req.headers();
    let source = st
        .auth
        .authenticate(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            conn.and_then(|p| p.client_subject.as_deref()),
        )
        .map_err(HttpError::Unauthorized)?;
    let mime = header_str(headers, header::CONTENT_TYPE).unwrap_or("");
    let encoding = match mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => return Err(HttpError::UnsupportedType(mime.to_string())),
    };
    let compression = header_str(headers, header::CONTENT_ENCODING)
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        compression.as_str(),
        "identity" | "gzip" | "x-gzip" | "deflate"
    ) {
        return Err(HttpError::UnsupportedEncoding(compression));
    }
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_body.saturating_mul(DRAIN_FACTOR) as u64) {
        return Err(HttpError::TooLarge {
            limit: st.max_body,
            encoding,
        });
    }
    let mut charge = st.pipeline.charge();
    let raw = read_body(req.into_body(), st.max_body, &mut charge)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => HttpError::TooLarge {
                limit: st.max_body,
                encoding,
            },
            BodyError::OverBudget => {
                st.pipeline.count_over_budget();
                HttpError::Ingest {
                    source: IngestError::Busy,
                    encoding,
                }
            }
            BodyError::Read(detail) => HttpError::Body { detail, encoding },
        })?;
    let reservation = st
        .pipeline
        .reserve()
        .map_err(|source| HttpError::Ingest { source, encoding })?;
    let raw_len = raw.len();
    let body = decompress(&compression, raw, st.max_body, encoding)?;
    charge
        .add(body.len().saturating_sub(raw_len))
        .map_err(|_| {
            st.pipeline.count_over_budget();
            HttpError::Ingest {
                source: IngestError::Busy,
                encoding,
            }
        })?;
    let request = match encoding {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(body.as_ref()).map_err(HttpError::Protobuf)?
        }
        Encoding::Json => otlp_json::decode_traces(&body).map_err(HttpError::Json)?,
    };
    let ctx = IngestContext {
        observed_time_ns: now_ns(),
        protocol: encoding.protocol(),
        peer,
        source,
    };
    let report = reservation
        .ingest(&request, &ctx)
        .await
        .map_err(|source| HttpError::Ingest { source, encoding })?;
    Ok((encoding, report))
}

enum BodyError {
    TooLarge,
    OverBudget,
    Read(String),
}

/// Reads the body up to `limit` bytes, charging each chunk to the memory budget. Past the
/// limit or the budget, the rest is read and discarded up to [`DRAIN_FACTOR`] × `limit` so the
/// client receives the 413 or 429 instead of a connection reset (which exporters retry
/// forever); a larger body is abandoned.
async fn read_body(mut body: Body, limit: usize, charge: &mut Charge) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut over_budget = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit.saturating_mul(DRAIN_FACTOR) {
            return Err(BodyError::TooLarge);
        }
        // Once refused, the rest is read and discarded (memory-free) so the client gets the
        // answer rather than a broken pipe.
        if over_budget || seen > limit {
            continue;
        }
        if charge.add(data.len()).is_err() {
            over_budget = true;
            buf = bytes::BytesMut::new();
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if seen > limit {
        Err(BodyError::TooLarge)
    } else if over_budget {
        Err(BodyError::OverBudget)
    } else {
        Ok(buf.freeze())
    }
}

/// How far past the limit an oversized body is still read (and discarded).
const DRAIN_FACTOR: usize = 4;

/// Decompresses with a hard cap, so a small gzip bomb cannot inflate past the body limit.
fn decompress(
    compression: &str,
    raw: Bytes,
    limit: usize,
    encoding: Encoding,
) -> Result<Bytes, HttpError> {
    let (what, reader): (&'static str, Box<dyn Read + '_>) = match compression {
        "gzip" | "x-gzip" => ("gzip", Box::new(flate2::read::GzDecoder::new(raw.as_ref()))),
        "deflate" => (
            "deflate",
            Box::new(flate2::read::ZlibDecoder::new(raw.as_ref())),
        ),
        _ => return Ok(raw),
    };
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| HttpError::Compression {
            what,
            detail: e.to_string(),
            encoding,
        })?;
    if out.len() > limit {
        return Err(HttpError::TooLarge { limit, encoding });
    }
    Ok(Bytes::from(out))
}

fn success(encoding: Encoding, report: &IngestReport) -> Response {
    let partial = (report.rejected_spans > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: report.rejected_spans,
        error_message: report.message.clone().unwrap_or_default(),
    });
    let body: Body = match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec()
        .into(),
        Encoding::Json => {
            let json = match partial {
                Some(p) => serde_json::json!({ "partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            json.to_string().into()
        }
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

#[cfg(test)]
#[path = "otlp_http_tests.rs"]
mod tests;
