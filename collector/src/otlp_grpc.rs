//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! A hand-written service rather than the generated one, for two wire-level answers the
//! generated code gets wrong for OTLP: a message that does not decode is `INVALID_ARGUMENT`
//! (tonic's codec says `INTERNAL`), and a message over the size limit is `RESOURCE_EXHAUSTED`
//! (tonic says `OUT_OF_RANGE`, which OTLP exporters retry forever). The request body is read
//! with a hard cap before tonic's framing and decompression see it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use calltrail_schemas::IngestContext;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

use crate::auth::Authenticator;
use crate::pipeline::{IngestError, Pipeline, now_ns};
use crate::receivers::Peer;
use crate::retry_info::{RETRY_AFTER_SECS, retry_status};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl From<IngestError> for Status {
    fn from(e: IngestError) -> Self {
        // OTLP exporters retry UNAVAILABLE always, and RESOURCE_EXHAUSTED only when the status
        // carries RetryInfo: overload says so, with the delay to wait.
        let code = match e {
            IngestError::Busy => Code::ResourceExhausted,
            IngestError::ShuttingDown | IngestError::Unavailable(_) => Code::Unavailable,
        };
        retry_status(code, e.to_string(), RETRY_AFTER_SECS)
    }
}

/// The trace service, ready for `tonic::transport::Server::add_service`.
#[derive(Debug, Clone)]
pub struct TraceExportService {
    pipeline: Pipeline,
    max_body: usize,
    auth: Arc<Authenticator>,
}

impl TraceExportService {
    /// A service feeding `pipeline`, refusing messages over `max_body_bytes` and requests that
    /// `auth` does not accept.
    pub fn new(pipeline: Pipeline, max_body_bytes: usize, auth: Arc<Authenticator>) -> Self {
        Self {
            pipeline,
            max_body: max_body_bytes,
            auth,
        }
    }
}

impl NamedService for TraceExportService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tower_service::Service<http::Request<Body>> for TraceExportService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.serve(req).await) })
    }
}

impl TraceExportService {
    async fn serve(self, req: http::Request<Body>) -> http::Response<Body> {
        if req.uri().path() != EXPORT_PATH {
            return Status::unimplemented(format!("unknown method {}", req.uri().path()))
                .into_http();
        }
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes);
        let client_subject = req
            .extensions()
            .get::<Peer>()
            .and_then(|p| p.client_subject.as_deref());
        let source = match self.auth.authenticate(authorization, client_subject) {
            Ok(source) => source,
            Err(e) => {
                self.pipeline.count_unauthenticated();
                return Status::unauthenticated(e.to_string()).into_http();
            }
        };
        let (parts, mut body) = req.into_parts();
        // gRPC frame: 1 flag byte + 4 length bytes + the message.
        let cap = self.max_body + 5;
        // Held until the response is built: the request's share of the memory budget.
        let mut charge = self.pipeline.charge();
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let data = match frame.map(|f| f.into_data()) {
                Ok(Ok(data)) => data,
                Ok(Err(_trailers)) => continue,
                Err(e) => {
                    return Status::cancelled(format!("reading the request failed: {e}"))
                        .into_http();
                }
            };
            if buf.len() + data.len() > cap {
                self.pipeline.count_malformed();
                return Status::resource_exhausted(format!(
                    "request message is larger than the {}-byte limit (receivers.max_body_bytes)",
                    self.max_body
                ))
                .into_http();
            }
            if charge.add(data.len()).is_err() {
                self.pipeline.count_over_budget();
                return Status::from(IngestError::Busy).into_http();
            }
            buf.extend_from_slice(&data);
        }
        let req = http::Request::from_parts(parts, Full::new(buf.freeze()));
        let mut grpc = Grpc::new(ExportCodec)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(self.max_body)
            .max_encoding_message_size(64 * 1024);
        grpc.unary(
            Export {
                pipeline: self.pipeline,
                source,
            },
            req,
        )
        .await
    }
}

struct Export {
    pipeline: Pipeline,
    /// The authenticated source of this request.
    source: Option<String>,
}

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let pipeline = self.pipeline.clone();
        let source = self.source.take();
        Box::pin(async move {
            let peer = (request.extensions().get::<Peer>().map(|p| p.addr))
                .or_else(|| request.remote_addr())
                .map(|a| a.to_string());
            let reservation = pipeline.reserve()?;
            let decoded = ExportTraceServiceRequest::decode(request.into_inner()).map_err(|e| {
                pipeline.count_malformed();
                Status::invalid_argument(format!("invalid OTLP protobuf: {e}"))
            })?;
            let ctx = IngestContext {
                observed_time_ns: now_ns(),
                protocol: "otlp_grpc",
                peer,
                source,
            };
            let report = reservation.ingest(&decoded, &ctx).await?;
            let partial_success = (report.rejected_spans > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: report.rejected_spans,
                error_message: report.message.unwrap_or_default(),
            });
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success,
            }))
        })
    }
}

/// Passes the request message through as bytes (decoded by [`Export`], which owns the error
/// code) and encodes the response with prost.
struct ExportCodec;

struct ResponseEncoder;
struct RawDecoder;

impl Codec for ExportCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response failed: {e}")))
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use calltrail_retention::StoreConfig;
    use calltrail_schemas::Attributor;

    use super::*;
    use crate::retry_info::retry_delay_secs;
    use crate::test_stack;
    use crate::wal::WalConfig;

    /// A gRPC request for `Export` with a message of `len` bytes (content irrelevant).
    fn export_request(len: usize) -> http::Request<Body> {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(len as u32).to_be_bytes());
        framed.extend(std::iter::repeat_n(0u8, len));
        http::Request::post(EXPORT_PATH)
            .header("content-type", "application/grpc")
            .body(Body::new(Full::new(Bytes::from(framed))))
            .unwrap()
    }

    async fn call(svc: &TraceExportService, len: usize) -> Status {
        let resp = svc.clone().serve(export_request(len)).await;
        Status::from_header_map(resp.headers()).expect("a trailers-only status")
    }

    #[tokio::test]
    async fn over_budget_is_resource_exhausted_with_retry_info() {
        let dir = tempfile::tempdir().unwrap();
        let stack =
            test_stack::start(dir.path(), WalConfig::default(), StoreConfig::default()).await;
        // 16 KiB of budget holds 4 KiB of message.
        let small = Pipeline::new(
            Arc::new(Attributor::default()),
            stack.wal.handle(),
            16 * 1024,
        );
        let svc = TraceExportService::new(small, 1 << 20, Arc::new(Authenticator::open()));
        let s = call(&svc, 8 * 1024).await;
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            retry_delay_secs(&s),
            Some(1),
            "exporters retry only with RetryInfo"
        );
        // A full log queue says the same.
        let held = stack.pipeline.reserve().unwrap();
        let busy = TraceExportService::new(
            stack.pipeline.clone(),
            1 << 20,
            Arc::new(Authenticator::open()),
        );
        let wal = WalConfig::default();
        let mut slots = vec![held];
        for _ in 1..wal.queue_capacity {
            slots.push(stack.pipeline.reserve().unwrap());
        }
        let s = call(&busy, 16).await;
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(retry_delay_secs(&s), Some(1));
        drop(slots);
        drop((svc, busy));
        stack.shutdown().await;
    }
}
