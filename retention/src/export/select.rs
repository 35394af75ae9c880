//! What an export reads: per chain, the newest checkpoint that verifies under the store's key
//! (read before the segments are listed), the segments and deletion receipts below its size,
//! the chain's tree built from them, and the rows a [`Selection`] matches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimestampNanosecondType};
use calltrail_schemas::arrow_schema::{LLM_CALLS, TOOL_CALLS};

use super::Selection;
use super::levels::{Levels, LevelsBuilder};
use crate::chain::segment::SegmentMeta;
use crate::checkpoint::Checkpoint;
use crate::note::VerifierKey;
use crate::proof::{Step, newest_checkpoint, walk_chain};
use crate::receipt::{self, DeletionReceipt};
use crate::verify::discover_segments;
use crate::{Error, Result, io_err};

/// An hour partition's length in nanoseconds.
const HOUR_NS: i64 = 3_600_000_000_000;

fn fail(message: impl Into<String>) -> Error {
    Error::Integrity(message.into())
}

/// A sealed segment of a chain.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// Its chain metadata (manifest, else footer).
    pub meta: SegmentMeta,
    /// The Parquet file, relative to the store root.
    pub file: PathBuf,
    /// Start of its hour partition (ns), when its path has one.
    pub hour_ns: Option<i64>,
}

/// A deletion receipt that verified under the store's key.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    /// The receipt file, relative to the store root.
    pub path: PathBuf,
    /// The signed note.
    pub note: String,
    /// What it says.
    pub receipt: DeletionReceipt,
}

/// One chain to export from.
#[derive(Debug)]
pub(crate) struct ChainPlan {
    pub chain_id: String,
    /// Its newest checkpoint that verifies, and the note.
    pub checkpoint: Checkpoint,
    pub note: String,
    /// Its segments holding seqs below the checkpoint's size, in seq order.
    pub segments: Vec<Segment>,
    /// Its receipts of deleted seqs below the checkpoint's size, in seq order.
    pub receipts: Vec<Receipt>,
}

/// The chains under `root` and what to read of each. `notes` gets what is left out and why.
pub(crate) fn plan(
    root: &Path,
    verifier: &VerifierKey,
    notes: &mut Vec<String>,
) -> Result<Vec<ChainPlan>> {
    // Checkpoints first: a checkpoint is signed only once its segments are in place, so every
    // segment below its size is listed next, however much the server writes meanwhile.
    let mut chains: BTreeMap<String, ChainPlan> = BTreeMap::new();
    for chain_id in chain_dirs(&root.join("checkpoints"))? {
        match newest_checkpoint(root, &chain_id, Some(verifier))? {
            Some((checkpoint, note)) => {
                chains.insert(
                    chain_id.clone(),
                    ChainPlan {
                        chain_id,
                        checkpoint,
                        note,
                        segments: Vec::new(),
                        receipts: Vec::new(),
                    },
                );
            }
            None => notes.push(format!(
                "chain {chain_id} has no checkpoint signed by this key: none of its records are exported"
            )),
        }
    }
    let mut unplanned: BTreeMap<String, u64> = BTreeMap::new();
    let mut after: BTreeMap<String, u64> = BTreeMap::new();
    for listed in discover_segments(root)? {
        let Some(meta) = listed.meta else {
            notes.push(format!(
                "{}: neither manifest nor footer says which chain it belongs to; skipped (run `calltrail verify`)",
                listed.file.display()
            ));
            continue;
        };
        match chains.get_mut(&meta.chain_id) {
            Some(plan) if meta.first_seq < plan.checkpoint.size => plan.segments.push(Segment {
                meta,
                file: listed.file,
                hour_ns: listed.hour_ns,
            }),
            Some(_) => *after.entry(meta.chain_id).or_default() += meta.count,
            None => *unplanned.entry(meta.chain_id).or_default() += meta.count,
        }
    }
    for (chain_id, records) in unplanned {
        if !notes.iter().any(|note| note.contains(&chain_id)) {
            notes.push(format!(
                "chain {chain_id} ({records} records) has no checkpoint: none of its records are exported"
            ));
        }
    }
    for (chain_id, records) in after {
        let size = chains.get(&chain_id).map_or(0, |p| p.checkpoint.size);
        notes.push(format!(
            "chain {chain_id}: {records} records sealed after its newest checkpoint (size {size}) are not \
             exported; they will be once a checkpoint covers them (the next seal or heartbeat)"
        ));
    }
    for stored in receipt::list(root)? {
        let opened = DeletionReceipt::open(&stored.note, verifier);
        let receipt = match opened {
            Ok(r) => r,
            Err(e) => {
                notes.push(format!("{}: {e}; ignored", stored.path.display()));
                continue;
            }
        };
        if let Some(plan) = chains.get_mut(&receipt.chain_id)
            && receipt.first_seq < plan.checkpoint.size
        {
            plan.receipts.push(Receipt {
                path: stored.path,
                note: stored.note,
                receipt,
            });
        }
    }
    let mut out: Vec<ChainPlan> = chains.into_values().collect();
    for plan in &mut out {
        plan.segments.sort_by_key(|s| s.meta.first_seq);
        plan.receipts.sort_by_key(|r| r.receipt.first_seq);
    }
    Ok(out)
}

/// The names of the directories in `dir` (none when it does not exist).
fn chain_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err("list", dir))?.path();
        if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && path.is_dir()
            && !name.starts_with('.')
        {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Builds the tree of `plan`'s chain at its checkpoint's size from the stored leaf hashes of
/// its segments and the compact ranges of its receipts, and checks its head against the
/// checkpoint. Returns the tree and the receipts it crossed (the holes' receipts).
pub(crate) fn chain_tree<'p>(
    root: &Path,
    plan: &'p ChainPlan,
) -> Result<(Levels, Vec<&'p Receipt>)> {
    let size = plan.checkpoint.size;
    let chain = &plan.chain_id;
    let mut tree = LevelsBuilder::new(size).map_err(|e| fail(format!("chain {chain}: {e}")))?;
    let segments: Vec<(&SegmentMeta, &Path)> = plan
        .segments
        .iter()
        .map(|s| (&s.meta, s.file.as_path()))
        .collect();
    let receipts: Vec<&DeletionReceipt> = plan.receipts.iter().map(|r| &r.receipt).collect();
    let mut holes = Vec::new();
    walk_chain(root, chain, size, &segments, &receipts, |step| {
        match step {
            Step::Leaf(leaf) => tree.push(leaf),
            Step::Deleted {
                start,
                end,
                range,
                receipt,
            } => {
                let r = &plan.receipts[receipt];
                tree.push_range(start, end, range)
                    .map_err(|e| fail(format!("{}: {e}", r.path.display())))?;
                holes.push(r);
            }
        }
        Ok(())
    })?;
    let tree = tree
        .finish()
        .map_err(|e| fail(format!("chain {chain}: {e}")))?;
    let head = tree
        .root()
        .map_err(|e| fail(format!("chain {chain}: {e}")))?;
    if head != plan.checkpoint.root {
        return Err(fail(format!(
            "the leaf hashes stored for chain {chain} do not give the head its checkpoint of size {size} signs: \
             the store is damaged or was tampered with (run `calltrail verify`)"
        )));
    }
    Ok((tree, holes))
}

impl Selection {
    /// The tables the selection can match: `llm_calls` has no server or tool.
    pub(crate) fn tables(&self) -> &'static [&'static str] {
        if self.servers.is_empty() && self.tools.is_empty() {
            &[TOOL_CALLS, LLM_CALLS]
        } else {
            &[TOOL_CALLS]
        }
    }

    /// Whether the hour partition starting at `hour_ns` can hold selected records (records are
    /// partitioned by the hour of their start time); true when the partition is unknown.
    pub(crate) fn hour_overlaps(&self, hour_ns: Option<i64>) -> bool {
        hour_ns.is_none_or(|h| h < self.to_ns && h.saturating_add(HOUR_NS) > self.from_ns)
    }

    /// The filters as (manifest name, value) pairs, in a fixed order.
    pub(crate) fn filters(&self) -> Vec<(String, String)> {
        [
            ("tenant", &self.tenants),
            ("principal", &self.principals),
            ("server", &self.servers),
            ("tool", &self.tools),
        ]
        .into_iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_owned(), v.clone())))
        .collect()
    }

    /// The columns [`Selection::mask`] reads, and `seq`.
    pub(crate) fn columns(&self) -> Vec<&'static str> {
        let mut out = vec!["start_time", "seq"];
        for (column, wanted) in [
            ("tenant", &self.tenants),
            ("principal", &self.principals),
            ("server_name", &self.servers),
            ("tool_name", &self.tools),
        ] {
            if !wanted.is_empty() {
                out.push(column);
            }
        }
        out
    }

    /// Which rows of `batch` (a batch of one of [`Selection::tables`]) are selected. A filter's
    /// column that the batch lacks (a segment older than the column) is null in every row, so
    /// matches none. The error names a `start_time` that is missing or not nanoseconds.
    pub(crate) fn mask(&self, batch: &RecordBatch) -> std::result::Result<BooleanArray, String> {
        let start = batch
            .column_by_name("start_time")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or("no start_time column of nanosecond timestamps")?;
        let mut keep: Vec<bool> = (0..batch.num_rows())
            .map(|i| start.is_valid(i) && (self.from_ns..self.to_ns).contains(&start.value(i)))
            .collect();
        for (column, wanted) in [
            ("tenant", &self.tenants),
            ("principal", &self.principals),
            ("server_name", &self.servers),
            ("tool_name", &self.tools),
        ] {
            if wanted.is_empty() {
                continue;
            }
            let Some(values) = strings(batch, column)? else {
                keep.fill(false);
                continue;
            };
            for (i, k) in keep.iter_mut().enumerate() {
                *k = *k && values.is_valid(i) && wanted.iter().any(|w| w == values.value(i));
            }
        }
        Ok(BooleanArray::from(keep))
    }
}

/// The column `name` of `batch` as UTF-8 strings; `None` when the batch has no such column.
fn strings(batch: &RecordBatch, name: &str) -> std::result::Result<Option<StringArray>, String> {
    let Some(column): Option<&ArrayRef> = batch.column_by_name(name) else {
        return Ok(None);
    };
    let utf8 = cast(column, &DataType::Utf8).map_err(|e| format!("column {name}: {e}"))?;
    Ok(Some(utf8.as_string::<i32>().clone()))
}
