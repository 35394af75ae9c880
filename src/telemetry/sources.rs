//! Observable instruments over the counters components already keep: nothing is added to the
//! ingest or write path; values are read when metrics are collected (a scrape or a push).
//!
//! | Prometheus name | type | from |
//! |---|---|---|
//! | `calltrail_ingest_spans_received_total` | counter | `IngestStats::spans_received` |
//! | `calltrail_ingest_spans_accepted_total{table}` | counter | `tool_calls`, `llm_calls` |
//! | `calltrail_ingest_spans_skipped_total` | counter | `skipped` |
//! | `calltrail_ingest_spans_rejected_total` | counter | `rejected` |
//! | `calltrail_ingest_requests_refused_total{reason}` | counter | `refused_busy`, `refused_malformed` |
//! | `calltrail_store_parquet_files_total` | counter | `StoreStats::files` |
//! | `calltrail_store_parquet_bytes_total` | counter | `bytes` |
//! | `calltrail_store_rows_written_total` | counter | `rows` |
//! | `calltrail_store_rows_pending` | gauge | `pending_rows` |
//! | `calltrail_store_write_errors_total` | counter | `write_errors` |
//!
//! Each `observe_*` registers callbacks for the life of the meter provider: call it once per
//! component instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use calltrail_collector::pipeline::IngestStats;
use calltrail_retention::StoreStats;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::Telemetry;

/// One data point of an observable counter: its attributes and the counter it reads.
type Point<S> = (Vec<KeyValue>, fn(&S) -> &AtomicU64);

/// Registers an observable counter reading `read(stats)` for each `(attributes, read)` point.
fn counter<S: Send + Sync + 'static>(
    meter: &Meter,
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    stats: &Arc<S>,
    points: Vec<Point<S>>,
) {
    let stats = Arc::clone(stats);
    meter
        .u64_observable_counter(name)
        .with_unit(unit)
        .with_description(description)
        .with_callback(move |o| {
            for (attributes, read) in &points {
                o.observe(read(&stats).load(Ordering::Relaxed), attributes);
            }
        })
        .build();
}

impl Telemetry {
    /// Spans and requests seen by the ingest pipeline (`Pipeline::stats`).
    pub fn observe_ingest(&self, stats: &Arc<IngestStats>) {
        let m = self.meter();
        counter(
            m,
            "calltrail.ingest.spans.received",
            "{span}",
            "Spans received in well-formed OTLP requests.",
            stats,
            vec![(vec![], |s| &s.spans_received)],
        );
        counter(
            m,
            "calltrail.ingest.spans.accepted",
            "{span}",
            "Spans accepted as records, by table.",
            stats,
            vec![
                (vec![KeyValue::new("table", "tool_calls")], |s| {
                    &s.tool_calls
                }),
                (vec![KeyValue::new("table", "llm_calls")], |s| &s.llm_calls),
            ],
        );
        counter(
            m,
            "calltrail.ingest.spans.skipped",
            "{span}",
            "Valid spans that are neither an MCP operation nor an LLM inference, not stored.",
            stats,
            vec![(vec![], |s| &s.skipped)],
        );
        counter(
            m,
            "calltrail.ingest.spans.rejected",
            "{span}",
            "Unusable spans (bad ids, absurd timestamps), reported in OTLP partial_success.",
            stats,
            vec![(vec![], |s| &s.rejected)],
        );
        counter(
            m,
            "calltrail.ingest.requests.refused",
            "{request}",
            "Export requests refused whole: busy (the writer is behind; 503/UNAVAILABLE, \
             retryable) or malformed (undecodable, unsupported type or encoding, too large).",
            stats,
            vec![
                (vec![KeyValue::new("reason", "busy")], |s| &s.refused_busy),
                (vec![KeyValue::new("reason", "malformed")], |s| {
                    &s.refused_malformed
                }),
            ],
        );
    }

    /// What the Parquet store writer has done (`WriterHandle::stats`).
    pub fn observe_store(&self, stats: &Arc<StoreStats>) {
        let m = self.meter();
        counter(
            m,
            "calltrail.store.parquet.files",
            "{file}",
            "Parquet files written.",
            stats,
            vec![(vec![], |s| &s.files)],
        );
        counter(
            m,
            "calltrail.store.parquet",
            "By",
            "Bytes of Parquet written.",
            stats,
            vec![(vec![], |s| &s.bytes)],
        );
        counter(
            m,
            "calltrail.store.rows.written",
            "{row}",
            "Records written to Parquet files.",
            stats,
            vec![(vec![], |s| &s.rows)],
        );
        counter(
            m,
            "calltrail.store.write.errors",
            "{error}",
            "Failed flush attempts (each is retried; records are kept).",
            stats,
            vec![(vec![], |s| &s.write_errors)],
        );
        let s = Arc::clone(stats);
        m.u64_observable_gauge("calltrail.store.rows.pending")
            .with_unit("{row}")
            .with_description(
                "Records accepted (acknowledged) but not yet in a Parquet file: queued or buffered.",
            )
            .with_callback(move |o| o.observe(s.pending_rows.load(Ordering::Relaxed), &[]))
            .build();
    }
}
