//! `GET /metrics`: a pull reader of the meter provider, rendered as Prometheus text format 0.0.4.
//!
//! `opentelemetry-prometheus` (kept in step with the SDK, 0.33) turns each collection into
//! Prometheus metric families: names sanitized (`calltrail.store.parquet` →
//! `calltrail_store_parquet`), the unit appended (`By` → `_bytes`, `s` → `_seconds`, annotations
//! such as `{span}` dropped), monotonic sums typed `counter` with `_total`, histograms as
//! `_bucket{le=..}`/`_sum`/`_count`, `HELP` from the description, and a `target_info` gauge
//! carrying the resource (`service_name="calltrail"`, `service_version`). The `prometheus`
//! crate's text encoder writes them (label values and help escaped; no protobuf support is
//! compiled in). Scope labels (`otel_scope_name`) are left out: every instrument is in the one
//! `calltrail` scope.

use std::time::Instant;

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry_prometheus::PrometheusExporter;
use prometheus::{Registry, TextEncoder};

use super::TelemetryError;

/// Bucket bounds of the scrape-duration histogram, in seconds.
const SCRAPE_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Renders the collected metrics as Prometheus text.
#[derive(Debug)]
pub struct PrometheusText {
    registry: Registry,
    scrape_seconds: Option<Histogram<f64>>,
}

impl PrometheusText {
    /// The reader to give the meter provider, and the renderer that collects through it.
    pub(super) fn new() -> Result<(PrometheusExporter, Self), TelemetryError> {
        let registry = Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .map_err(|e| TelemetryError::Prometheus(Box::new(e)))?;
        Ok((
            reader,
            Self {
                registry,
                scrape_seconds: None,
            },
        ))
    }

    /// Records the time each render takes in `calltrail_metrics_scrape_duration_seconds` (seen
    /// by the next scrape): the event-time histogram pattern.
    pub(super) fn with_scrape_histogram(mut self, meter: &Meter) -> Self {
        self.scrape_seconds = Some(
            meter
                .f64_histogram("calltrail.metrics.scrape.duration")
                .with_unit("s")
                .with_description("Time taken to collect and render GET /metrics.")
                .with_boundaries(SCRAPE_BUCKETS.to_vec())
                .build(),
        );
        self
    }

    /// Collects every instrument now and renders the result. Never fails: an encoding error
    /// (a bug) is logged and reported as a comment line, which scrapers ignore.
    pub fn render(&self) -> String {
        let started = Instant::now();
        let families = self.registry.gather();
        let text = TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "Rendering the metrics as Prometheus text failed.");
                format!(
                    "# calltrail: rendering metrics failed: {}\n",
                    e.to_string().replace('\n', " ")
                )
            });
        if let Some(h) = &self.scrape_seconds {
            h.record(started.elapsed().as_secs_f64(), &[]);
        }
        text
    }
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
