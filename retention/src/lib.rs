//! Calltrail's store: records become Hive-partitioned Parquet files
//! (`<table>/date=YYYY-MM-DD/hour=HH/<file>.parquet`), each written to a temporary name, fsynced,
//! renamed into place and its directory fsynced, so a reader never sees a partial file.
//!
//! - [`config`]: the `[store]` configuration section;
//! - [`policy`]: the `[retention]` policy: which class a record belongs to, and how long it is kept;
//! - [`files`]: crash-safe file writes;
//! - [`audit`]: audit events (legal holds) sealed into the chain, and read back;
//! - [`holds`]: legal holds: placed and released as audit events, matched against segments;
//! - [`enforce`]: retention plans and their application, each deletion behind a signed receipt;
//! - `hash_hex`: hashes as hex text in the store's JSON and footers;
//! - [`chain`]: the record chain, segments, checkpoints and keys (`docs/specs/chain.md`);
//! - [`layout`]: where files go;
//! - [`parquet_file`]: one atomic Parquet file write;
//! - [`writer`]: the background task that batches records by size or age and flushes them;
//! - `flush`: one flush, prepared (batches, hashes) while the previous one seals;
//! - [`discover`]: the segment files and checkpoint notes a store holds;
//! - [`dedup`]: the window of recent event ids that drops exporter retries;
//! - [`sealed`]: which replayed write-ahead-log records are already in sealed files;
//! - [`merkle`]: RFC 6962 tree heads, inclusion and consistency proofs, and their verification;
//! - [`tree`]: the same heads and proofs computed while leaves stream past, in O(log n) memory;
//! - [`note`]: C2SP signed notes and the text forms of their Ed25519 keys;
//! - [`checkpoint`]: C2SP tlog checkpoints (origin, tree size, root, timestamp), signed as notes;
//! - [`verify`]: offline verification of a store, finding by attack class;
//! - [`proof`]: inclusion proofs of one record, and their offline check.
//! - [`receipt`]: signed deletion receipts, which let `verify` cross what retention deleted.
//! - [`export`]: compliance export bundles (records, proofs, checkpoints, signed manifest) and
//!   their offline check.

pub mod audit;
pub mod bucket;
pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod dedup;
pub mod discover;
pub mod enforce;
pub mod export;
pub mod files;
mod flush;
mod hash_hex;
pub mod holds;
pub mod layout;
pub mod merkle;
pub mod note;
pub mod parquet_file;
pub mod policy;
pub mod proof;
pub mod receipt;
pub mod sealed;
pub mod tree;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod test_support;

pub use config::StoreConfig;
pub use layout::{Layout, Partition};
pub use sealed::SealedIndex;
pub use writer::{StoreStats, StoreWriter, SubmitError, WriteBatch, WriterHandle};

use std::path::PathBuf;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `rename`, `fsync`...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Encoding a Parquet file failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building an Arrow batch failed (a bug: records always fit the schema).
    #[error("arrow (internal): {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The writer task has stopped.
    #[error("the store writer has stopped")]
    Closed,
    /// A record could not be canonically encoded (a bug for records we built).
    #[error("canonical encoding: {0}")]
    Canonical(#[from] calltrail_schemas::canonical::CanonicalError),
    /// The chain, a checkpoint or a key is not as it must be; the message says what and where.
    #[error("{0}")]
    Integrity(String),
    /// A checkpoint could not be signed or read.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A configuration value is invalid; the message names the key.
    #[error("{key}: {message}")]
    Config {
        /// Dotted key, e.g. `store.flush_interval_ms`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
