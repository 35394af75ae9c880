//! Export bundles verify offline, select exactly what their filter says, cross deleted
//! segments with their receipts, and every kind of edit to a bundle is named by check, file and
//! record.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use calltrail_schemas::ToolCall;
use calltrail_schemas::arrow_schema::{self, TOOL_CALLS};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::chain::Chain;
use crate::layout::{Layout, Partition};
use crate::note::SigningKey;
use crate::parquet_file::writer_properties;
use crate::test_support::{T0, call, key, seal_at, store};

const DAY_NS: i64 = 86_400_000_000_000;

fn everything() -> Selection {
    Selection {
        from_ns: 0,
        to_ns: i64::MAX,
        ..Selection::default()
    }
}

fn options(out: &Path, key: &SigningKey, selection: Selection, format: Format) -> ExportOptions {
    ExportOptions {
        out: out.to_owned(),
        selection,
        format,
        key: key.clone(),
    }
}

fn run(root: &Path, options: &ExportOptions) -> ExportSummary {
    export(root, options, &|_, _| {}).unwrap()
}

fn check(dir: &Path, key: &SigningKey) -> ExportReport {
    verify_export(dir, &key.verifier(), &|_, _| {}).unwrap()
}

fn checks(report: &ExportReport) -> Vec<Check> {
    let mut c: Vec<Check> = report.findings.iter().map(|f| f.check).collect();
    c.sort();
    c.dedup();
    c
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn event_ids(path: &Path) -> Vec<String> {
    read_parquet(path)
        .iter()
        .flat_map(|b| {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            (0..ids.len())
                .map(|i| ids.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batches[0].schema(),
        None,
    )
    .unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// Rewrites the text column `name` of the Parquet file at `path`, row by row.
fn rewrite_column(path: &Path, name: &str, edit: impl Fn(usize, &str) -> String) {
    let mut row = 0;
    let batches: Vec<RecordBatch> = read_parquet(path)
        .into_iter()
        .map(|b| {
            let at = b.schema().index_of(name).unwrap();
            let old = b.column(at).as_string::<i32>();
            let new: arrow::array::StringArray = (0..old.len())
                .map(|i| old.is_valid(i).then(|| edit(row + i, old.value(i))))
                .collect();
            row += b.num_rows();
            let mut columns = b.columns().to_vec();
            columns[at] = Arc::new(new);
            RecordBatch::try_new(b.schema(), columns).unwrap()
        })
        .collect();
    write_parquet(path, &batches);
}

/// Seals `calls` as one tool-call segment of `chain`.
fn seal_calls(chain: &mut Chain, root: &Path, calls: &[ToolCall]) {
    let refs: Vec<&ToolCall> = calls.iter().collect();
    let batch = arrow_schema::tool_calls_batch(&refs).unwrap();
    let layout = Layout::new(root, "t");
    let dir = layout.partition_dir(TOOL_CALLS, Partition::of(calls[0].start_time_ns));
    let first = calls[0].start_time_ns;
    let name = layout.next_file_name(first, first as u64, first as u64);
    chain
        .seal(TOOL_CALLS, &dir, &name, &batch, |kv| {
            writer_properties(1, 9, kv)
        })
        .unwrap();
}

#[test]
fn an_export_verifies_and_every_edit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (key, _) = store(&root, &[3, 5, 2]);
    let out = dir.path().join("bundle");
    let summary = run(&root, &options(&out, &key, everything(), Format::Parquet));
    assert_eq!(summary.records, 10);
    assert_eq!(summary.chains.len(), 1);
    assert_eq!(summary.chains[0].tree_size, 10);
    assert!(out.join("manifest.note").exists());
    assert!(out.join("README.txt").exists());
    let report = check(&out, &key);
    assert!(report.ok, "{:?}", report.findings);
    assert!(report.manifest_signed);
    assert_eq!((report.records, report.proofs_verified), (10, 10));
    let records = out.join("records/tool_calls.parquet");
    assert_eq!(event_ids(&records).len(), 10);

    let fresh = |name: &str| {
        let copy = dir.path().join(name);
        copy_dir(&out, &copy);
        copy
    };
    let named = |report: &ExportReport, check: Check, file: &str| {
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.check == check && f.file.as_deref() == Some(file)),
            "no {} finding on {file}: {:?}",
            check.name(),
            report.findings
        );
    };

    // One byte of the records file flipped.
    let b = fresh("flipped");
    let path = b.join("records/tool_calls.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let r = check(&b, &key);
    assert!(!r.ok);
    named(&r, Check::FileHash, "records/tool_calls.parquet");

    // A file dropped: the checkpoint.
    let b = fresh("dropped");
    let cp = format!("checkpoints/{}.note", summary.chains[0].chain_id);
    std::fs::remove_file(b.join(&cp)).unwrap();
    let r = check(&b, &key);
    named(&r, Check::FileMissing, &cp);
    named(&r, Check::Checkpoint, &cp);

    // A file added.
    let b = fresh("added");
    std::fs::write(b.join("records/notes.txt"), "x").unwrap();
    named(&check(&b, &key), Check::FileExtra, "records/notes.txt");

    // One record removed, and then the manifest re-hashed to match (it cannot be re-signed).
    let b = fresh("removed");
    let path = b.join("records/tool_calls.parquet");
    let batches = read_parquet(&path);
    let schema = batches[0].schema();
    let mut kept = Vec::new();
    let mut row = 0;
    for batch in &batches {
        let mask: arrow::array::BooleanArray =
            (0..batch.num_rows()).map(|i| Some(row + i != 4)).collect();
        row += batch.num_rows();
        kept.push(arrow::compute::filter_record_batch(batch, &mask).unwrap());
    }
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    for k in &kept {
        w.write(k).unwrap();
    }
    w.close().unwrap();
    let r = check(&b, &key);
    named(&r, Check::FileHash, "records/tool_calls.parquet");
    let missing = r
        .findings
        .iter()
        .find(|f| f.check == Check::RecordMissing)
        .unwrap();
    assert_eq!(
        (missing.event_id.as_deref(), missing.seq),
        (Some("e4"), Some(4))
    );
    assert!(checks(&r).contains(&Check::RecordCount));

    let note = std::fs::read_to_string(b.join("manifest.note")).unwrap();
    let (sha, size) = super::files::hash_file(&path).unwrap();
    let rehashed: String = note
        .lines()
        .map(|l| {
            if l.ends_with(" records/tool_calls.parquet") {
                format!(
                    "file {} {size} records/tool_calls.parquet\n",
                    hex::encode(sha)
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(b.join("manifest.note"), rehashed).unwrap();
    let r = check(&b, &key);
    let c = checks(&r);
    assert!(c.contains(&Check::ManifestSignature), "{c:?}");
    assert!(c.contains(&Check::RecordMissing), "{c:?}");
    assert!(!c.contains(&Check::FileHash), "{c:?}");

    // One value of one record changed (its stored leaf hash kept): its hash and its proof fail.
    let b = fresh("modified");
    let path = b.join("records/tool_calls.parquet");
    rewrite_column(&path, "tool_name", |i, v: &str| {
        if i == 2 {
            "delete_everything".to_owned()
        } else {
            v.to_owned()
        }
    });
    let r = check(&b, &key);
    for want in [Check::RecordHash, Check::Proof] {
        let f = r.findings.iter().find(|f| f.check == want).unwrap();
        assert_eq!((f.event_id.as_deref(), f.seq), (Some("e2"), Some(2)), "{f}");
    }

    // One hash of one audit path flipped: that proof fails, and only it.
    let b = fresh("path");
    let path = b.join(format!("proofs/{}.parquet", summary.chains[0].chain_id));
    let batches = read_parquet(&path);
    let batch = &batches[0];
    let paths = batch.column_by_name("audit_path").unwrap().as_list::<i32>();
    let mut builder = arrow::array::ListBuilder::new(arrow::array::FixedSizeBinaryBuilder::new(32))
        .with_field(Arc::new(arrow::datatypes::Field::new(
            "item",
            arrow::datatypes::DataType::FixedSizeBinary(32),
            false,
        )));
    for row in 0..paths.len() {
        let nodes = paths.value(row);
        let nodes = nodes.as_fixed_size_binary();
        for i in 0..nodes.len() {
            let mut h = nodes.value(i).to_vec();
            if row == 6 && i == 1 {
                h[0] ^= 1;
            }
            builder.values().append_value(&h).unwrap();
        }
        builder.append(true);
    }
    let mut columns = batch.columns().to_vec();
    let at = batch.schema().index_of("audit_path").unwrap();
    columns[at] = Arc::new(builder.finish());
    write_parquet(
        &path,
        &[RecordBatch::try_new(batch.schema(), columns).unwrap()],
    );
    let r = check(&b, &key);
    let proofs: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.check == Check::Proof)
        .collect();
    assert_eq!(proofs.len(), 1, "{:?}", r.findings);
    assert_eq!(proofs[0].seq, Some(6));
    assert!(proofs[0].detail.contains("does not lead"), "{}", proofs[0]);

    // Another key: nothing verifies.
    let other = SigningKey::generate("other").unwrap();
    let r = check(&out, &other);
    let c = checks(&r);
    for want in [
        Check::ManifestSignature,
        Check::PublicKey,
        Check::Checkpoint,
    ] {
        assert!(c.contains(&want), "{want:?} in {c:?}");
    }

    // No manifest: not a bundle.
    let b = fresh("partial");
    std::fs::remove_file(b.join("manifest.note")).unwrap();
    assert_eq!(checks(&check(&b, &key)), vec![Check::Manifest]);
}

#[test]
fn an_existing_directory_is_never_overwritten_and_a_failure_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (key, _) = store(&root, &[3]);
    let out = dir.path().join("bundle");
    std::fs::create_dir(&out).unwrap();
    let e = export(
        &root,
        &options(&out, &key, everything(), Format::Parquet),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");

    // Under another key no checkpoint verifies: nothing is exported. A failed export leaves no
    // partial directory.
    let out = dir.path().join("second");
    let other = SigningKey::generate("test.calltrail").unwrap();
    let summary = run(&root, &options(&out, &other, everything(), Format::Parquet));
    assert_eq!(
        summary.records, 0,
        "no checkpoint verifies under another key"
    );
    assert!(
        summary.notes.iter().any(|n| n.contains("no checkpoint")),
        "{:?}",
        summary.notes
    );
    let mut bad = options(
        &dir.path().join("third"),
        &key,
        everything(),
        Format::Parquet,
    );
    bad.selection.from_ns = 5;
    bad.selection.to_ns = 5;
    assert!(export(&root, &bad, &|_, _| {}).is_err());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_selection_is_exactly_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let key = key();
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = Chain::open(&root, &key, "test.calltrail", feed).unwrap();
    let people = ["ann", "bo", "cy"];
    let tenants = [Some("eu"), Some("us"), None];
    let calls: Vec<ToolCall> = (0..24i64)
        .map(|i| {
            let mut c = call(i, T0 + i * 1_000_000);
            c.attribution.principal = Some(people[i as usize % 3].into());
            c.attribution.tenant = tenants[i as usize % 4 % 3].map(str::to_owned);
            c.server_name = Some(if i % 2 == 0 { "crm" } else { "git" }.into());
            c.tool_name = Some(format!("t{}", i % 5));
            c
        })
        .collect();
    seal_calls(&mut chain, &root, &calls[..10]);
    seal_calls(&mut chain, &root, &calls[10..]);
    type Case = (Selection, Box<dyn Fn(&ToolCall) -> bool>);
    let cases: Vec<Case> = vec![
        (
            Selection {
                from_ns: T0 + 3_000_000,
                to_ns: T0 + 17_000_000,
                ..Selection::default()
            },
            Box::new(|c: &ToolCall| (T0 + 3_000_000..T0 + 17_000_000).contains(&c.start_time_ns)),
        ),
        (
            Selection {
                principals: vec!["bo".into()],
                ..everything()
            },
            Box::new(|c: &ToolCall| c.attribution.principal.as_deref() == Some("bo")),
        ),
        (
            Selection {
                principals: vec!["bo".into()],
                tenants: vec!["us".into()],
                ..everything()
            },
            Box::new(|c: &ToolCall| {
                c.attribution.principal.as_deref() == Some("bo")
                    && c.attribution.tenant.as_deref() == Some("us")
            }),
        ),
        (
            Selection {
                servers: vec!["git".into()],
                tools: vec!["t1".into(), "t3".into()],
                ..everything()
            },
            Box::new(|c: &ToolCall| {
                c.server_name.as_deref() == Some("git")
                    && matches!(c.tool_name.as_deref(), Some("t1" | "t3"))
            }),
        ),
        (
            Selection {
                tenants: vec!["nowhere".into()],
                ..everything()
            },
            Box::new(|_: &ToolCall| false),
        ),
    ];
    for (i, (selection, want)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("b{i}"));
        let summary = run(&root, &options(&out, &key, selection, Format::Parquet));
        let expected: Vec<String> = calls
            .iter()
            .filter(|c| want(c))
            .map(|c| c.event_id.clone())
            .collect();
        assert_eq!(summary.records, expected.len() as u64, "case {i}");
        let got = if expected.is_empty() {
            assert!(
                !out.join("records").exists(),
                "case {i}: no records, no file"
            );
            Vec::new()
        } else {
            event_ids(&out.join("records/tool_calls.parquet"))
        };
        assert_eq!(got, expected, "case {i}");
        let report = check(&out, &key);
        assert!(report.ok, "case {i}: {:?}", report.findings);
        assert_eq!(report.records, expected.len() as u64);
    }
}

#[test]
fn jsonl_and_csv_match_the_parquet_copy_and_one_edited_cell_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (key, _) = store(&root, &[4, 4]);
    for format in [Format::Jsonl, Format::Csv] {
        let out = dir.path().join(format!("bundle-{format}"));
        run(&root, &options(&out, &key, everything(), format));
        let text_file = format!("records/tool_calls.{format}");
        let text = std::fs::read_to_string(out.join(&text_file)).unwrap();
        let header = usize::from(format == Format::Csv);
        assert_eq!(text.lines().count(), 8 + header, "{format}");
        let report = check(&out, &key);
        assert!(report.ok, "{format}: {:?}", report.findings);

        // The record e5's tool name edited in the text file only.
        let (from, to) = match format {
            Format::Csv => (",get_x,", ",delete_everything,"),
            _ => (
                "\"tool_name\":\"get_x\"",
                "\"tool_name\":\"delete_everything\"",
            ),
        };
        let edited: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let l = if i == 5 + header {
                    l.replacen(from, to, 1)
                } else {
                    l.to_owned()
                };
                format!("{l}\n")
            })
            .collect();
        assert_ne!(
            edited.replace('\r', ""),
            text.replace('\r', ""),
            "{format}: nothing edited"
        );
        let bad = dir.path().join(format!("edited-{format}"));
        copy_dir(&out, &bad);
        std::fs::write(bad.join(&text_file), edited).unwrap();
        let r = check(&bad, &key);
        let f = r
            .findings
            .iter()
            .find(|f| f.check == Check::RecordText)
            .unwrap_or_else(|| panic!("{format}: {:?}", r.findings));
        assert_eq!(f.file.as_deref(), Some(text_file.as_str()));
        assert_eq!((f.event_id.as_deref(), f.seq), (Some("e5"), Some(5)), "{f}");
        assert!(f.detail.contains("tool_name"), "{f}");

        // A line removed.
        let short: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        std::fs::write(bad.join(&text_file), short).unwrap();
        let r = check(&bad, &key);
        assert!(
            r.findings
                .iter()
                .any(|f| f.check == Check::RecordText && f.detail.contains("missing")),
            "{:?}",
            r.findings
        );
    }
}

#[test]
fn records_sealed_after_the_newest_checkpoint_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (key, _) = store(&root, &[3, 5]);
    let log_dir = root.join("checkpoints");
    let chain_dir = std::fs::read_dir(&log_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_dir(&chain_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&log).unwrap();
    // Keep only the checkpoints of size 3 (the first seal; opening the chain signs none yet).
    let kept: String = text
        .lines()
        .filter(|l| l.contains("\\n3\\n"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!kept.is_empty(), "{text}");
    std::fs::write(&log, kept).unwrap();
    let out = dir.path().join("bundle");
    let summary = run(&root, &options(&out, &key, everything(), Format::Parquet));
    assert_eq!(summary.records, 3);
    assert_eq!(summary.chains[0].tree_size, 3);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("5 records sealed after")),
        "{:?}",
        summary.notes
    );
    assert!(check(&out, &key).ok);
}

#[test]
fn deleted_segments_are_crossed_with_their_receipts() {
    use crate::enforce::{apply, plan};
    use crate::holds::Holds;
    use crate::policy::RetentionConfig;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let key = key();
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = Chain::open(&root, &key, "test.calltrail", feed).unwrap();
    // Segments 0 and 2 are 3000 days old (past every class's keep), 1 and 3 recent.
    let old = T0 - 3000 * DAY_NS;
    seal_at(&mut chain, &root, 0, 4, old);
    seal_at(&mut chain, &root, 4, 3, T0);
    seal_at(&mut chain, &root, 7, 5, old + 3_600_000_000_000);
    seal_at(&mut chain, &root, 12, 2, T0);
    drop(chain);
    let now = T0 / 1_000_000_000;
    let p = plan(&root, &RetentionConfig::default(), &Holds::default(), now).unwrap();
    assert_eq!(p.delete.len(), 2, "{:?}", p.delete);
    let applied = apply(&root, &p, &key, now, &|_, _| {}).unwrap();
    assert_eq!(applied.deleted, 2, "{:?}", applied.refused);

    let out = dir.path().join("bundle");
    let summary = run(&root, &options(&out, &key, everything(), Format::Parquet));
    assert_eq!(summary.records, 5);
    assert_eq!(summary.chains[0].receipts, 2);
    let ids = event_ids(&out.join("records/tool_calls.parquet"));
    assert_eq!(ids, ["e4", "e5", "e6", "e12", "e13"]);
    let chain_id = &summary.chains[0].chain_id;
    let receipts = std::fs::read_to_string(out.join(format!("receipts/{chain_id}.jsonl"))).unwrap();
    assert_eq!(receipts.lines().count(), 2);
    let report = check(&out, &key);
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!(report.chains[0].receipts, 2);

    // `prove` walks the chain the same way: a record after a deleted segment still has a proof.
    let proof = crate::proof::prove(&root, "e12").unwrap();
    let json = serde_json::to_string(&proof).unwrap();
    assert_eq!(
        crate::proof::verify_proof(&json, &key.verifier())
            .unwrap()
            .seq,
        12
    );
    let e = crate::proof::prove(&root, "e0").unwrap_err();
    assert!(e.to_string().contains("no record"), "{e}");

    // A receipt edited in the bundle is caught by its signature, not only by its file's hash.
    let bad = dir.path().join("bad");
    copy_dir(&out, &bad);
    let file = format!("receipts/{chain_id}.jsonl");
    std::fs::write(
        bad.join(&file),
        receipts.replacen("\\\"count\\\":4", "\\\"count\\\":3", 1),
    )
    .unwrap();
    let r = check(&bad, &key);
    assert!(
        r.findings.iter().any(|f| f.check == Check::Receipt),
        "{:?}",
        r.findings
    );
}

#[test]
fn a_chain_with_a_hole_and_no_receipt_refuses_to_export() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (key, files) = store(&root, &[3, 5, 2]);
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::remove_file(crate::chain::segment::manifest_path(&files[1])).unwrap();
    let out = dir.path().join("bundle");
    let e = export(
        &root,
        &options(&out, &key, everything(), Format::Parquet),
        &|_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("seqs 3..8"), "{e}");
    assert!(!out.exists());
}
