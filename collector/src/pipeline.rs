//! The protocol-independent ingest path: decoded request → records → store writer, and the
//! report each receiver turns into its OTLP response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use calltrail_retention::{QueueSlot, SubmitError, WriteBatch, WriterHandle};
use calltrail_schemas::{Attributor, IngestContext, map_request, span_count};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Ingest counters, readable by metrics and benchmarks.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Spans received in well-formed requests.
    pub spans_received: AtomicU64,
    /// MCP operation records accepted.
    pub tool_calls: AtomicU64,
    /// LLM inference records accepted.
    pub llm_calls: AtomicU64,
    /// Valid spans that are neither, counted and dropped.
    pub skipped: AtomicU64,
    /// Spans rejected as unusable (bad ids, absurd timestamps).
    pub rejected: AtomicU64,
    /// Requests refused because the writer was behind.
    pub refused_busy: AtomicU64,
    /// Requests refused as malformed (decode errors, wrong type, too large).
    pub refused_malformed: AtomicU64,
}

/// What happened to one request's spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Spans rejected (OTLP `partial_success.rejected_spans`).
    pub rejected_spans: i64,
    /// Why, naming the first few (OTLP `partial_success.error_message`).
    pub message: Option<String>,
}

/// Why a whole request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store writer is behind: the client should retry later.
    #[error("Calltrail is busy writing; retry later")]
    Busy,
    /// The store writer has stopped (shutting down).
    #[error("Calltrail is shutting down; retry later")]
    ShuttingDown,
}

/// The shared ingest path.
#[derive(Debug, Clone)]
pub struct Pipeline {
    attributor: Arc<Attributor>,
    writer: WriterHandle,
    stats: Arc<IngestStats>,
}

impl Pipeline {
    /// A pipeline feeding `writer`.
    pub fn new(attributor: Arc<Attributor>, writer: WriterHandle) -> Self {
        Self {
            attributor,
            writer,
            stats: Arc::default(),
        }
    }

    /// True while records can be accepted: the store writer is running.
    pub fn is_ready(&self) -> bool {
        self.writer.is_open()
    }

    /// The ingest counters.
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Counts a request refused before decoding (bad type, size, encoding).
    pub fn count_malformed(&self) {
        self.stats.refused_malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Reserves room in the writer's queue for one request. Receivers call it before decoding,
    /// so that a refusal under load costs next to nothing.
    pub fn reserve(&self) -> Result<Reservation<'_>, IngestError> {
        let slot = self.writer.try_reserve().map_err(|e| {
            self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
            match e {
                SubmitError::Full => IngestError::Busy,
                SubmitError::Closed => IngestError::ShuttingDown,
            }
        })?;
        Ok(Reservation {
            pipeline: self,
            slot,
        })
    }
}

/// Room in the writer's queue for one decoded request.
#[derive(Debug)]
pub struct Reservation<'a> {
    pipeline: &'a Pipeline,
    slot: QueueSlot,
}

impl Reservation<'_> {
    /// Maps and attributes a request and hands its records to the writer.
    ///
    /// The request is acknowledged once the writer has queued it; nothing of a refused request
    /// is kept, so the client's retry cannot duplicate it.
    pub fn ingest(self, req: &ExportTraceServiceRequest, ctx: &IngestContext) -> IngestReport {
        let p = self.pipeline;
        let spans = span_count(req);
        let mapped = map_request(req, ctx, &p.attributor);
        let report = IngestReport {
            rejected_spans: mapped.rejected.len() as i64,
            message: mapped.rejection_message(),
        };
        let s = &p.stats;
        s.spans_received.fetch_add(spans as u64, Ordering::Relaxed);
        s.tool_calls
            .fetch_add(mapped.tool_calls.len() as u64, Ordering::Relaxed);
        s.llm_calls
            .fetch_add(mapped.llm_calls.len() as u64, Ordering::Relaxed);
        s.skipped.fetch_add(mapped.skipped_spans, Ordering::Relaxed);
        s.rejected
            .fetch_add(mapped.rejected.len() as u64, Ordering::Relaxed);
        let batch = WriteBatch {
            tool_calls: mapped.tool_calls,
            llm_calls: mapped.llm_calls,
        };
        if !batch.is_empty() {
            self.slot.submit(batch);
        }
        if let Some(m) = &report.message {
            tracing::warn!(protocol = ctx.protocol, peer = ?ctx.peer, rejected = report.rejected_spans, "Rejected unusable spans: {m}");
        }
        report
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
