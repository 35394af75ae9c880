//! Inclusion proofs for one record (`docs/specs/chain.md` §7): `prove` builds a self-contained
//! JSON document from the store; `verify_proof` checks it with nothing but the public key.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use calltrail_schemas::canonical::{self, RowEncoder};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::chain::checkpoint_log::{checkpoints_dir, read_notes};
use crate::chain::segment::SegmentMeta;
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::merkle::{self, Hash};
use crate::note::VerifierKey;
use crate::receipt::{self, DeletionReceipt};
use crate::tree::ProofBuilder;
use crate::verify::discover_segments;
use crate::{Error, Result};

/// The `format` of a proof document.
pub const FORMAT: &str = "calltrail-inclusion-proof/v1";

/// A self-contained proof that one record is in a chain whose head a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Always [`FORMAT`].
    pub format: String,
    /// The record's event id.
    pub event_id: String,
    /// The chain holding it.
    pub chain_id: String,
    /// Its seq: its leaf index in the chain's tree.
    pub seq: u64,
    /// The canonical bytes of the record, base64.
    pub canonical: String,
    /// The canonical bytes decoded, for people to read; checked against `canonical`.
    pub record: serde_json::Value,
    /// `SHA-256(0x00 || canonical bytes)`, hex.
    pub leaf_hash: String,
    /// The tree size the proof is for (the checkpoint's).
    pub tree_size: u64,
    /// RFC 9162 audit path from the leaf to the head, hex.
    pub audit_path: Vec<String>,
    /// The signed checkpoint of `tree_size`.
    pub checkpoint: String,
}

fn fail(message: impl Into<String>) -> Error {
    Error::Integrity(message.into())
}

/// Reads `columns` of the Parquet file at `path` in batches of 8192 rows.
fn reader(
    path: &Path,
    columns: &[&str],
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let file = File::open(path).map_err(crate::io_err("open", path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let schema = builder.parquet_schema();
    let mask = ProjectionMask::columns(schema, columns.iter().copied());
    Ok(builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()?)
}

/// Finds `event_id` in the chained segments: (segment, row's batch, row index).
fn find(root: &Path, event_id: &str) -> Result<Option<(SegmentMeta, RecordBatch, usize)>> {
    for listed in discover_segments(root)? {
        let Some(meta) = listed.meta else { continue };
        let path = root.join(&listed.file);
        let mut offset = 0usize;
        let mut hit = None;
        for batch in reader(&path, &["event_id"])? {
            let batch = batch?;
            let ids = batch
                .column_by_name("event_id")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| fail(format!("{}: no event_id column", path.display())))?;
            if let Some(i) = (0..ids.len()).find(|&i| ids.is_valid(i) && ids.value(i) == event_id) {
                hit = Some(offset + i);
                break;
            }
            offset += batch.num_rows();
        }
        let Some(row) = hit else { continue };
        let file = File::open(&path).map_err(crate::io_err("open", &path))?;
        let mut seen = 0usize;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(8192)
            .build()?
        {
            let batch = batch?;
            if row < seen + batch.num_rows() {
                return Ok(Some((meta, batch, row - seen)));
            }
            seen += batch.num_rows();
        }
    }
    Ok(None)
}

/// The stored checkpoint of `chain_id` with the largest size (the newest of those), and its
/// note. With `verifier`, only checkpoints whose signature verifies under it and whose origin
/// names the chain count; without, none is verified (a proof's reader verifies it).
pub(crate) fn newest_checkpoint(
    root: &Path,
    chain_id: &str,
    verifier: Option<&VerifierKey>,
) -> Result<Option<(Checkpoint, String)>> {
    let notes = read_notes(&checkpoints_dir(root, chain_id))?;
    Ok(notes
        .into_iter()
        .filter_map(|n| {
            let checkpoint = match verifier {
                Some(key) => SignedCheckpoint::open(&n, key)
                    .ok()
                    .map(|s| s.checkpoint)
                    .filter(|c| c.origin.rsplit('/').next() == Some(chain_id))?,
                None => {
                    let text = n.rsplit_once("\n\n").map(|(t, _)| format!("{t}\n"))?;
                    Checkpoint::parse(&text).ok()?
                }
            };
            Some((checkpoint, n))
        })
        .max_by_key(|(c, _)| (c.size, c.timestamp)))
}

/// Feeds the leaf hashes stored in the segment file at `path` to `visit`, in row order, until
/// `visit` returns false.
pub(crate) fn segment_leaves(path: &Path, mut visit: impl FnMut(Hash) -> bool) -> Result<()> {
    for batch in reader(path, &["leaf_hash"])? {
        let batch = batch?;
        let leaves = batch
            .column_by_name("leaf_hash")
            .and_then(|c| c.as_fixed_size_binary_opt())
            .ok_or_else(|| fail(format!("{}: no leaf_hash column", path.display())))?;
        for i in 0..leaves.len() {
            let leaf: Hash = leaves
                .value(i)
                .try_into()
                .map_err(|_| fail(format!("{}: a leaf hash is not 32 bytes", path.display())))?;
            if !visit(leaf) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Builds the inclusion proof of the record `event_id` against the newest checkpoint of its
/// chain.
pub fn prove(root: &Path, event_id: &str) -> Result<InclusionProof> {
    let (meta, batch, row) = find(root, event_id)?.ok_or_else(|| {
        fail(format!(
            "no record with event id {event_id} in {}",
            root.display()
        ))
    })?;
    let seqs = batch
        .column_by_name("seq")
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>())
        .ok_or_else(|| fail("the segment has no seq column"))?;
    let seq = u64::try_from(seqs.value(row)).map_err(|_| fail("negative seq"))?;
    let mut bytes = Vec::new();
    RowEncoder::new(&meta.table, &batch)?.encode(row, &mut bytes);
    let leaf = canonical::leaf_hash(&bytes);
    let (checkpoint, note) = newest_checkpoint(root, &meta.chain_id, None)?
        .ok_or_else(|| fail(format!("chain {} has no checkpoint", meta.chain_id)))?;
    if checkpoint.size <= seq {
        return Err(fail(format!(
            "the newest checkpoint of chain {} (size {}) does not cover seq {seq} yet; retry after the next seal or heartbeat",
            meta.chain_id, checkpoint.size
        )));
    }
    let path = audit_path(root, &meta.chain_id, seq, checkpoint.size)?;
    Ok(InclusionProof {
        format: FORMAT.into(),
        event_id: event_id.to_owned(),
        chain_id: meta.chain_id,
        seq,
        record: canonical::decode(&bytes)?.to_json(),
        canonical: BASE64.encode(&bytes),
        leaf_hash: hex::encode(leaf),
        tree_size: checkpoint.size,
        audit_path: path.iter().map(hex::encode).collect(),
        checkpoint: note,
    })
}

/// Streams the stored leaf hashes of `chain_id` in seq order into an inclusion proof builder,
/// crossing what retention deleted with the compact ranges its receipts keep.
fn audit_path(root: &Path, chain_id: &str, index: u64, size: u64) -> Result<Vec<Hash>> {
    let mut segs: Vec<(SegmentMeta, PathBuf)> = discover_segments(root)?
        .into_iter()
        .filter_map(|l| {
            l.meta
                .filter(|m| m.chain_id == chain_id)
                .map(|m| (m, l.file))
        })
        .collect();
    segs.sort_by_key(|(m, _)| m.first_seq);
    let segments: Vec<(&SegmentMeta, &Path)> = segs.iter().map(|(m, f)| (m, f.as_path())).collect();
    let receipts = stored_receipts(root, chain_id)?;
    let receipts: Vec<&DeletionReceipt> = receipts.iter().collect();
    let mut builder = ProofBuilder::inclusion(index, size).map_err(|e| fail(e.to_string()))?;
    walk_chain(root, chain_id, size, &segments, &receipts, |step| {
        match step {
            Step::Leaf(leaf) => builder.push(leaf),
            Step::Deleted {
                start, end, range, ..
            } => builder
                .push_range(start, end, range)
                .map_err(|e| fail(format!("seq {index} of chain {chain_id}: {e}")))?,
        }
        Ok(())
    })?;
    builder.finish().map_err(|e| fail(e.to_string()))
}

/// The deletion receipts of `chain_id` under `root`, sorted by first seq, read without
/// verifying their signatures: a wrong range only makes a proof that `verify-proof` rejects.
fn stored_receipts(root: &Path, chain_id: &str) -> Result<Vec<DeletionReceipt>> {
    let mut out: Vec<DeletionReceipt> = receipt::list(root)?
        .into_iter()
        .filter_map(|r| {
            let (text, _) = r.note.rsplit_once("\n\n")?;
            let (_, json) = text.split_once('\n')?;
            serde_json::from_str::<DeletionReceipt>(json).ok()
        })
        .filter(|r| r.chain_id == chain_id)
        .collect();
    out.sort_by_key(|r| r.first_seq);
    Ok(out)
}

/// What a walk along a chain meets next.
pub(crate) enum Step<'a> {
    /// The next leaf hash, as stored.
    Leaf(Hash),
    /// Leaves `[start, end)` that retention deleted, known by their compact range, kept by
    /// `receipts[receipt]`.
    Deleted {
        start: u64,
        end: u64,
        range: &'a [Hash],
        receipt: usize,
    },
}

/// Walks the leaves `[0, size)` of chain `chain_id` in seq order, handing each [`Step`] to
/// `visit`: the leaf hashes stored in `segments` (sorted by first seq, files relative to
/// `root`), and where a segment was deleted, the compact range its receipt in `receipts`
/// (sorted by first seq) keeps. A segment wins over a receipt of the same seqs (retention
/// writes the receipt before it deletes). Fails naming seqs in neither, and a segment holding
/// fewer records than its metadata says.
pub(crate) fn walk_chain(
    root: &Path,
    chain_id: &str,
    size: u64,
    segments: &[(&SegmentMeta, &Path)],
    receipts: &[&DeletionReceipt],
    mut visit: impl FnMut(Step<'_>) -> Result<()>,
) -> Result<()> {
    let (mut segs, mut rcpts) = (
        segments.iter().peekable(),
        receipts.iter().enumerate().peekable(),
    );
    let mut next = 0u64;
    while next < size {
        while rcpts.next_if(|(_, r)| r.first_seq < next).is_some() {}
        if let Some((meta, file)) = segs.next_if(|(m, _)| m.first_seq == next) {
            let end = (meta.last_seq + 1).min(size);
            let start = next;
            let mut failed = None;
            segment_leaves(&root.join(file), |leaf| {
                if let Err(e) = visit(Step::Leaf(leaf)) {
                    failed = Some(e);
                    return false;
                }
                next += 1;
                next < end
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            if next != end {
                return Err(fail(format!(
                    "{}: holds {} records where its metadata says seqs {}..={}; run `calltrail verify`",
                    file.display(),
                    next - start,
                    meta.first_seq,
                    meta.last_seq
                )));
            }
        } else if let Some((i, r)) = rcpts.next_if(|(_, r)| r.first_seq == next) {
            let end = r.last_seq + 1;
            if end > size {
                return Err(fail(format!(
                    "the deletion receipt of seqs {next}..={} of chain {chain_id} reaches beyond the tree of size {size}",
                    r.last_seq
                )));
            }
            visit(Step::Deleted {
                start: next,
                end,
                range: &r.range,
                receipt: i,
            })?;
            next = end;
        } else {
            let until = [
                segs.peek().map(|(m, _)| m.first_seq),
                rcpts.peek().map(|(_, r)| r.first_seq),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(size);
            return Err(fail(format!(
                "seqs {next}..{until} of chain {chain_id} are in no segment and in no deletion receipt; \
                 no proof can be built (run `calltrail verify`)"
            )));
        }
    }
    Ok(())
}

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofCheck {
    /// The record's event id.
    pub event_id: String,
    /// The chain and seq it is at.
    pub chain_id: String,
    /// Its seq.
    pub seq: u64,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// When the checkpoint was signed (Unix seconds), if it says.
    pub signed_at: Option<u64>,
}

/// Checks a proof document offline: the record's bytes, its leaf hash, the audit path to the
/// head, and the checkpoint's signature under `pubkey`. The error says which step failed.
pub fn verify_proof(json: &str, pubkey: &VerifierKey) -> Result<ProofCheck> {
    let p: InclusionProof =
        serde_json::from_str(json).map_err(|e| fail(format!("not a proof document: {e}")))?;
    if p.format != FORMAT {
        return Err(fail(format!("unknown proof format {:?}", p.format)));
    }
    let bytes = BASE64
        .decode(&p.canonical)
        .map_err(|_| fail("`canonical` is not base64"))?;
    let record = canonical::decode(&bytes)?;
    if record.to_json() != p.record {
        return Err(fail("`record` is not what the canonical bytes say"));
    }
    if record.get("event_id") != Some(&canonical::Value::Str(p.event_id.clone())) {
        return Err(fail("the record's event_id is not the proof's"));
    }
    let leaf = canonical::leaf_hash(&bytes);
    if hex::encode(leaf) != p.leaf_hash {
        return Err(fail("the leaf hash is not the hash of the record's bytes"));
    }
    let signed = SignedCheckpoint::open(&p.checkpoint, pubkey)?;
    let cp = &signed.checkpoint;
    if cp.origin.rsplit('/').next() != Some(p.chain_id.as_str()) {
        return Err(fail(format!(
            "the checkpoint is for {}, not chain {}",
            cp.origin, p.chain_id
        )));
    }
    if cp.size != p.tree_size {
        return Err(fail("the checkpoint's size is not the proof's tree size"));
    }
    let path = p
        .audit_path
        .iter()
        .map(|h| crate::hash_hex::parse(h))
        .collect::<Option<Vec<Hash>>>()
        .ok_or_else(|| fail("the audit path holds something that is not a hash"))?;
    merkle::verify_inclusion(p.seq, p.tree_size, &leaf, &path, &cp.root).map_err(|e| {
        fail(format!(
            "the audit path does not lead to the signed head: {e}"
        ))
    })?;
    Ok(ProofCheck {
        event_id: p.event_id,
        chain_id: p.chain_id,
        seq: p.seq,
        tree_size: p.tree_size,
        signed_at: cp.timestamp,
    })
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
