//! A destination's durable cursors, replaced atomically and fsynced, advanced only after the
//! transport confirms: a crash re-sends from the last confirmed point (at least once), never
//! skips.
//!
//! - [`Cursor`] (`<data_dir>/forward/<destination>/cursor.json`): per chain, the next seq to
//!   deliver, and the newest checkpoint delivered.
//! - [`FindingsCursor`] (`.../findings-cursor.json`): per date partition of the `anomalies`
//!   table, the newest file delivered. Findings are not chained, so they have no seq to count
//!   by; their files are immutable and, within a date partition, appear in name order, so the
//!   newest name per partition is a complete position. It is a file of its own so that the
//!   chain cursor's format (which `calltrail status` and older versions read) is unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use calltrail_retention::files::write_bytes_atomic;
use serde::de::DeserializeOwned;
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

fn findings_path(data_dir: &Path, destination: &str) -> PathBuf {
    state_dir(data_dir, destination).join("findings-cursor.json")
}

/// The cursor in the file `p`; `None` when there is none.
fn load_json<T: DeserializeOwned>(p: PathBuf) -> Result<Option<T>, CursorError> {
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

/// Writes `value` to the file `p` durably.
fn save_json<T: Serialize>(p: &Path, value: &T) -> Result<(), CursorError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| CursorError::Corrupt {
        path: p.to_owned(),
        message: e.to_string(),
    })?;
    write_bytes_atomic(p, &bytes)?;
    Ok(())
}

impl Cursor {
    /// The destination's cursor; `None` before its first delivery.
    pub fn load(data_dir: &Path, destination: &str) -> Result<Option<Self>, CursorError> {
        load_json(path(data_dir, destination))
    }

    /// Writes the cursor durably.
    pub fn save(&self, data_dir: &Path, destination: &str) -> Result<(), CursorError> {
        save_json(&path(data_dir, destination), self)
    }

    /// The next seq to deliver on `chain` (0 for a chain not seen yet).
    pub fn next(&self, chain: &str) -> u64 {
        self.next_seq.get(chain).copied().unwrap_or(0)
    }
}

/// Where a destination stands in the `anomalies` table: per date partition (`YYYY-MM-DD`), the
/// name of the newest file whose findings were all delivered (or filtered out). Every file of
/// that partition whose name sorts at or before it is done; every later one is not. A date
/// without an entry has had nothing delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsCursor {
    /// Per date partition, the newest file delivered.
    pub delivered: BTreeMap<String, String>,
}

impl FindingsCursor {
    /// The destination's findings cursor; `None` before findings were first forwarded to it.
    pub fn load(data_dir: &Path, destination: &str) -> Result<Option<Self>, CursorError> {
        load_json(findings_path(data_dir, destination))
    }

    /// Writes the cursor durably.
    pub fn save(&self, data_dir: &Path, destination: &str) -> Result<(), CursorError> {
        save_json(&findings_path(data_dir, destination), self)
    }

    /// Whether the file `name` of partition `date` was delivered.
    pub fn is_delivered(&self, date: &str, name: &str) -> bool {
        self.delivered
            .get(date)
            .is_some_and(|done| name <= done.as_str())
    }

    /// Records that the file `name` of partition `date`, and every file before it there, was
    /// delivered. Never moves back.
    pub fn mark(&mut self, date: &str, name: &str) {
        if !self.is_delivered(date, name) {
            self.delivered.insert(date.to_owned(), name.to_owned());
        }
    }

    /// Forgets partitions that no longer exist (retention removed them), so the cursor stays
    /// as small as the table; true when it changed. A partition written again later is sent
    /// from its start: at least once still holds.
    pub fn retain_dates(&mut self, present: &BTreeSet<String>) -> bool {
        let before = self.delivered.len();
        self.delivered.retain(|date, _| present.contains(date));
        self.delivered.len() != before
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

    #[test]
    fn findings_cursors_round_trip_beside_the_chain_cursor() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(FindingsCursor::load(dir.path(), "soc").unwrap(), None);
        let mut c = FindingsCursor::default();
        c.mark("2026-11-23", "00000000000000000002-b.parquet");
        c.save(dir.path(), "soc").unwrap();
        // The chain cursor is another file: its format is unchanged by findings.
        assert_eq!(Cursor::load(dir.path(), "soc").unwrap(), None);
        let back = FindingsCursor::load(dir.path(), "soc").unwrap().unwrap();
        assert_eq!(back, c);
        std::fs::write(findings_path(dir.path(), "soc"), b"{\"delivered\": 3}").unwrap();
        let e = FindingsCursor::load(dir.path(), "soc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a forwarding cursor"), "{e}");
    }

    #[test]
    fn findings_cursors_order_files_within_a_date_and_never_move_back() {
        let mut c = FindingsCursor::default();
        assert!(!c.is_delivered("2026-11-23", "a.parquet"));
        c.mark("2026-11-23", "b.parquet");
        assert!(c.is_delivered("2026-11-23", "a.parquet"));
        assert!(c.is_delivered("2026-11-23", "b.parquet"));
        assert!(!c.is_delivered("2026-11-23", "c.parquet"));
        // Another date is its own sequence: a late file in an older partition is not done.
        assert!(!c.is_delivered("2026-11-22", "a.parquet"));
        c.mark("2026-11-23", "a.parquet");
        assert!(
            c.is_delivered("2026-11-23", "b.parquet"),
            "never moves back"
        );
        c.mark("2026-11-22", "z.parquet");
        let present = BTreeSet::from(["2026-11-23".to_owned()]);
        assert!(c.retain_dates(&present));
        assert!(!c.retain_dates(&present));
        assert_eq!(c.delivered.len(), 1);
    }
}
