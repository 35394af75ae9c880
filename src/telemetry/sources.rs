//! Observable instruments over the counters components already keep; values are read when
//! metrics are collected (a scrape or a push). Only the business counters add work to the ingest
//! path (a tally per request, see `calltrail_collector::business_stats`); the rest add none.
//!
//! | Prometheus name | type | from |
//! |---|---|---|
//! | `calltrail_ingest_spans_received_total` | counter | `IngestStats::spans_received` |
//! | `calltrail_ingest_spans_accepted_total{table}` | counter | `tool_calls`, `llm_calls` |
//! | `calltrail_ingest_spans_skipped_total` | counter | `skipped` |
//! | `calltrail_ingest_spans_rejected_total` | counter | `rejected` |
//! | `calltrail_ingest_requests_refused_total{reason}` | counter | `refused_busy`, `refused_unavailable`, `refused_malformed`, `refused_unauthenticated` |
//! | `calltrail_store_parquet_files_total` | counter | `StoreStats::files` |
//! | `calltrail_store_parquet_bytes_total` | counter | `bytes` |
//! | `calltrail_store_rows_written_total` | counter | `rows` |
//! | `calltrail_store_rows_pending` | gauge | `pending_rows` |
//! | `calltrail_store_write_errors_total` | counter | `write_errors` |
//! | `calltrail_store_duplicates_dropped_total` | counter | `duplicates` |
//! | `calltrail_wal_appended_bytes_total` | counter | `WalStats::bytes` |
//! | `calltrail_wal_frames_total` | counter | `frames` |
//! | `calltrail_wal_disk_bytes` | gauge | `disk_bytes` |
//! | `calltrail_wal_lag_frames` | gauge | `last_seq - checkpoint_seq` |
//! | `calltrail_wal_queue_requests` | gauge | `WalHandle::queue_depth` |
//! | `calltrail_wal_fsyncs_total` / `calltrail_wal_fsync_errors_total` | counter | `fsyncs`, `fsync_errors` |
//! | `calltrail_wal_write_errors_total` | counter | `write_errors` |
//! | `calltrail_wal_segments_total{event}` | counter | `segments_created`, `segments_deleted` |
//! | `calltrail_wal_recovered_frames` / `calltrail_wal_recovery_cuts` | gauge | the last recovery |
//! | `calltrail_wal_fsync_duration_seconds` | histogram | recorded by the appender at each fsync |
//! | `calltrail_forward_delivered_total{destination}` | counter | `DestinationStats::delivered` |
//! | `calltrail_forward_dead_letters_total{destination}` | counter | `dead_letters` |
//! | `calltrail_forward_retries_total{destination}` | counter | `retries` |
//! | `calltrail_forward_skipped_total{destination}` | counter | `skipped` (deleted by retention before delivery) |
//! | `calltrail_forward_lag_records{destination}` | gauge | `lag_records()` |
//! | `calltrail_forward_lag_seconds{destination}` | gauge | `lag_seconds()` |
//! | `calltrail_forward_up{destination}` | gauge | `up` (1 while sends succeed) |
//! | `calltrail_tool_calls_total{team,server,outcome}` | counter | `BusinessStats::calls` (capped) |
//! | `calltrail_llm_tokens_total{team,token_type}` | counter | `BusinessStats::tokens` (capped) |
//!
//! The two business counters are the only ones with sender-chosen label values (`team`,
//! `server`): `BusinessStats` keeps at most `telemetry.business_series_limit` label sets per
//! metric and adds the rest to a series labelled only `otel_metric_overflow="true"`; an absent
//! team or server is an absent label. What they count: `calltrail_collector::business_stats`.
//!
//! Each `observe_*` registers callbacks for the life of the meter provider: call it once per
//! component instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use calltrail_collector::business_stats::{BusinessStats, CallLabels, TokenLabels};
use calltrail_collector::forward::DestinationStats;
use calltrail_collector::pipeline::IngestStats;
use calltrail_collector::wal::{WalHandle, WalStats};
use calltrail_retention::StoreStats;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::Telemetry;

/// The business instruments: their series are capped by `telemetry.business_series_limit`.
pub(super) const BUSINESS_INSTRUMENTS: [&str; 2] = [TOOL_CALLS, LLM_TOKENS];
const TOOL_CALLS: &str = "calltrail.tool_calls";
const LLM_TOKENS: &str = "calltrail.llm.tokens";

/// The attribute of the series that takes label sets beyond the cap (the OpenTelemetry
/// convention, exported as `otel_metric_overflow="true"`).
fn overflow() -> [KeyValue; 1] {
    [KeyValue::new("otel.metric.overflow", true)]
}

fn call_attributes(l: &CallLabels) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(3);
    if let Some(team) = &l.team {
        a.push(KeyValue::new("team", team.clone()));
    }
    if let Some(server) = &l.server {
        a.push(KeyValue::new("server", server.clone()));
    }
    a.push(KeyValue::new("outcome", l.outcome.as_str()));
    a
}

fn token_attributes(l: &TokenLabels) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(2);
    if let Some(team) = &l.team {
        a.push(KeyValue::new("team", team.clone()));
    }
    a.push(KeyValue::new("token_type", l.token_type.as_str()));
    a
}

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
            "Export requests refused whole: busy (overload: the log's queue or the memory budget \
             is full; 429/RESOURCE_EXHAUSTED, retryable), unavailable (the log cannot write, e.g. \
             disk full; 503/UNAVAILABLE, retryable), malformed (undecodable, unsupported type \
             or encoding, too large) or unauthenticated (401/UNAUTHENTICATED).",
            stats,
            vec![
                (vec![KeyValue::new("reason", "busy")], |s| &s.refused_busy),
                (vec![KeyValue::new("reason", "unavailable")], |s| {
                    &s.refused_unavailable
                }),
                (vec![KeyValue::new("reason", "malformed")], |s| {
                    &s.refused_malformed
                }),
                (vec![KeyValue::new("reason", "unauthenticated")], |s| {
                    &s.refused_unauthenticated
                }),
            ],
        );
    }

    /// Calls and tokens by team (`Pipeline::business_stats`).
    pub fn observe_business(&self, stats: &Arc<BusinessStats>) {
        let m = self.meter();
        let s = Arc::clone(stats);
        m.u64_observable_counter(TOOL_CALLS)
            .with_unit("{call}")
            .with_description(
                "MCP calls accepted into the durable log, by team, server and outcome (ok, \
                 tool_error, protocol_error, denied); a call seen from client and server counts \
                 once. Label sets beyond telemetry.business_series_limit are added to the series \
                 labelled otel_metric_overflow=\"true\".",
            )
            .with_callback(move |o| {
                let counts = s.calls();
                for (labels, n) in &counts.series {
                    o.observe(*n, &call_attributes(labels));
                }
                if let Some(n) = counts.overflow {
                    o.observe(n, &overflow());
                }
            })
            .build();
        let s = Arc::clone(stats);
        m.u64_observable_counter(LLM_TOKENS)
            .with_unit("{token}")
            .with_description(
                "LLM tokens accepted into the durable log, by team and token_type (input, \
                 output). Label sets beyond telemetry.business_series_limit are added to the \
                 series labelled otel_metric_overflow=\"true\".",
            )
            .with_callback(move |o| {
                let counts = s.tokens();
                for (labels, n) in &counts.series {
                    o.observe(*n, &token_attributes(labels));
                }
                if let Some(n) = counts.overflow {
                    o.observe(n, &overflow());
                }
            })
            .build();
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
        counter(
            m,
            "calltrail.store.duplicates.dropped",
            "{row}",
            "Records dropped as repeats of a recently written event id (exporter retries).",
            stats,
            vec![(vec![], |s| &s.duplicates)],
        );
    }

    /// Each forwarding destination's delivery and lag (`Forwarders::stats`).
    pub fn observe_forward(&self, destinations: &[Arc<DestinationStats>]) {
        let m = self.meter();
        let all: Arc<Vec<Arc<DestinationStats>>> = Arc::new(destinations.to_vec());
        type Read = fn(&DestinationStats) -> u64;
        let counters: [(&'static str, &'static str, &'static str, Read); 4] = [
            (
                "calltrail.forward.delivered",
                "{event}",
                "Events a destination confirmed.",
                |s| s.delivered.load(Ordering::Relaxed),
            ),
            (
                "calltrail.forward.dead_letters",
                "{event}",
                "Events a destination refused for good, kept in its dead-letter file.",
                |s| s.dead_letters.load(Ordering::Relaxed),
            ),
            (
                "calltrail.forward.retries",
                "{attempt}",
                "Failed send attempts (each retried).",
                |s| s.retries.load(Ordering::Relaxed),
            ),
            (
                "calltrail.forward.skipped",
                "{record}",
                "Records retention deleted before a destination received them.",
                |s| s.skipped.load(Ordering::Relaxed),
            ),
        ];
        for (name, unit, description, read) in counters {
            let all = Arc::clone(&all);
            m.u64_observable_counter(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for d in all.iter() {
                        o.observe(read(d), &[KeyValue::new("destination", d.name.clone())]);
                    }
                })
                .build();
        }
        let gauges: [(&'static str, &'static str, &'static str, Read); 3] = [
            (
                "calltrail.forward.lag.records",
                "{record}",
                "Sealed records a destination has not received yet.",
                |s| s.lag_records(),
            ),
            (
                "calltrail.forward.lag",
                "s",
                "Seconds since the oldest record a destination has not received was sealed; 0 when caught up.",
                |s| s.lag_seconds(),
            ),
            (
                "calltrail.forward.up",
                // No unit: "1" would export it as `calltrail_forward_up_ratio`, and a 0/1 state
                // is not a ratio; the documented name is `calltrail_forward_up`.
                "",
                "1 while a destination's sends succeed, 0 while they fail.",
                |s| u64::from(s.up.load(Ordering::Relaxed)),
            ),
        ];
        for (name, unit, description, read) in gauges {
            let all = Arc::clone(&all);
            m.u64_observable_gauge(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| {
                    for d in all.iter() {
                        o.observe(read(d), &[KeyValue::new("destination", d.name.clone())]);
                    }
                })
                .build();
        }
    }

    /// The write-ahead log (`WalStats`, and the queue of `wal`).
    pub fn observe_wal(&self, stats: &Arc<WalStats>, wal: &WalHandle) {
        let m = self.meter();
        counter(
            m,
            "calltrail.wal.appended",
            "By",
            "Bytes appended to the write-ahead log.",
            stats,
            vec![(vec![], |s| &s.bytes)],
        );
        counter(
            m,
            "calltrail.wal.frames",
            "{frame}",
            "Frames (accepted requests) appended to the write-ahead log.",
            stats,
            vec![(vec![], |s| &s.frames)],
        );
        counter(
            m,
            "calltrail.wal.fsyncs",
            "{fsync}",
            "fsyncs of write-ahead-log segments (one per commit group).",
            stats,
            vec![(vec![], |s| &s.fsyncs)],
        );
        counter(
            m,
            "calltrail.wal.fsync.errors",
            "{error}",
            "Failed write-ahead-log fsyncs.",
            stats,
            vec![(vec![], |s| &s.fsync_errors)],
        );
        counter(
            m,
            "calltrail.wal.write.errors",
            "{error}",
            "Commit groups that failed (disk full, I/O error); their requests got a retryable error.",
            stats,
            vec![(vec![], |s| &s.write_errors)],
        );
        counter(
            m,
            "calltrail.wal.segments",
            "{segment}",
            "Write-ahead-log segments created, and deleted once sealed in Parquet.",
            stats,
            vec![
                (vec![KeyValue::new("event", "created")], |s| {
                    &s.segments_created
                }),
                (vec![KeyValue::new("event", "deleted")], |s| {
                    &s.segments_deleted
                }),
            ],
        );
        let gauge = |name: &'static str,
                     unit: &'static str,
                     description: &'static str,
                     read: fn(&WalStats) -> u64| {
            let s = Arc::clone(stats);
            m.u64_observable_gauge(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |o| o.observe(read(&s), &[]))
                .build();
        };
        gauge(
            "calltrail.wal.disk",
            "By",
            "Bytes in write-ahead-log segment files now.",
            |s| s.disk_bytes.load(Ordering::Relaxed),
        );
        gauge(
            "calltrail.wal.lag.frames",
            "{frame}",
            "Frames appended but not yet checkpointed (in the log, not yet known sealed in Parquet).",
            |s| {
                s.last_seq
                    .load(Ordering::Relaxed)
                    .saturating_sub(s.checkpoint_seq.load(Ordering::Relaxed))
            },
        );
        gauge(
            "calltrail.wal.recovered.frames",
            "{frame}",
            "Frames replayed by the recovery at the last start.",
            |s| s.recovered_frames.load(Ordering::Relaxed),
        );
        gauge(
            "calltrail.wal.recovery.cuts",
            "{cut}",
            "Damaged tails cut (and quarantined) by the recovery at the last start.",
            |s| s.recovery_cuts.load(Ordering::Relaxed),
        );
        let queue = wal.clone();
        m.u64_observable_gauge("calltrail.wal.queue.requests")
            .with_unit("{request}")
            .with_description("Requests waiting for or being written to the write-ahead log.")
            .with_callback(move |o| o.observe(queue.queue_depth() as u64, &[]))
            .build();
    }
}
