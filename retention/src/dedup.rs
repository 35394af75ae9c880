//! The write-time duplicate filter: a bounded window of recently written event ids.
//!
//! An exporter that times out retries the same batch; its spans carry the same trace id, span id
//! and side, hence the same deterministic `event_id`. Remembering the last `capacity` ids (about
//! 40 bytes each) drops such retries before they reach Parquet; older duplicates are folded by
//! the `calls` view. At start the window is seeded with the ids of the newest stored records
//! ([`recent_event_ids`]), so a retry that arrives after a restart is caught as well.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{Result, io_err};

/// The last `capacity` event ids written.
#[derive(Debug)]
pub struct DedupWindow {
    seen: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl DedupWindow {
    /// A window of `capacity` ids; 0 turns the filter off.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records `event_id`; false when it is already in the window (a duplicate).
    pub fn insert(&mut self, event_id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let key = key(event_id);
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// The `event_id`s of about the newest `max` records of `table` under `root`, oldest first.
pub fn recent_event_ids(root: &Path, table: &str, max: usize) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let mut rows = 0usize;
    // Partition directories and file names sort by time (`date=`, `hour=`, a millisecond
    // prefix): walk them newest first until enough rows are found.
    'outer: for date in sorted_desc(&root.join(table))? {
        for hour in sorted_desc(&date)? {
            for file in sorted_desc(&hour)? {
                if file.extension().is_none_or(|e| e != "parquet") {
                    continue;
                }
                let f = File::open(&file).map_err(io_err("open", &file))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(f)?;
                rows += usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
                files.push((file, builder));
                if rows >= max {
                    break 'outer;
                }
            }
        }
    }
    let mut ids = Vec::with_capacity(rows.min(max));
    for (_, builder) in files.into_iter().rev() {
        read_event_ids(builder, &mut ids)?;
    }
    let skip = ids.len().saturating_sub(max);
    ids.drain(..skip);
    Ok(ids)
}

/// The event ids of the Parquet file at `path`, in row order.
pub(crate) fn event_ids(path: &Path) -> Result<Vec<String>> {
    let f = File::open(path).map_err(io_err("open", path))?;
    let mut ids = Vec::new();
    read_event_ids(ParquetRecordBatchReaderBuilder::try_new(f)?, &mut ids)?;
    Ok(ids)
}

fn read_event_ids(
    builder: ParquetRecordBatchReaderBuilder<File>,
    ids: &mut Vec<String>,
) -> Result<()> {
    let descr = builder.metadata().file_metadata().schema_descr_ptr();
    let Some(leaf) = descr.columns().iter().position(|c| c.name() == "event_id") else {
        return Ok(());
    };
    let reader = builder
        .with_projection(ProjectionMask::leaves(&descr, [leaf]))
        .build()?;
    for batch in reader {
        let batch = batch?;
        if let Some(col) = batch.column(0).as_string_opt::<i32>() {
            ids.extend(
                (0..col.len())
                    .filter(|&i| col.is_valid(i))
                    .map(|i| col.value(i).to_owned()),
            );
        }
    }
    Ok(())
}

/// The entries of `dir`, names descending; none when it does not exist.
fn sorted_desc(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io_err("list", dir))?;
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// 128 bits of the id: event ids are UUIDs made from a SHA-256, so their hex digits are the key;
/// any other text is hashed (FNV-1a, twice, for 128 bits).
fn key(event_id: &str) -> u128 {
    let mut v: u128 = 0;
    let mut digits = 0;
    for c in event_id.bytes() {
        if c == b'-' {
            continue;
        }
        match (c as char).to_digit(16) {
            Some(d) if digits < 32 => {
                v = (v << 4) | u128::from(d);
                digits += 1;
            }
            _ => return fnv128(event_id),
        }
    }
    if digits == 32 { v } else { fnv128(event_id) }
}

fn fnv128(s: &str) -> u128 {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for c in s.bytes() {
        a = (a ^ u64::from(c)).wrapping_mul(0x100_0000_01b3);
        b = (b ^ u64::from(c))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(5);
    }
    (u128::from(a) << 64) | u128::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_within_the_window_only() {
        let mut w = DedupWindow::new(2);
        let ids = [
            "0f1e2d3c-4b5a-8978-8695-a4b3c2d1e0f9",
            "1f1e2d3c-4b5a-8978-8695-a4b3c2d1e0f9",
            "e7",
        ];
        assert!(w.insert(ids[0]));
        assert!(!w.insert(ids[0]));
        assert!(w.insert(ids[1]));
        assert!(w.insert(ids[2]));
        // ids[0] has left the two-id window.
        assert!(w.insert(ids[0]));
        assert!(!w.insert(ids[2]));
    }

    #[test]
    fn zero_capacity_keeps_everything() {
        let mut w = DedupWindow::new(0);
        assert!(w.insert("a") && w.insert("a"));
    }

    #[test]
    fn uuid_keys_differ_in_every_digit() {
        assert_ne!(
            key("00000000-0000-8000-8000-000000000001"),
            key("00000000-0000-8000-8000-000000000002")
        );
        assert_ne!(key("x1"), key("x2"));
    }
}
