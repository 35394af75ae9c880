//! Which replayed write-ahead-log records already reached sealed Parquet files.
//!
//! The writer consumes frames in order and flushes contiguous frame ranges; every file it seals
//! names its range (`Layout::next_file_name`). A file of table T, partition P and range
//! `first..=last` holds every record of those frames that belongs to T and P. So after a crash
//! between sealing files and persisting the checkpoint, a replayed record of frame `s` is
//! already stored exactly when its table and partition hold a file whose range contains `s`.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::layout::{Partition, parse_wal_range};
use crate::{Result, io_err};

/// Frame ranges of the sealed files of each (table, partition), read on first use.
#[derive(Debug)]
pub struct SealedIndex {
    root: PathBuf,
    after: u64,
    ranges: HashMap<(String, Partition), Vec<(u64, u64)>>,
}

impl SealedIndex {
    /// An index of the files under `root` (a data directory) holding frames after `after`
    /// (the persisted checkpoint: frames up to it are known to be stored).
    pub fn new(root: impl Into<PathBuf>, after: u64) -> Self {
        Self {
            root: root.into(),
            after,
            ranges: HashMap::new(),
        }
    }

    /// True when the record of frame `seq` in `table` and partition `p` is already in a sealed
    /// file.
    pub fn contains(&mut self, table: &str, p: Partition, seq: u64) -> Result<bool> {
        if seq <= self.after {
            return Ok(true);
        }
        let key = (table.to_owned(), p);
        if !self.ranges.contains_key(&key) {
            let ranges = self.scan(table, p)?;
            self.ranges.insert(key.clone(), ranges);
        }
        Ok(self
            .ranges
            .get(&key)
            .is_some_and(|r| r.iter().any(|&(a, b)| (a..=b).contains(&seq))))
    }

    fn scan(&self, table: &str, p: Partition) -> Result<Vec<(u64, u64)>> {
        let dir = self.root.join(table).join(p.path());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            if let Some((a, b)) = entry.file_name().to_str().and_then(parse_wal_range)
                && b > self.after
            {
                out.push((a, b));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    #[test]
    fn finds_records_of_sealed_ranges_only_in_their_partition() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), "w");
        let p = Partition::of(0);
        let q = Partition::of(3_600_000_000_000);
        let pdir = layout.partition_dir("tool_calls", p);
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::write(pdir.join(layout.next_file_name(1, 5, 8)), b"").unwrap();
        std::fs::write(
            pdir.join(".0000000000001-w-000009-000000000009-000000000012.parquet.tmp"),
            b"",
        )
        .unwrap();
        let mut idx = SealedIndex::new(dir.path(), 3);
        assert!(
            idx.contains("tool_calls", p, 2).unwrap(),
            "before the checkpoint"
        );
        assert!(!idx.contains("tool_calls", p, 4).unwrap());
        assert!(idx.contains("tool_calls", p, 5).unwrap());
        assert!(idx.contains("tool_calls", p, 8).unwrap());
        assert!(
            !idx.contains("tool_calls", p, 9).unwrap(),
            "temp files are not sealed"
        );
        assert!(
            !idx.contains("tool_calls", q, 6).unwrap(),
            "another partition"
        );
        assert!(!idx.contains("llm_calls", p, 6).unwrap(), "another table");
    }
}
