//! The write-ahead log: every accepted request is durable here before it is acknowledged.
//!
//! Decoded, attributed records are encoded ([`calltrail_schemas::codec`]) into one frame per
//! request and appended with group commit ([`appender`]); once durable per the fsync policy the
//! request is acknowledged and its records go to the Parquet writer. When the writer has sealed
//! the files holding every frame up to N, the checkpoint ([`checkpoint`]) moves to N and the
//! segments wholly at or below it are deleted ([`spawn_checkpointer`]). On start, [`recover`]
//! cuts damaged tails and replays the frames past the checkpoint. The format, invariants and
//! recovery are specified in `docs/specs/wal.md`.

pub mod appender;
pub mod checkpoint;
pub mod config;
pub mod frame;
pub mod recovery;
pub mod replay;
pub mod segment;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use appender::{AppendError, WalHandle, WalSlot, WalWriter};
pub use config::{FsyncPolicy, WalConfig};
pub use recovery::{Cut, RecoveryReport, Replayed, recover};
pub use replay::recover_into;

use tokio::sync::watch;

/// Errors of the write-ahead log outside the append path.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system operation failed.
    #[error("write-ahead log: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The checkpoint file is unreadable.
    #[error("write-ahead log checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The replay function failed; recovery stopped.
    #[error("write-ahead log replay: {0}")]
    Replay(String),
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        WalError::Io {
            op,
            path: path.as_ref().to_owned(),
            source,
        }
    }
}

/// Counters of the log, shared with metrics and benchmarks.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Frames appended.
    pub frames: AtomicU64,
    /// Bytes appended.
    pub bytes: AtomicU64,
    /// Bytes in segment files now (grows with appends, shrinks as segments are deleted).
    pub disk_bytes: AtomicU64,
    /// fsyncs of segment data.
    pub fsyncs: AtomicU64,
    /// Failed fsyncs.
    pub fsync_errors: AtomicU64,
    /// Failed commit groups (write, sync or new segment failed; requests got an error).
    pub write_errors: AtomicU64,
    /// Segments started.
    pub segments_created: AtomicU64,
    /// Segments deleted after their frames were sealed in Parquet.
    pub segments_deleted: AtomicU64,
    /// Sequence number of the last frame appended.
    pub last_seq: AtomicU64,
    /// The persisted checkpoint. `last_seq - checkpoint_seq` is the writer's lag in frames.
    pub checkpoint_seq: AtomicU64,
    /// Frames replayed by the last recovery.
    pub recovered_frames: AtomicU64,
    /// Damaged tails cut by the last recovery.
    pub recovery_cuts: AtomicU64,
}

impl WalStats {
    /// Counters seeded from a recovery: what is on disk, the checkpoint, what was replayed.
    pub fn after_recovery(report: &RecoveryReport) -> Self {
        let stats = Self::default();
        stats
            .checkpoint_seq
            .store(report.checkpoint, Ordering::Relaxed);
        stats
            .last_seq
            .store(report.next_seq.saturating_sub(1), Ordering::Relaxed);
        stats
            .recovered_frames
            .store(report.replayed, Ordering::Relaxed);
        stats
            .recovery_cuts
            .store(report.cuts.len() as u64, Ordering::Relaxed);
        stats.disk_bytes.store(report.kept_bytes, Ordering::Relaxed);
        stats
    }
}

/// Persists the checkpoint and deletes sealed segments each time `flushed` (the store writer's
/// highest sealed frame) advances. Ends, after a last update, when the writer has stopped.
pub fn spawn_checkpointer(
    dir: PathBuf,
    mut flushed: watch::Receiver<u64>,
    stats: Arc<WalStats>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let open = flushed.changed().await.is_ok();
            let target = *flushed.borrow_and_update();
            if target > stats.checkpoint_seq.load(Ordering::Relaxed) {
                let (d, st) = (dir.clone(), Arc::clone(&stats));
                match tokio::task::spawn_blocking(move || advance(&d, target, &st)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        // The next advance retries; until then segments are only kept longer.
                        tracing::error!(error = %e, "Could not advance the write-ahead-log checkpoint.");
                    }
                    Err(e) => tracing::error!(error = %e, "The checkpoint task failed."),
                }
            }
            if !open {
                break;
            }
        }
    })
}

/// Writes the checkpoint `to` and deletes every segment whose frames are all at or below it
/// (never the newest segment, which the appender may be writing).
pub fn advance(dir: &Path, to: u64, stats: &WalStats) -> Result<(), WalError> {
    checkpoint::write(dir, to)?;
    stats.checkpoint_seq.store(to, Ordering::Relaxed);
    let segments = segment::list(dir).map_err(|e| WalError::io("list", dir, e))?;
    let mut deleted = false;
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        if next_first.saturating_sub(1) > to {
            break;
        }
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        std::fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
        stats.disk_bytes.fetch_sub(
            len.min(stats.disk_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
        deleted = true;
    }
    if deleted {
        segment::sync_dir(dir).map_err(|e| WalError::io("fsync", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
