//! A destination's durable cursor: per chain, the next seq to deliver, and the newest checkpoint
//! delivered. It lives at `<data_dir>/forward/<destination>/cursor.json`, replaced atomically and
//! fsynced, and advances only after the transport confirms: a crash re-sends from the last
//! confirmed batch (at least once), never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calltrail_retention::files::write_bytes_atomic;
use serde::{Deserialize, Serialize};

/// Errors reading or writing a cursor.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The file exists but is not a cursor: refusing to guess where delivery stopped.
    #[error(
        "{path}: not a forwarding cursor ({message}); move it aside to restart this destination from its start position"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing failed.
    #[error("forwarding cursor: {0}")]
    Store(#[from] calltrail_retention::Error),
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Where a destination stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// Per chain, the next seq to deliver: every seq below it is confirmed.
    pub next_seq: BTreeMap<String, u64>,
    /// Per chain, the size of the newest checkpoint delivered.
    #[serde(default)]
    pub checkpoint_size: BTreeMap<String, u64>,
    /// Per chain, when the newest checkpoint delivered was signed (Unix seconds): heartbeats
    /// re-sign the same size, and each is forwarded.
    #[serde(default)]
    pub checkpoint_time: BTreeMap<String, u64>,
}

/// The directory of a destination's state (cursor, dead letters).
pub fn state_dir(data_dir: &Path, destination: &str) -> PathBuf {
    data_dir.join("forward").join(destination)
}

fn path(data_dir: &Path, destination: &str) -> PathBuf {
    state_dir(data_dir, destination).join("cursor.json")
}

impl Cursor {
    /// The destination's cursor; `None` before its first delivery.
    pub fn load(data_dir: &Path, destination: &str) -> Result<Option<Self>, CursorError> {
        let p = path(data_dir, destination);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CursorError::Io { path: p, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CursorError::Corrupt {
                path: p,
                message: e.to_string(),
            })
    }

    /// Writes the cursor durably.
    pub fn save(&self, data_dir: &Path, destination: &str) -> Result<(), CursorError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| CursorError::Corrupt {
            path: path(data_dir, destination),
            message: e.to_string(),
        })?;
        write_bytes_atomic(&path(data_dir, destination), &bytes)?;
        Ok(())
    }

    /// The next seq to deliver on `chain` (0 for a chain not seen yet).
    pub fn next(&self, chain: &str) -> u64 {
        self.next_seq.get(chain).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Cursor::load(dir.path(), "soc").unwrap(), None);
        let mut c = Cursor::default();
        c.next_seq.insert("abc".into(), 42);
        c.checkpoint_size.insert("abc".into(), 40);
        c.save(dir.path(), "soc").unwrap();
        let back = Cursor::load(dir.path(), "soc").unwrap().unwrap();
        assert_eq!(back, c);
        assert_eq!(back.next("abc"), 42);
        assert_eq!(back.next("other"), 0);
        std::fs::write(path(dir.path(), "soc"), b"{\"next_seq\": 3}").unwrap();
        let e = Cursor::load(dir.path(), "soc").unwrap_err().to_string();
        assert!(e.contains("not a forwarding cursor"), "{e}");
    }
}
