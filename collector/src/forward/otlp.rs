//! OTLP out: re-exports stored calls as spans, with Calltrail's attribution added as attributes,
//! to an observability backend a user already runs (New Relic, Datadog, Grafana, another
//! collector), over OTLP/HTTP protobuf. Each event is encoded as one `ResourceSpans`; a batch
//! is their concatenation as field 1 of an `ExportTraceServiceRequest`, which is exactly that
//! message's encoding.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::event::{CheckpointEvent, Event, FindingRow, RecordRow};
use super::transport::{Message, Retry, SendResult};

/// `[forward.destinations.otlp]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces` or `https://otlp.example:4318/v1/traces`.
    pub endpoint: String,
    /// Extra request headers (an API key, a tenant header). Values are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// CA certificates (PEM) that an `https` endpoint's certificate must chain to.
    pub ca_file: Option<std::path::PathBuf>,
    /// Request timeout, ms. Default 10000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    10_000
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("ca_file", &self.ca_file)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// The parts of an endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_endpoint(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/v1/traces"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: port {p:?} is not a number"))?,
        ),
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(Endpoint {
        tls,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

impl OtlpConfig {
    /// Checks the settings; errors name the key under `key`.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        let e = parse_endpoint(&self.endpoint).map_err(|e| format!("{key}.endpoint: {e}"))?;
        if !e.tls && self.ca_file.is_some() {
            return Err(format!("{key}.ca_file: set only for an https endpoint"));
        }
        if e.tls && self.ca_file.is_none() {
            return Err(format!(
                "{key}.ca_file: an https endpoint needs the CA certificates it chains to (no system roots are trusted)"
            ));
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("{key}.headers: {name:?} is not a header name"));
            }
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            return Err(format!("{key}.timeout_ms: must be between 100 and 300000"));
        }
        Ok(())
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, v: Option<&str>, out: &mut Vec<KeyValue>) {
    if let Some(v) = v {
        out.push(kv(key, Value::StringValue(v.to_owned())));
    }
}

fn i(key: &str, v: Option<i64>, out: &mut Vec<KeyValue>) {
    if let Some(v) = v {
        out.push(kv(key, Value::IntValue(v)));
    }
}

fn f(key: &str, v: Option<f64>, out: &mut Vec<KeyValue>) {
    if let Some(v) = v {
        out.push(kv(key, Value::DoubleValue(v)));
    }
}

fn id_bytes(hex_id: Option<&str>, len: usize) -> Vec<u8> {
    hex_id
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == len)
        .unwrap_or_default()
}

/// Ids derived from a text, for events that are not spans themselves.
fn derived_ids(text: &str) -> (Vec<u8>, Vec<u8>) {
    let h = Sha256::digest(text.as_bytes());
    (h[..16].to_vec(), h[16..24].to_vec())
}

/// The attributes every event gets: its chain position and Calltrail's attribution.
fn enrichment(r: &RecordRow<'_>, out: &mut Vec<KeyValue>) {
    s("enduser.id", r.str("principal"), out);
    for (attr, col) in [
        ("calltrail.principal.kind", "principal_kind"),
        ("calltrail.principal.source", "principal_source"),
        ("calltrail.principal.reason", "principal_reason"),
        ("calltrail.team", "team"),
        ("calltrail.tenant", "tenant"),
        ("calltrail.cost_center", "cost_center"),
        ("calltrail.operation_class", "operation_class"),
        ("calltrail.outcome", "outcome"),
        ("calltrail.event_id", "event_id"),
        ("calltrail.chain_id", "chain_id"),
    ] {
        s(attr, r.str(col), out);
    }
    i("calltrail.seq", r.int("seq"), out);
    s(
        "calltrail.leaf_hash",
        r.hash_hex("leaf_hash").as_deref(),
        out,
    );
}

fn record_span(r: &RecordRow<'_>) -> (Span, Vec<KeyValue>) {
    let mut attrs = Vec::new();
    for (k, v) in r.map("attributes") {
        s(k, v, &mut attrs);
    }
    // The fields Calltrail normalised, under their semantic-convention names.
    for (attr, col) in [
        ("mcp.method.name", "method"),
        ("gen_ai.tool.name", "tool_name"),
        ("mcp.session.id", "session_id"),
        ("mcp.protocol.version", "protocol_version"),
        ("jsonrpc.request.id", "request_id"),
        ("error.type", "error_type"),
        ("network.transport", "network_transport"),
        ("server.address", "server_address"),
        ("client.address", "client_address"),
        ("gen_ai.operation.name", "operation"),
        ("gen_ai.provider.name", "provider"),
        ("gen_ai.request.model", "request_model"),
        ("gen_ai.response.model", "response_model"),
        ("calltrail.server_name", "server_name"),
        ("calltrail.audit.action", "action"),
        ("calltrail.audit.actor", "actor"),
        ("calltrail.audit.subject", "subject"),
    ] {
        let present = attrs.iter().any(|a| a.key == attr);
        if !present {
            s(attr, r.str(col), &mut attrs);
        }
    }
    for (attr, col) in [
        ("rpc.jsonrpc.error_code", "jsonrpc_code"),
        ("server.port", "server_port"),
        ("client.port", "client_port"),
        ("gen_ai.usage.input_tokens", "input_tokens"),
        ("gen_ai.usage.output_tokens", "output_tokens"),
    ] {
        i(attr, r.int(col), &mut attrs);
    }
    enrichment(r, &mut attrs);
    let mut resource = Vec::new();
    for (k, v) in r.map("resource_attributes") {
        s(k, v, &mut resource);
    }
    if !resource.iter().any(|a| a.key == "service.name") {
        s(
            "service.name",
            r.str("source_service").or(Some("calltrail")),
            &mut resource,
        );
    }
    let failed = matches!(
        r.str("outcome"),
        Some("tool_error" | "protocol_error" | "denied")
    ) || r.boolean("is_error") == Some(true);
    let start = r.time_ns("start_time").or_else(|| r.time_ns("time"));
    let (trace_id, span_id) = match (r.str("trace_id"), r.str("span_id")) {
        (Some(t), Some(sp)) => (id_bytes(Some(t), 16), id_bytes(Some(sp), 8)),
        _ => derived_ids(r.str("event_id").unwrap_or_default()),
    };
    let span = Span {
        trace_id,
        span_id,
        parent_span_id: id_bytes(r.str("parent_span_id"), 8),
        name: r
            .str("span_name")
            .map(str::to_owned)
            .or_else(|| r.str("action").map(|a| format!("calltrail.audit {a}")))
            .unwrap_or_else(|| r.table().to_owned()),
        kind: match r.str("side") {
            Some("server") => 2,
            Some("client") => 3,
            _ => 1,
        },
        start_time_unix_nano: start.unwrap_or_default().max(0) as u64,
        end_time_unix_nano: r.time_ns("end_time").or(start).unwrap_or_default().max(0) as u64,
        attributes: attrs,
        status: Some(Status {
            message: if failed {
                r.str("error_message")
                    .or(r.str("error_type"))
                    .unwrap_or_default()
                    .to_owned()
            } else {
                String::new()
            },
            code: if failed { 2 } else { 0 },
        }),
        ..Span::default()
    };
    (span, resource)
}

fn checkpoint_span(c: &CheckpointEvent) -> (Span, Vec<KeyValue>) {
    let (trace_id, span_id) = derived_ids(&c.meta().event_id);
    let t = c
        .timestamp
        .unwrap_or_default()
        .saturating_mul(1_000_000_000);
    let mut attrs = Vec::new();
    s("calltrail.chain_id", Some(&c.chain_id), &mut attrs);
    s("calltrail.checkpoint.origin", Some(&c.origin), &mut attrs);
    i(
        "calltrail.checkpoint.size",
        i64::try_from(c.size).ok(),
        &mut attrs,
    );
    s("calltrail.checkpoint.root", Some(&c.root_hex), &mut attrs);
    s("calltrail.checkpoint.note", Some(&c.note), &mut attrs);
    let span = Span {
        trace_id,
        span_id,
        name: "calltrail.checkpoint".into(),
        kind: 1,
        start_time_unix_nano: t,
        end_time_unix_nano: t,
        attributes: attrs,
        ..Span::default()
    };
    let resource = vec![kv("service.name", Value::StringValue("calltrail".into()))];
    (span, resource)
}

/// A finding as a span of its own (like a checkpoint, it is no call): `calltrail.finding`, over
/// the finding's window, ids derived from the finding id, every column as a
/// `calltrail.finding.*` attribute (the principal as `enduser.id`).
fn finding_span(row: &FindingRow<'_>) -> (Span, Vec<KeyValue>) {
    let (trace_id, span_id) = derived_ids(row.str("finding_id").unwrap_or_default());
    let mut attrs = Vec::new();
    s("enduser.id", row.str("principal"), &mut attrs);
    for col in [
        "finding_id",
        "detector",
        "rule",
        "severity",
        "entity_kind",
        "entity",
        "team",
        "tenant",
        "server_name",
        "tool_name",
        "explanation",
    ] {
        s(
            &format!("calltrail.finding.{col}"),
            row.str(col),
            &mut attrs,
        );
    }
    for col in ["observed", "expected", "score"] {
        f(
            &format!("calltrail.finding.{col}"),
            row.float(col),
            &mut attrs,
        );
    }
    i(
        "calltrail.finding.detected_at",
        row.time_ns("detected_at"),
        &mut attrs,
    );
    let nanos = |col: &str| row.time_ns(col).unwrap_or_default().max(0) as u64;
    let span = Span {
        trace_id,
        span_id,
        name: format!("calltrail.finding {}", row.str("rule").unwrap_or("unknown")),
        kind: 1,
        start_time_unix_nano: nanos("window_start"),
        end_time_unix_nano: nanos("window_end"),
        attributes: attrs,
        ..Span::default()
    };
    let resource = vec![kv("service.name", Value::StringValue("calltrail".into()))];
    (span, resource)
}

/// Encodes `event` as one `ResourceSpans` message.
pub fn encode(event: &Event<'_>, out: &mut Vec<u8>) {
    let (span, resource) = match event {
        Event::Record(r) => record_span(r),
        Event::Checkpoint(c) => checkpoint_span(c),
        Event::Finding(row) => finding_span(row),
    };
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "calltrail".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..InstrumentationScope::default()
            }),
            spans: vec![span],
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    };
    rs.encode(out).unwrap_or_else(|e| {
        // Encoding into a Vec only fails when it cannot grow.
        tracing::error!(error = %e, "Encoding a span failed.");
    });
}

/// Errors setting up the OTLP transport.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The CA file could not be read or holds no usable certificate.
    #[error("otlp.{0}")]
    Ca(String),
    /// The endpoint is not a URL this transport can use.
    #[error("otlp endpoint: {0}")]
    Endpoint(String),
}

/// An OTLP/HTTP protobuf exporter to one endpoint.
pub struct OtlpTransport {
    endpoint: Endpoint,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl std::fmt::Debug for OtlpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTransport")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OtlpTransport {
    /// A transport for `config` (validated).
    pub fn new(config: &OtlpConfig) -> Result<Self, OtlpError> {
        let endpoint = parse_endpoint(&config.endpoint).map_err(OtlpError::Endpoint)?;
        let tls = match &config.ca_file {
            Some(path) => {
                let roots = crate::tls::read_roots("ca_file", path)
                    .map_err(|e| OtlpError::Ca(e.to_string()))?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let client = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| OtlpError::Ca(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(client)))
            }
            None => None,
        };
        let headers = config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                    http::HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        Ok(Self {
            endpoint,
            headers,
            tls,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// Exports the batch as one request. 2xx: all delivered. 400 (a request the backend will
    /// never take): retried one event at a time so only the offending ones are dead-lettered;
    /// anything else (429, 5xx, network): retried.
    pub async fn send(&mut self, batch: &[Message]) -> SendResult {
        match self.post(batch).await {
            Ok(()) => Ok(Vec::new()),
            Err(PostError::Rejected(reason)) if batch.len() == 1 => {
                Ok(vec![super::transport::Rejection { index: 0, reason }])
            }
            Err(PostError::Rejected(_)) => {
                let mut rejected = Vec::new();
                for (i, m) in batch.iter().enumerate() {
                    match self.post(std::slice::from_ref(m)).await {
                        Ok(()) => {}
                        Err(PostError::Rejected(reason)) => {
                            rejected.push(super::transport::Rejection { index: i, reason });
                        }
                        Err(PostError::Retry(reason)) => {
                            return Err(Retry {
                                delivered: i,
                                rejected,
                                reason,
                            });
                        }
                    }
                }
                Ok(rejected)
            }
            Err(PostError::Retry(reason)) => Err(Retry {
                delivered: 0,
                rejected: Vec::new(),
                reason,
            }),
        }
    }

    /// Sends one request with the batch; used by `calltrail forward test` with one event.
    async fn post(&self, batch: &[Message]) -> Result<(), PostError> {
        let mut body = Vec::with_capacity(batch.iter().map(|m| m.payload.len() + 6).sum());
        for m in batch {
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut body);
            prost::encoding::encode_varint(m.payload.len() as u64, &mut body);
            body.extend_from_slice(&m.payload);
        }
        tokio::time::timeout(self.timeout, self.exchange(body))
            .await
            .map_err(|_| {
                PostError::Retry(format!(
                    "no answer from {}:{} within {} ms",
                    self.endpoint.host,
                    self.endpoint.port,
                    self.timeout.as_millis()
                ))
            })?
    }

    async fn exchange(&self, body: Vec<u8>) -> Result<(), PostError> {
        let e = &self.endpoint;
        let addr = format!("{}:{}", e.host, e.port);
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|err| PostError::Retry(format!("connecting to {addr}: {err}")))?;
        let mut req = http::Request::post(e.path.as_str())
            .header(http::header::HOST, &e.host)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| PostError::Retry(format!("building the request: {err}")))?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let response = match &self.tls {
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(e.host.clone())
                    .map_err(|err| PostError::Retry(format!("TLS name {}: {err}", e.host)))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|err| PostError::Retry(format!("TLS handshake with {addr}: {err}")))?;
                request(stream, req).await?
            }
            None => request(tcp, req).await?,
        };
        let status = response.0;
        if status.is_success() {
            Ok(())
        } else if status == http::StatusCode::BAD_REQUEST {
            Err(PostError::Rejected(format!("HTTP 400: {}", response.1)))
        } else {
            Err(PostError::Retry(format!("HTTP {status}: {}", response.1)))
        }
    }
}

enum PostError {
    Rejected(String),
    Retry(String),
}

async fn request<S>(
    stream: S,
    req: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, String), PostError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| PostError::Retry(format!("HTTP handshake: {e}")))?;
    let driver = tokio::spawn(conn);
    let result = sender.send_request(req).await;
    let out = match result {
        Ok(resp) => {
            let status = resp.status();
            // The body says why a request failed; keep it short in logs.
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| {
                    let b = b.to_bytes();
                    String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned()
                })
                .unwrap_or_default();
            Ok((status, body))
        }
        Err(e) => Err(PostError::Retry(format!("HTTP request: {e}"))),
    };
    driver.abort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_defaults_and_errors() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:4318/v1/traces").unwrap(),
            Endpoint {
                tls: false,
                host: "127.0.0.1".into(),
                port: 4318,
                path: "/v1/traces".into()
            }
        );
        let e = parse_endpoint("https://otlp.example").unwrap();
        assert_eq!((e.tls, e.port, e.path.as_str()), (true, 443, "/v1/traces"));
        assert!(parse_endpoint("ftp://x").is_err());
        assert!(parse_endpoint("http://h:port/").is_err());
        let c = OtlpConfig {
            endpoint: "https://h:1/v1/traces".into(),
            headers: BTreeMap::from([("api-key".into(), "s3cret".into())]),
            ca_file: None,
            timeout_ms: 1000,
        };
        let e = c.validate("forward.destinations[1].otlp").unwrap_err();
        assert!(e.starts_with("forward.destinations[1].otlp.ca_file"), "{e}");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
