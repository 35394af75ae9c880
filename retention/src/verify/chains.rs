//! Checks across segments: each chain's segments must tile its seqs from 0 without gap or
//! overlap and link hash to hash; the tree rebuilt from their leaves must have the head every
//! signed checkpoint states; the store must extend the trusted checkpoint (RFC 9162 consistency).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::finding::{Finding, FindingKind};
use super::segment::{self, SegmentOutcome};
use super::{ChainSummary, Progress, Report, VerifyOptions};
use crate::chain::link::genesis;
use crate::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::discover::{Listed, StoredNote};
use crate::merkle::{self, Hash};
use crate::receipt::{DeletionReceipt, StoredReceipt};
use crate::tree::{Frontier, ProofBuilder};

const HOUR_NS: i64 = 3_600_000_000_000;

fn chain_of_origin(origin: &str) -> &str {
    origin.rsplit('/').next().unwrap_or(origin)
}

fn finding(
    kind: FindingKind,
    chain: &str,
    file: Option<&Path>,
    seq: Option<u64>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        chain_id: Some(chain.to_owned()),
        file: file.map(Path::to_path_buf),
        seq,
        detail,
    }
}

/// Checks the segments `files` on `threads` threads and hands the outcomes to `consume` in the
/// order of `files`, while the threads go on with the next ones. At most `window` outcomes
/// wait, so memory stays bounded however large the store.
fn check_in_order(
    root: &Path,
    files: &[&Listed],
    threads: usize,
    window: usize,
    mut consume: impl FnMut(SegmentOutcome),
) {
    let (next, consumed) = (&AtomicUsize::new(0), &AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, SegmentOutcome)>(window);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, files.len().max(1)) {
            let tx = tx.clone();
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    while i >= consumed.load(Ordering::Acquire) + window {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    if tx.send((i, segment::check(root, file))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<usize, SegmentOutcome> = BTreeMap::new();
        let mut want = 0usize;
        for (i, outcome) in rx {
            waiting.insert(i, outcome);
            while let Some(o) = waiting.remove(&want) {
                consume(o);
                want += 1;
                consumed.store(want, Ordering::Release);
            }
        }
    });
}

/// Valid checkpoints per chain (by size, one per size), and findings for the others.
fn open_checkpoints(
    notes: HashMap<String, Vec<StoredNote>>,
    options: &VerifyOptions,
    report: &mut Report,
) -> BTreeMap<String, BTreeMap<u64, SignedCheckpoint>> {
    let mut valid: BTreeMap<String, BTreeMap<u64, SignedCheckpoint>> = BTreeMap::new();
    for (dir_chain, notes) in notes {
        for n in notes {
            match SignedCheckpoint::open(&n.note, &options.pubkey) {
                Ok(c) => {
                    let chain = chain_of_origin(&c.checkpoint.origin).to_owned();
                    let by_size = valid.entry(chain.clone()).or_default();
                    if let Some(other) = by_size.get(&c.checkpoint.size)
                        && other.checkpoint.root != c.checkpoint.root
                    {
                        report.findings.push(finding(
                            FindingKind::CheckpointForged,
                            &chain,
                            Some(&n.file),
                            Some(c.checkpoint.size),
                            format!(
                                "line {}: two validly signed checkpoints of size {} state different heads: the signing key is compromised",
                                n.line, c.checkpoint.size
                            ),
                        ));
                        continue;
                    }
                    let newer = by_size
                        .get(&c.checkpoint.size)
                        .is_none_or(|o| o.checkpoint.timestamp < c.checkpoint.timestamp);
                    if newer {
                        by_size.insert(c.checkpoint.size, c);
                    }
                }
                Err(e) => report.findings.push(finding(
                    FindingKind::CheckpointForged,
                    &dir_chain,
                    Some(&n.file),
                    None,
                    format!(
                        "line {}: the checkpoint does not verify under the pinned key: {e}",
                        n.line
                    ),
                )),
            }
        }
    }
    valid
}

/// Everything found on disk, read before the checks start.
pub(super) struct Found {
    /// Segment files.
    pub listed: Vec<Listed>,
    /// Checkpoint notes by chain directory.
    pub notes: HashMap<String, Vec<StoredNote>>,
    /// Deletion receipts.
    pub receipts: Vec<StoredReceipt>,
    /// The trusted checkpoint, opened.
    pub trusted: Option<Result<SignedCheckpoint, CheckpointError>>,
}

/// Valid receipts per chain (by first seq), and findings for the others.
fn open_receipts(
    receipts: Vec<StoredReceipt>,
    options: &VerifyOptions,
    report: &mut Report,
) -> BTreeMap<String, BTreeMap<u64, (DeletionReceipt, PathBuf)>> {
    let mut valid: BTreeMap<String, BTreeMap<u64, (DeletionReceipt, PathBuf)>> = BTreeMap::new();
    for r in receipts {
        match DeletionReceipt::open(&r.note, &options.pubkey) {
            Ok(receipt) if receipt.chain_id == r.chain_dir => {
                valid
                    .entry(receipt.chain_id.clone())
                    .or_default()
                    .insert(receipt.first_seq, (receipt, r.path));
            }
            Ok(receipt) => report.findings.push(finding(
                FindingKind::ReceiptForged,
                &r.chain_dir,
                Some(&r.path),
                Some(receipt.first_seq),
                format!(
                    "the receipt is for chain {} but stored under chain {}",
                    receipt.chain_id, r.chain_dir
                ),
            )),
            Err(e) => report.findings.push(finding(
                FindingKind::ReceiptForged,
                &r.chain_dir,
                Some(&r.path),
                None,
                format!("the deletion receipt is not valid under the pinned key: {e}"),
            )),
        }
    }
    valid
}

/// Where the walk along a chain has got to.
struct Position {
    /// The next seq expected.
    expected: u64,
    /// `chain_hash[expected - 1]`.
    prev_hash: Hash,
    /// The segment or receipt that ended at `expected - 1`.
    prev_file: Option<PathBuf>,
    /// True after a gap nothing explains: `prev_hash` is unknown, so the next link is not
    /// checked (the gap is reported already).
    unlinked: bool,
}

struct Walk<'a> {
    chain: &'a str,
    receipts: BTreeMap<u64, (DeletionReceipt, PathBuf)>,
    crossed: u64,
    crossed_records: u64,
    checkpoints: &'a BTreeMap<u64, SignedCheckpoint>,
    trusted: Option<&'a SignedCheckpoint>,
    frontier: Option<Frontier>,
    proof: Option<(ProofBuilder, u64)>,
    heads_matched: u64,
    unchecked: BTreeSet<u64>,
    trusted_matched: Option<bool>,
    findings: Vec<Finding>,
}

impl Walk<'_> {
    /// Compares the tree head at the frontier's size with every claim about that size.
    fn compare_here(&mut self, file: Option<&Path>) {
        let Some(f) = &self.frontier else { return };
        let size = f.size();
        let root = f.root();
        if let Some(c) = self.checkpoints.get(&size) {
            if c.checkpoint.root == root {
                self.heads_matched += 1;
            } else {
                self.findings.push(finding(
                    FindingKind::RecordModified,
                    self.chain,
                    file,
                    Some(size.saturating_sub(1)),
                    format!(
                        "the tree head over seqs 0..{size} differs from the signed checkpoint of size {size}: records before seq {size} were altered and their hashes rewritten"
                    ),
                ));
            }
        }
        if let Some(t) = self.trusted
            && t.checkpoint.size == size
        {
            self.trusted_matched = Some(t.checkpoint.root == root);
        }
    }

    fn feed(&mut self, leaves: &[Hash], file: &Path) {
        for leaf in leaves {
            self.compare_here(Some(file));
            if let Some((builder, n)) = &mut self.proof
                && self.frontier.as_ref().is_some_and(|f| f.size() < *n)
            {
                builder.push(*leaf);
            }
            if let Some(f) = &mut self.frontier {
                f.append(*leaf);
            }
        }
    }

    /// Crosses, with their receipts, the deleted segments from `at.expected` up to `up_to`
    /// (exclusive), as far as receipts reach: checks each links to what precedes it and
    /// continues the tree with its compact range.
    fn cross(&mut self, at: &mut Position, up_to: u64) {
        while at.expected < up_to {
            let Some((r, file)) = self.receipts.remove(&at.expected) else {
                // A gap no receipt explains, then perhaps receipts again before `up_to`.
                let Some(&next) = self
                    .receipts
                    .range(at.expected + 1..up_to)
                    .next()
                    .map(|(k, _)| k)
                else {
                    return;
                };
                self.findings.push(finding(
                    FindingKind::SegmentDeleted,
                    self.chain,
                    at.prev_file.as_deref(),
                    Some(at.expected),
                    format!(
                        "seqs {}..={} ({} records) are in no segment: a segment was deleted (there is no deletion receipt)",
                        at.expected,
                        next - 1,
                        next - at.expected
                    ),
                ));
                self.lose_tree(at.expected);
                at.expected = next;
                at.unlinked = true;
                continue;
            };
            if !at.unlinked && r.prev_hash != at.prev_hash {
                self.findings.push(finding(
                    FindingKind::ReceiptForged,
                    self.chain,
                    Some(&file),
                    Some(r.first_seq),
                    "the receipt's previous hash is not the hash of the record before it: it does not describe the segment that was here".into(),
                ));
                self.lose_tree(r.first_seq);
            }
            let rebuilt = match &mut self.frontier {
                Some(f) => f
                    .append_range(r.first_seq, r.tree_size, &r.range)
                    .is_ok_and(|()| f.root() == r.tree_root),
                None => match Frontier::from_parts(r.tree_size, r.frontier.clone()) {
                    // The tree was lost to earlier damage: the signed receipt restarts it.
                    Ok(f) if f.root() == r.tree_root => {
                        self.frontier = Some(f);
                        true
                    }
                    _ => false,
                },
            };
            if rebuilt {
                self.compare_here(Some(&file));
            } else {
                self.findings.push(finding(
                    FindingKind::ReceiptForged,
                    self.chain,
                    Some(&file),
                    Some(r.first_seq),
                    "the receipt's compact range does not rebuild the tree head it states".into(),
                ));
                self.lose_tree(r.tree_size);
            }
            self.crossed += 1;
            self.crossed_records += r.count;
            at.expected = r.last_seq + 1;
            at.prev_hash = r.last_hash;
            at.prev_file = Some(file);
            at.unlinked = false;
        }
    }

    fn lose_tree(&mut self, from: u64) {
        if self.frontier.take().is_some() {
            self.unchecked
                .extend(self.checkpoints.range(from..).map(|(s, _)| *s));
        }
    }
}

/// Runs every check; findings and summaries go into `report`.
pub(super) fn verify_all(
    root: &Path,
    options: &VerifyOptions,
    found: Found,
    report: &mut Report,
    progress: Progress<'_>,
) {
    let Found {
        listed,
        notes,
        receipts,
        trusted,
    } = found;
    let checkpoints = open_checkpoints(notes, options, report);
    let mut receipts = open_receipts(receipts, options, report);
    let trusted = match trusted {
        None => {
            report.notes.push(
                "no --trusted-checkpoint: a rollback to an older copy, or a tail truncation that also removed the newest checkpoints, cannot be seen".into(),
            );
            None
        }
        Some(Err(e)) => {
            report.findings.push(Finding {
                kind: FindingKind::CheckpointForged,
                chain_id: None,
                file: None,
                seq: None,
                detail: format!("the trusted checkpoint does not verify under the pinned key: {e}"),
            });
            None
        }
        Some(Ok(t)) => Some(t),
    };
    let included = |l: &Listed| match l.hour_ns {
        None => true,
        Some(h) => {
            options.from_ns.is_none_or(|f| h + HOUR_NS > f) && options.to_ns.is_none_or(|t| h < t)
        }
    };
    let limited = options.from_ns.is_some() || options.to_ns.is_some();
    let total: u64 = listed
        .iter()
        .filter(|l| included(l))
        .map(|l| l.meta.as_ref().map_or(0, |m| m.count))
        .sum();
    let mut done = 0u64;
    let window = options.threads.max(1) * 4;

    let mut by_chain: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for l in listed {
        match &l.meta {
            Some(m) => by_chain.entry(m.chain_id.clone()).or_default().push(l),
            None => orphans.push(l),
        }
    }
    let unchained: Vec<&Listed> = orphans.iter().filter(|l| included(l)).collect();
    check_in_order(root, &unchained, options.threads, window, |o| {
        report.segments += 1;
        report.findings.extend(o.findings);
    });
    let mut chain_ids: BTreeSet<String> = by_chain.keys().cloned().collect();
    chain_ids.extend(checkpoints.keys().cloned());
    chain_ids.extend(receipts.keys().cloned());
    if let Some(t) = &trusted {
        chain_ids.insert(chain_of_origin(&t.checkpoint.origin).to_owned());
    }
    let empty = BTreeMap::new();
    for chain in chain_ids {
        let mut segs = by_chain.remove(&chain).unwrap_or_default();
        let cps = checkpoints.get(&chain).unwrap_or(&empty);
        let trusted_here = trusted
            .as_ref()
            .filter(|t| chain_of_origin(&t.checkpoint.origin) == chain);
        let mut summary = ChainSummary {
            chain_id: chain.clone(),
            segments: 0,
            records: 0,
            size: 0,
            checkpoints: cps.len() as u64,
            heads_matched: 0,
            receipts: 0,
            deleted_records: 0,
            newest_checkpoint: cps
                .last_key_value()
                .map(|(s, c)| (*s, c.checkpoint.timestamp)),
        };
        if cps.is_empty() && !segs.is_empty() {
            for l in &segs {
                report.findings.push(finding(
                    FindingKind::SegmentForeign,
                    &chain,
                    Some(&l.file),
                    l.meta.as_ref().map(|m| m.first_seq),
                    format!("the segment belongs to chain {chain}, for which no checkpoint signed by the pinned key exists: it comes from another deployment"),
                ));
            }
            report.chains.push(summary);
            continue;
        }
        // Of two segments with the same seqs, the one whose manifest names another file is the
        // copy: it goes second, so that it is the one reported as replayed.
        segs.sort_by(|a, b| {
            let key = |l: &Listed| {
                l.meta.as_ref().map(|m| {
                    let renamed = l.file.file_name().is_none_or(|n| *n != *m.file);
                    (m.first_seq, m.last_seq, renamed)
                })
            };
            key(a).cmp(&key(b)).then_with(|| a.file.cmp(&b.file))
        });
        let newest = cps.last_key_value().map(|(s, c)| (*s, c));
        let mut walk = Walk {
            chain: &chain,
            receipts: receipts.remove(&chain).unwrap_or_default(),
            crossed: 0,
            crossed_records: 0,
            checkpoints: cps,
            trusted: trusted_here,
            frontier: Some(Frontier::new()),
            proof: None,
            heads_matched: 0,
            unchecked: BTreeSet::new(),
            trusted_matched: None,
            findings: Vec::new(),
        };
        if let (Some(t), Some((n, _))) = (trusted_here, newest)
            && t.checkpoint.size <= n
            && let Ok(b) = ProofBuilder::consistency(t.checkpoint.size, n)
        {
            walk.proof = Some((b, n));
        }
        let mut at = Position {
            expected: 0,
            prev_hash: genesis(&chain),
            prev_file: None,
            unlinked: false,
        };
        let first_in = segs.iter().position(&included);
        if limited
            && let Some(i) = first_in
            && i > 0
        {
            // Start from the metadata of the segment before the range; the signed checkpoints
            // inside the range pin the frontier it supplies.
            if let Some(m) = &segs[i - 1].meta {
                at.expected = m.last_seq + 1;
                at.prev_hash = m.last_hash;
                walk.frontier = Frontier::from_parts(m.tree_size, m.frontier.clone()).ok();
                at.prev_file = Some(segs[i - 1].file.clone());
            }
        }
        let chosen: Vec<&Listed> = segs.iter().filter(|l| included(l)).collect();
        check_in_order(root, &chosen, options.threads, window, |o| {
            summary.segments += 1;
            summary.records += o.rows;
            done += o.rows;
            progress(done, total);
            let damaged = !o.findings.is_empty();
            walk.findings.extend(o.findings);
            let Some(m) = o.meta else { return };
            walk.cross(&mut at, m.first_seq);
            if m.first_seq == at.expected && walk.receipts.remove(&m.first_seq).is_some() {
                report.notes.push(format!(
                    "chain {chain}: {} has a deletion receipt but is still there: retention was interrupted and deletes it on its next run",
                    o.file.display()
                ));
            }
            let Position {
                expected,
                prev_hash,
                prev_file,
                unlinked,
            } = &mut at;
            if m.first_seq < *expected {
                walk.findings.push(finding(
                    FindingKind::SegmentForeign,
                    &chain,
                    Some(&o.file),
                    Some(m.first_seq),
                    format!(
                        "the segment holds seqs {}..={} again, already held by {}: it is a replayed copy",
                        m.first_seq,
                        m.last_seq,
                        prev_file.as_deref().map_or("an earlier segment".into(), |p: &Path| p.display().to_string())
                    ),
                ));
                return;
            }
            if m.first_seq > *expected {
                walk.findings.push(finding(
                    FindingKind::SegmentDeleted,
                    &chain,
                    prev_file.as_deref(),
                    Some(*expected),
                    format!(
                        "seqs {expected}..={} ({} records) are in no segment: a segment was deleted (there is no deletion receipt)",
                        m.first_seq - 1,
                        m.first_seq - *expected
                    ),
                ));
                walk.lose_tree(*expected);
            } else if !*unlinked && m.prev_hash != *prev_hash {
                walk.findings.push(finding(
                    FindingKind::SegmentForeign,
                    &chain,
                    Some(&o.file),
                    Some(m.first_seq),
                    "the segment does not link to the one before it (its previous hash differs): it was swapped in".into(),
                ));
                walk.lose_tree(m.first_seq);
            }
            match &o.leaves {
                Some(leaves) if !damaged => {
                    walk.feed(leaves, &o.file);
                    if let Some(f) = &walk.frontier
                        && f.root() != m.tree_root
                    {
                        walk.findings.push(finding(
                            FindingKind::RecordModified,
                            &chain,
                            Some(&o.file),
                            Some(m.last_seq),
                            "the tree head recorded with the segment differs from the one rebuilt from the records".into(),
                        ));
                    }
                }
                _ => walk.lose_tree(m.first_seq),
            }
            *expected = m.last_seq + 1;
            *prev_hash = m.last_hash;
            *prev_file = Some(o.file.clone());
            *unlinked = false;
        });
        if !limited || options.to_ns.is_none() {
            // Segments deleted after the last one still there.
            walk.cross(&mut at, u64::MAX);
        }
        walk.compare_here(at.prev_file.as_deref());
        if !limited {
            for (first, (r, file)) in std::mem::take(&mut walk.receipts) {
                walk.findings.push(finding(
                    FindingKind::ReceiptForged,
                    &chain,
                    Some(&file),
                    Some(first),
                    format!(
                        "the receipt claims seqs {first}..={} were deleted, but they do not start where a segment of this chain starts",
                        r.last_seq
                    ),
                ));
            }
        }
        let Position {
            expected,
            prev_file,
            ..
        } = at;
        summary.size = expected;
        summary.heads_matched = walk.heads_matched;
        summary.receipts = walk.crossed;
        summary.deleted_records = walk.crossed_records;
        let mut findings = std::mem::take(&mut walk.findings);
        if let Some((n, c)) = newest
            && n > expected
            && options.to_ns.is_none()
        {
            findings.push(finding(
                FindingKind::TailTruncated,
                &chain,
                prev_file.as_deref(),
                Some(expected),
                format!(
                    "the newest checkpoint covers {n} records but the store holds {expected}: records {expected}..{n} were removed{}",
                    c.checkpoint.timestamp.map_or(String::new(), |t| format!(" (checkpoint signed at Unix time {t})"))
                ),
            ));
        }
        if let Some(t) = trusted_here {
            let ts = t.checkpoint.size;
            if ts > expected {
                if newest.is_none_or(|(n, _)| n < ts) && options.to_ns.is_none() {
                    findings.push(finding(
                        FindingKind::Rollback,
                        &chain,
                        None,
                        Some(expected),
                        format!(
                            "the trusted checkpoint covers {ts} records but the store, and its own checkpoints, stop at {expected}: the store is an older copy"
                        ),
                    ));
                }
            } else if walk.trusted_matched == Some(false) {
                findings.push(finding(
                    FindingKind::Rollback,
                    &chain,
                    None,
                    Some(ts),
                    format!("the store's tree at size {ts} differs from the trusted checkpoint: its history was replaced"),
                ));
            } else if let Some((builder, n)) = walk.proof.take() {
                let newest_root = newest.map(|(_, c)| c.checkpoint.root).unwrap_or_default();
                let checked =
                    walk.frontier.is_some() || walk.unchecked.range(..=n).next().is_none();
                match builder.finish() {
                    Ok(proof) if checked => {
                        if let Err(e) = merkle::verify_consistency(ts, n, &t.checkpoint.root, &newest_root, &proof) {
                            findings.push(finding(
                                FindingKind::Rollback,
                                &chain,
                                None,
                                Some(ts),
                                format!("the store's newest checkpoint (size {n}) is not consistent with the trusted checkpoint (size {ts}): {e}"),
                            ));
                        } else {
                            report.notes.push(format!(
                                "chain {chain}: consistency proof from the trusted checkpoint (size {ts}) to the newest (size {n}) verified"
                            ));
                        }
                    }
                    _ => report.notes.push(format!(
                        "chain {chain}: the consistency proof from the trusted checkpoint could not be built because of earlier damage"
                    )),
                }
            }
        }
        if !walk.unchecked.is_empty() {
            report.notes.push(format!(
                "chain {chain}: {} checkpoint heads could not be recomputed because of earlier damage",
                walk.unchecked.len()
            ));
        }
        report.segments += summary.segments;
        report.records += summary.records;
        report.findings.extend(findings);
        report.chains.push(summary);
    }
}
