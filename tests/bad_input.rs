//! Hostile and broken input against one running server, over OTLP/HTTP and OTLP/gRPC: each is
//! refused with the right status (or partially accepted), and none of it disturbs data that was
//! accepted before or after.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use support::{Server, kv, request, server_tool_span, span_id, trace_id};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::Bytes;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

const MAX_BODY: usize = 65536;
const PROTOBUF: &str = "application/x-protobuf";
const TEST: u8 = 0xb1;

const CONFIG: &str = "\
[receivers]
max_body_bytes = 65536

[store]
flush_interval_ms = 300
";

const COUNT_ALL: &str = "SELECT count(*) AS n FROM tool_calls";

/// `n` good spans in their own trace (request number `step`).
fn good(step: u8, n: u8) -> Vec<Span> {
    (0..n)
        .map(|i| {
            server_tool_span(
                trace_id(TEST, step),
                span_id(TEST, step, i),
                "get_balance",
                &format!("{step}-{i}"),
            )
        })
        .collect()
}

/// A request whose encoding exceeds the body limit (a large attribute on a good span).
fn oversized(step: u8) -> Vec<u8> {
    let mut spans = good(step, 1);
    spans[0]
        .attributes
        .push(kv("padding", &"x".repeat(MAX_BODY + 16 * 1024)));
    let body = request("bad-input", spans).encode_to_vec();
    assert!(body.len() > MAX_BODY && body.len() < 2 * MAX_BODY);
    body
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

struct Http {
    client: reqwest::Client,
    url: String,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    /// The body as text (protobuf Status bodies carry their message as UTF-8 bytes).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_lowercase()
    }

    fn partial_success(&self) -> (i64, String) {
        assert_eq!(self.status, 200, "{}", self.text());
        let resp = ExportTraceServiceResponse::decode(self.body.as_slice()).unwrap_or_else(|e| {
            panic!(
                "response is no ExportTraceServiceResponse ({e}): {:?}",
                self.body
            )
        });
        let ps = resp.partial_success.unwrap_or_default();
        (ps.rejected_spans, ps.error_message)
    }
}

impl Http {
    async fn post(&self, content_type: &str, encoding: Option<&str>, body: reqwest::Body) -> Reply {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        if let Some(enc) = encoding {
            req = req.header("content-encoding", enc);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {}: {e:?}", self.url));
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap().to_vec();
        Reply { status, body }
    }

    async fn protobuf(&self, body: Vec<u8>) -> Reply {
        self.post(PROTOBUF, None, body.into()).await
    }
}

/// A streamed body without Content-Length (chunked transfer encoding), as Node's exporter sends.
fn chunked(body: &[u8], chunk: usize) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(tonic::codegen::tokio_stream::iter(chunks))
}

/// A gRPC codec that sends raw bytes, to put arbitrary messages on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn grpc_raw(channel: &Channel, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("channel not ready: {e}")))?;
    let path =
        PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_good_data_survives() {
    let mut server = Server::start_with_config(CONFIG);
    let http = Http {
        client: support::http_client(),
        url: server.traces_url(),
    };
    let mut accepted: i64 = 0;

    // A good request first: the data that must survive everything below.
    let r = http
        .protobuf(request("bad-input", good(1, 3)).encode_to_vec())
        .await;
    assert_eq!(r.status, 200, "good request: {}", r.text());
    assert_eq!(r.partial_success().0, 0);
    accepted += 3;
    server.wait_for_count(COUNT_ALL, accepted, Duration::from_secs(15));

    // --- OTLP/HTTP -------------------------------------------------------------------------

    // Truncated protobuf.
    let full = request("bad-input", good(2, 2)).encode_to_vec();
    let r = http.protobuf(full[..full.len() / 2].to_vec()).await;
    assert_eq!(r.status, 400, "truncated protobuf: {}", r.text());
    assert!(
        r.text().contains("protobuf") && r.text().contains("decod"),
        "truncated protobuf: message should name the protobuf decode error: {}",
        r.text()
    );

    // Invalid JSON: the message names the position.
    let r = http
        .post(
            "application/json",
            None,
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": }]}]}]}"#.into(),
        )
        .await;
    assert_eq!(r.status, 400, "invalid JSON: {}", r.text());
    assert!(
        r.text().contains("line 1 column"),
        "invalid JSON: message should give the position: {}",
        r.text()
    );

    // Wrong content type.
    let r = http
        .post(
            "text/plain",
            None,
            request("bad-input", good(3, 1)).encode_to_vec().into(),
        )
        .await;
    assert_eq!(r.status, 415, "text/plain: {}", r.text());

    // Over the body limit, with Content-Length.
    let r = http.protobuf(oversized(4)).await;
    assert_eq!(
        r.status,
        413,
        "oversized body with Content-Length: {}",
        r.text()
    );

    // Over the body limit, chunked (no Content-Length), as Node's exporter sends.
    let r = http
        .post(PROTOBUF, None, chunked(&oversized(5), 8192))
        .await;
    assert_eq!(r.status, 413, "oversized chunked body: {}", r.text());

    // A chunked body under the limit is fine.
    let body = request("bad-input", good(6, 1)).encode_to_vec();
    let r = http.post(PROTOBUF, None, chunked(&body, 100)).await;
    assert_eq!(r.status, 200, "chunked body under the limit: {}", r.text());
    accepted += 1;

    // gzip is accepted.
    let r = http
        .post(
            PROTOBUF,
            Some("gzip"),
            gzip(&request("bad-input", good(7, 2)).encode_to_vec()).into(),
        )
        .await;
    assert_eq!(r.status, 200, "gzip body: {}", r.text());
    assert_eq!(r.partial_success().0, 0);
    accepted += 2;

    // A gzip bomb: small on the wire, far over the limit once inflated.
    let bomb = gzip(&vec![0u8; 8 * 1024 * 1024]);
    assert!(
        bomb.len() < MAX_BODY,
        "bomb is {} bytes compressed",
        bomb.len()
    );
    let r = http.post(PROTOBUF, Some("gzip"), bomb.into()).await;
    assert_eq!(r.status, 413, "gzip bomb: {}", r.text());

    // Invalid UTF-8 inside an attribute string.
    let mut spans = good(8, 1);
    spans[0].attributes.push(kv("note", "PATCH-ME-UTF8"));
    let mut body = request("bad-input", spans).encode_to_vec();
    let at = body
        .windows(13)
        .position(|w| w == b"PATCH-ME-UTF8")
        .expect("marker in encoding");
    body[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    let r = http.protobuf(body).await;
    assert_eq!(r.status, 400, "invalid UTF-8 in a string: {}", r.text());

    // Partial success: one span without a trace id next to a good one.
    let mut spans = good(9, 1);
    let mut bad = good(9, 2).pop().unwrap();
    bad.trace_id = Vec::new();
    spans.push(bad);
    let r = http
        .protobuf(request("bad-input", spans).encode_to_vec())
        .await;
    let (rejected, message) = r.partial_success();
    assert_eq!(rejected, 1, "missing trace id: {message}");
    assert!(
        message.to_lowercase().contains("trace"),
        "message should name the missing trace id: {message:?}"
    );
    accepted += 1;

    // Partial success: an absurd timestamp (past what Timestamp(ns) can hold).
    let mut spans = good(10, 1);
    let mut bad = good(10, 2).pop().unwrap();
    bad.start_time_unix_nano = u64::MAX - 1;
    bad.end_time_unix_nano = u64::MAX;
    spans.push(bad);
    let r = http
        .protobuf(request("bad-input", spans).encode_to_vec())
        .await;
    let (rejected, message) = r.partial_success();
    assert_eq!(rejected, 1, "absurd timestamp: {message}");
    assert!(
        message.to_lowercase().contains("time"),
        "message should name the timestamp: {message:?}"
    );
    accepted += 1;

    // Three bad spans of three kinds, one good.
    let mut spans = good(11, 4);
    spans[1].trace_id = vec![0; 16];
    spans[2].span_id = Vec::new();
    spans[3].start_time_unix_nano = u64::MAX;
    spans[3].end_time_unix_nano = u64::MAX;
    let r = http
        .protobuf(request("bad-input", spans).encode_to_vec())
        .await;
    let (rejected, message) = r.partial_success();
    assert_eq!(rejected, 3, "three bad spans: {message}");
    assert!(!message.is_empty());
    accepted += 1;

    // --- OTLP/gRPC -------------------------------------------------------------------------

    let channel = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .expect("connect gRPC");

    let err = grpc_raw(&channel, vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])
        .await
        .expect_err("garbage accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "gRPC garbage: {err:?}");

    let full = request("bad-input", good(12, 2)).encode_to_vec();
    let err = grpc_raw(&channel, full[..full.len() - 7].to_vec())
        .await
        .expect_err("truncated accepted");
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "gRPC truncated message: {err:?}"
    );

    let err = grpc_raw(&channel, oversized(13))
        .await
        .expect_err("oversized accepted");
    assert_eq!(
        err.code(),
        Code::ResourceExhausted,
        "gRPC oversized message: {err:?}"
    );

    // Partial success over gRPC, with the generated client.
    let mut client = TraceServiceClient::new(channel.clone());
    let mut spans = good(14, 2);
    spans[1].span_id = vec![1, 2, 3];
    let resp = client
        .export(request("bad-input", spans))
        .await
        .expect("gRPC partial success")
        .into_inner();
    let ps = resp.partial_success.expect("partial_success set");
    assert_eq!(ps.rejected_spans, 1, "gRPC partial success: {ps:?}");
    assert!(
        !ps.error_message.is_empty(),
        "gRPC partial success names the problem"
    );
    accepted += 1;

    // The server is still up and nothing refused above was stored.
    assert!(
        server.is_running(),
        "calltrail serve died:\n{}",
        server.log()
    );
    server.wait_for_count(COUNT_ALL, accepted, Duration::from_secs(15));

    // Good requests still work, over both transports.
    let r = http
        .protobuf(request("bad-input", good(15, 2)).encode_to_vec())
        .await;
    assert_eq!(
        r.status,
        200,
        "good request after the bad ones: {}",
        r.text()
    );
    let resp = client
        .export(request("bad-input", good(16, 1)))
        .await
        .expect("good gRPC request");
    let ps = resp.into_inner().partial_success.unwrap_or_default();
    assert_eq!(ps.rejected_spans, 0, "{ps:?}");
    accepted += 3;
    server.wait_for_count(COUNT_ALL, accepted, Duration::from_secs(15));

    // Exactly the good spans, each once, in their own traces.
    let traces: Vec<String> = server
        .query("SELECT DISTINCT trace_id FROM tool_calls ORDER BY trace_id")
        .iter()
        .map(|r| support::text(r, "trace_id").unwrap())
        .collect();
    let want: Vec<String> = [1u8, 6, 7, 9, 10, 11, 14, 15, 16]
        .iter()
        .map(|s| hex::encode(trace_id(TEST, *s)))
        .collect();
    assert_eq!(traces, want, "traces stored");

    server.stop();
    assert_eq!(server.count(COUNT_ALL), accepted, "rows after a clean stop");
    assert_eq!(
        support::duckdb_count(server.data_dir(), "tool_calls", "true"),
        accepted,
        "DuckDB rows"
    );
}
