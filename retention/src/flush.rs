//! One flush of the store writer, in two stages so that consecutive flushes overlap:
//!
//! 1. **prepare**: each table's records are split by hour partition and retention class (so a
//!    segment expires whole), sorted by time, built into
//!    an Arrow batch and hashed (leaf hashes, on all cores). It needs no chain state, so it runs
//!    as soon as the flush starts, while the previous flush is still sealing.
//! 2. **seal**: once the previous flush has sealed (its turn signal), each part is chained and
//!    written as a segment, then the write-ahead log's watermark advances. Segments therefore
//!    enter the chain, and the watermark moves, in flush order.
//!
//! Both stages retry a failure with capped backoff, keeping the records (and the parts already
//! written are not written again): a flush never drops data and never skips ahead.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use calltrail_schemas::arrow_schema::{self, LLM_CALLS, SCHEMA_VERSION_KEY, TABLE_KEY, TOOL_CALLS};
use calltrail_schemas::canonical::RowEncoder;
use calltrail_schemas::{LlmCall, SCHEMA_VERSION, ToolCall};
use tokio::sync::{oneshot, watch};
use tokio::time::sleep;

use crate::chain::{Chain, leaf_hashes};
use crate::layout::{Layout, Partition};
use crate::merkle::Hash;
use crate::parquet_file::writer_properties;
use crate::policy::{RetentionClass, RetentionPolicy};
use crate::writer::StoreStats;
use crate::{Error, Result, StoreConfig};

/// Records taken in since the last flush.
#[derive(Default)]
pub(crate) struct Buffer {
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) llm_calls: Vec<LlmCall>,
    /// First and last `wal_seq` of the batches taken in, duplicates and empty ones included.
    pub(crate) frames: Option<(u64, u64)>,
}

impl Buffer {
    pub(crate) fn len(&self) -> usize {
        self.tool_calls.len() + self.llm_calls.len()
    }
}

/// What every flush shares.
pub(crate) struct FlushContext {
    pub(crate) config: StoreConfig,
    pub(crate) layout: Arc<Layout>,
    pub(crate) stats: Arc<StoreStats>,
    /// The highest `wal_seq` whose records, and those of every earlier batch, are sealed.
    pub(crate) flushed: watch::Sender<u64>,
    pub(crate) chain: Mutex<Chain>,
    /// Which retention class each record belongs to.
    pub(crate) policy: RetentionPolicy,
}

/// One future segment: a table's records of one hour and one retention class, built and hashed.
struct Part {
    table: &'static str,
    partition: Partition,
    class: RetentionClass,
    batch: RecordBatch,
    leaves: Vec<Hash>,
}

/// Flushes `pending`: prepares at once, seals after `turn` fires (the previous flush has
/// sealed), then fires `done` for the next one.
pub(crate) async fn flush(
    ctx: Arc<FlushContext>,
    pending: Buffer,
    turn: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
) {
    let frames = pending.frames;
    let pending = Arc::new(pending);
    let mut backoff = Duration::from_millis(100);
    let mut parts = loop {
        let (buf, c) = (Arc::clone(&pending), Arc::clone(&ctx));
        match tokio::task::spawn_blocking(move || prepare(&buf, &c.policy)).await {
            Ok(Ok(parts)) => break parts,
            Ok(Err(e)) => {
                ctx.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "Preparing records for Parquet failed (a bug); they are kept and it will be retried.");
            }
            Err(e) => tracing::error!(error = %e, "The Parquet prepare task failed; retrying."),
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    drop(pending);
    // An error means an earlier flush ended without sealing everything (its task panicked):
    // this one still seals, but neither advances the write-ahead log's watermark nor passes
    // the turn on, so the log keeps the lost records until a restart replays them.
    let broken = match turn {
        Some(turn) => turn.await.is_err(),
        None => false,
    };
    let frames_or_default = frames.unwrap_or_default();
    let mut backoff = Duration::from_millis(100);
    while !parts.is_empty() {
        let c = Arc::clone(&ctx);
        match tokio::task::spawn_blocking(move || seal(&c, frames_or_default, parts)).await {
            Ok(Ok(())) => break,
            Ok(Err(failed)) => {
                let (e, rest) = *failed;
                ctx.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                let records: usize = rest.iter().map(|p| p.batch.num_rows()).sum();
                tracing::error!(error = %e, records, retry_in_ms = backoff.as_millis() as u64,
                    "Writing Parquet failed; the records are kept and the write will be retried.");
                parts = rest;
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                // A panic in the encoder is a bug. Dropping `done` unsignalled keeps every
                // later flush from advancing the watermark past these records' frames.
                tracing::error!(error = %e, "The Parquet write task panicked.");
                return;
            }
        }
    }
    if broken {
        tracing::error!(
            "An earlier Parquet flush failed; the write-ahead log is kept from that point until a restart replays it."
        );
        return;
    }
    if let Some((_, last)) = frames {
        ctx.flushed.send_if_modified(|v| {
            let newer = last > *v;
            if newer {
                *v = last;
            }
            newer
        });
    }
    let _ = done.send(());
}

/// Row indices per hour partition and retention class, each sorted by time. Records are about
/// a kilobyte: sorting and grouping indices instead of the records saves moving them around.
fn by_partition<T>(
    rows: &[T],
    time: impl Fn(&T) -> i64,
    class: impl Fn(&T) -> RetentionClass,
) -> BTreeMap<(Partition, RetentionClass), Vec<usize>> {
    let mut map: BTreeMap<(Partition, RetentionClass), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        map.entry((Partition::of(time(r)), class(r)))
            .or_default()
            .push(i);
    }
    for idx in map.values_mut() {
        idx.sort_by_key(|&i| time(&rows[i]));
    }
    map
}

fn prepare_table<T>(
    table: &'static str,
    rows: &[T],
    time: fn(&T) -> i64,
    class: impl Fn(&T) -> RetentionClass,
    build: fn(&[&T]) -> Result<RecordBatch, arrow::error::ArrowError>,
    out: &mut Vec<Part>,
) -> Result<()> {
    for ((partition, class), idx) in by_partition(rows, time, class) {
        let sorted: Vec<&T> = idx.iter().map(|&i| &rows[i]).collect();
        let batch = build(&sorted)?;
        let leaves = leaf_hashes(&RowEncoder::new(table, &batch)?, batch.num_rows());
        out.push(Part {
            table,
            partition,
            class,
            batch,
            leaves,
        });
    }
    Ok(())
}

fn prepare(buf: &Buffer, policy: &RetentionPolicy) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    prepare_table(
        TOOL_CALLS,
        &buf.tool_calls,
        |r| r.start_time_ns,
        |r| policy.tool_call(r).clone(),
        arrow_schema::tool_calls_batch,
        &mut parts,
    )?;
    prepare_table(
        LLM_CALLS,
        &buf.llm_calls,
        |r| r.start_time_ns,
        |r| policy.llm_call(r).clone(),
        arrow_schema::llm_calls_batch,
        &mut parts,
    )?;
    Ok(parts)
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

/// Seals each part as a segment, in order. On failure, returns the error and the parts not yet
/// written, so a retry writes none twice.
fn seal(
    ctx: &FlushContext,
    frames: (u64, u64),
    parts: Vec<Part>,
) -> Result<(), Box<(Error, Vec<Part>)>> {
    let Ok(mut chain) = ctx.chain.lock() else {
        let e = Error::Integrity("the chain lock is poisoned".into());
        return Err(Box::new((e, parts)));
    };
    let mut parts = parts.into_iter();
    while let Some(part) = parts.next() {
        let props = |footer: Vec<(String, String)>| {
            let mut kv = metadata(part.table, frames);
            kv.extend(footer);
            let sort = part.batch.schema().index_of("start_time").unwrap_or(0);
            writer_properties(ctx.config.zstd_level, sort, kv)
        };
        let sealed = chain.seal_hashed(
            part.table,
            &ctx.layout.partition_dir(part.table, part.partition),
            &ctx.layout.next_file_name(now_ms(), frames.0, frames.1),
            &part.batch,
            &part.leaves,
            Some(&part.class),
            props,
        );
        match sealed {
            Ok((bytes, _)) => account(&ctx.stats, part.batch.num_rows(), bytes),
            Err(e) => {
                let mut rest = vec![part];
                rest.extend(parts);
                return Err(Box::new((e, rest)));
            }
        }
    }
    Ok(())
}

fn account(stats: &StoreStats, rows: usize, bytes: u64) {
    stats.files.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
    stats.pending_rows.fetch_sub(rows as u64, Ordering::Relaxed);
}
