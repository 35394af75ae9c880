//! Retention enforcement: which sealed segments have outlived their class and are held by no
//! legal hold ([`plan`]), and their deletion, each preceded by a signed receipt ([`apply`]).
//! Nothing else in Calltrail deletes a sealed segment.
//!
//! A segment expires `keep_days` after the end of its hour partition (every record in it
//! started in that hour), where `keep_days` is the larger of what its footer promised at write
//! time and what the policy now gives its class: a policy may lengthen retention, never
//! shorten what was promised. A segment without a class (written before classes existed) gets
//! the policy's longest keep. Audit events get the longest keep too, and the segment placing a
//! hold in force is held by it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chain::segment::SegmentMeta;
use crate::files::sync_dir;
use crate::holds::Holds;
use crate::merkle::{self, Hash};
use crate::note::SigningKey;
use crate::policy::{AUDIT_CLASS, RetentionConfig, RetentionPolicy};
use crate::receipt::{self, DeletionReceipt};
use crate::tree::range_levels;
use crate::verify::{Listed, check_segment, discover_segments};
use crate::{Error, Result, io_err};

const HOUR_S: i64 = 3600;
const DAY_S: i64 = 86_400;

/// A sealed segment and its retention.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRetention {
    /// The Parquet file, relative to the data directory.
    pub file: PathBuf,
    /// Its table.
    pub table: String,
    /// Its chain.
    pub chain_id: String,
    /// Its first and last seq.
    pub seqs: (u64, u64),
    /// Records in it.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Its retention class.
    pub class: String,
    /// Days it is kept.
    pub keep_days: u64,
    /// Why those days: the rule, and which of footer or policy set them.
    pub rule: String,
    /// Start of its hour partition (Unix seconds).
    pub partition_start: i64,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
    /// The holds in force that preserve it.
    pub held_by: Vec<String>,
}

impl SegmentRetention {
    /// Expired at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// Retention status of one class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassStatus {
    /// The class.
    pub class: String,
    /// Days kept (the largest of its segments').
    pub keep_days: u64,
    /// Segments kept.
    pub segments: u64,
    /// Records kept.
    pub records: u64,
    /// Bytes kept.
    pub bytes: u64,
    /// Start of the oldest hour with a record kept (Unix seconds).
    pub oldest: Option<i64>,
    /// When the next of its segments expires (Unix seconds), held or not.
    pub next_expiry: Option<i64>,
    /// Segments kept past expiry by a hold.
    pub held: u64,
}

/// What retention would do now.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The time the plan is for (Unix seconds).
    pub now: i64,
    /// Expired, unheld segments: to delete, in chain and seq order.
    pub delete: Vec<SegmentRetention>,
    /// Expired segments a hold keeps.
    pub held: Vec<SegmentRetention>,
    /// What is kept, per class (after the deletions).
    pub classes: Vec<ClassStatus>,
    /// Files retention leaves alone and why (no chain metadata, no hour partition).
    pub skipped: Vec<String>,
}

/// A segment's retention class and expiry under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Its retention class (`unclassified` when its metadata names none).
    pub class: String,
    /// Days it is kept: the larger of what its footer promised and what the policy gives.
    pub keep_days: u64,
    /// Why those days: the rule, and which of footer or policy set them.
    pub rule: String,
    /// When it expires (Unix seconds): `keep_days` after the end of its hour partition.
    pub expires_at: i64,
}

/// When the segment described by `meta`, in the hour partition starting at `start` (Unix
/// seconds), expires under `compiled`. The one place that computes a segment's expiry: retention
/// deletes at it, and a bucket's Object Lock holds the pushed copy until it.
pub fn segment_expiry(meta: &SegmentMeta, start: i64, compiled: &RetentionPolicy) -> Expiry {
    let longest = compiled.audit_class().keep_days;
    let recorded = meta.keep_days;
    let (class, keep_days, rule) = match &meta.retention_class {
        Some(c) => {
            let now_days = compiled.keep_days_of(c);
            let keep = recorded
                .into_iter()
                .chain(now_days)
                .max()
                .unwrap_or(longest);
            let why = match (recorded, now_days) {
                (Some(r), Some(p)) if p > r => {
                    format!("{c} (policy now keeps {p} days, written with {r})")
                }
                (Some(_), _) => c.clone(),
                (None, Some(_)) => format!("{c} (policy)"),
                (None, None) => format!("{c} (unknown class: the longest keep)"),
            };
            (c.clone(), keep, why)
        }
        None => (
            "unclassified".to_owned(),
            longest,
            "unclassified (written before retention classes: the longest keep)".to_owned(),
        ),
    };
    let keep_s = i64::try_from(keep_days).unwrap_or(i64::MAX / DAY_S) * DAY_S;
    let expires_at = start.saturating_add(HOUR_S).saturating_add(keep_s);
    Expiry {
        class,
        keep_days,
        rule,
        expires_at,
    }
}

/// Start of the hour partition of `l` (Unix seconds), when its path has one.
pub fn hour_start(l: &Listed) -> Option<i64> {
    l.hour_ns.map(|ns| ns.div_euclid(1_000_000_000))
}

/// Works out what retention deletes at `now` (Unix seconds) under `policy`, sparing what
/// `holds` preserve. Reads only segment metadata, and a segment's rows only when a hold in force
/// names a tenant, principal or server and overlaps its hour.
pub fn plan(root: &Path, policy: &RetentionConfig, holds: &Holds, now: i64) -> Result<Plan> {
    let compiled = policy.compile();
    let mut out = Plan {
        now,
        delete: Vec::new(),
        held: Vec::new(),
        classes: Vec::new(),
        skipped: Vec::new(),
    };
    let mut classes: BTreeMap<String, ClassStatus> = BTreeMap::new();
    for l in discover_segments(root)? {
        let (Some(meta), Some(start)) = (&l.meta, hour_start(&l)) else {
            out.skipped.push(format!(
                "{}: no chain metadata or no hour partition; retention never deletes it",
                l.file.display()
            ));
            continue;
        };
        let Expiry {
            class,
            keep_days,
            rule,
            expires_at,
        } = segment_expiry(meta, start, &compiled);
        let bytes = std::fs::metadata(root.join(&l.file)).map_or(0, |m| m.len());
        let mut s = SegmentRetention {
            file: l.file.clone(),
            table: meta.table.clone(),
            chain_id: meta.chain_id.clone(),
            seqs: (meta.first_seq, meta.last_seq),
            records: meta.count,
            bytes,
            class: class.clone(),
            keep_days,
            rule,
            partition_start: start,
            expires_at,
            held_by: Vec::new(),
        };
        let expired = s.expired(now);
        if expired {
            s.held_by = if class == AUDIT_CLASS {
                holds.placed_in(&meta.chain_id, meta.first_seq, meta.last_seq)
            } else {
                holds.holding(&root.join(&l.file), &meta.table, start * 1_000_000_000)?
            };
        }
        let c = classes.entry(class.clone()).or_insert_with(|| ClassStatus {
            class,
            ..ClassStatus::default()
        });
        if expired && s.held_by.is_empty() {
            out.delete.push(s);
            continue;
        }
        c.keep_days = c.keep_days.max(keep_days);
        c.segments += 1;
        c.records += s.records;
        c.bytes += s.bytes;
        c.oldest = Some(c.oldest.map_or(start, |o| o.min(start)));
        c.next_expiry = Some(c.next_expiry.map_or(expires_at, |e| e.min(expires_at)));
        if expired {
            c.held += 1;
            out.held.push(s);
        }
    }
    out.delete
        .sort_by(|a, b| (&a.chain_id, a.seqs).cmp(&(&b.chain_id, b.seqs)));
    out.classes = classes.into_values().collect();
    Ok(out)
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Segments deleted.
    pub deleted: u64,
    /// Records they held.
    pub records: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Receipts written, relative to the data directory.
    pub receipts: Vec<PathBuf>,
    /// Segments not deleted, and why (a failed check keeps the evidence).
    pub refused: Vec<String>,
}

/// Deletes the segments `plan` names, each after writing its signed receipt, at `now` (Unix
/// seconds). A segment whose records no longer match its metadata is not deleted: it is
/// evidence, and `verify` will report it. `progress` gets (segments done, total).
pub fn apply(
    root: &Path,
    plan: &Plan,
    key: &SigningKey,
    now: i64,
    progress: &dyn Fn(u64, u64),
) -> Result<ApplyReport> {
    let _lock = lock(root)?;
    let mut report = ApplyReport::default();
    let total = plan.delete.len() as u64;
    for (i, s) in plan.delete.iter().enumerate() {
        match delete_one(root, s, key, now) {
            Ok(path) => {
                report.deleted += 1;
                report.records += s.records;
                report.bytes += s.bytes;
                report.receipts.push(path);
            }
            Err(Error::Integrity(why)) => report.refused.push(why),
            Err(e) => return Err(e),
        }
        progress(i as u64 + 1, total);
    }
    Ok(report)
}

/// Only one retention run at a time (the CLI's and the server's schedule).
fn lock(root: &Path) -> Result<std::fs::File> {
    let dir = root.join("chain");
    crate::files::ensure_dir(&dir)?;
    let path = dir.join("retention.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    f.lock().map_err(io_err("lock", &path))?;
    Ok(f)
}

fn delete_one(root: &Path, s: &SegmentRetention, key: &SigningKey, now: i64) -> Result<PathBuf> {
    let path = root.join(&s.file);
    let manifest_file = crate::chain::segment::manifest_path(&path);
    let manifest = std::fs::read(&manifest_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<SegmentMeta>(&b).ok());
    let footer = crate::chain::segment::read_footer(&path)?;
    let listed = Listed {
        file: s.file.clone(),
        hour_ns: Some(s.partition_start.saturating_mul(1_000_000_000)),
        meta: manifest.clone().or_else(|| footer.clone()),
        manifest,
    };
    // Only a segment that passes every check of `verify` is deleted: one that does not is
    // evidence of tampering, and its receipt would vouch for records nobody can see.
    let outcome = check_segment(root, &listed);
    let refuse = |why: String| {
        Err(Error::Integrity(format!(
            "{}: {why}; kept as evidence (run `calltrail verify`)",
            s.file.display()
        )))
    };
    let (Some(meta), Some(leaves)) = (footer, outcome.leaves) else {
        return refuse("its records or chain metadata do not check out".into());
    };
    if let Some(f) = outcome.findings.first() {
        return refuse(f.to_string());
    }
    if meta.chain_id != s.chain_id || (meta.first_seq, meta.last_seq) != s.seqs {
        return refuse(format!(
            "it now holds chain {} seqs {}..={}, not what the plan found",
            meta.chain_id, meta.first_seq, meta.last_seq
        ));
    }
    let receipt = DeletionReceipt {
        chain_id: meta.chain_id.clone(),
        table: meta.table.clone(),
        file: s.file.to_string_lossy().into_owned(),
        first_seq: meta.first_seq,
        last_seq: meta.last_seq,
        count: meta.count,
        prev_hash: meta.prev_hash,
        last_hash: meta.last_hash,
        segment_root: meta.segment_root,
        tree_size: meta.tree_size,
        tree_root: meta.tree_root,
        frontier: meta.frontier.clone(),
        range: compact_range(&leaves, meta.first_seq),
        retention_class: s.class.clone(),
        keep_days: s.keep_days,
        rule: s.rule.clone(),
        reason: format!(
            "retention class {} keeps records {} days; the segment's records started in the hour from {}, so it expired at {}",
            s.class,
            s.keep_days,
            rfc3339(s.partition_start),
            rfc3339(s.expires_at)
        ),
        partition_start: s.partition_start,
        expired_at: s.expires_at,
        deleted_at: now,
    };
    let note = receipt
        .sign(key)
        .map_err(|e| Error::Integrity(format!("signing a receipt: {e}")))?;
    let written = receipt::write(root, &receipt, &note)?;
    let manifest = crate::chain::segment::manifest_path(&path);
    for p in [&manifest, &path] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete", p)(e)),
        }
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
        remove_empty_partitions(root, dir);
    }
    tracing::info!(file = %s.file.display(), class = %s.class, records = s.records,
        receipt = %written.display(), "Retention deleted an expired segment.");
    Ok(written.strip_prefix(root).unwrap_or(&written).to_owned())
}

/// Removes the hour directory, then the date directory, when deleting left them empty.
fn remove_empty_partitions(root: &Path, hour_dir: &Path) {
    let mut dir = Some(hour_dir);
    for _ in 0..2 {
        let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) else {
            return;
        };
        if std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
        if let Some(p) = dir {
            let _ = sync_dir(p);
        }
    }
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

/// The compact range of the leaves of seqs `first..first + leaves.len()`.
fn compact_range(leaves: &[Hash], first: u64) -> Vec<Hash> {
    let mut pos = 0usize;
    range_levels(first, first + leaves.len() as u64)
        .into_iter()
        .map(|level| {
            let end = pos + (1usize << level);
            let h = merkle::root(&leaves[pos..end]);
            pos = end;
            h
        })
        .collect()
}

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;
