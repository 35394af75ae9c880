//! Crash-safe file system steps shared by everything the store writes: a file is written to a
//! temporary name, fsynced, renamed into place and its directory fsynced, so a reader (or a
//! restart) sees the old content or the new, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::{Result, io_err};

/// Syncs a directory so a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Creates `dir` (and parents) if missing, syncing each parent whose entries changed.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.exists()) {
        missing.push(d);
        cur = d.parent();
    }
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically but without waiting for the disk: after a crash the
/// file holds the old content, the new, or (rarely) nothing. For derived files that are
/// rebuilt or have a durable fallback (segment manifests: the Parquet footer holds the same).
pub fn write_bytes_atomic_lazy(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        if durable {
            f.sync_all().map_err(io_err("fsync", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
