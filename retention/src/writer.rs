//! The store writer: a background task that buffers records and flushes them to Parquet when
//! `flush_max_rows` are buffered or the oldest buffered record is `flush_interval_ms` old.
//!
//! Submission goes through a bounded queue: when it is full, the write-ahead log's thread waits
//! ([`WriterHandle::submit_blocking`]), its own queue fills and receivers answer with a
//! retryable error instead of growing memory. A failed flush (disk full, I/O error) keeps the
//! records, stops taking new ones (so the queues fill and receivers push back) and retries with
//! backoff: records are never dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, SCHEMA_VERSION_KEY, TABLE_KEY, TOOL_CALLS};
use calltrail_schemas::{LlmCall, SCHEMA_VERSION, ToolCall};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use crate::chain::{Chain, IntegrityConfig, SharedLog};
use crate::checkpoint::SignedCheckpoint;
use crate::dedup::{DedupWindow, recent_event_ids};
use crate::files::ensure_dir;
use crate::layout::{Layout, Partition};
use crate::note::SigningKey;
use crate::parquet_file::writer_properties;
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
}

#[derive(Default)]
struct Buffer {
    tool_calls: Vec<ToolCall>,
    llm_calls: Vec<LlmCall>,
    /// First and last `wal_seq` of the batches taken in, duplicates and empty ones included.
    frames: Option<(u64, u64)>,
}

impl Buffer {
    fn len(&self) -> usize {
        self.tool_calls.len() + self.llm_calls.len()
    }
}

impl StoreWriter {
    /// Starts the writer over `layout`, creating the table directories, and opens (or
    /// starts) the chain it extends, signing with `key`.
    pub fn spawn(
        config: StoreConfig,
        layout: Arc<Layout>,
        integrity: &IntegrityConfig,
        key: &SigningKey,
    ) -> Result<Self> {
        config.validate()?;
        integrity.validate()?;
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
        let chain = Arc::new(Mutex::new(chain));
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let (flushed_tx, flushed) = watch::channel(0);
        let stats = Arc::new(StoreStats::default());
        let task = tokio::spawn(run(
            config,
            layout,
            rx,
            shutdown_rx,
            Arc::clone(&stats),
            Arc::new(flushed_tx),
            chain,
        ));
        Ok(Self {
            handle: WriterHandle { tx, stats },
            shutdown,
            task,
            heartbeat,
            flushed,
            checkpoints,
            chain_id,
        })
    }

    /// Each new signed checkpoint, for publishing off-box (the SIEM forwarders).
    pub fn checkpoints(&self) -> watch::Receiver<Option<Arc<SignedCheckpoint>>> {
        self.checkpoints.clone()
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
    config: StoreConfig,
    layout: Arc<Layout>,
    mut rx: mpsc::Receiver<WriteBatch>,
    mut shutdown: oneshot::Receiver<()>,
    stats: Arc<StoreStats>,
    flushed: Arc<watch::Sender<u64>>,
    chain: Arc<Mutex<Chain>>,
) {
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
    // One flush runs while the next buffer fills, so encoding never stalls the queue; a second
    // flush waits for the first, which bounds memory to two buffers plus the queue.
    let mut in_flight: Option<JoinHandle<()>> = None;
    let start_flush = |buf: &mut Buffer, in_flight: &mut Option<JoinHandle<()>>| {
        let pending = std::mem::take(buf);
        let job = flush(
            config.clone(),
            Arc::clone(&layout),
            pending,
            Arc::clone(&stats),
            Arc::clone(&flushed),
            Arc::clone(&chain),
        );
        *in_flight = Some(tokio::spawn(job));
    };
    loop {
        let deadline = oldest.map(|t| t + interval);
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                rx.close();
                while let Some(b) = rx.recv().await {
                    push(&mut buf, b, &mut dedup, &stats);
                }
                break;
            }
            msg = rx.recv() => match msg {
                Some(b) => {
                    push(&mut buf, b, &mut dedup, &stats);
                    oldest.get_or_insert_with(Instant::now);
                    if buf.len() >= config.flush_max_rows {
                        wait(in_flight.take()).await;
                        start_flush(&mut buf, &mut in_flight);
                        oldest = None;
                    }
                }
                None => break,
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                wait(in_flight.take()).await;
                start_flush(&mut buf, &mut in_flight);
                oldest = None;
            }
        }
    }
    wait(in_flight.take()).await;
    start_flush(&mut buf, &mut in_flight);
    wait(in_flight.take()).await;
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

/// Writes the buffer, retrying with capped backoff until it succeeds. Partitions already
/// written are not written again.
async fn flush(
    config: StoreConfig,
    layout: Arc<Layout>,
    mut pending: Buffer,
    stats: Arc<StoreStats>,
    flushed: Arc<watch::Sender<u64>>,
    chain: Arc<Mutex<Chain>>,
) {
    let frames = pending.frames;
    let mut backoff = Duration::from_millis(100);
    while pending.len() > 0 {
        let (cfg, lay, st) = (config.clone(), Arc::clone(&layout), Arc::clone(&stats));
        let ch = Arc::clone(&chain);
        let outcome =
            tokio::task::spawn_blocking(move || write_buffer(&cfg, &lay, &ch, pending, &st)).await;
        match outcome {
            Ok(Ok(())) => break,
            Ok(Err(failed)) => {
                let (e, rest) = *failed;
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, records = rest.len(), retry_in_ms = backoff.as_millis() as u64,
                    "Writing Parquet failed; the records are kept and the write will be retried.");
                pending = rest;
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                // A panic in the encoder is a bug; the records it held are lost to this process.
                // The frames stay in the write-ahead log, which replays them on restart.
                tracing::error!(error = %e, "The Parquet write task panicked.");
                return;
            }
        }
    }
    if let Some((_, last)) = frames {
        flushed.send_if_modified(|v| {
            let newer = last > *v;
            if newer {
                *v = last;
            }
            newer
        });
    }
}

/// Row indices per partition, each sorted by time. Records are about a kilobyte: sorting and
/// grouping indices instead of the records saves moving them around.
fn by_partition<T>(rows: &[T], time: impl Fn(&T) -> i64) -> BTreeMap<Partition, Vec<usize>> {
    let mut map: BTreeMap<Partition, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        map.entry(Partition::of(time(r))).or_default().push(i);
    }
    for idx in map.values_mut() {
        idx.sort_by_key(|&i| time(&rows[i]));
    }
    map
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn metadata(table: &str, (first, last): (u64, u64)) -> Vec<(String, String)> {
    vec![
        (SCHEMA_VERSION_KEY.into(), SCHEMA_VERSION.to_string()),
        (TABLE_KEY.into(), table.into()),
        ("calltrail.wal.first_seq".into(), first.to_string()),
        ("calltrail.wal.last_seq".into(), last.to_string()),
    ]
}

/// Sort column of both tables: `start_time`.
fn start_time_index(schema: &arrow::datatypes::Schema) -> usize {
    schema.index_of("start_time").unwrap_or(0)
}

/// Writes each partition of one table to its own file, a segment of the chain. On failure,
/// returns the error and the partitions already written, so a retry does not write them twice.
#[allow(clippy::too_many_arguments)] // one call per table; a struct would only rename them
fn write_table<T>(
    config: &StoreConfig,
    layout: &Layout,
    chain: &mut Chain,
    table: &str,
    frames: (u64, u64),
    rows: &[T],
    time: fn(&T) -> i64,
    build: fn(&[&T]) -> Result<RecordBatch, arrow::error::ArrowError>,
    stats: &StoreStats,
) -> Result<(), (Error, Vec<Partition>)> {
    let mut written = Vec::new();
    for (p, idx) in by_partition(rows, time) {
        let mut one = || -> Result<u64> {
            let sorted: Vec<&T> = idx.iter().map(|&i| &rows[i]).collect();
            let batch = build(&sorted)?;
            let props = |footer: Vec<(String, String)>| {
                let mut kv = metadata(table, frames);
                kv.extend(footer);
                writer_properties(config.zstd_level, start_time_index(&batch.schema()), kv)
            };
            let (bytes, _) = chain.seal(
                table,
                &layout.partition_dir(table, p),
                &layout.next_file_name(now_ms(), frames.0, frames.1),
                &batch,
                props,
            )?;
            Ok(bytes)
        };
        match one() {
            Ok(bytes) => {
                account(stats, idx.len(), bytes);
                written.push(p);
            }
            Err(e) => return Err((e, written)),
        }
    }
    Ok(())
}

fn write_buffer(
    config: &StoreConfig,
    layout: &Layout,
    chain: &Mutex<Chain>,
    mut buf: Buffer,
    stats: &StoreStats,
) -> Result<(), Box<(Error, Buffer)>> {
    let Ok(mut chain) = chain.lock() else {
        let e = Error::Integrity("the chain lock is poisoned".into());
        return Err(Box::new((e, buf)));
    };
    let tool_time: fn(&ToolCall) -> i64 = |r| r.start_time_ns;
    let llm_time: fn(&LlmCall) -> i64 = |r| r.start_time_ns;
    let frames = buf.frames.unwrap_or_default();
    if let Err((e, done)) = write_table(
        config,
        layout,
        &mut chain,
        TOOL_CALLS,
        frames,
        &buf.tool_calls,
        tool_time,
        arrow_schema::tool_calls_batch,
        stats,
    ) {
        buf.tool_calls
            .retain(|r| !done.contains(&Partition::of(r.start_time_ns)));
        return Err(Box::new((e, buf)));
    }
    buf.tool_calls.clear();
    if let Err((e, done)) = write_table(
        config,
        layout,
        &mut chain,
        LLM_CALLS,
        frames,
        &buf.llm_calls,
        llm_time,
        arrow_schema::llm_calls_batch,
        stats,
    ) {
        buf.llm_calls
            .retain(|r| !done.contains(&Partition::of(r.start_time_ns)));
        return Err(Box::new((e, buf)));
    }
    Ok(())
}

fn account(stats: &StoreStats, rows: usize, bytes: u64) {
    stats.files.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
    stats.pending_rows.fetch_sub(rows as u64, Ordering::Relaxed);
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
