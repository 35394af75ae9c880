//! Writer tests: files appear where the layout says, readable, sorted, and nothing is lost on
//! shutdown or on a failed write.

use std::fs::File;

use arrow::array::{Array, AsArray, TimestampNanosecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::policy::RetentionConfig;
use crate::test_support::{T0, call, key};

fn spawn(cfg: StoreConfig, layout: Arc<Layout>) -> StoreWriter {
    spawn_with(
        cfg,
        layout,
        &IntegrityConfig::default(),
        &RetentionConfig::default(),
    )
}

/// A writer signing with a fresh key.
fn spawn_with(
    cfg: StoreConfig,
    layout: Arc<Layout>,
    integrity: &IntegrityConfig,
    retention: &RetentionConfig,
) -> StoreWriter {
    StoreWriter::spawn(cfg, layout, integrity, &key(), retention).unwrap()
}

const HOUR_NS: i64 = 3_600_000_000_000;

fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn shutdown_flushes_into_hour_partitions_sorted_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Arc::new(Layout::new(dir.path(), "t"));
    let cfg = StoreConfig {
        flush_interval_ms: 3_600_000,
        ..Default::default()
    };
    let w = spawn(cfg, layout);
    // Out of order, across two hours.
    let rows = vec![call(1, T0 + 5), call(2, T0 + HOUR_NS), call(3, T0 + 1)];
    w.handle()
        .try_submit(WriteBatch {
            wal_seq: 1,
            tool_calls: rows,
            llm_calls: vec![],
        })
        .unwrap();
    let stats = w.shutdown().await;
    assert_eq!(stats.rows.load(Ordering::Relaxed), 3);
    assert_eq!(stats.pending_rows.load(Ordering::Relaxed), 0);
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0]
            .to_string_lossy()
            .contains("tool_calls/date=2026-11-23/hour=16/")
    );
    assert!(
        files[1]
            .to_string_lossy()
            .contains("tool_calls/date=2026-11-23/hour=17/")
    );
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "parquet")),
        "no temp files left"
    );
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0]).unwrap()).unwrap();
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .clone();
    assert!(
        kv.iter()
            .any(|k| k.key == "calltrail.schema_version" && k.value.as_deref() == Some("2"))
    );
    let batch = reader.build().unwrap().next().unwrap().unwrap();
    let starts: &TimestampNanosecondArray =
        batch.column_by_name("start_time").unwrap().as_primitive();
    assert_eq!(starts.values().to_vec(), vec![T0 + 1, T0 + 5]);
    assert_eq!(
        batch
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "e3"
    );
    assert_eq!(batch.column_by_name("attributes").unwrap().len(), 2);
}

#[tokio::test]
async fn age_flush_makes_data_visible_without_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        flush_interval_ms: 50,
        ..Default::default()
    };
    let w = spawn(cfg, Arc::new(Layout::new(dir.path(), "t")));
    w.handle()
        .try_submit(WriteBatch {
            wal_seq: 1,
            tool_calls: vec![call(1, T0)],
            llm_calls: vec![],
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while parquet_files(&dir.path().join("tool_calls")).is_empty() {
        assert!(Instant::now() < deadline, "no file after 5 s");
        sleep(Duration::from_millis(10)).await;
    }
    w.shutdown().await;
}

#[tokio::test]
async fn full_queue_pushes_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        queue_capacity: 1,
        flush_interval_ms: 3_600_000,
        ..Default::default()
    };
    let w = spawn(cfg, Arc::new(Layout::new(dir.path(), "t")));
    let h = w.handle();
    // The task may take one batch off the queue; within a few submissions the queue is full.
    let mut refused = false;
    for i in 0..100 {
        if matches!(
            h.try_submit(WriteBatch {
                wal_seq: 1,
                tool_calls: vec![call(i, T0)],
                llm_calls: vec![]
            }),
            Err(SubmitError::Full)
        ) {
            refused = true;
            break;
        }
    }
    assert!(refused);
    w.shutdown().await;
}

#[tokio::test]
async fn failed_writes_keep_records_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        flush_interval_ms: 20,
        ..Default::default()
    };
    let w = spawn(cfg, Arc::new(Layout::new(dir.path(), "t")));
    // A file where the partition directory must go makes every write fail.
    let blocker = dir.path().join("tool_calls/date=2026-11-23");
    std::fs::write(&blocker, b"not a directory").unwrap();
    w.handle()
        .try_submit(WriteBatch {
            wal_seq: 1,
            tool_calls: vec![call(1, T0)],
            llm_calls: vec![],
        })
        .unwrap();
    let stats = Arc::clone(w.handle().stats());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.write_errors.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline);
        sleep(Duration::from_millis(10)).await;
    }
    std::fs::remove_file(&blocker).unwrap();
    let stats = w.shutdown().await;
    assert_eq!(
        stats.rows.load(Ordering::Relaxed),
        1,
        "the record survived the failures"
    );
    assert_eq!(parquet_files(&dir.path().join("tool_calls")).len(), 1);
}

#[tokio::test]
async fn an_idle_writer_signs_heartbeat_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let integrity = IntegrityConfig {
        heartbeat_secs: 1,
        ..Default::default()
    };
    let w = spawn_with(
        StoreConfig::default(),
        Arc::new(Layout::new(dir.path(), "t")),
        &integrity,
        &RetentionConfig::default(),
    );
    let mut rx = w.checkpoints();
    let first = rx.borrow_and_update().clone().unwrap();
    assert_eq!(
        first.checkpoint.size, 0,
        "a start-up checkpoint of the empty tree"
    );
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a heartbeat within a few seconds")
        .unwrap();
    let beat = rx.borrow().clone().unwrap();
    assert_eq!(
        (beat.checkpoint.size, beat.checkpoint.root),
        (0, first.checkpoint.root)
    );
    assert!(beat.checkpoint.timestamp > first.checkpoint.timestamp);
    w.shutdown().await;
}

#[tokio::test]
async fn a_later_flush_waits_for_an_earlier_one_to_seal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        flush_interval_ms: 20,
        ..Default::default()
    };
    let w = spawn(cfg, Arc::new(Layout::new(dir.path(), "t")));
    let mut flushed = w.flushed();
    // The first flush cannot create its partition directory; the second one could.
    let blocker = dir.path().join("tool_calls/date=2026-11-23");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let submit = |wal_seq, start| {
        w.handle()
            .try_submit(WriteBatch {
                wal_seq,
                tool_calls: vec![call(wal_seq as i64, start)],
                llm_calls: vec![],
            })
            .unwrap();
    };
    submit(1, T0);
    let stats = Arc::clone(w.handle().stats());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.write_errors.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline);
        sleep(Duration::from_millis(10)).await;
    }
    submit(2, T0 + 24 * HOUR_NS);
    sleep(Duration::from_millis(300)).await;
    assert!(
        parquet_files(&dir.path().join("tool_calls")).is_empty(),
        "the second flush must not seal before the first"
    );
    assert_eq!(
        *flushed.borrow_and_update(),
        0,
        "the log's watermark has not moved"
    );

    std::fs::remove_file(&blocker).unwrap();
    tokio::time::timeout(Duration::from_secs(10), flushed.wait_for(|&v| v == 2))
        .await
        .expect("both flushes seal")
        .unwrap();
    w.shutdown().await;
    let files = parquet_files(&dir.path().join("tool_calls"));
    let first_seqs: Vec<u64> = files
        .iter()
        .map(|f| {
            crate::chain::segment::read_footer(f)
                .unwrap()
                .unwrap()
                .first_seq
        })
        .collect();
    assert_eq!(
        first_seqs,
        vec![0, 1],
        "the blocked batch is seq 0, the later one seq 1"
    );
}

#[tokio::test]
async fn records_are_routed_to_segments_of_one_retention_class() {
    let dir = tempfile::tempdir().unwrap();
    let retention: RetentionConfig = toml::from_str(
        "[[rules]]\nname = \"writes\"\nkeep_days = 2557\noperation_class = [\"write\", \"delete\"]\n[default]\nname = \"other\"\nkeep_days = 400\n",
    )
    .unwrap();
    let w = spawn_with(
        StoreConfig::default(),
        Arc::new(Layout::new(dir.path(), "t")),
        &IntegrityConfig::default(),
        &retention,
    );
    let mut rows: Vec<ToolCall> = (0..6).map(|i| call(i, T0 + i)).collect();
    for r in rows.iter_mut().step_by(2) {
        r.operation_class = calltrail_schemas::OperationClass::Delete;
    }
    w.handle()
        .try_submit(WriteBatch {
            wal_seq: 1,
            tool_calls: rows,
            llm_calls: vec![],
        })
        .unwrap();
    w.shutdown().await;
    let mut classes: Vec<(Option<String>, Option<u64>, u64)> = parquet_files(dir.path())
        .iter()
        .map(|f| {
            let m = crate::chain::segment::read_footer(f).unwrap().unwrap();
            (m.retention_class, m.keep_days, m.count)
        })
        .collect();
    classes.sort();
    assert_eq!(
        classes,
        vec![
            (Some("other".into()), Some(400), 3),
            (Some("writes".into()), Some(2557), 3)
        ],
        "one hour, two classes: two segments"
    );
}
