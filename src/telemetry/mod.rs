//! Calltrail's own metrics, through the OpenTelemetry metrics SDK.
//!
//! [`Telemetry::install`] builds one `SdkMeterProvider` and installs it as the global provider,
//! with up to two readers of the same instruments:
//!
//! - a pull reader for `GET /metrics` on the OTLP/HTTP port ([`prometheus`]): each scrape
//!   collects the current values and renders them as Prometheus text format 0.0.4
//!   (`opentelemetry-prometheus` does the OpenTelemetry → Prometheus naming: dots become `_`, the
//!   unit becomes a suffix such as `_bytes` or `_seconds`, counters end in `_total`);
//! - a periodic OTLP push to the operator's own backend ([`otlp`]), when
//!   `telemetry.otlp_endpoint` is set.
//!
//! # Adding metrics
//!
//! Components keep counting in their own atomics (`IngestStats`, `StoreStats`), so the hot path
//! does not change; observable instruments read them when metrics are collected. A new source
//! adds one method next to [`Telemetry::observe_ingest`] in [`sources`], taking an
//! `Arc<TheirStats>`, and `serve` calls it once after building the component:
//!
//! ```ignore
//! // src/telemetry/sources.rs
//! impl Telemetry {
//!     pub fn observe_wal(&self, stats: Arc<WalStats>) {
//!         let s = Arc::clone(&stats);
//!         self.meter()
//!             .u64_observable_counter("calltrail.wal.written") // → calltrail_wal_written_bytes_total
//!             .with_unit("By")
//!             .with_description("Bytes appended to the write-ahead log.")
//!             .with_callback(move |o| o.observe(s.bytes.load(Ordering::Relaxed), &[]))
//!             .build();
//!     }
//! }
//! // src/cli/serve.rs
//! telemetry.observe_wal(Arc::clone(wal.stats()));
//! ```
//!
//! Values that must be recorded when the event happens (an fsync's latency, a request's
//! duration) use a histogram created by the library itself from the global provider, which
//! `serve` installs before it builds any component:
//!
//! ```ignore
//! // in the component (any crate: only the `opentelemetry` API crate is needed)
//! let fsync_seconds = opentelemetry::global::meter("calltrail")
//!     .f64_histogram("calltrail.wal.fsync.duration") // → calltrail_wal_fsync_duration_seconds
//!     .with_unit("s")
//!     .with_description("Time spent in fsync of the write-ahead log.")
//!     .with_boundaries(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
//!     .build();
//! // keep it in the component's struct; on each event:
//! fsync_seconds.record(started.elapsed().as_secs_f64(), &[]);
//! ```
//!
//! The ingest request duration would be recorded the same way in `collector`'s pipeline; the
//! one histogram Calltrail records today is the `/metrics` scrape itself
//! (`calltrail_metrics_scrape_duration_seconds`, in [`prometheus`]). Names follow
//! `calltrail.<component>.<what>` with an OpenTelemetry unit (`By`, `s`, `{span}`); label sets
//! stay small and bounded (no principals, tools or sources as labels). The one exception, the
//! business counters (`calltrail_tool_calls_total{team,server,outcome}`,
//! `calltrail_llm_tokens_total{team,token_type}`), take label values from senders and are
//! capped by `telemetry.business_series_limit`, the rest folded into an overflow series.

mod config;
pub mod otlp;
pub mod prometheus;
mod setup;
pub mod sources;

pub use config::{OtlpProtocol, TelemetryConfig};
pub use setup::{METER_NAME, MetricsRenderer, Telemetry, TelemetryError};
