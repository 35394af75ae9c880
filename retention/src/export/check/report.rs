//! What `verify-export` reports: the checks, each failure with its file and record, and what
//! verified.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// The check a finding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `manifest.note` is missing or not a manifest (a partial export is refused here).
    Manifest,
    /// The manifest's signature does not verify under the key given.
    ManifestSignature,
    /// `pubkey.txt` is missing or not the key given.
    PublicKey,
    /// A file the manifest lists is not there.
    FileMissing,
    /// A file is there that the manifest does not list.
    FileExtra,
    /// A file's size is not the manifest's.
    FileSize,
    /// A file's SHA-256 is not the manifest's.
    FileHash,
    /// A checkpoint is missing, does not verify, or is not its chain's.
    Checkpoint,
    /// A deletion receipt does not verify or is not its chain's.
    Receipt,
    /// A records or proofs file cannot be read, or lacks a column.
    Unreadable,
    /// A record's values do not hash to its leaf hash.
    RecordHash,
    /// Two records claim the same chain and seq.
    RecordDuplicate,
    /// A proof names a record the bundle does not hold.
    RecordMissing,
    /// A record has no proof.
    ProofMissing,
    /// A proof does not lead from its record to its chain's checkpoint.
    Proof,
    /// A JSON Lines or CSV row differs from the Parquet copy.
    RecordText,
    /// The records counted are not the manifest's.
    RecordCount,
}

impl Check {
    /// The check's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Manifest => "manifest",
            Check::ManifestSignature => "manifest_signature",
            Check::PublicKey => "public_key",
            Check::FileMissing => "file_missing",
            Check::FileExtra => "file_extra",
            Check::FileSize => "file_size",
            Check::FileHash => "file_hash",
            Check::Checkpoint => "checkpoint",
            Check::Receipt => "receipt",
            Check::Unreadable => "unreadable",
            Check::RecordHash => "record_hash",
            Check::RecordDuplicate => "record_duplicate",
            Check::RecordMissing => "record_missing",
            Check::ProofMissing => "proof_missing",
            Check::Proof => "proof",
            Check::RecordText => "record_text",
            Check::RecordCount => "record_count",
        }
    }
}

/// One failed check: which, where, and on which record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportFinding {
    /// The check.
    pub check: Check,
    /// The file, relative to the bundle.
    pub file: Option<String>,
    /// The record's event id.
    pub event_id: Option<String>,
    /// The record's chain.
    pub chain_id: Option<String>,
    /// The record's seq.
    pub seq: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for ExportFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.check.name())?;
        if let Some(file) = &self.file {
            write!(f, ": {file}")?;
        }
        match (&self.event_id, &self.chain_id, self.seq) {
            (Some(e), Some(c), Some(s)) => write!(f, ": record {e} (chain {c}, seq {s})")?,
            (None, Some(c), Some(s)) => write!(f, ": chain {c}, seq {s}")?,
            (Some(e), _, _) => write!(f, ": record {e}")?,
            _ => {}
        }
        write!(f, ": {}", self.detail)
    }
}

/// One chain's part of a verified bundle.
#[derive(Debug, Clone, Serialize)]
pub struct ChainCheck {
    /// The chain id.
    pub chain_id: String,
    /// Its checkpoint's tree size, when the checkpoint verified.
    pub tree_size: Option<u64>,
    /// When its checkpoint was signed (Unix seconds).
    pub signed_at: Option<u64>,
    /// Proofs that led to the checkpoint.
    pub proofs_verified: u64,
    /// Deletion receipts whose signature verified.
    pub receipts: u64,
}

/// The result of `verify-export`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// True when no check failed.
    pub ok: bool,
    /// The bundle.
    pub dir: PathBuf,
    /// Whether the manifest's signature verified under the key.
    pub manifest_signed: bool,
    /// Files checked against the manifest.
    pub files: u64,
    /// Records read.
    pub records: u64,
    /// Records per table.
    pub tables: BTreeMap<String, u64>,
    /// Proofs that led to their checkpoint.
    pub proofs_verified: u64,
    /// One entry per chain.
    pub chains: Vec<ChainCheck>,
    /// Every failed check (at most 50 per check; the rest are counted in one more).
    pub findings: Vec<ExportFinding>,
}
