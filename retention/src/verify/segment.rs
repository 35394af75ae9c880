//! Checks one segment on its own: every row's leaf hash against its canonical encoding, the
//! seqs against the segment's range, the chained hashes row to row, and the segment root.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use calltrail_schemas::canonical::RowEncoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::finding::{Finding, FindingKind};
use crate::chain::link::chain_hash;
use crate::chain::segment::{SegmentMeta, footer_pairs};
use crate::discover::Listed;
use crate::merkle::{self, Hash};

/// Findings listed per kind and segment before the rest are summarised.
const MAX_LISTED: usize = 20;

/// Makes a finding about this segment: its kind, the chain metadata, the seq and the detail.
type MakeFinding<'a> =
    dyn Fn(FindingKind, Option<&SegmentMeta>, Option<u64>, String) -> Finding + 'a;

/// What checking one segment established.
#[derive(Debug)]
pub(crate) struct SegmentOutcome {
    /// The file, relative to the store root.
    pub file: PathBuf,
    /// Its chain metadata (manifest, else footer); `None` when it has neither.
    pub meta: Option<SegmentMeta>,
    /// Problems found inside the segment.
    pub findings: Vec<Finding>,
    /// The stored leaf hashes in seq order, when every seq of the range is present once and
    /// the chained hashes link: what the chain's tree is built from.
    pub leaves: Option<Vec<Hash>>,
    /// Rows read.
    pub rows: u64,
}

struct Row {
    position: usize,
    seq: Option<i64>,
    leaf: Option<Hash>,
    chained: Option<Hash>,
    computed: Hash,
}

fn hash_at(col: Option<&arrow::array::FixedSizeBinaryArray>, i: usize) -> Option<Hash> {
    let col = col?;
    if col.is_null(i) {
        return None;
    }
    col.value(i).try_into().ok()
}

/// Reads the rows and the footer pairs of a Parquet file.
fn read(
    path: &Path,
) -> Result<(Vec<RecordBatch>, std::collections::HashMap<String, String>), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let kv = footer_pairs(builder.metadata().file_metadata());
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| e.to_string())?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((batches, kv))
}

/// Checks the listed segment under `root` (its manifest was read when it was listed).
pub(crate) fn check(root: &Path, listed: &Listed) -> SegmentOutcome {
    let file = listed.file.as_path();
    let path = root.join(file);
    let manifest = listed.manifest.clone();
    let mut out = SegmentOutcome {
        file: file.to_owned(),
        meta: manifest.clone(),
        findings: Vec::new(),
        leaves: None,
        rows: 0,
    };
    let finding = |kind, chain: Option<&SegmentMeta>, seq: Option<u64>, detail: String| Finding {
        kind,
        chain_id: chain.map(|m| m.chain_id.clone()),
        file: Some(file.to_owned()),
        seq,
        detail,
    };
    let (batches, kv) = match read(&path) {
        Ok(x) => x,
        Err(e) => {
            out.findings.push(finding(
                FindingKind::SegmentTruncated,
                manifest.as_ref(),
                manifest.as_ref().map(|m| m.first_seq),
                format!("the segment cannot be read as Parquet (cut short or damaged): {e}"),
            ));
            return out;
        }
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let footer = SegmentMeta::from_footer(&kv, &name).ok().flatten();
    let meta = match (manifest, footer) {
        (Some(m), Some(f)) => {
            if m.chain_id != f.chain_id {
                out.findings.push(finding(
                    FindingKind::SegmentForeign,
                    Some(&f),
                    Some(f.first_seq),
                    format!(
                        "the footer names chain {} but the manifest chain {}",
                        f.chain_id, m.chain_id
                    ),
                ));
            }
            m
        }
        (Some(m), None) => m,
        (None, Some(f)) => f,
        (None, None) => {
            out.findings.push(finding(
                FindingKind::SegmentForeign,
                None,
                None,
                "a Parquet file with no chain metadata in its footer and no manifest".into(),
            ));
            return out;
        }
    };
    out.meta = Some(meta.clone());
    let m = Some(&meta);

    let mut rows: Vec<Row> = Vec::new();
    let mut scratch = Vec::with_capacity(2048);
    for batch in &batches {
        let encoder = match RowEncoder::new(&meta.table, batch) {
            Ok(e) => e,
            Err(e) => {
                out.findings.push(finding(
                    FindingKind::RecordModified,
                    m,
                    Some(meta.first_seq),
                    format!("the rows no longer have the record's column types: {e}"),
                ));
                return out;
            }
        };
        let seq = batch
            .column_by_name("seq")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        let leaf = batch
            .column_by_name("leaf_hash")
            .and_then(|c| c.as_fixed_size_binary_opt());
        let chained = batch
            .column_by_name("chain_hash")
            .and_then(|c| c.as_fixed_size_binary_opt());
        for i in 0..batch.num_rows() {
            rows.push(Row {
                position: rows.len(),
                seq: seq.and_then(|s| (!s.is_null(i)).then(|| s.value(i))),
                leaf: hash_at(leaf, i),
                chained: hash_at(chained, i),
                computed: encoder.leaf_hash(i, &mut scratch),
            });
        }
    }
    out.rows = rows.len() as u64;
    analyse(&meta, rows, &mut out, &finding);
    out
}

/// Classifies what happened to the rows of a segment whose metadata is `meta`.
fn analyse(
    meta: &SegmentMeta,
    rows: Vec<Row>,
    out: &mut SegmentOutcome,
    finding: &MakeFinding<'_>,
) {
    let m = Some(meta);
    // Lists a finding unless `count` findings of its kind were listed already.
    let report =
        |out: &mut SegmentOutcome, kind, seq: Option<u64>, detail: String, count: &mut usize| {
            *count += 1;
            if *count <= MAX_LISTED {
                out.findings.push(finding(kind, m, seq, detail));
            }
        };
    let (first, last) = (meta.first_seq, meta.last_seq);
    // The common case, every seq once and in order, needs no grouping.
    let in_order = rows.len() as u64 == meta.count
        && rows
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq.and_then(|s| u64::try_from(s).ok()) == Some(first + i as u64));
    if in_order {
        let genuine: Vec<(u64, Row)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| (first + i as u64, r))
            .collect();
        finish(meta, &genuine, true, [0; 3], out, finding);
        return;
    }
    // Rows by seq; a row whose seq is missing or outside the range is not the chain's.
    let mut by_seq: BTreeMap<u64, Vec<Row>> = BTreeMap::new();
    let mut inserted = 0usize;
    for row in rows {
        match row
            .seq
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| (first..=last).contains(s))
        {
            Some(s) => by_seq.entry(s).or_default().push(row),
            None => {
                let detail = match row.seq {
                    Some(s) => format!(
                        "row {} has seq {s}, outside the segment's range {first}..={last}",
                        row.position
                    ),
                    None => format!("row {} has no seq", row.position),
                };
                report(
                    out,
                    FindingKind::RecordInserted,
                    row.seq.map(|s| s as u64),
                    detail,
                    &mut inserted,
                );
            }
        }
    }
    // Where a seq repeats, the genuine row is the one that fits its place: its chained hash
    // links to its predecessor, its content matches its leaf hash, and the next seq's chained
    // hash links to it (for the segment's last seq: it is the recorded last hash). A copy of a
    // row with its content altered fails the second test, one whose hashes were recomputed the
    // third. Ties go to the row stored first; the others were inserted.
    let mut genuine: Vec<(u64, Row)> = Vec::with_capacity(by_seq.len());
    let mut prev_chained: Option<Hash> = Some(meta.prev_hash);
    let mut by_seq = by_seq.into_iter().peekable();
    while let Some((seq, mut candidates)) = by_seq.next() {
        let mut pick = 0;
        if candidates.len() > 1 {
            let next = by_seq
                .peek()
                .filter(|(s, _)| *s == seq + 1)
                .map(|(_, rows)| rows);
            let fits = |r: &Row| {
                let links = matches!((prev_chained, r.leaf, r.chained),
                    (Some(p), Some(l), Some(c)) if chain_hash(&p, &l) == c);
                let intact = r.leaf == Some(r.computed);
                let followed = match (r.chained, next) {
                    (Some(c), Some(rows)) => rows.iter().any(|n| {
                        matches!((n.leaf, n.chained), (Some(l), Some(nc)) if chain_hash(&c, &l) == nc)
                    }),
                    (Some(c), None) => seq == last && c == meta.last_hash,
                    (None, _) => false,
                };
                u8::from(links) + u8::from(intact) + u8::from(followed)
            };
            let mut best = fits(&candidates[0]);
            for (i, c) in candidates.iter().enumerate().skip(1) {
                let score = fits(c);
                if score > best {
                    (pick, best) = (i, score);
                }
            }
        }
        let row = candidates.remove(pick);
        for extra in candidates {
            report(
                out,
                FindingKind::RecordInserted,
                Some(seq),
                format!("row {} repeats seq {seq}", extra.position),
                &mut inserted,
            );
        }
        prev_chained = row.chained;
        genuine.push((seq, row));
    }

    let present = genuine.len() as u64;
    let max_present = genuine.last().map(|(s, _)| *s);
    let mut missing_runs: Vec<(u64, u64)> = Vec::new();
    let mut expect = first;
    for (s, _) in &genuine {
        if *s > expect {
            missing_runs.push((expect, s - 1));
        }
        expect = s + 1;
    }
    let tail_cut = (expect <= last).then_some((expect, last));
    let mut deleted = 0usize;
    for (a, b) in &missing_runs {
        report(
            out,
            FindingKind::RecordDeleted,
            Some(*a),
            format!(
                "seqs {a}..={b} ({} records) are missing from the segment",
                b - a + 1
            ),
            &mut deleted,
        );
    }
    if let Some((a, b)) = tail_cut {
        let detail = match max_present {
            Some(p) => format!(
                "the segment ends at seq {p}; seqs {a}..={b} ({} records) are gone",
                b - a + 1
            ),
            None => format!("the segment holds none of its {} records", b - a + 1),
        };
        out.findings
            .push(finding(FindingKind::SegmentTruncated, m, Some(a), detail));
    }

    let mut reordered = 0usize;
    let mut last_pos: Option<usize> = None;
    for (s, r) in &genuine {
        if last_pos.is_some_and(|p| r.position < p) {
            report(
                out,
                FindingKind::RecordsReordered,
                Some(*s),
                format!(
                    "seq {s} is stored at row {}, before an earlier seq",
                    r.position
                ),
                &mut reordered,
            );
        }
        last_pos = Some(last_pos.map_or(r.position, |p| p.max(r.position)));
    }

    let complete = missing_runs.is_empty() && tail_cut.is_none() && present == meta.count;
    finish(
        meta,
        &genuine,
        complete,
        [inserted, deleted, reordered],
        out,
        finding,
    );
}

/// Checks the rows that hold the segment's seqs (`genuine`, in seq order): content against leaf
/// hashes, then, when every seq is present (`complete`), the links, last hash and root.
/// `counts` are the inserted, deleted and reordered rows found so far, for the summary lines.
fn finish(
    meta: &SegmentMeta,
    genuine: &[(u64, Row)],
    complete: bool,
    counts: [usize; 3],
    out: &mut SegmentOutcome,
    finding: &MakeFinding<'_>,
) {
    let m = Some(meta);
    let first = meta.first_seq;
    let [inserted, deleted, reordered] = counts;
    let report =
        |out: &mut SegmentOutcome, kind, seq: Option<u64>, detail: String, count: &mut usize| {
            *count += 1;
            if *count <= MAX_LISTED {
                out.findings.push(finding(kind, m, seq, detail));
            }
        };
    let mut modified = 0usize;
    for (s, r) in genuine {
        if r.leaf != Some(r.computed) {
            report(
                out,
                FindingKind::RecordModified,
                Some(*s),
                format!(
                    "the record at seq {s} does not match its leaf hash: its content was changed"
                ),
                &mut modified,
            );
        }
    }
    for (n, listed) in [
        (inserted, "inserted"),
        (deleted, "deleted"),
        (reordered, "reordered"),
        (modified, "modified"),
    ] {
        if n > MAX_LISTED {
            out.findings.push(finding(
                match listed {
                    "inserted" => FindingKind::RecordInserted,
                    "deleted" => FindingKind::RecordDeleted,
                    "reordered" => FindingKind::RecordsReordered,
                    _ => FindingKind::RecordModified,
                },
                m,
                None,
                format!(
                    "{} more {listed} records in this segment are not listed",
                    n - MAX_LISTED
                ),
            ));
        }
    }
    if !complete {
        return;
    }

    // Complete: the stored hashes must link and lead to the segment's root and last hash.
    let mut prev = meta.prev_hash;
    let mut leaves = Vec::with_capacity(genuine.len());
    for (s, r) in genuine {
        let (Some(leaf), Some(chained)) = (r.leaf, r.chained) else {
            out.findings.push(finding(
                FindingKind::RecordModified,
                m,
                Some(*s),
                format!("the chain columns of seq {s} are empty"),
            ));
            return;
        };
        if chain_hash(&prev, &leaf) != chained {
            if out.findings.is_empty() {
                out.findings.push(finding(
                    FindingKind::RecordModified,
                    m,
                    Some(*s),
                    format!("the chained hash of seq {s} does not link to seq {}: stored hashes were rewritten", s.wrapping_sub(1)),
                ));
            }
            return;
        }
        prev = chained;
        leaves.push(leaf);
    }
    if (prev != meta.last_hash || merkle::root(&leaves) != meta.segment_root)
        && out.findings.is_empty()
    {
        out.findings.push(finding(
            FindingKind::RecordModified,
            m,
            Some(first),
            "the segment's rows do not lead to the last hash and root its metadata records".into(),
        ));
        return;
    }
    out.leaves = Some(leaves);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::link::{chain_hashes, genesis};

    /// A segment of `n` records (seqs 0..n) whose "content" is the byte `i`; its metadata and
    /// rows as stored.
    fn segment(n: u8) -> (SegmentMeta, Vec<Row>) {
        let leaves: Vec<Hash> = (0..n).map(|i| merkle::leaf_hash(&[i])).collect();
        let prev = genesis("c");
        let chained = chain_hashes(&prev, &leaves);
        let rows = (0..usize::from(n))
            .map(|i| Row {
                position: i,
                seq: Some(i as i64),
                leaf: Some(leaves[i]),
                chained: Some(chained[i]),
                computed: leaves[i],
            })
            .collect();
        let meta = SegmentMeta {
            chain_id: "c".into(),
            table: "tool_calls".into(),
            file: "s.parquet".into(),
            first_seq: 0,
            last_seq: u64::from(n) - 1,
            count: u64::from(n),
            prev_hash: prev,
            last_hash: chained[usize::from(n) - 1],
            segment_root: merkle::root(&leaves),
            tree_size: u64::from(n),
            tree_root: merkle::root(&leaves),
            frontier: Vec::new(),
            canonical_version: 1,
            retention_class: None,
            keep_days: None,
        };
        (meta, rows)
    }

    /// Stores `fake` at row `at`, moving the later rows down, and returns the findings.
    fn with_row_inserted(
        mut rows: Vec<Row>,
        meta: &SegmentMeta,
        at: usize,
        fake: Row,
    ) -> Vec<Finding> {
        rows.insert(at, fake);
        for (i, r) in rows.iter_mut().enumerate() {
            r.position = i;
        }
        let mut out = SegmentOutcome {
            file: "s.parquet".into(),
            meta: Some(meta.clone()),
            findings: Vec::new(),
            leaves: None,
            rows: rows.len() as u64,
        };
        let finding = |kind, _: Option<&SegmentMeta>, seq, detail| Finding {
            kind,
            chain_id: None,
            file: None,
            seq,
            detail,
        };
        analyse(meta, rows, &mut out, &finding);
        out.findings
    }

    fn only_inserted_row(findings: &[Finding], seq: u64, row: usize) {
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let f = &findings[0];
        assert_eq!(f.kind, FindingKind::RecordInserted, "{f:#?}");
        assert_eq!(f.seq, Some(seq), "{f:#?}");
        assert!(f.detail.starts_with(&format!("row {row} ")), "{f:#?}");
    }

    #[test]
    fn a_copy_with_altered_content_stored_before_the_genuine_row_is_the_inserted_one() {
        for seq in [0u8, 3, 7] {
            let (meta, rows) = segment(8);
            let i = usize::from(seq);
            // The stored hashes copied, the content not what they cover.
            let fake = Row {
                computed: merkle::leaf_hash(b"altered"),
                ..rows[i]
            };
            let findings = with_row_inserted(rows, &meta, i, fake);
            only_inserted_row(&findings, u64::from(seq), i);
        }
    }

    #[test]
    fn a_fabricated_row_with_recomputed_hashes_stored_first_is_the_inserted_one() {
        for seq in [0u8, 3, 7] {
            let (meta, rows) = segment(8);
            let i = usize::from(seq);
            let prev = if i == 0 {
                meta.prev_hash
            } else {
                rows[i - 1].chained.unwrap()
            };
            let leaf = merkle::leaf_hash(b"fabricated");
            let fake = Row {
                position: 0,
                seq: Some(i as i64),
                leaf: Some(leaf),
                chained: Some(chain_hash(&prev, &leaf)),
                computed: leaf,
            };
            let findings = with_row_inserted(rows, &meta, i, fake);
            only_inserted_row(&findings, u64::from(seq), i);
        }
    }
}
