//! D9, the audit pipeline's own health (DORA RTS art. 12: detect a failure of logging
//! systems): holes in a chain's sequence numbers that no deletion receipt accounts for, and a
//! chain whose rows have run ahead of its newest checkpoint for too long (a missing heartbeat).
//! Verify failures are reported by `calltrail verify` itself, with its exit status.

use std::collections::BTreeMap;
use std::path::Path;

use calltrail_retention::chain::checkpoint_log::{checkpoints_dir, read_notes};
use calltrail_retention::checkpoint::Checkpoint;
use calltrail_retention::discover;
use calltrail_retention::receipt;
use calltrail_schemas::finding::{Finding, Severity};

use super::config::PipelineRule;
use super::draft::finding;
use super::rows::HOUR_NS;
use crate::{Error, Result};

/// A chain's segments as `(first_seq, last_seq, hour_ns)`, in seq order.
type Segments = BTreeMap<String, Vec<(u64, u64, i64)>>;

fn chains(root: &Path) -> Result<Segments> {
    let listed = discover::segments(root).map_err(|e| Error::Internal(e.to_string()))?;
    let mut chains: Segments = BTreeMap::new();
    for l in listed {
        if let Some(m) = l.meta {
            chains.entry(m.chain_id).or_default().push((
                m.first_seq,
                m.last_seq,
                l.hour_ns.unwrap_or(0),
            ));
        }
    }
    for segments in chains.values_mut() {
        segments.sort_unstable();
    }
    Ok(chains)
}

/// The first seqs of the segments retention deleted (their receipts are named by it).
fn receipted(root: &Path, chain_id: &str) -> Vec<u64> {
    let dir = receipt::receipts_dir(root, chain_id);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".note"))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

/// Every unexplained hole in every chain, as a finding over the hours between the segments
/// either side of it.
pub(crate) fn chain_gaps(root: &Path) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for (chain, segments) in chains(root)? {
        let deleted = receipted(root, &chain);
        for pair in segments.windows(2) {
            let ((_, prev_last, prev_hour), (next_first, _, next_hour)) = (pair[0], pair[1]);
            let expected = prev_last + 1;
            if next_first <= expected || deleted.contains(&expected) {
                continue;
            }
            let missing = next_first - expected;
            let (start, end) = (prev_hour.min(next_hour), prev_hour.max(next_hour) + HOUR_NS);
            let mut f = finding("D9", "chain_gap", "chain", &chain, start, end);
            f.observed = missing as f64;
            f.expected = Some(0.0);
            f.score = missing as f64;
            f.severity = Severity::Critical;
            f.explanation = format!(
                "Chain {chain} is missing {missing} records (seq {expected} to {}) between the segment ending at seq {prev_last} and the one starting at seq {next_first}, and no deletion receipt accounts for them.",
                next_first - 1
            );
            out.push(f);
        }
    }
    Ok(out)
}

/// The newest checkpoint of `chain_id`: its tree size and signing time (Unix seconds).
fn newest_checkpoint(root: &Path, chain_id: &str) -> Option<(u64, u64)> {
    let notes = read_notes(&checkpoints_dir(root, chain_id)).ok()?;
    let note = notes.last()?;
    // A signed note is its text, a blank line, then the signature lines.
    let body = note.split_once("\n\n").map_or(note.as_str(), |(b, _)| b);
    let cp = Checkpoint::parse(&format!("{body}\n")).ok()?;
    Some((cp.size, cp.timestamp.unwrap_or(0)))
}

/// Chains whose newest rows are not covered by a checkpoint signed in the last
/// `max_checkpoint_age_secs` as of `now_ns`, reported for the hour containing `now_ns`.
pub(crate) fn missing_heartbeats(
    root: &Path,
    rule: &PipelineRule,
    now_ns: i64,
) -> Result<Vec<Finding>> {
    let now_secs = u64::try_from(now_ns / 1_000_000_000).unwrap_or(0);
    let hour = now_ns.div_euclid(HOUR_NS) * HOUR_NS;
    let mut out = Vec::new();
    for (chain, segments) in chains(root)? {
        let Some(&(_, last_seq, _)) = segments.last() else {
            continue;
        };
        let (size, signed) = newest_checkpoint(root, &chain).unwrap_or((0, 0));
        let age = now_secs.saturating_sub(signed);
        if size > last_seq || age <= rule.max_checkpoint_age_secs {
            continue;
        }
        let mut f = finding(
            "D9",
            "missing_checkpoint",
            "chain",
            &chain,
            hour,
            hour + HOUR_NS,
        );
        f.observed = age as f64;
        f.expected = Some(rule.max_checkpoint_age_secs as f64);
        f.score = age as f64 / rule.max_checkpoint_age_secs.max(1) as f64;
        f.severity = Severity::High;
        let uncovered = last_seq + 1 - size.min(last_seq + 1);
        f.explanation = if signed == 0 {
            format!(
                "Chain {chain} holds {uncovered} records and no checkpoint covers them: the checkpoint heartbeat is missing."
            )
        } else {
            format!(
                "Chain {chain}'s newest checkpoint is {age} s old (limit {} s) and {uncovered} newer records are not covered by any: the checkpoint heartbeat is missing.",
                rule.max_checkpoint_age_secs
            )
        };
        out.push(f);
    }
    Ok(out)
}
