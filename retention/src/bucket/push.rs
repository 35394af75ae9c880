//! Copying a local store's sealed files into a bucket, under the same relative paths (below the
//! configured prefix), so the bucket holds a store `verify`, `calltrail query` and any
//! Hive-aware engine can read.
//!
//! What is pushed, in this order (a checkpoint never reaches the bucket before the segments it
//! signs):
//! 1. every sealed segment (`<table>/date=…/hour=…/*.parquet`, found by [`crate::discover`])
//!    and its sidecar `_*.manifest.json`;
//! 2. the deletion receipts (`receipts/<chain>/*.note`);
//! 3. the checkpoint logs (`checkpoints/<chain>/<day>.jsonl`);
//! 4. the public keys (`keys/*.pub`). Private keys are never pushed.
//!
//! Idempotent: an object that already exists with the local file's size is skipped, so a
//! re-run pushes nothing new. Segments, manifests, receipts and keys never change once written;
//! one in the bucket with another size is a [`PushError::Conflict`], never overwritten. A
//! checkpoint log grows during its day, so a log whose size differs is pushed again (a new
//! version in a versioned bucket).
//!
//! With Object Lock, the bucket must have it enabled ([`PushError::LockNotEnabled`] otherwise),
//! and each segment's and manifest's uploaded version is locked until the segment's retention
//! expiry, computed by [`crate::enforce::segment_expiry`] (the same instant retention would
//! delete it). A skipped segment whose lock is missing or shorter (a run interrupted between
//! upload and lock, a policy that now keeps the class longer) is locked or extended. Segments
//! past their expiry (kept by a legal hold) and files without chain metadata or an hour
//! partition are pushed unlocked. Receipts, checkpoint logs and keys are not locked.
//!
//! Memory is bounded: files under [`SINGLE_PUT_MAX`] go in one PUT, bigger ones stream through
//! a multipart upload in [`PART_SIZE`] parts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, PutResult, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::config::Bucket;
use super::object_lock::{BucketError, LockMode, ObjectLockClient};
use crate::discover;
use crate::enforce::{hour_start, segment_expiry};
use crate::policy::RetentionConfig;

/// Files up to this size are uploaded in one PUT; bigger ones in parts.
pub const SINGLE_PUT_MAX: u64 = 8 << 20;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The local store could not be listed.
    #[error("cannot list the store: {0}")]
    Store(#[from] crate::Error),
    /// A local file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bucket refused or failed an upload or a HEAD.
    #[error("object {key}: {source}")]
    Object {
        /// The object key.
        key: String,
        /// The underlying error.
        source: object_store::Error,
    },
    /// An immutable file is in the bucket with another size: never overwritten.
    #[error(
        "object {key} exists with {remote} bytes but the local file has {local}; immutable files are never overwritten"
    )]
    Conflict {
        /// The object key.
        key: String,
        /// The local file's size.
        local: u64,
        /// The object's size.
        remote: u64,
    },
    /// Object Lock is asked for but the bucket does not have it enabled.
    #[error(
        "bucket {bucket} does not have Object Lock enabled (run `calltrail bucket init` on a new bucket, or set bucket.object_lock = \"off\")"
    )]
    LockNotEnabled {
        /// The bucket.
        bucket: String,
    },
    /// The bucket did not report the version of an upload it must lock (not versioned?).
    #[error("object {key}: the bucket reported no version id, so the upload cannot be locked")]
    NoVersion {
        /// The object key.
        key: String,
    },
    /// An Object Lock request failed.
    #[error("object lock of {key}: {source}")]
    Lock {
        /// The object key (the bucket's name for bucket-level requests).
        key: String,
        /// The underlying error.
        source: BucketError,
    },
}

/// What kind of file an item is; decides overwriting and locking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sealed segment's Parquet file.
    Segment,
    /// A segment's sidecar manifest.
    Manifest,
    /// A signed deletion receipt.
    Receipt,
    /// A checkpoint log (appended to during its day).
    Checkpoints,
    /// A public key.
    PublicKey,
}

/// One file to push.
#[derive(Debug, Clone)]
pub struct Item {
    /// Relative to the store root.
    pub file: PathBuf,
    /// Its kind.
    pub kind: Kind,
    /// Its size in bytes when listed.
    pub bytes: u64,
    /// Until when its version is locked (segments and manifests with a known expiry).
    pub retain_until: Option<DateTime<Utc>>,
}

/// What [`push`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSummary {
    /// Files uploaded.
    pub pushed: u64,
    /// Files already in the bucket with the same size.
    pub skipped: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Object versions locked (or their lock extended).
    pub locked: u64,
}

/// Where a push goes: an object store, the key prefix of the store's tree, and the Object Lock
/// client and mode when versions are locked.
#[derive(Clone)]
pub struct Destination<'a> {
    /// The bucket's object store.
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix, without trailing `/`; empty for the bucket's root.
    pub prefix: String,
    /// The Object Lock client and the mode of locked versions.
    pub lock: Option<(&'a ObjectLockClient, LockMode)>,
}

impl<'a> Destination<'a> {
    /// The destination of a connected bucket, locking as its settings say.
    pub fn of(bucket: &'a Bucket) -> Self {
        Self {
            store: bucket.object_store(),
            prefix: bucket.settings.prefix.clone(),
            lock: bucket
                .settings
                .object_lock
                .mode()
                .map(|m| (&bucket.lock, m)),
        }
    }

    fn key(&self, file: &Path) -> String {
        let relative = file
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if self.prefix.is_empty() {
            relative
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }
}

fn size(root: &Path, file: &Path) -> Result<u64, PushError> {
    let path = root.join(file);
    std::fs::metadata(&path)
        .map(|m| m.len())
        .map_err(|source| PushError::Read { path, source })
}

/// The regular, non-hidden files directly in `dir` (none when it does not exist), sorted.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, PushError> {
    entries_in(dir, |t| t.is_file())
}

/// The non-hidden subdirectories of `dir`, sorted.
fn dirs_in(dir: &Path) -> Result<Vec<PathBuf>, PushError> {
    entries_in(dir, |t| t.is_dir())
}

/// The non-hidden entries directly in `dir` whose type `keep` accepts (none when `dir` does not
/// exist), sorted.
fn entries_in(
    dir: &Path,
    keep: impl Fn(&std::fs::FileType) -> bool,
) -> Result<Vec<PathBuf>, PushError> {
    let read = |source| PushError::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && keep(&entry.file_type().map_err(read)?) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Everything under `root` a push copies, in push order, with each segment's retain-until
/// under `policy` (expiries at or before `now` get none: S3 refuses a past date).
pub fn list(
    root: &Path,
    policy: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Item>, PushError> {
    let compiled = policy.compile();
    let mut items = Vec::new();
    for l in discover::segments(root)? {
        let retain_until = match (&l.meta, hour_start(&l)) {
            (Some(meta), Some(start)) => {
                let expiry = segment_expiry(meta, start, &compiled).expires_at;
                DateTime::from_timestamp(expiry, 0).filter(|t| *t > now)
            }
            _ => None,
        };
        items.push(Item {
            bytes: size(root, &l.file)?,
            file: l.file.clone(),
            kind: Kind::Segment,
            retain_until,
        });
        let manifest = crate::chain::segment::manifest_path(&l.file);
        if root.join(&manifest).is_file() {
            items.push(Item {
                bytes: size(root, &manifest)?,
                file: manifest,
                kind: Kind::Manifest,
                retain_until,
            });
        }
    }
    for r in crate::receipt::list(root)? {
        items.push(Item {
            bytes: size(root, &r.path)?,
            file: r.path,
            kind: Kind::Receipt,
            retain_until: None,
        });
    }
    let relative = |p: PathBuf| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p);
    for chain in dirs_in(&root.join("checkpoints"))? {
        for f in files_in(&chain)? {
            let file = relative(f);
            items.push(Item {
                bytes: size(root, &file)?,
                file,
                kind: Kind::Checkpoints,
                retain_until: None,
            });
        }
    }
    for f in files_in(&root.join("keys"))? {
        if f.extension().is_some_and(|x| x == "pub") {
            let file = relative(f);
            items.push(Item {
                bytes: size(root, &file)?,
                file,
                kind: Kind::PublicKey,
                retain_until: None,
            });
        }
    }
    Ok(items)
}

/// Pushes `items` (from [`list`]) of the store at `root` to `dest`, calling `on_item` after
/// each with whether it was uploaded.
pub async fn push(
    root: &Path,
    items: &[Item],
    dest: &Destination<'_>,
    mut on_item: impl FnMut(&Item, bool),
) -> Result<PushSummary, PushError> {
    if let Some((lock, _)) = dest.lock {
        let enabled = lock
            .bucket_lock_enabled()
            .await
            .map_err(|source| PushError::Lock {
                key: lock.bucket().to_owned(),
                source,
            })?;
        if !enabled {
            return Err(PushError::LockNotEnabled {
                bucket: lock.bucket().to_owned(),
            });
        }
    }
    let mut summary = PushSummary::default();
    for item in items {
        let key = dest.key(&item.file);
        let location = ObjectPath::from(key.as_str());
        let local = size(root, &item.file)?;
        let remote = match dest.store.head(&location).await {
            Ok(meta) => Some(meta.size),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(source) => return Err(PushError::Object { key, source }),
        };
        let lock = dest
            .lock
            .and_then(|(client, mode)| item.retain_until.map(|until| (client, mode, until)));
        let pushed = match remote {
            Some(r) if r == local => {
                if let Some((client, mode, until)) = lock
                    && extend_lock(client, &key, mode, until).await?
                {
                    summary.locked += 1;
                }
                summary.skipped += 1;
                false
            }
            Some(r) if item.kind != Kind::Checkpoints => {
                return Err(PushError::Conflict {
                    key,
                    local,
                    remote: r,
                });
            }
            _ => {
                let put = upload_file(
                    dest.store.as_ref(),
                    &root.join(&item.file),
                    &key,
                    local,
                    SINGLE_PUT_MAX,
                    PART_SIZE,
                )
                .await?;
                if let Some((client, mode, until)) = lock {
                    let version = put
                        .version
                        .ok_or_else(|| PushError::NoVersion { key: key.clone() })?;
                    client
                        .put_retention(&key, Some(&version), mode, until)
                        .await
                        .map_err(|source| PushError::Lock {
                            key: key.clone(),
                            source,
                        })?;
                    summary.locked += 1;
                }
                summary.pushed += 1;
                summary.bytes += local;
                true
            }
        };
        on_item(item, pushed);
    }
    Ok(summary)
}

/// Locks the current version of `key` until `until`, unless it already is until then or later.
/// Whether it set a lock.
async fn extend_lock(
    client: &ObjectLockClient,
    key: &str,
    mode: LockMode,
    until: DateTime<Utc>,
) -> Result<bool, PushError> {
    let lock_err = |source| PushError::Lock {
        key: key.to_owned(),
        source,
    };
    let current = client.get_retention(key, None).await.map_err(lock_err)?;
    if current.is_some_and(|r| r.retain_until >= until) {
        return Ok(false);
    }
    client
        .put_retention(key, None, mode, until)
        .await
        .map_err(lock_err)?;
    Ok(true)
}

/// Uploads the file at `path` (`len` bytes) to `key`: one PUT up to `single_put_max` bytes,
/// else a multipart upload streamed in `part_size` parts (at least 5 MiB on S3, but for the
/// last), at most two in flight, so memory stays near three parts whatever the file's size.
pub async fn upload_file(
    store: &dyn ObjectStore,
    path: &Path,
    key: &str,
    len: u64,
    single_put_max: u64,
    part_size: usize,
) -> Result<PutResult, PushError> {
    let read = |source| PushError::Read {
        path: path.to_owned(),
        source,
    };
    let object = |source| PushError::Object {
        key: key.to_owned(),
        source,
    };
    let location = ObjectPath::from(key);
    if len <= single_put_max {
        let bytes = tokio::fs::read(path).await.map_err(read)?;
        return store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(object);
    }
    let mut file = tokio::fs::File::open(path).await.map_err(read)?;
    let upload = store.put_multipart(&location).await.map_err(object)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut buf = vec![0u8; part_size.min(1 << 20)];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // Abandon the upload; the bucket frees its parts.
                let _ = writer.abort().await;
                return Err(read(e));
            }
        };
        writer.wait_for_capacity(2).await.map_err(object)?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(object)
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
