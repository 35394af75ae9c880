use std::path::Path;

use calltrail_schemas::finding::{
    Finding, Severity, finding_id, findings_batch, findings_from_batch,
};
use parquet::arrow::ArrowWriter;

use super::*;

/// A finding of `detector` about `entity`, detected at `at_ns`.
pub(crate) fn finding(detector: &str, entity: &str, at_ns: i64) -> Finding {
    Finding {
        finding_id: finding_id(detector, "user", entity, at_ns),
        detector: detector.into(),
        rule: "volume_spike".into(),
        severity: Severity::High,
        entity_kind: "user".into(),
        entity: entity.into(),
        principal: Some(entity.into()),
        team: None,
        tenant: None,
        server_name: None,
        tool_name: None,
        window_start_ns: at_ns - 3_600_000_000_000,
        window_end_ns: at_ns,
        observed: 412.0,
        expected: Some(12.0),
        score: 11.5,
        explanation: format!("{entity} made 412 calls"),
        detected_at_ns: at_ns,
    }
}

/// Writes `rows` as the findings file `name` of partition `date`, as a detector would.
pub(crate) fn write_file(root: &Path, date: &str, name: &str, rows: &[Finding]) {
    let dir = root.join(ANOMALIES).join(format!("date={date}"));
    std::fs::create_dir_all(&dir).unwrap();
    let batch = findings_batch(rows).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&tmp).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn file(date: &str, name: &str) -> FindingsFile {
    FindingsFile {
        date: date.into(),
        name: name.into(),
    }
}

#[test]
fn a_store_without_findings_lists_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let listing = FindingsListing::list(dir.path()).unwrap();
    assert_eq!(listing, FindingsListing::default());
    assert!(listing.pending(&FindingsCursor::default()).is_empty());
}

#[test]
fn only_complete_parquet_files_of_date_partitions_are_listed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = [finding("D1", "alice", 10)];
    write_file(root, "2026-11-23", "00000000000000000002-b.parquet", &f);
    write_file(root, "2026-11-23", "00000000000000000001-a.parquet", &f);
    write_file(root, "2026-11-22", "00000000000000000003-c.parquet", &f);
    let part = root.join("anomalies/date=2026-11-23");
    std::fs::write(part.join(".00000000000000000009-z.parquet.tmp"), b"half").unwrap();
    std::fs::write(part.join("_SUCCESS.parquet"), b"").unwrap();
    std::fs::write(part.join("notes.txt"), b"").unwrap();
    std::fs::create_dir(part.join("sub.parquet")).unwrap();
    std::fs::create_dir_all(root.join("anomalies/stray")).unwrap();
    std::fs::create_dir_all(root.join("anomalies/date=2026-11-24")).unwrap();

    let listing = FindingsListing::list(root).unwrap();
    assert_eq!(
        listing.dates(),
        BTreeSet::from([
            "2026-11-22".into(),
            "2026-11-23".into(),
            "2026-11-24".into()
        ])
    );
    assert_eq!(
        listing.pending(&FindingsCursor::default()),
        vec![
            file("2026-11-22", "00000000000000000003-c.parquet"),
            file("2026-11-23", "00000000000000000001-a.parquet"),
            file("2026-11-23", "00000000000000000002-b.parquet"),
        ]
    );
    let end = listing.end();
    assert!(listing.pending(&end).is_empty(), "end is past everything");
    assert_eq!(end.delivered.len(), 2, "an empty partition has no position");
}

#[test]
fn pending_is_per_date_so_a_late_file_in_an_older_partition_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = [finding("D1", "alice", 10)];
    write_file(root, "2026-11-22", "00000000000000000001-a.parquet", &f);
    write_file(root, "2026-11-23", "00000000000000000002-b.parquet", &f);
    let mut cursor = FindingsListing::list(root).unwrap().end();
    // A backfill run writes into the older partition after both were delivered.
    write_file(root, "2026-11-22", "00000000000000000005-late.parquet", &f);
    write_file(root, "2026-11-23", "00000000000000000006-new.parquet", &f);
    let listing = FindingsListing::list(root).unwrap();
    assert_eq!(
        listing.pending(&cursor),
        vec![
            file("2026-11-22", "00000000000000000005-late.parquet"),
            file("2026-11-23", "00000000000000000006-new.parquet"),
        ]
    );
    cursor.mark("2026-11-22", "00000000000000000005-late.parquet");
    assert_eq!(listing.pending(&cursor).len(), 1);
}

#[test]
fn files_read_back_as_the_findings_written_and_a_removed_one_is_vanished() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![finding("D1", "alice", 10), finding("D2", "bob", 20)];
    write_file(dir.path(), "2026-11-23", "x.parquet", &rows);
    let batches = read_findings(dir.path(), &file("2026-11-23", "x.parquet")).unwrap();
    let back: Vec<Finding> = batches
        .iter()
        .flat_map(|b| findings_from_batch(b).unwrap())
        .collect();
    assert_eq!(back, rows);
    let gone = read_findings(dir.path(), &file("2026-11-23", "gone.parquet")).unwrap_err();
    assert!(matches!(gone, SourceError::Vanished { .. }), "{gone}");
    std::fs::write(
        dir.path().join("anomalies/date=2026-11-23/bad.parquet"),
        b"not parquet",
    )
    .unwrap();
    let bad = read_findings(dir.path(), &file("2026-11-23", "bad.parquet")).unwrap_err();
    assert!(matches!(bad, SourceError::Read { .. }), "{bad}");
}
