//! What `verify` can find: one named kind per attack class of `docs/specs/chain.md` §5.

use std::path::PathBuf;

use serde::Serialize;

/// The kind of a finding; each names one attack class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A record's content no longer matches its leaf hash, or stored hashes were rewritten.
    RecordModified,
    /// A record is missing from the middle of a segment.
    RecordDeleted,
    /// A record the chain never held (a repeated or out-of-range seq).
    RecordInserted,
    /// Records are out of seq order.
    RecordsReordered,
    /// A whole segment is missing between two others, with no deletion receipt.
    SegmentDeleted,
    /// A segment's file is cut short or its last records are missing.
    SegmentTruncated,
    /// The newest records or segments are missing: the store is shorter than a checkpoint.
    TailTruncated,
    /// The store is an older copy: shorter than, or diverging from, the trusted checkpoint.
    Rollback,
    /// A checkpoint's signature does not verify under the pinned key.
    CheckpointForged,
    /// A segment of another chain or deployment, or a replayed copy of one of ours.
    SegmentForeign,
    /// A deletion receipt whose signature does not verify, or which does not fit the chain
    /// where it claims to (a forged excuse for a deleted segment).
    ReceiptForged,
}

impl FindingKind {
    /// The stable name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordModified => "record_modified",
            Self::RecordDeleted => "record_deleted",
            Self::RecordInserted => "record_inserted",
            Self::RecordsReordered => "records_reordered",
            Self::SegmentDeleted => "segment_deleted",
            Self::SegmentTruncated => "segment_truncated",
            Self::TailTruncated => "tail_truncated",
            Self::Rollback => "rollback",
            Self::CheckpointForged => "checkpoint_forged",
            Self::SegmentForeign => "segment_foreign",
            Self::ReceiptForged => "receipt_forged",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, located as precisely as the evidence allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of tampering this is.
    pub kind: FindingKind,
    /// The chain it concerns, when known.
    pub chain_id: Option<String>,
    /// The file it concerns, relative to the store root, when there is one.
    pub file: Option<PathBuf>,
    /// The first seq it concerns, when there is one.
    pub seq: Option<u64>,
    /// A sentence saying what was found.
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(c) = &self.chain_id {
            write!(f, " chain={c}")?;
        }
        if let Some(file) = &self.file {
            write!(f, " file={}", file.display())?;
        }
        if let Some(s) = self.seq {
            write!(f, " seq={s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}
