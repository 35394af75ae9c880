//! A property test over random logs and random attacks: for each, `verify` must report exactly
//! the attack's class, and an untouched log must verify clean.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::compute::take_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::*;
use crate::chain::checkpoint_log::checkpoints_dir;
use crate::chain::head::Head;
use crate::chain::segment::manifest_path;
use crate::checkpoint::SignedCheckpoint;
use crate::note::SigningKey;
use crate::test_support::{Rng, store};

fn options(key: &SigningKey, trusted: Option<String>) -> VerifyOptions {
    VerifyOptions {
        pubkey: key.verifier(),
        trusted,
        from_ns: None,
        to_ns: None,
        threads: 2,
    }
}

fn kinds(root: &Path, key: &SigningKey, trusted: Option<String>) -> BTreeSet<FindingKind> {
    let report = verify(root, &options(key, trusted), &|_, _| {}).unwrap();
    report.findings.iter().map(|f| f.kind).collect()
}

fn read(path: &Path) -> (RecordBatch, Vec<KeyValue>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    (
        arrow::compute::concat_batches(&schema, &batches).unwrap(),
        kv,
    )
}

fn write(path: &Path, batch: &RecordBatch, kv: Vec<KeyValue>) {
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .build();
    // The sealed file is read-only: the attacker replaces it rather than writing into it.
    let _ = std::fs::remove_file(path);
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Rewrites `path` keeping the rows at `rows`, in that order.
fn keep(path: &Path, rows: &[u32]) {
    let (batch, kv) = read(path);
    let taken = take_record_batch(&batch, &UInt32Array::from(rows.to_vec())).unwrap();
    write(path, &taken, kv);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn rows_in(path: &Path) -> u32 {
    read(path).0.num_rows() as u32
}

fn newest_note(root: &Path) -> String {
    let chain = Head::read(root).unwrap().unwrap().state.chain_id;
    crate::chain::checkpoint_log::read_notes(&checkpoints_dir(root, &chain))
        .unwrap()
        .pop()
        .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Attack {
    Modify,
    DeleteRecord,
    Insert,
    Reorder,
    DeleteSegment,
    TruncateSegment,
    DropLastRows,
    TruncateTail,
    Rollback,
    ForgeCheckpoint,
    Foreign,
    Replay,
}

const ATTACKS: [Attack; 12] = [
    Attack::Modify,
    Attack::DeleteRecord,
    Attack::Insert,
    Attack::Reorder,
    Attack::DeleteSegment,
    Attack::TruncateSegment,
    Attack::DropLastRows,
    Attack::TruncateTail,
    Attack::Rollback,
    Attack::ForgeCheckpoint,
    Attack::Foreign,
    Attack::Replay,
];

/// Applies `attack` to the store at `root` (segments `files`); returns the class verify must
/// report and the trusted checkpoint to verify against, or `None` when the log is too small for
/// this attack.
fn apply(
    attack: Attack,
    rng: &mut Rng,
    root: &Path,
    files: &[PathBuf],
    sizes: &[usize],
) -> Option<(FindingKind, Option<String>)> {
    let pick = |rng: &mut Rng, min_rows: usize| {
        let fit: Vec<usize> = (0..files.len()).filter(|&i| sizes[i] >= min_rows).collect();
        (!fit.is_empty()).then(|| fit[rng.below(fit.len())])
    };
    Some(match attack {
        Attack::Modify => {
            let f = &files[pick(rng, 1)?];
            let (batch, kv) = read(f);
            let i = rng.below(batch.num_rows());
            let col = batch.schema().index_of("tool_name").unwrap();
            let values: Vec<Option<String>> = (0..batch.num_rows())
                .map(|r| {
                    Some(if r == i {
                        "delete_everything".into()
                    } else {
                        "get_x".into()
                    })
                })
                .collect();
            let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
            cols[col] = Arc::new(StringArray::from(values));
            write(f, &RecordBatch::try_new(batch.schema(), cols).unwrap(), kv);
            (FindingKind::RecordModified, None)
        }
        Attack::DeleteRecord => {
            let f = &files[pick(rng, 2)?];
            let n = rows_in(f);
            let gone = rng.below(n as usize - 1) as u32;
            keep(f, &(0..n).filter(|&r| r != gone).collect::<Vec<_>>());
            (FindingKind::RecordDeleted, None)
        }
        Attack::Insert => {
            let f = &files[pick(rng, 1)?];
            let n = rows_in(f);
            let dup = rng.below(n as usize) as u32;
            let mut rows: Vec<u32> = (0..n).collect();
            rows.insert(dup as usize + 1, dup);
            keep(f, &rows);
            (FindingKind::RecordInserted, None)
        }
        Attack::Reorder => {
            let f = &files[pick(rng, 2)?];
            let n = rows_in(f);
            let a = rng.below(n as usize - 1) as u32;
            let mut rows: Vec<u32> = (0..n).collect();
            rows.swap(a as usize, a as usize + 1);
            keep(f, &rows);
            (FindingKind::RecordsReordered, None)
        }
        Attack::DeleteSegment => {
            if files.len() < 2 {
                return None;
            }
            let f = &files[rng.below(files.len() - 1)];
            std::fs::remove_file(f).unwrap();
            std::fs::remove_file(manifest_path(f)).unwrap();
            (FindingKind::SegmentDeleted, None)
        }
        Attack::TruncateSegment => {
            let f = &files[rng.below(files.len())];
            let len = std::fs::metadata(f).unwrap().len();
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
            (FindingKind::SegmentTruncated, None)
        }
        Attack::DropLastRows => {
            let f = &files[pick(rng, 2)?];
            let n = rows_in(f);
            let cut = 1 + rng.below(n as usize - 1) as u32;
            keep(f, &(0..n - cut).collect::<Vec<_>>());
            (FindingKind::SegmentTruncated, None)
        }
        Attack::TruncateTail => {
            let drop = 1 + rng.below(files.len());
            for f in &files[files.len() - drop..] {
                std::fs::remove_file(f).unwrap();
                std::fs::remove_file(manifest_path(f)).unwrap();
            }
            (FindingKind::TailTruncated, None)
        }
        Attack::Rollback => unreachable!("built by the caller: it needs the log's history"),
        Attack::ForgeCheckpoint => {
            let chain = Head::read(root).unwrap().unwrap().state.chain_id;
            let dir = checkpoints_dir(root, &chain);
            let file = std::fs::read_dir(&dir)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let text = std::fs::read_to_string(&file).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let i = rng.below(lines.len());
            let note: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
            let note = note["note"].as_str().unwrap();
            let forged = if rng.below(2) == 0 {
                // Claim a bigger tree under the old signature.
                let mut parts: Vec<&str> = note.splitn(3, '\n').collect();
                let bigger = (parts[1].parse::<u64>().unwrap() + 1).to_string();
                parts[1] = &bigger;
                parts.join("\n")
            } else {
                // A checkpoint signed by a key verifiers do not pin.
                let text = note.rsplit_once("\n\n").unwrap().0.to_owned() + "\n";
                let body = crate::checkpoint::Checkpoint::parse(&text).unwrap();
                SignedCheckpoint::sign(body, &SigningKey::generate("intruder").unwrap())
                    .unwrap()
                    .note
            };
            lines[i] = serde_json::json!({ "note": forged }).to_string();
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
            (FindingKind::CheckpointForged, None)
        }
        Attack::Foreign => {
            let other = tempfile::tempdir().unwrap();
            let (_, theirs) = store(other.path(), &[1 + rng.below(3)]);
            let dest =
                files[0].with_file_name("9999999999999-x-000000-000000000000-000000000000.parquet");
            std::fs::copy(&theirs[0], &dest).unwrap();
            std::fs::copy(manifest_path(&theirs[0]), manifest_path(&dest)).unwrap();
            (FindingKind::SegmentForeign, None)
        }
        Attack::Replay => {
            let f = &files[rng.below(files.len())];
            let dest = f.with_file_name("9999999999999-x-000000-000000000000-000000000000.parquet");
            std::fs::copy(f, &dest).unwrap();
            std::fs::copy(manifest_path(f), manifest_path(&dest)).unwrap();
            (FindingKind::SegmentForeign, None)
        }
    })
}

#[test]
fn an_untouched_log_verifies_clean_with_and_without_a_trusted_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = store(dir.path(), &[3, 1, 5, 2]);
    let report = verify(dir.path(), &options(&key, None), &|_, _| {}).unwrap();
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!(report.records, 11);
    assert_eq!(report.chains[0].heads_matched, 5, "start-up and four seals");
    let trusted = newest_note(dir.path());
    let report = verify(dir.path(), &options(&key, Some(trusted)), &|_, _| {}).unwrap();
    assert!(report.ok, "{:?}", report.findings);
    assert!(
        report.notes.iter().any(|n| n.contains("consistency proof")),
        "{:?}",
        report.notes
    );
    // Another key's view: every checkpoint is forged and the chain is foreign.
    let other = SigningKey::generate("other").unwrap();
    let k = kinds(dir.path(), &other, None);
    assert!(k.contains(&FindingKind::CheckpointForged), "{k:?}");
}

#[test]
fn random_attacks_on_random_logs_are_named_exactly() {
    let mut seen = BTreeSet::new();
    for seed in 0..(ATTACKS.len() as u64 * 8) {
        let mut rng = Rng(seed);
        let attack = ATTACKS[seed as usize % ATTACKS.len()];
        let sizes: Vec<usize> = (0..1 + rng.below(5)).map(|_| 1 + rng.below(6)).collect();
        let dir = tempfile::tempdir().unwrap();
        if let Attack::Rollback = attack {
            // Keep a copy of the store part way, let the store grow, and present the copy.
            let cut = rng.below(sizes.len());
            let (data, snapshot) = (dir.path().join("data"), dir.path().join("snapshot"));
            let key = store_with_snapshot(&data, &snapshot, &sizes, cut);
            let k = kinds(&snapshot, &key, Some(newest_note(&data)));
            assert_eq!(
                k,
                BTreeSet::from([FindingKind::Rollback]),
                "seed {seed}: rollback to {cut} of {sizes:?}"
            );
            seen.insert(FindingKind::Rollback);
            continue;
        }
        let (key, files) = store(dir.path(), &sizes);
        let Some((expected, trusted)) = apply(attack, &mut rng, dir.path(), &files, &sizes) else {
            continue;
        };
        let k = kinds(dir.path(), &key, trusted);
        assert_eq!(
            k,
            BTreeSet::from([expected]),
            "seed {seed}: {attack:?} on segments of sizes {sizes:?}"
        );
        seen.insert(expected);
    }
    assert_eq!(seen.len(), 10, "every attack class was exercised: {seen:?}");
}

/// Builds a store of `sizes` in `data`, copying it to `snapshot` after the first `cut` segments.
fn store_with_snapshot(data: &Path, snapshot: &Path, sizes: &[usize], cut: usize) -> SigningKey {
    let (key, _) = store(data, &sizes[..cut]);
    copy_dir(data, snapshot);
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = crate::chain::Chain::open(data, &key, "test.calltrail", feed).unwrap();
    let mut next: i64 = sizes[..cut].iter().sum::<usize>() as i64;
    for &n in &sizes[cut..] {
        crate::test_support::seal(&mut chain, data, next, n);
        next += n as i64;
    }
    key
}

#[test]
fn a_time_range_is_checked_against_the_signed_heads_without_reading_what_precedes_it() {
    const HOUR: i64 = 3_600_000_000_000;
    let t0 = crate::test_support::T0 - crate::test_support::T0 % HOUR;
    let dir = tempfile::tempdir().unwrap();
    let key = crate::test_support::key();
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = crate::chain::Chain::open(dir.path(), &key, "test.calltrail", feed).unwrap();
    let files: Vec<PathBuf> = (0..3)
        .map(|h| crate::test_support::seal_at(&mut chain, dir.path(), h * 4, 4, t0 + h * HOUR))
        .collect();
    let range = |from: i64, to: Option<i64>| VerifyOptions {
        from_ns: Some(from),
        to_ns: to,
        ..options(&key, None)
    };
    let report = verify(dir.path(), &range(t0 + HOUR, None), &|_, _| {}).unwrap();
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!(report.records, 8, "the last two hours only");
    assert_eq!(
        report.chains[0].heads_matched, 3,
        "the head before the range (it pins the frontier the range starts from) and the seals of hours 1 and 2"
    );
    let report = verify(dir.path(), &range(t0, Some(t0 + HOUR)), &|_, _| {}).unwrap();
    assert!(
        report.ok,
        "a range that stops early is no tail truncation: {:?}",
        report.findings
    );
    assert_eq!(report.records, 4);

    keep(&files[1], &[0, 2, 3]);
    let k: BTreeSet<_> = verify(dir.path(), &range(t0 + HOUR, None), &|_, _| {})
        .unwrap()
        .findings
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(k, BTreeSet::from([FindingKind::RecordDeleted]));
    let later = verify(dir.path(), &range(t0 + 2 * HOUR, None), &|_, _| {}).unwrap();
    assert!(
        later.ok,
        "hour 1 is outside this range: {:?}",
        later.findings
    );
}
