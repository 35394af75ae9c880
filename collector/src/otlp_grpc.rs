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
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::auth::Authenticator;
use crate::pipeline::{IngestError, Pipeline, now_ns};
use crate::receivers::Peer;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl From<IngestError> for Status {
    fn from(e: IngestError) -> Self {
        match e {
            // Retryable per the OTLP spec.
            IngestError::Busy | IngestError::ShuttingDown => Status::unavailable(e.to_string()),
        }
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
            Err(e) => return Status::unauthenticated(e.to_string()).into_http(),
        };
        let (parts, body) = req.into_parts();
        // gRPC frame: 1 flag byte + 4 length bytes + the message.
        let cap = self.max_body + 5;
        let bytes = match Limited::new(body, cap).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                self.pipeline.count_malformed();
                return Status::resource_exhausted(format!(
                    "request message is larger than the {}-byte limit (receivers.max_body_bytes)",
                    self.max_body
                ))
                .into_http();
            }
            Err(e) => {
                return Status::cancelled(format!("reading the request failed: {e}")).into_http();
            }
        };
        let req = http::Request::from_parts(parts, Full::new(bytes));
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
            let report = reservation.ingest(&decoded, &ctx);
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
