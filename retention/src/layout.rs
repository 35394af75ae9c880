//! Where the store's files live under the data directory.
//!
//! `<data_dir>/<table>/date=YYYY-MM-DD/hour=HH/<unique>.parquet`, partitioned by the span's start
//! time in UTC. Only time partitions: users, teams and servers are high-cardinality and would
//! explode the file count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Timelike};

/// The store's directory layout.
#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    writer_id: String,
    seq: AtomicU64,
}

/// A `date=.../hour=...` partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// Days since the Unix epoch.
    pub day: i64,
    /// Hour of the day, 0-23.
    pub hour: u32,
}

impl Partition {
    /// The partition holding a timestamp (nanoseconds since the epoch, UTC).
    pub fn of(time_ns: i64) -> Self {
        let secs = time_ns.div_euclid(1_000_000_000);
        Self {
            day: secs.div_euclid(86_400),
            hour: (secs.rem_euclid(86_400) / 3600) as u32,
        }
    }

    /// `date=YYYY-MM-DD/hour=HH`.
    pub fn path(&self) -> String {
        let date = DateTime::from_timestamp(self.day * 86_400 + i64::from(self.hour) * 3600, 0)
            .map(|d| {
                debug_assert_eq!(d.hour(), self.hour);
                d.format("%Y-%m-%d").to_string()
            })
            .unwrap_or_else(|| "1970-01-01".to_string());
        format!("date={date}/hour={:02}", self.hour)
    }
}

impl Layout {
    /// A layout rooted at `root`. `writer_id` distinguishes the files of concurrent or successive
    /// writers so names never collide.
    pub fn new(root: impl Into<PathBuf>, writer_id: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            writer_id: writer_id.into(),
            seq: AtomicU64::new(0),
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a table.
    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.root.join(table)
    }

    /// The directory of one partition of a table.
    pub fn partition_dir(&self, table: &str, p: Partition) -> PathBuf {
        self.table_dir(table).join(p.path())
    }

    /// A new, unique file name for records from write-ahead-log frames `first..=last`:
    /// `<unix ms>-<writer id>-<n>-<first>-<last>.parquet`. Names sort by write time, and the
    /// frame range tells recovery which records a file already holds ([`parse_wal_range`]).
    pub fn next_file_name(&self, now_ms: i64, first: u64, last: u64) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "{now_ms:013}-{}-{n:06}-{first:012}-{last:012}.parquet",
            self.writer_id
        )
    }
}

impl Layout {
    /// A new, unique file name for an audit event's segment: `<unix ms>-<writer id>-<n>-audit.parquet`
    /// (audit events do not pass through the write-ahead log, so the name has no frame range).
    pub fn next_audit_file_name(&self, now_ms: i64) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{now_ms:013}-{}-{n:06}-audit.parquet", self.writer_id)
    }
}

/// The write-ahead-log frame range `(first, last)` in a file name made by
/// [`Layout::next_file_name`]; `None` for other names.
pub fn parse_wal_range(file_name: &str) -> Option<(u64, u64)> {
    let stem = file_name.strip_suffix(".parquet")?;
    let mut parts = stem.rsplitn(3, '-');
    let last = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    parts.next()?;
    (first <= last).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_date_and_hour() {
        // 2026-11-23T16:58:23Z
        let p = Partition::of(1_795_453_103_675_615_627);
        assert_eq!(p.path(), "date=2026-11-23/hour=16");
        assert_eq!(Partition::of(0).path(), "date=1970-01-01/hour=00");
        assert_eq!(
            Partition::of(86_400 * 1_000_000_000 - 1).path(),
            "date=1970-01-01/hour=23"
        );
    }

    #[test]
    fn file_names_are_unique_and_sortable() {
        let l = Layout::new("/d", "abcd");
        let a = l.next_file_name(5, 3, 9);
        let b = l.next_file_name(5, 3, 9);
        assert_ne!(a, b);
        assert!(a < b);
        assert_eq!(
            a,
            "0000000000005-abcd-000000-000000000003-000000000009.parquet"
        );
        assert_eq!(parse_wal_range(&a), Some((3, 9)));
        assert_eq!(parse_wal_range("0000000000005-abcd-000001.parquet"), None);
        assert_eq!(parse_wal_range("x-9-3.parquet"), None, "first after last");
        assert_eq!(parse_wal_range("notes.txt"), None);
        assert_eq!(parse_wal_range(&l.next_audit_file_name(5)), None);
        assert_eq!(
            l.partition_dir("tool_calls", Partition::of(0)),
            PathBuf::from("/d/tool_calls/date=1970-01-01/hour=00")
        );
    }
}
