//! The protocol-independent ingest path: decoded request → attributed records → write-ahead log
//! (acknowledged once durable) → store writer, and the report each receiver turns into its OTLP
//! response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use calltrail_retention::WriteBatch;
use calltrail_schemas::{Attributor, IngestContext, codec, map_request, span_count};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::admission::{Admission, Charge};
use crate::business_stats::BusinessStats;
use crate::wal::{AppendError, WalHandle, WalSlot};

/// Ingest counters, readable by metrics and benchmarks.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Spans received in well-formed requests.
    pub spans_received: AtomicU64,
    /// MCP operation records accepted (durable in the write-ahead log).
    pub tool_calls: AtomicU64,
    /// LLM inference records accepted (durable in the write-ahead log).
    pub llm_calls: AtomicU64,
    /// Valid spans that are neither, counted and dropped.
    pub skipped: AtomicU64,
    /// Spans rejected as unusable (bad ids, absurd timestamps).
    pub rejected: AtomicU64,
    /// Requests refused for overload: the write-ahead log's queue or the memory budget was full.
    pub refused_busy: AtomicU64,
    /// Requests refused because the log could not write (disk full, I/O error).
    pub refused_unavailable: AtomicU64,
    /// Requests refused as malformed (decode errors, wrong type, too large).
    pub refused_malformed: AtomicU64,
    /// Requests refused for missing, unknown or revoked credentials.
    pub refused_unauthenticated: AtomicU64,
}

/// What happened to one request's spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Spans rejected (OTLP `partial_success.rejected_spans`).
    pub rejected_spans: i64,
    /// Why, naming the first few (OTLP `partial_success.error_message`).
    pub message: Option<String>,
}

/// Why a whole request was not accepted. Every variant is retryable.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The write-ahead log is behind: the client should retry later.
    #[error("Calltrail is busy writing; retry later")]
    Busy,
    /// The log has stopped (shutting down).
    #[error("Calltrail is shutting down; retry later")]
    ShuttingDown,
    /// The log cannot write (disk full, I/O error); nothing of the request was kept.
    #[error("Calltrail cannot store data right now ({0}); retry later")]
    Unavailable(String),
}

impl From<AppendError> for IngestError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Busy(_) => IngestError::Busy,
            AppendError::Closed => IngestError::ShuttingDown,
            AppendError::Io(m) => IngestError::Unavailable(m),
        }
    }
}

/// The shared ingest path.
#[derive(Debug, Clone)]
pub struct Pipeline {
    attributor: Arc<Attributor>,
    wal: WalHandle,
    admission: Admission,
    stats: Arc<IngestStats>,
    business: Arc<BusinessStats>,
}

impl Pipeline {
    /// A pipeline appending to the write-ahead log behind `wal`, with `memory_budget_bytes`
    /// for requests in flight.
    pub fn new(attributor: Arc<Attributor>, wal: WalHandle, memory_budget_bytes: usize) -> Self {
        Self {
            attributor,
            wal,
            admission: Admission::new(memory_budget_bytes),
            stats: Arc::default(),
            business: Arc::default(),
        }
    }

    /// Caps the business metrics at `limit` label sets per metric (`telemetry.
    /// business_series_limit`; default [`crate::business_stats::DEFAULT_SERIES_LIMIT`]).
    pub fn with_business_series_limit(mut self, limit: usize) -> Self {
        self.business = Arc::new(BusinessStats::new(limit));
        self
    }

    /// Calls by team, server and outcome and tokens by team, counted as records are accepted.
    pub fn business_stats(&self) -> &Arc<BusinessStats> {
        &self.business
    }

    /// A new charge against the in-flight memory budget, for one request: receivers add to it
    /// as the body arrives and hold it until they answer.
    pub fn charge(&self) -> Charge {
        self.admission.charge()
    }

    /// Counts a request refused because the memory budget was spent.
    pub fn count_over_budget(&self) {
        self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// The in-flight memory budget.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// True while records can be accepted: the write-ahead log is running.
    pub fn is_ready(&self) -> bool {
        self.wal.is_open()
    }

    /// The ingest counters.
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Counts a request refused for its credentials.
    pub fn count_unauthenticated(&self) {
        self.stats
            .refused_unauthenticated
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused before decoding (bad type, size, encoding).
    pub fn count_malformed(&self) {
        self.stats.refused_malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Reserves room in the log's queue for one request. Receivers call it before decoding,
    /// so that a refusal under load costs next to nothing.
    pub fn reserve(&self) -> Result<Reservation<'_>, IngestError> {
        let slot = self.wal.try_reserve().map_err(|e| {
            self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
            IngestError::from(e)
        })?;
        Ok(Reservation {
            pipeline: self,
            slot,
        })
    }
}

/// Room in the log's queue for one decoded request.
#[derive(Debug)]
pub struct Reservation<'a> {
    pipeline: &'a Pipeline,
    slot: WalSlot,
}

impl Reservation<'_> {
    /// Maps and attributes a request and appends its records to the write-ahead log.
    ///
    /// Resolves once the records are durable per the fsync policy: only then may the receiver
    /// acknowledge. On error nothing of the request was acknowledged, and a retry that
    /// duplicates records the log did keep is dropped by the writer's duplicate filter.
    pub async fn ingest(
        self,
        req: &ExportTraceServiceRequest,
        ctx: &IngestContext,
    ) -> Result<IngestReport, IngestError> {
        let p = self.pipeline;
        let spans = span_count(req);
        let mapped = map_request(req, ctx, &p.attributor);
        let report = IngestReport {
            rejected_spans: mapped.rejected.len() as i64,
            message: mapped.rejection_message(),
        };
        let s = &p.stats;
        s.spans_received.fetch_add(spans as u64, Ordering::Relaxed);
        s.skipped.fetch_add(mapped.skipped_spans, Ordering::Relaxed);
        s.rejected
            .fetch_add(mapped.rejected.len() as u64, Ordering::Relaxed);
        if let Some(m) = &report.message {
            tracing::warn!(protocol = ctx.protocol, peer = ?ctx.peer, rejected = report.rejected_spans, "Rejected unusable spans: {m}");
        }
        if mapped.tool_calls.is_empty() && mapped.llm_calls.is_empty() {
            return Ok(report);
        }
        let (tools, llms) = (mapped.tool_calls.len(), mapped.llm_calls.len());
        // Taken before the records move into the batch; counted only once they are durable.
        let business = p.business.tally(&mapped.tool_calls, &mapped.llm_calls);
        let payload = codec::encode_batch(&mapped.tool_calls, &mapped.llm_calls);
        let batch = WriteBatch {
            wal_seq: 0,
            tool_calls: mapped.tool_calls,
            llm_calls: mapped.llm_calls,
        };
        match self.slot.append(payload, batch).await {
            Ok(_) => {
                s.tool_calls.fetch_add(tools as u64, Ordering::Relaxed);
                s.llm_calls.fetch_add(llms as u64, Ordering::Relaxed);
                p.business.commit(business);
                Ok(report)
            }
            Err(e) => {
                let counter = match e {
                    AppendError::Io(_) => &s.refused_unavailable,
                    _ => &s.refused_busy,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
