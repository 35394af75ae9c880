//! The store writer: a background task that buffers records and flushes them to Parquet when
//! `flush_max_rows` are buffered or the oldest buffered record is `flush_interval_ms` old.
//!
//! Submission goes through a bounded queue: when it is full, [`WriterHandle::try_submit`]
//! fails at once and receivers answer with a retryable error instead of growing memory. A
//! failed flush (disk full, I/O error) keeps the records, stops taking new ones (so the queue
//! fills and receivers push back) and retries with backoff: records are never dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, SCHEMA_VERSION_KEY, TABLE_KEY, TOOL_CALLS};
use calltrail_schemas::{LlmCall, SCHEMA_VERSION, ToolCall};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use crate::layout::{Layout, Partition};
use crate::parquet_file::{ensure_dir, write_atomic, writer_properties};
use crate::{Error, Result, StoreConfig};

/// Records from one ingest request.
#[derive(Debug, Default)]
pub struct WriteBatch {
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
    /// Reserves a place in the queue without waiting; fails at once when the queue is full.
    ///
    /// Receivers reserve before decoding, so a request refused for lack of room costs almost
    /// nothing: under overload, CPU goes to requests that will be accepted.
    pub fn try_reserve(&self) -> Result<QueueSlot, SubmitError> {
        let permit = self.tx.clone().try_reserve_owned().map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })?;
        Ok(QueueSlot {
            permit,
            stats: Arc::clone(&self.stats),
        })
    }

    /// Queues records without waiting; fails at once when the queue is full.
    pub fn try_submit(&self, batch: WriteBatch) -> Result<(), SubmitError> {
        self.try_reserve()?.submit(batch);
        Ok(())
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

/// A reserved place in the writer's queue; dropping it gives the place back.
#[derive(Debug)]
pub struct QueueSlot {
    permit: mpsc::OwnedPermit<WriteBatch>,
    stats: Arc<StoreStats>,
}

impl QueueSlot {
    /// Queues records in the reserved place.
    pub fn submit(self, batch: WriteBatch) {
        self.stats
            .pending_rows
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.permit.send(batch);
    }
}

/// The running writer task.
#[derive(Debug)]
pub struct StoreWriter {
    handle: WriterHandle,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Buffer {
    tool_calls: Vec<ToolCall>,
    llm_calls: Vec<LlmCall>,
}

impl Buffer {
    fn len(&self) -> usize {
        self.tool_calls.len() + self.llm_calls.len()
    }
}

impl StoreWriter {
    /// Starts the writer over `layout`, creating the table directories.
    pub fn spawn(config: StoreConfig, layout: Arc<Layout>) -> Result<Self> {
        config.validate()?;
        for table in [TOOL_CALLS, LLM_CALLS] {
            ensure_dir(&layout.table_dir(table))?;
        }
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let stats = Arc::new(StoreStats::default());
        let task = tokio::spawn(run(config, layout, rx, shutdown_rx, Arc::clone(&stats)));
        Ok(Self {
            handle: WriterHandle { tx, stats },
            shutdown,
            task,
        })
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
        Arc::clone(&self.handle.stats)
    }
}

async fn run(
    config: StoreConfig,
    layout: Arc<Layout>,
    mut rx: mpsc::Receiver<WriteBatch>,
    mut shutdown: oneshot::Receiver<()>,
    stats: Arc<StoreStats>,
) {
    let interval = Duration::from_millis(config.flush_interval_ms);
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
                    push(&mut buf, b);
                }
                break;
            }
            msg = rx.recv() => match msg {
                Some(b) => {
                    push(&mut buf, b);
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

async fn wait(job: Option<JoinHandle<()>>) {
    if let Some(job) = job
        && let Err(e) = job.await
    {
        tracing::error!(error = %e, "A Parquet flush task failed.");
    }
}

fn push(buf: &mut Buffer, b: WriteBatch) {
    buf.tool_calls.extend(b.tool_calls);
    buf.llm_calls.extend(b.llm_calls);
}

/// Writes the buffer, retrying with capped backoff until it succeeds. Partitions already
/// written are not written again.
async fn flush(
    config: StoreConfig,
    layout: Arc<Layout>,
    mut pending: Buffer,
    stats: Arc<StoreStats>,
) {
    let mut backoff = Duration::from_millis(100);
    while pending.len() > 0 {
        let (cfg, lay, st) = (config.clone(), Arc::clone(&layout), Arc::clone(&stats));
        let outcome =
            tokio::task::spawn_blocking(move || write_buffer(&cfg, &lay, pending, &st)).await;
        match outcome {
            Ok(Ok(())) => return,
            Ok(Err((e, rest))) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, records = rest.len(), retry_in_ms = backoff.as_millis() as u64,
                    "Writing Parquet failed; the records are kept and the write will be retried.");
                pending = rest;
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                // A panic in the encoder is a bug; the records it held are lost to this process.
                tracing::error!(error = %e, "The Parquet write task panicked.");
                return;
            }
        }
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

fn metadata(table: &str) -> Vec<(String, String)> {
    vec![
        (SCHEMA_VERSION_KEY.into(), SCHEMA_VERSION.to_string()),
        (TABLE_KEY.into(), table.into()),
    ]
}

/// Sort column of both tables: `start_time`.
fn start_time_index(schema: &arrow::datatypes::Schema) -> usize {
    schema.index_of("start_time").unwrap_or(0)
}

/// Writes each partition of one table to its own file. On failure, returns the error and the
/// partitions already written, so a retry does not write them twice.
fn write_table<T>(
    config: &StoreConfig,
    layout: &Layout,
    table: &str,
    rows: &[T],
    time: fn(&T) -> i64,
    build: fn(&[&T]) -> Result<RecordBatch, arrow::error::ArrowError>,
    stats: &StoreStats,
) -> Result<(), (Error, Vec<Partition>)> {
    let mut written = Vec::new();
    for (p, idx) in by_partition(rows, time) {
        let one = || -> Result<u64> {
            let sorted: Vec<&T> = idx.iter().map(|&i| &rows[i]).collect();
            let batch = build(&sorted)?;
            let props = writer_properties(
                config.zstd_level,
                start_time_index(&batch.schema()),
                metadata(table),
            )?;
            write_atomic(
                &layout.partition_dir(table, p),
                &layout.next_file_name(now_ms()),
                &batch,
                props,
            )
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
    mut buf: Buffer,
    stats: &StoreStats,
) -> Result<(), (Error, Buffer)> {
    let tool_time: fn(&ToolCall) -> i64 = |r| r.start_time_ns;
    let llm_time: fn(&LlmCall) -> i64 = |r| r.start_time_ns;
    if let Err((e, done)) = write_table(
        config,
        layout,
        TOOL_CALLS,
        &buf.tool_calls,
        tool_time,
        arrow_schema::tool_calls_batch,
        stats,
    ) {
        buf.tool_calls
            .retain(|r| !done.contains(&Partition::of(r.start_time_ns)));
        return Err((e, buf));
    }
    buf.tool_calls.clear();
    if let Err((e, done)) = write_table(
        config,
        layout,
        LLM_CALLS,
        &buf.llm_calls,
        llm_time,
        arrow_schema::llm_calls_batch,
        stats,
    ) {
        buf.llm_calls
            .retain(|r| !done.contains(&Partition::of(r.start_time_ns)));
        return Err((e, buf));
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
