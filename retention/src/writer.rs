//! The store writer: a background task that buffers records and flushes them to Parquet when
//! `flush_max_rows` are buffered or the oldest buffered record is `flush_interval_ms` old.
//!
//! Submission goes through a bounded queue: when it is full, the write-ahead log's thread waits
//! ([`WriterHandle::submit_blocking`]), its own queue fills and receivers answer with a
//! retryable error instead of growing memory. A failed flush (disk full, I/O error) keeps the
//! records, stops taking new ones (so the queues fill and receivers push back) and retries with
//! backoff: records are never dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calltrail_schemas::arrow_schema::{LLM_CALLS, TOOL_CALLS};
use calltrail_schemas::{LlmCall, ToolCall};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use crate::audit::AuditSink;
use crate::chain::{Chain, IntegrityConfig, SharedLog};
use crate::checkpoint::SignedCheckpoint;
use crate::dedup::{DedupWindow, recent_event_ids};
use crate::files::ensure_dir;
use crate::flush::{Buffer, FlushContext, flush};
use crate::layout::Layout;
use crate::note::SigningKey;
use crate::policy::RetentionConfig;
use crate::{Error, Result, StoreConfig};

/// Records from one ingest request: one write-ahead-log frame.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Sequence number of the write-ahead-log frame holding these records. Batches must be
    /// submitted in increasing `wal_seq` order; the writer reports the highest one sealed
    /// ([`StoreWriter::flushed`]) and names each file after the range it holds.
    pub wal_seq: u64,
    /// Tool-call records.
    pub tool_calls: Vec<ToolCall>,
    /// LLM inference records.
    pub llm_calls: Vec<LlmCall>,
}

impl WriteBatch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.tool_calls.len() + self.llm_calls.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of what the writer has done, shared with metrics and benchmarks.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Parquet files written.
    pub files: AtomicU64,
    /// Bytes of Parquet written.
    pub bytes: AtomicU64,
    /// Records written.
    pub rows: AtomicU64,
    /// Records accepted but not yet in a Parquet file.
    pub pending_rows: AtomicU64,
    /// Failed flush attempts (each retried).
    pub write_errors: AtomicU64,
    /// Records dropped as repeats of a recently written event id (exporter retries).
    pub duplicates: AtomicU64,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: retry later.
    #[error("the store writer is busy: its queue is full")]
    Full,
    /// The writer has stopped.
    #[error("the store writer has stopped")]
    Closed,
}

/// A cloneable handle for submitting records.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriteBatch>,
    stats: Arc<StoreStats>,
}

impl WriterHandle {
    /// Queues records without waiting; fails at once when the queue is full.
    pub fn try_submit(&self, batch: WriteBatch) -> Result<(), SubmitError> {
        let rows = batch.len() as u64;
        self.tx.try_send(batch).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })?;
        self.stats.pending_rows.fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// Queues records, waiting for room. For the write-ahead log's own thread only: it must not
    /// be called from an async task.
    pub fn submit_blocking(&self, batch: WriteBatch) -> Result<(), SubmitError> {
        let rows = batch.len() as u64;
        self.stats.pending_rows.fetch_add(rows, Ordering::Relaxed);
        self.tx.blocking_send(batch).map_err(|_| {
            self.stats.pending_rows.fetch_sub(rows, Ordering::Relaxed);
            SubmitError::Closed
        })
    }

    /// True while the writer takes records (false once it is shutting down or has stopped).
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }
}

/// The running writer task.
#[derive(Debug)]
pub struct StoreWriter {
    handle: WriterHandle,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    flushed: watch::Receiver<u64>,
    checkpoints: watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    chain_id: String,
    audit: AuditSink,
}

impl StoreWriter {
    /// Starts the writer over `layout`, creating the table directories, and opens (or
    /// starts) the chain it extends, signing with `key`. Records are routed to segments by
    /// their class under `retention`.
    pub fn spawn(
        config: StoreConfig,
        layout: Arc<Layout>,
        integrity: &IntegrityConfig,
        key: &SigningKey,
        retention: &RetentionConfig,
    ) -> Result<Self> {
        config.validate()?;
        integrity.validate()?;
        retention.validate()?;
        for table in [TOOL_CALLS, LLM_CALLS] {
            ensure_dir(&layout.table_dir(table))?;
        }
        let (feed, checkpoints) = watch::channel(None);
        let chain = Chain::open(layout.root(), key, &integrity.log_name, feed)?;
        let chain_id = chain.state().chain_id.clone();
        let heartbeat = tokio::spawn(heartbeat(
            chain.log(),
            Duration::from_secs(integrity.heartbeat_secs),
        ));
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let (flushed_tx, flushed) = watch::channel(0);
        let stats = Arc::new(StoreStats::default());
        let ctx = Arc::new(FlushContext {
            config,
            layout,
            stats: Arc::clone(&stats),
            flushed: flushed_tx,
            chain: Mutex::new(chain),
            policy: retention.compile(),
        });
        let audit = AuditSink {
            ctx: Arc::clone(&ctx),
        };
        let task = tokio::spawn(run(ctx, rx, shutdown_rx));
        Ok(Self {
            handle: WriterHandle { tx, stats },
            shutdown,
            task,
            heartbeat,
            flushed,
            checkpoints,
            chain_id,
            audit,
        })
    }

    /// Each new signed checkpoint, for publishing off-box (the SIEM forwarders).
    pub fn checkpoints(&self) -> watch::Receiver<Option<Arc<SignedCheckpoint>>> {
        self.checkpoints.clone()
    }

    /// Where audit events (legal holds) enter this writer's chain.
    pub fn audit(&self) -> AuditSink {
        self.audit.clone()
    }

    /// The id of the chain this writer extends.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The highest `wal_seq` whose records (and those of every earlier batch) are in sealed
    /// Parquet files: the write-ahead log may be checkpointed up to it.
    pub fn flushed(&self) -> watch::Receiver<u64> {
        self.flushed.clone()
    }

    /// A handle for submitting records.
    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Stops taking records, flushes everything queued and buffered, and waits for it.
    pub async fn shutdown(self) -> Arc<StoreStats> {
        let _ = self.shutdown.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "The store writer task failed.");
        }
        self.heartbeat.abort();
        Arc::clone(&self.handle.stats)
    }
}

async fn run(
    ctx: Arc<FlushContext>,
    mut rx: mpsc::Receiver<WriteBatch>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let (config, layout, stats) = (&ctx.config, &ctx.layout, &ctx.stats);
    let interval = Duration::from_millis(config.flush_interval_ms);
    let mut dedup = DedupWindow::new(config.dedup_window);
    if config.dedup_window > 0 {
        let (root, n) = (layout.root().to_owned(), config.dedup_window);
        let seeded = tokio::task::spawn_blocking(move || {
            let mut ids = Vec::new();
            for table in [TOOL_CALLS, LLM_CALLS] {
                ids.extend(recent_event_ids(&root, table, n)?);
            }
            Ok::<_, Error>(ids)
        })
        .await;
        match seeded {
            Ok(Ok(ids)) => {
                for id in &ids {
                    dedup.insert(id);
                }
            }
            // Only retries across this restart may then be stored twice (the view folds them).
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Could not read recent event ids for the duplicate filter.");
            }
            Err(e) => tracing::warn!(error = %e, "Reading recent event ids failed."),
        }
    }
    let mut buf = Buffer::default();
    let mut oldest: Option<Instant> = None;
    // Up to two flushes run while the next buffer fills: one sealing, the next preparing its
    // batches and hashes. A third waits for the oldest, which bounds memory to three buffers
    // plus the queue. Each flush seals only after the one before it (its turn).
    let mut in_flight: VecDeque<JoinHandle<()>> = VecDeque::new();
    let mut turn: Option<oneshot::Receiver<()>> = None;
    loop {
        let deadline = oldest.map(|t| t + interval);
        let due = tokio::select! {
            biased;
            _ = &mut shutdown => {
                rx.close();
                while let Some(b) = rx.recv().await {
                    push(&mut buf, b, &mut dedup, stats);
                }
                break;
            }
            msg = rx.recv() => match msg {
                Some(b) => {
                    push(&mut buf, b, &mut dedup, stats);
                    oldest.get_or_insert_with(Instant::now);
                    buf.len() >= config.flush_max_rows
                }
                None => break,
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => true,
        };
        if due {
            if in_flight.len() >= 2 {
                wait(in_flight.pop_front()).await;
            }
            in_flight.push_back(start_flush(&ctx, &mut buf, &mut turn));
            oldest = None;
        }
    }
    in_flight.push_back(start_flush(&ctx, &mut buf, &mut turn));
    for job in in_flight {
        wait(Some(job)).await;
    }
}

/// Starts flushing `buf` (emptying it) after the flush whose turn signal is in `turn`, leaving
/// this flush's signal there for the next one.
fn start_flush(
    ctx: &Arc<FlushContext>,
    buf: &mut Buffer,
    turn: &mut Option<oneshot::Receiver<()>>,
) -> JoinHandle<()> {
    let (done, next) = oneshot::channel();
    let job = flush(
        Arc::clone(ctx),
        std::mem::take(buf),
        turn.replace(next),
        done,
    );
    tokio::spawn(job)
}

/// Re-signs the newest checkpoint whenever none was signed for about `every`, so checkpoints
/// are never further apart than `every` even when nothing is written.
async fn heartbeat(log: SharedLog, every: Duration) {
    let tick = (every / 10).max(Duration::from_secs(1)).min(every);
    loop {
        sleep(tick).await;
        let log = Arc::clone(&log);
        let done = tokio::task::spawn_blocking(move || {
            let mut log = log
                .lock()
                .map_err(|_| "the checkpoint log lock is poisoned".to_owned())?;
            let age = log.last().and_then(|c| c.checkpoint.timestamp).map(|t| {
                Duration::from_secs(
                    (chrono::Utc::now().timestamp().max(0) as u64).saturating_sub(t),
                )
            });
            if age.is_some_and(|a| a + tick >= every) {
                log.heartbeat().map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "Signing a heartbeat checkpoint failed."),
            Err(e) => tracing::error!(error = %e, "The heartbeat task failed."),
        }
    }
}

async fn wait(job: Option<JoinHandle<()>>) {
    if let Some(job) = job
        && let Err(e) = job.await
    {
        tracing::error!(error = %e, "A Parquet flush task failed.");
    }
}

fn push(buf: &mut Buffer, b: WriteBatch, dedup: &mut DedupWindow, stats: &StoreStats) {
    let offered = b.len();
    let held = buf.len();
    let first = buf.frames.map_or(b.wal_seq, |(first, _)| first);
    buf.frames = Some((first, b.wal_seq));
    buf.tool_calls.extend(
        b.tool_calls
            .into_iter()
            .filter(|r| dedup.insert(&r.event_id)),
    );
    buf.llm_calls.extend(
        b.llm_calls
            .into_iter()
            .filter(|r| dedup.insert(&r.event_id)),
    );
    let dropped = (offered - (buf.len() - held)) as u64;
    if dropped > 0 {
        stats.duplicates.fetch_add(dropped, Ordering::Relaxed);
        stats.pending_rows.fetch_sub(dropped, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
