//! `calltrail verify`: checks a store from its files alone (`docs/specs/chain.md` §5) and names
//! every problem by attack class, with file and seq.
//!
//! - [`finding`]: the finding kinds and their report form;
//! - `segment`: checks inside one segment (content, seqs, links, root);
//! - `chains`: checks across a chain's segments (gaps, overlaps, the tree against checkpoints,
//!   consistency with a trusted checkpoint).
//!
//! Segments are checked on several threads, a window at a time, and their leaves fed to each
//! chain's tree in seq order, so memory stays bounded by the window, not the store.

mod chains;
pub mod finding;
mod segment;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Result;
use crate::checkpoint::SignedCheckpoint;
use crate::note::VerifierKey;
pub use finding::{Finding, FindingKind};

/// Segment files under a store root with their chain metadata (for `prove` and retention).
pub(crate) use crate::discover::{Listed, segments as discover_segments};
/// The checks inside one segment (for retention, which deletes only segments that pass).
pub(crate) use segment::check as check_segment;

/// What to verify and against what.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The public key checkpoints must be signed with.
    pub pubkey: VerifierKey,
    /// A checkpoint kept off-box (its note text); the store must extend it.
    pub trusted: Option<String>,
    /// Only segments of hour partitions ending after this time (ns since the epoch).
    pub from_ns: Option<i64>,
    /// Only segments of hour partitions starting before this time (ns since the epoch).
    pub to_ns: Option<i64>,
    /// Threads that read and hash segments.
    pub threads: usize,
}

/// Per-chain summary of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    /// The chain id.
    pub chain_id: String,
    /// Segments checked.
    pub segments: u64,
    /// Records checked.
    pub records: u64,
    /// Records the chain holds (its newest seq + 1) as far as the checked segments show.
    pub size: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Checkpoint sizes whose tree head was recomputed from the records and matched.
    pub heads_matched: u64,
    /// Segments retention deleted, each crossed by its signed deletion receipt.
    pub receipts: u64,
    /// Records in them.
    pub deleted_records: u64,
    /// The newest valid checkpoint's size, and when it was signed (Unix seconds).
    pub newest_checkpoint: Option<(u64, Option<u64>)>,
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when there is no finding.
    pub ok: bool,
    /// The store verified.
    pub root: PathBuf,
    /// Segments checked.
    pub segments: u64,
    /// Records checked.
    pub records: u64,
    /// One entry per chain.
    pub chains: Vec<ChainSummary>,
    /// Every problem found.
    pub findings: Vec<Finding>,
    /// What could not be checked and why (not findings).
    pub notes: Vec<String>,
}

/// Progress: records checked so far and the total expected.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Verifies the store at `root`.
pub fn verify(root: &Path, options: &VerifyOptions, progress: Progress<'_>) -> Result<Report> {
    // Retention must not delete a segment between its listing and its check: a shared lock
    // on its lock file (when the store has one and it can be opened) keeps it out meanwhile.
    let _retention = std::fs::File::open(root.join("chain/retention.lock"))
        .ok()
        .filter(|f| f.lock_shared().is_ok());
    // Checkpoints first: a checkpoint is signed only after its segments are in place, so every
    // segment a checkpoint read here covers is listed below, even while a server keeps writing.
    let notes = crate::discover::checkpoints(root)?;
    let listed = crate::discover::segments(root)?;
    let receipts = crate::receipt::list(root)?;
    let trusted = options
        .trusted
        .as_ref()
        .map(|text| SignedCheckpoint::open(text, &options.pubkey));
    let mut report = Report {
        ok: true,
        root: root.to_owned(),
        segments: 0,
        records: 0,
        chains: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    };
    let found = chains::Found {
        listed,
        notes,
        receipts,
        trusted,
    };
    chains::verify_all(root, options, found, &mut report, progress);
    report.findings.sort_by(|a, b| {
        (&a.chain_id, a.seq, &a.file, a.kind).cmp(&(&b.chain_id, b.seq, &b.file, b.kind))
    });
    report.ok = report.findings.is_empty();
    Ok(report)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
