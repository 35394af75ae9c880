//! Router tests through `oneshot`, no socket: status codes, encodings, limits, partial success.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use calltrail_retention::StoreConfig;
use http::Request;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use tower::ServiceExt;

use super::*;
use crate::test_stack::{self, Stack};
use crate::wal::WalConfig;

const LIMIT: usize = 64 * 1024;

struct Fixture {
    app: Router,
    stack: Stack,
    _dir: tempfile::TempDir,
}

async fn fixture(queue_capacity: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let wal = WalConfig {
        queue_capacity,
        ..WalConfig::default()
    };
    let store = StoreConfig {
        flush_interval_ms: 3_600_000,
        ..Default::default()
    };
    let stack = test_stack::start(dir.path(), wal, store).await;
    Fixture {
        app: router(
            stack.pipeline.clone(),
            LIMIT,
            Arc::new(Authenticator::open()),
        ),
        stack,
        _dir: dir,
    }
}

fn span(i: u8, start: u64) -> Span {
    Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: "tools/call get_x".into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1000,
        attributes: vec![KeyValue {
            key: "mcp.method.name".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("tools/call".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn now() -> u64 {
    now_ns() as u64
}

async fn post(
    app: &Router,
    ctype: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut b = Request::post("/v1/traces").header(header::CONTENT_TYPE, ctype);
    if let Some(e) = encoding {
        b = b.header(header::CONTENT_ENCODING, e);
    }
    let resp = app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn protobuf_ok_and_partial_success() {
    let f = fixture(64).await;
    let (status, headers, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        request(vec![span(1, now())]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    assert_eq!(
        ExportTraceServiceResponse::decode(body)
            .unwrap()
            .partial_success,
        None
    );

    let mut bad = span(2, now());
    bad.trace_id = vec![];
    let (status, _, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        request(vec![span(3, now()), bad]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let p = ExportTraceServiceResponse::decode(body)
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(p.rejected_spans, 1);
    assert!(
        p.error_message
            .contains("spans[1]: trace_id must be 16 bytes, got 0"),
        "{}",
        p.error_message
    );
}

#[tokio::test]
async fn json_ok_and_json_errors_name_the_path() {
    let f = fixture(64).await;
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"tools/call x","kind":2,"startTimeUnixNano":"{0}","endTimeUnixNano":"{0}","attributes":[{{"key":"mcp.method.name","value":{{"stringValue":"tools/call"}}}}]}}]}}]}}]}}"#,
        now()
    );
    let (status, headers, resp) = post(
        &f.app,
        "application/json; charset=utf-8",
        None,
        body.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp:?}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(resp.as_ref(), b"{}");

    let (status, _, resp) = post(
        &f.app,
        "application/json",
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["code"], 3);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{v}"
    );
}

#[tokio::test]
async fn wrong_type_truncated_and_oversized_bodies() {
    let f = fixture(64).await;
    let (status, _, body) = post(&f.app, "text/plain", None, b"hi".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&body).contains("text/plain"));

    let (status, _, _) = post(&f.app, "application/x-protobuf", Some("br"), b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let good = request(vec![span(1, now())]).encode_to_vec();
    let (status, _, body) = post(
        &f.app,
        "application/x-protobuf",
        None,
        good[..good.len() - 3].to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let st = RpcStatus::decode(body).unwrap();
    assert!(
        st.message.starts_with("invalid OTLP protobuf"),
        "{}",
        st.message
    );

    let (status, _, _) = post(&f.app, "application/x-protobuf", None, vec![0; LIMIT + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, _, _) = post(&f.app, "application/x-protobuf", Some("gzip"), gzip(&good)).await;
    assert_eq!(status, StatusCode::OK);

    // A gzip bomb: small on the wire, over the limit once inflated.
    let bomb = gzip(&vec![0u8; LIMIT * 4]);
    assert!(bomb.len() < LIMIT);
    let (status, _, body) = post(&f.app, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        RpcStatus::decode(body)
            .unwrap()
            .message
            .contains("max_body_bytes")
    );

    let (status, _, _) = post(
        &f.app,
        "application/x-protobuf",
        Some("gzip"),
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_full_log_queue_answers_429_with_retry_after() {
    // Capacity 1, taken by a request that is still being decoded.
    let f = fixture(1).await;
    let body = || request(vec![span(1, now())]).encode_to_vec();
    let held = f.stack.pipeline.reserve().unwrap();
    let (status, headers, msg) = post(&f.app, "application/x-protobuf", None, body()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(
        RpcStatus::decode(msg).unwrap().code,
        8,
        "RESOURCE_EXHAUSTED in the Status body"
    );
    drop(held);
    let (status, _, _) = post(&f.app, "application/x-protobuf", None, body()).await;
    assert_eq!(status, StatusCode::OK, "room again once the slot is free");
    let stats = f.stack.shutdown().await;
    assert_eq!(stats.rows.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A router that requires the token `t0k` (source `gw-1`), with its stack and store.
async fn authed_app() -> (Router, Stack, tempfile::TempDir) {
    use crate::auth::{AuthConfig, AuthMode, Authenticator, TokenEntry, token_sha256};
    let config = AuthConfig {
        mode: AuthMode::Required,
        tokens: vec![TokenEntry {
            source: "gw-1".into(),
            sha256: token_sha256("t0k"),
            revoked: false,
        }],
        client_certs: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), StoreConfig::default()).await;
    let app = router(
        stack.pipeline.clone(),
        LIMIT,
        Arc::new(Authenticator::new(&config, false).unwrap()),
    );
    (app, stack, dir)
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let (app, stack, _dir) = authed_app().await;
    let body = request(vec![span(1, now())]).encode_to_vec();
    let send = |auth: Option<&'static str>, ctype: &'static str| {
        let mut b = Request::post("/v1/traces").header(header::CONTENT_TYPE, ctype);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        app.clone()
            .oneshot(b.body(Body::from(body.clone())).unwrap())
    };
    let r = send(None, "application/x-protobuf").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    // Even a request that is wrong in other ways is refused for its credentials first.
    let r = send(Some("Bearer nope"), "text/plain").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text.as_ref(), b"unknown bearer token");
    let r = send(Some("Bearer t0k"), "application/x-protobuf")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(app);
    let stats = stack.shutdown().await;
    assert_eq!(
        stats.rows.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "only the authenticated request was stored"
    );
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let (app, stack, _dir) = authed_app().await;
    let get = |path: &'static str| {
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
    };
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let pipeline = stack.pipeline.clone();
    stack.shutdown().await;
    assert!(!pipeline.is_ready());
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready once the log stopped"
    );
}

#[tokio::test]
async fn requests_past_the_memory_budget_get_429_and_keep_nothing() {
    let f = fixture(64).await;
    // 16 KiB of budget holds 4 KiB of body.
    let small = Pipeline::new(
        Arc::new(calltrail_schemas::Attributor::default()),
        f.stack.wal.handle(),
        16 * 1024,
    );
    let app = router(small.clone(), LIMIT, Arc::new(Authenticator::open()));
    let big = request((1..=60).map(|i| span(i, now())).collect()).encode_to_vec();
    assert!(big.len() > 4096);
    let (status, headers, _) = post(&app, "application/x-protobuf", None, big).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(
        small.admission().in_use_bytes(),
        0,
        "the charge was returned"
    );
    let (status, _, _) = post(
        &app,
        "application/x-protobuf",
        None,
        request(vec![span(1, now())]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a small request fits");
    drop((app, small));
    let stats = f.stack.shutdown().await;
    assert_eq!(stats.rows.load(std::sync::atomic::Ordering::Relaxed), 1);
}
