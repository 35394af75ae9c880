//! Building, installing and shutting down the meter provider.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};

pub use calltrail_collector::otlp_http::MetricsRenderer;

use super::TelemetryConfig;
use super::prometheus::PrometheusText;

/// The name of Calltrail's meter (the instrumentation scope of every instrument).
pub const METER_NAME: &str = "calltrail";

/// Why telemetry could not be set up or shut down.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A `[telemetry]` value is invalid; the message names the key.
    #[error("{key}: {message}")]
    Config {
        /// Dotted key, e.g. `telemetry.interval_ms`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The Prometheus bridge could not be registered (a bug: it is registered once).
    #[error("telemetry: cannot set up the /metrics reader (internal): {0}")]
    Prometheus(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The OTLP metric exporter could not be built.
    #[error("telemetry.otlp_endpoint: cannot set up the OTLP metric exporter: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
    /// OTLP push needs a Tokio runtime for its network clients, and there is none.
    #[error("telemetry.otlp_endpoint: OTLP push must be set up inside the Tokio runtime")]
    NoRuntime,
    /// Flushing or stopping the meter provider failed.
    #[error("telemetry: shutting down the metrics pipeline failed: {0}")]
    Shutdown(#[from] OTelSdkError),
}

/// Calltrail's metrics: the meter provider and its readers.
///
/// Cheap to share by reference; dropping it without [`Telemetry::shutdown`] skips the final
/// OTLP push.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkMeterProvider,
    meter: Meter,
    prometheus: Option<Arc<PrometheusText>>,
}

impl Telemetry {
    /// Builds the meter provider for `config` (validated here too) and installs it as the
    /// global provider, so that `opentelemetry::global::meter("calltrail")` in any crate records
    /// into it. Call it before building the components that record metrics; OTLP push needs to
    /// be inside the Tokio runtime.
    pub fn install(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let telemetry = Self::new(config)?;
        opentelemetry::global::set_meter_provider(telemetry.provider.clone());
        Ok(telemetry)
    }

    /// Like [`Telemetry::install`] without touching the global provider (for tests, and for
    /// running more than one in a process).
    pub fn new(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        config.validate()?;
        let resource = Resource::builder()
            .with_service_name("calltrail")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // The business metrics fold series beyond the limit into their own overflow series;
        // room for that one more keeps the SDK's cap (2000 by default) from folding again.
        let business_limit = config.business_series_limit.saturating_add(1);
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_view(move |i: &Instrument| {
                if !super::sources::BUSINESS_INSTRUMENTS.contains(&i.name()) {
                    return None;
                }
                Stream::builder()
                    .with_cardinality_limit(business_limit)
                    .build()
                    .ok()
            });
        let mut prometheus = None;
        if config.metrics_endpoint {
            let (reader, text) = PrometheusText::new()?;
            builder = builder.with_reader(reader);
            prometheus = Some(text);
        }
        let push_url = config.otlp_url()?;
        if let Some(url) = &push_url {
            builder = builder.with_reader(super::otlp::periodic_reader(config, url)?);
        }
        let provider = builder.build();
        let meter = provider.meter(METER_NAME);
        let prometheus = prometheus.map(|p| Arc::new(p.with_scrape_histogram(&meter)));
        if let Some(url) = &push_url {
            tracing::info!(
                endpoint = %url, protocol = ?config.otlp_protocol, interval_ms = config.interval_ms,
                "Pushing Calltrail's own metrics over OTLP."
            );
        }
        Ok(Self {
            provider,
            meter,
            prometheus,
        })
    }

    /// The `calltrail` meter of this provider, for instruments of new sources.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The current metrics in Prometheus text format 0.0.4; `None` when
    /// `telemetry.metrics_endpoint` is off.
    pub fn render_prometheus(&self) -> Option<String> {
        self.prometheus.as_ref().map(|p| p.render())
    }

    /// The body of `GET /metrics`, for the OTLP/HTTP router; `None` when
    /// `telemetry.metrics_endpoint` is off.
    pub fn metrics_renderer(&self) -> Option<MetricsRenderer> {
        let p = Arc::clone(self.prometheus.as_ref()?);
        Some(Arc::new(move || p.render()))
    }

    /// Stops the readers; with OTLP push on, exports one last time first (bounded by the
    /// exporter's timeout). Runs the blocking SDK call off the async workers.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        let provider = self.provider;
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))??;
        Ok(())
    }
}
