//! The checkpoint: the highest sequence number whose records are all in sealed Parquet files.
//!
//! Stored as `checkpoint` in the log directory, one line of JSON
//! (`{"version":1,"flushed_seq":N}`), replaced atomically: written to a temporary file, fsynced,
//! renamed over the old one, and the directory fsynced.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::WalError;
use super::segment::sync_dir;

const FILE: &str = "checkpoint";

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    version: u32,
    flushed_seq: u64,
}

/// Reads the checkpoint; 0 when there is none (nothing was ever flushed).
///
/// An unreadable checkpoint is an error: replaying from 0 instead is safe (sealed files are
/// recognised by their names) but the operator must hear of it, so the caller decides.
pub fn read(dir: &Path) -> Result<u64, WalError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(WalError::io("read", &path, e)),
    };
    let stored: Stored = serde_json::from_str(text.trim()).map_err(|e| WalError::Checkpoint {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if stored.version != 1 {
        return Err(WalError::Checkpoint {
            path,
            message: format!("unsupported version {}", stored.version),
        });
    }
    Ok(stored.flushed_seq)
}

/// Replaces the checkpoint with `flushed_seq`, durably.
pub fn write(dir: &Path, flushed_seq: u64) -> Result<(), WalError> {
    let path = dir.join(FILE);
    let tmp = dir.join(".checkpoint.tmp");
    let body = serde_json::json!({ "version": 1, "flushed_seq": flushed_seq }).to_string();
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WalError::io("write", &path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), 0);
        write(dir.path(), 42).unwrap();
        assert_eq!(read(dir.path()).unwrap(), 42);
        write(dir.path(), 43).unwrap();
        assert_eq!(read(dir.path()).unwrap(), 43);
        std::fs::write(dir.path().join(FILE), "{\"version\":1,").unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checkpoint"), "{err}");
    }
}
