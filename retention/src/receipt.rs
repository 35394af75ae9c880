//! Deletion receipts (`docs/specs/chain.md` §6): when retention deletes a segment, it first
//! writes a receipt signed with the checkpoint key, naming the segment, its seqs, the hashes that
//! link it into the chain, its compact range in the chain's tree, and the rule and time. With
//! it, `verify` tells lawful retention from the "delete segment" attack and still recomputes
//! the chain's tree head, and every checkpoint after the gap, across it.
//!
//! Receipts live at `<data>/receipts/<chain id>/<first seq, 20 digits>.note`, one signed note
//! each: the line `calltrail deletion receipt v1`, then the receipt as one line of JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::write_bytes_atomic;
use crate::merkle::Hash;
use crate::note::{NoteError, SigningKey, VerifierKey, open_note, sign_note};
use crate::{Result, io_err};

/// The first line of a receipt's signed text.
const HEADER: &str = "calltrail deletion receipt v1";

/// Why a receipt was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The signed note does not verify under the pinned key, or is not a signed note.
    #[error("the receipt's signature does not verify: {0}")]
    Signature(#[from] NoteError),
    /// The note verifies but its text is not a receipt.
    #[error("the signed text is not a deletion receipt: {0}")]
    Malformed(String),
}

/// What was deleted, where it sat in its chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionReceipt {
    /// The chain the segment belonged to.
    pub chain_id: String,
    /// Its table.
    pub table: String,
    /// Its Parquet file, relative to the data directory.
    pub file: String,
    /// Seq of its first record.
    pub first_seq: u64,
    /// Seq of its last record.
    pub last_seq: u64,
    /// Records it held.
    pub count: u64,
    /// `chain_hash[first_seq - 1]` (or the genesis value).
    #[serde(with = "crate::hash_hex::one")]
    pub prev_hash: Hash,
    /// `chain_hash[last_seq]`: the next segment's previous hash.
    #[serde(with = "crate::hash_hex::one")]
    pub last_hash: Hash,
    /// RFC 6962 head of its records' leaf hashes.
    #[serde(with = "crate::hash_hex::one")]
    pub segment_root: Hash,
    /// The chain's tree size once the segment was in it: `last_seq + 1`.
    pub tree_size: u64,
    /// The chain's tree head at `tree_size`.
    #[serde(with = "crate::hash_hex::one")]
    pub tree_root: Hash,
    /// Compact range of `[0, tree_size)`.
    #[serde(with = "crate::hash_hex::list")]
    pub frontier: Vec<Hash>,
    /// Compact range of `[first_seq, last_seq + 1)` (levels: [`crate::tree::range_levels`]):
    /// what the tree needs of the deleted leaves.
    #[serde(with = "crate::hash_hex::list")]
    pub range: Vec<Hash>,
    /// Its retention class.
    pub retention_class: String,
    /// The class's keep duration when the segment was written, in days.
    pub keep_days: u64,
    /// The rule that deleted it: the class's rule, or the default.
    pub rule: String,
    /// Why, in a sentence.
    pub reason: String,
    /// Start of the segment's hour partition (Unix seconds): its records started in that hour.
    pub partition_start: i64,
    /// When its newest record's retention ended (Unix seconds).
    pub expired_at: i64,
    /// When it was deleted (Unix seconds).
    pub deleted_at: i64,
}

impl DeletionReceipt {
    /// The receipt as a note signed with `key`.
    pub fn sign(&self, key: &SigningKey) -> Result<String, ReceiptError> {
        let json = serde_json::to_string(self)
            .map_err(|e| ReceiptError::Malformed(format!("encoding: {e}")))?;
        Ok(sign_note(&format!("{HEADER}\n{json}\n"), key)?)
    }

    /// Verifies the signed note `note` under `verifier` and reads the receipt in it.
    pub fn open(note: &str, verifier: &VerifierKey) -> Result<Self, ReceiptError> {
        let text = open_note(note, verifier)?;
        let json = text
            .strip_prefix(HEADER)
            .and_then(|t| t.strip_prefix('\n'))
            .ok_or_else(|| ReceiptError::Malformed(format!("the first line is not {HEADER:?}")))?;
        let receipt: Self = serde_json::from_str(json.trim_end())
            .map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        if receipt.last_seq < receipt.first_seq
            || receipt.count != receipt.last_seq - receipt.first_seq + 1
            || receipt.tree_size != receipt.last_seq + 1
        {
            return Err(ReceiptError::Malformed(
                "its seqs, count and tree size disagree".into(),
            ));
        }
        Ok(receipt)
    }
}

/// The directory of a chain's receipts under the data directory `root`.
pub fn receipts_dir(root: &Path, chain_id: &str) -> PathBuf {
    root.join("receipts").join(chain_id)
}

/// Where the receipt of the segment starting at `first_seq` goes.
pub fn receipt_path(root: &Path, chain_id: &str, first_seq: u64) -> PathBuf {
    receipts_dir(root, chain_id).join(format!("{first_seq:020}.note"))
}

/// Writes a signed receipt durably: it must exist before the segment is deleted.
pub fn write(root: &Path, receipt: &DeletionReceipt, note: &str) -> Result<PathBuf> {
    let path = receipt_path(root, &receipt.chain_id, receipt.first_seq);
    write_bytes_atomic(&path, note.as_bytes())?;
    Ok(path)
}

/// A receipt file as stored.
#[derive(Debug, Clone)]
pub struct StoredReceipt {
    /// Relative to the data directory.
    pub path: PathBuf,
    /// The chain directory it is in.
    pub chain_dir: String,
    /// The signed note.
    pub note: String,
}

/// Every receipt under `root`, sorted by path (chain, then first seq).
pub fn list(root: &Path) -> Result<Vec<StoredReceipt>> {
    let base = root.join("receipts");
    let chains = match std::fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &base)(e)),
    };
    let mut out = Vec::new();
    for chain in chains {
        let dir = chain.map_err(io_err("list", &base))?.path();
        let Some(chain_dir) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !dir.is_dir() || chain_dir.starts_with('.') {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let path = entry.map_err(io_err("list", &dir))?.path();
            if path.extension().is_none_or(|x| x != "note") {
                continue;
            }
            let note = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
            out.push(StoredReceipt {
                path: path.strip_prefix(root).unwrap_or(&path).to_owned(),
                chain_dir: chain_dir.clone(),
                note,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::key;

    fn receipt() -> DeletionReceipt {
        DeletionReceipt {
            chain_id: "c0ffee".into(),
            table: "tool_calls".into(),
            file: "tool_calls/date=2025-01-01/hour=00/x.parquet".into(),
            first_seq: 4,
            last_seq: 6,
            count: 3,
            prev_hash: [1; 32],
            last_hash: [2; 32],
            segment_root: [3; 32],
            tree_size: 7,
            tree_root: [4; 32],
            frontier: vec![[5; 32], [6; 32], [7; 32]],
            range: vec![[8; 32], [9; 32]],
            retention_class: "reads".into(),
            keep_days: 396,
            rule: "reads".into(),
            reason: "expired".into(),
            partition_start: 1_735_689_600,
            expired_at: 1_769_904_000,
            deleted_at: 1_769_904_100,
        }
    }

    #[test]
    fn receipts_round_trip_and_refuse_other_keys_and_edits() {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        let r = receipt();
        let note = r.sign(&k).unwrap();
        assert_eq!(DeletionReceipt::open(&note, &k.verifier()).unwrap(), r);
        let path = write(dir.path(), &r, &note).unwrap();
        assert!(path.ends_with("receipts/c0ffee/00000000000000000004.note"));
        let listed = list(dir.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].note, note);
        assert_eq!(listed[0].chain_dir, "c0ffee");

        let other = SigningKey::generate("other").unwrap();
        assert!(matches!(
            DeletionReceipt::open(&note, &other.verifier()),
            Err(ReceiptError::Signature(_))
        ));
        let edited = note.replace("\"last_seq\":6", "\"last_seq\":9");
        assert!(matches!(
            DeletionReceipt::open(&edited, &k.verifier()),
            Err(ReceiptError::Signature(_))
        ));
        let mut wrong = r.clone();
        wrong.count = 5;
        let e = DeletionReceipt::open(&wrong.sign(&k).unwrap(), &k.verifier()).unwrap_err();
        assert!(e.to_string().contains("disagree"), "{e}");
    }
}
