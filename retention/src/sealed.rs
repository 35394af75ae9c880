//! Which replayed write-ahead-log records already reached sealed Parquet files.
//!
//! The writer consumes frames in order and flushes contiguous frame ranges; every file it seals
//! names its range (`Layout::next_file_name`). One flush may seal several files of one table and
//! partition (one per retention class), and a crash can fall between them. So after a crash
//! between sealing files and persisting the checkpoint, a replayed record of frame `s` is
//! already stored exactly when a file of its table and partition whose range contains `s` holds
//! its event id. Only the few files covering replayed frames are read, and only their
//! `event_id` column.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::dedup::event_ids;
use crate::layout::{Partition, parse_wal_range};
use crate::{Result, io_err};

/// A sealed file and the frame range its name gives.
type Sealed = (u64, u64, PathBuf);

/// Frame ranges of the sealed files of each (table, partition), read on first use, and the
/// event ids of the files that cover a replayed frame.
#[derive(Debug)]
pub struct SealedIndex {
    root: PathBuf,
    after: u64,
    ranges: HashMap<(String, Partition), Vec<Sealed>>,
    ids: HashMap<PathBuf, HashSet<String>>,
}

impl SealedIndex {
    /// An index of the files under `root` (a data directory) holding frames after `after`
    /// (the persisted checkpoint: frames up to it are known to be stored).
    pub fn new(root: impl Into<PathBuf>, after: u64) -> Self {
        Self {
            root: root.into(),
            after,
            ranges: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    /// True when the record `event_id` of frame `seq` in `table` and partition `p` is already
    /// in a sealed file.
    pub fn contains(
        &mut self,
        table: &str,
        p: Partition,
        seq: u64,
        event_id: &str,
    ) -> Result<bool> {
        if seq <= self.after {
            return Ok(true);
        }
        let key = (table.to_owned(), p);
        if !self.ranges.contains_key(&key) {
            let ranges = self.scan(table, p)?;
            self.ranges.insert(key.clone(), ranges);
        }
        let covering: Vec<PathBuf> = self
            .ranges
            .get(&key)
            .map(|r| {
                r.iter()
                    .filter(|(a, b, _)| (*a..=*b).contains(&seq))
                    .map(|(_, _, f)| f.clone())
                    .collect()
            })
            .unwrap_or_default();
        for file in covering {
            if !self.ids.contains_key(&file) {
                let ids = event_ids(&file)?.into_iter().collect();
                self.ids.insert(file.clone(), ids);
            }
            if self
                .ids
                .get(&file)
                .is_some_and(|ids| ids.contains(event_id))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn scan(&self, table: &str, p: Partition) -> Result<Vec<Sealed>> {
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
                out.push((a, b, entry.path()));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{T0, key, seal};

    #[test]
    fn finds_records_of_sealed_ranges_by_event_id_in_their_partition() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = tokio::sync::watch::channel(None);
        let mut chain = crate::chain::Chain::open(dir.path(), &key(), "t", feed).unwrap();
        // Frame 5 sealed with records e5, e6, e7 (a file named for frames 5..=5).
        let file = seal(&mut chain, dir.path(), 5, 3);
        let tmp =
            file.with_file_name(".0000000000001-w-000009-000000000009-000000000012.parquet.tmp");
        std::fs::write(&tmp, b"").unwrap();
        let (p, q) = (Partition::of(T0), Partition::of(T0 + 3_600_000_000_000));
        let mut idx = SealedIndex::new(dir.path(), 3);
        assert!(
            idx.contains("tool_calls", p, 2, "any").unwrap(),
            "before the checkpoint"
        );
        assert!(
            !idx.contains("tool_calls", p, 4, "e6").unwrap(),
            "a frame no file covers"
        );
        assert!(idx.contains("tool_calls", p, 5, "e6").unwrap());
        assert!(
            !idx.contains("tool_calls", p, 5, "e99").unwrap(),
            "a record of the frame the file does not hold (another retention class) is not sealed"
        );
        assert!(
            !idx.contains("tool_calls", p, 9, "e9").unwrap(),
            "temp files are not sealed"
        );
        assert!(
            !idx.contains("tool_calls", q, 5, "e6").unwrap(),
            "another partition"
        );
        assert!(
            !idx.contains("llm_calls", p, 5, "e6").unwrap(),
            "another table"
        );
    }
}
