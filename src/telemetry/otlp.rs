//! Optional OTLP push of the same metrics to the operator's own backend.
//!
//! The SDK's `PeriodicReader` collects every `telemetry.interval_ms` on a thread of its own and
//! exports there (and once more at shutdown). Network clients need the Tokio runtime, which that
//! thread is not part of:
//!
//! - gRPC: the tonic channel is built inside the runtime, and its connection task runs there;
//!   the reader's thread only hands requests to it.
//! - HTTP: [`RuntimeHttpClient`] sends each request as a task on the runtime and waits for it.
//!   It is always given explicitly, so the exporter never picks a client by Cargo features
//!   (an async reqwest client on the reader's thread would fail).
//!
//! Pushes are cumulative (the same values `/metrics` shows), with a per-export timeout of
//! `min(interval_ms, 10 s)`. A backend that is down costs one logged error per failed push
//! (`PeriodicReader.ExportError`, from the SDK's internal logs), never ingest.

use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::PeriodicReader;

use super::{OtlpProtocol, TelemetryConfig, TelemetryError};

/// Longest time one export may take.
const MAX_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The periodic reader pushing to `url` (from [`TelemetryConfig::otlp_url`]).
pub(super) fn periodic_reader(
    config: &TelemetryConfig,
    url: &str,
) -> Result<PeriodicReader<MetricExporter>, TelemetryError> {
    let interval = Duration::from_millis(config.interval_ms);
    let timeout = interval.min(MAX_EXPORT_TIMEOUT);
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => {
            // connect_lazy spawns the channel's task: it must run inside the runtime.
            tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(url)
                .with_timeout(timeout)
                .build()?
        }
        OtlpProtocol::Http => MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(timeout)
            .with_http_client(RuntimeHttpClient::new(timeout)?)
            .build()?,
    };
    Ok(PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build())
}

/// An HTTP client usable from any thread: each request runs as a task on the Tokio runtime it
/// was created in.
#[derive(Debug, Clone)]
pub struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeHttpClient {
    /// A client bound to the current runtime; direct connections (no proxy), plain HTTP.
    pub fn new(timeout: Duration) -> Result<Self, TelemetryError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| {
                TelemetryError::Otlp(opentelemetry_otlp::ExporterBuildError::InternalFailure(
                    format!("cannot build the HTTP client: {e}"),
                ))
            })?;
        Ok(Self { client, runtime })
    }
}

#[async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}
