//! The appender: one thread that writes frames with group commit.
//!
//! Requests queue their payloads; the thread takes every request waiting (up to
//! [`MAX_GROUP_BYTES`]), gives each the next sequence number, writes them with one `write`,
//! forces them to disk with one `fdatasync` (policy `always`), then acknowledges them all and
//! hands their records to the store writer. Concurrency is what makes this cheap: the more
//! requests wait, the more share one fsync.
//!
//! A failed write or fsync (disk full, I/O error) fails the whole group with a retryable error,
//! and the segment is truncated back to its last durable frame, so a later frame never follows
//! garbage. When even that fails, the next group starts a new segment. Sequence numbers are
//! never reused, so a frame that reached the disk despite the error cannot collide with a later
//! one; recovery accepts such gaps.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use calltrail_retention::{WriteBatch, WriterHandle};
use opentelemetry::metrics::Histogram;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use super::config::{FsyncPolicy, WalConfig};
use super::segment::{self, MAGIC};
use super::{WalError, WalStats, frame};

/// A group stops growing past this many payload bytes, bounding one write.
pub const MAX_GROUP_BYTES: usize = 16 << 20;

/// Why an append was not acknowledged. All are retryable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// Too many requests are waiting for the log.
    #[error("the write-ahead log is busy: {0} requests are waiting")]
    Busy(usize),
    /// The log is shutting down.
    #[error("the write-ahead log is shutting down")]
    Closed,
    /// Writing or syncing failed (disk full, I/O error); nothing of the request is kept.
    #[error("the write-ahead log cannot write: {0}")]
    Io(String),
}

enum Msg {
    Append(Append),
    Shutdown,
}

struct Append {
    payload: Vec<u8>,
    batch: WriteBatch,
    done: oneshot::Sender<Result<u64, AppendError>>,
    /// Held until the records are handed to the store writer: the queue bound covers them.
    slot: OwnedSemaphorePermit,
}

/// A cloneable handle for appending.
#[derive(Debug, Clone)]
pub struct WalHandle {
    tx: Sender<Msg>,
    slots: Arc<Semaphore>,
    capacity: usize,
    stats: Arc<WalStats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Append(_) => "Append",
            Msg::Shutdown => "Shutdown",
        })
    }
}

impl WalHandle {
    /// Reserves a place in the log's queue without waiting. Receivers reserve before decoding,
    /// so that a refusal under overload costs next to nothing.
    pub fn try_reserve(&self) -> Result<WalSlot, AppendError> {
        let permit = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => AppendError::Busy(self.capacity),
                TryAcquireError::Closed => AppendError::Closed,
            })?;
        Ok(WalSlot {
            permit,
            tx: self.tx.clone(),
        })
    }

    /// True while appends are taken.
    pub fn is_open(&self) -> bool {
        !self.slots.is_closed()
    }

    /// Requests queued or being written.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// The log's counters.
    pub fn stats(&self) -> &Arc<WalStats> {
        &self.stats
    }
}

/// A reserved place in the log's queue; dropping it gives the place back.
#[derive(Debug)]
pub struct WalSlot {
    permit: OwnedSemaphorePermit,
    tx: Sender<Msg>,
}

impl WalSlot {
    /// Appends one request's encoded records; resolves once they are durable per the fsync
    /// policy, with the frame's sequence number.
    pub async fn append(self, payload: Vec<u8>, batch: WriteBatch) -> Result<u64, AppendError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Append(Append {
                payload,
                batch,
                done,
                slot: self.permit,
            }))
            .map_err(|_| AppendError::Closed)?;
        rx.await.unwrap_or(Err(AppendError::Closed))
    }
}

/// The running appender thread.
#[derive(Debug)]
pub struct WalWriter {
    handle: WalHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalWriter {
    /// Starts appending to new segments in `dir` from `next_seq` (from recovery), handing
    /// records to `sink` once durable.
    pub fn start(
        dir: PathBuf,
        config: WalConfig,
        next_seq: u64,
        sink: WriterHandle,
        stats: Arc<WalStats>,
    ) -> Result<Self, WalError> {
        let (tx, rx) = mpsc::channel();
        let capacity = config.queue_capacity;
        stats.last_seq.store(next_seq - 1, Ordering::Relaxed);
        let appender = Appender {
            dir,
            interval: Duration::from_millis(config.fsync_interval_ms),
            config,
            file: None,
            offset: 0,
            durable: 0,
            broken: false,
            dirty: false,
            last_sync: Instant::now(),
            next_seq,
            sink,
            stats: Arc::clone(&stats),
            fsync_seconds: opentelemetry::global::meter("calltrail")
                .f64_histogram("calltrail.wal.fsync.duration")
                .with_unit("s")
                .with_description("Time of one write-ahead-log fsync (one per commit group).")
                .with_boundaries(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ])
                .build(),
        };
        let thread = std::thread::Builder::new()
            .name("calltrail-wal".into())
            .spawn(move || appender.run(&rx))
            .map_err(|e| WalError::io("spawn thread", "calltrail-wal", e))?;
        Ok(Self {
            handle: WalHandle {
                tx,
                slots: Arc::new(Semaphore::new(capacity)),
                capacity,
                stats,
            },
            thread: Some(thread),
        })
    }

    /// A handle for appending.
    pub fn handle(&self) -> WalHandle {
        self.handle.clone()
    }

    /// Stops taking appends, writes and syncs everything queued, hands it to the store writer,
    /// and waits for the thread.
    pub async fn shutdown(mut self) {
        self.handle.slots.close();
        let _ = self.handle.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || t.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("The write-ahead-log thread failed.");
            }
        }
    }
}

struct Appender {
    dir: PathBuf,
    config: WalConfig,
    interval: Duration,
    file: Option<File>,
    /// End of the last whole frame written to the current segment.
    offset: u64,
    /// End of the last frame known durable.
    durable: u64,
    /// The current segment must not be appended to: start a new one.
    broken: bool,
    /// Written but not yet synced (interval policy).
    dirty: bool,
    last_sync: Instant,
    next_seq: u64,
    sink: WriterHandle,
    stats: Arc<WalStats>,
    fsync_seconds: Histogram<f64>,
}

impl Appender {
    fn run(mut self, rx: &Receiver<Msg>) {
        let mut group = Vec::new();
        let mut buf = Vec::new();
        loop {
            let first = if self.dirty {
                let wait = self.interval.saturating_sub(self.last_sync.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        self.background_sync();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            };
            let mut stop = false;
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Append(a) => {
                        bytes += a.payload.len();
                        group.push(a);
                    }
                    Msg::Shutdown => stop = true,
                }
                if !stop && bytes < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(&mut group, &mut buf);
            }
            if stop {
                break;
            }
        }
        if self.dirty {
            self.background_sync();
        }
    }

    /// Writes, syncs, acknowledges and forwards one group.
    fn commit(&mut self, group: &mut Vec<Append>, buf: &mut Vec<u8>) {
        buf.clear();
        let first_seq = self.next_seq;
        for a in group.iter() {
            frame::encode(buf, self.next_seq, &a.payload);
            self.next_seq += 1;
        }
        if let Err(e) = self.write(first_seq, buf) {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, requests = group.len(),
                "Write-ahead-log write failed; the requests get a retryable error.");
            let err = AppendError::Io(e.to_string());
            for a in group.drain(..) {
                let _ = a.done.send(Err(err.clone()));
            }
            return;
        }
        self.stats
            .frames
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.stats
            .disk_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.stats
            .last_seq
            .store(self.next_seq - 1, Ordering::Relaxed);
        let mut batches = Vec::with_capacity(group.len());
        for (seq, a) in (first_seq..).zip(group.drain(..)) {
            let _ = a.done.send(Ok(seq));
            let mut batch = a.batch;
            batch.wal_seq = seq;
            batches.push((batch, a.slot));
        }
        for (batch, slot) in batches {
            if self.sink.submit_blocking(batch).is_err() {
                // The records are durable in the log and are replayed at the next start.
                tracing::error!(
                    "The store writer has stopped; logged records wait for the next start."
                );
            }
            drop(slot);
        }
    }

    /// Appends `buf` (frames from `first_seq`) and makes it durable per the policy.
    fn write(&mut self, first_seq: u64, buf: &[u8]) -> std::io::Result<()> {
        let full = self.offset > MAGIC.len() as u64
            && self.offset + buf.len() as u64 > self.config.segment_max_bytes;
        if self.file.is_none() || self.broken || full {
            self.rotate(first_seq)?;
        }
        let Some(file) = &self.file else {
            return Err(std::io::Error::other("no open segment"));
        };
        let start = self.offset;
        if let Err(e) = file.write_all_at(buf, start) {
            self.rewind(start);
            return Err(e);
        }
        self.offset += buf.len() as u64;
        match self.config.fsync {
            FsyncPolicy::Always => {
                if let Err(e) = self.sync() {
                    self.rewind(start);
                    return Err(e);
                }
            }
            FsyncPolicy::Interval => {
                self.dirty = true;
                if self.last_sync.elapsed() >= self.interval {
                    self.background_sync();
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let t = Instant::now();
        let r = file.sync_data();
        self.fsync_seconds.record(t.elapsed().as_secs_f64(), &[]);
        self.last_sync = Instant::now();
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        if r.is_ok() {
            self.durable = self.offset;
            self.dirty = false;
        } else {
            self.stats.fsync_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// The interval policy's sync: its frames were acknowledged already, so a failure can only
    /// be reported (and the segment abandoned: its state on disk is unknown).
    fn background_sync(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(error = %e,
                "Write-ahead-log fsync failed under the interval policy; recently acknowledged records may not survive a power loss.");
            self.broken = true;
            self.dirty = false;
        }
    }

    /// Cuts the segment back to `to`, the end of the frames before a failed write or sync, so
    /// that no frame is ever appended after garbage; when that fails, the segment is abandoned.
    fn rewind(&mut self, to: u64) {
        let cut = self
            .file
            .as_ref()
            .map(|f| f.set_len(to).and_then(|()| f.sync_all()));
        match cut {
            Some(Ok(())) => self.offset = to,
            _ => self.broken = true,
        }
    }

    /// Seals the current segment and starts a new one whose first frame is `first_seq`.
    fn rotate(&mut self, first_seq: u64) -> std::io::Result<()> {
        if let Some(old) = self.file.take()
            && !self.broken
            && self.config.fsync != FsyncPolicy::Never
        {
            old.sync_data()?;
        }
        let (file, _) = segment::create(&self.dir, first_seq)?;
        self.file = Some(file);
        self.offset = MAGIC.len() as u64;
        self.durable = self.offset;
        self.broken = false;
        self.dirty = false;
        self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        self.stats
            .disk_bytes
            .fetch_add(MAGIC.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
