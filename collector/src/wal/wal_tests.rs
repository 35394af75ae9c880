//! The log through the real stack: crash (an abandoned stack, never shut down) and restart,
//! damaged tails, duplicates, group commit, segment rotation and deletion.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::AsArray;
use calltrail_retention::StoreConfig;
use calltrail_schemas::IngestContext;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::frame::Damage;
use super::*;
use crate::pipeline::now_ns;
use crate::test_stack::{self, Stack, wal_dir};

fn attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A request of `n` tool-call server spans; ids derive from `req` so requests differ.
fn request(req: u32, n: u32, pad: usize) -> ExportTraceServiceRequest {
    let now = now_ns() as u64;
    let spans = (0..n)
        .map(|i| {
            let id = (u64::from(req) << 32) | u64::from(i);
            Span {
                trace_id: [id.to_be_bytes(), 7u64.to_be_bytes()].concat(),
                span_id: (id + 1).to_be_bytes().to_vec(),
                name: "tools/call get_x".into(),
                kind: 2,
                start_time_unix_nano: now,
                end_time_unix_nano: now + 1000,
                attributes: vec![
                    attr("mcp.method.name", "tools/call"),
                    attr("gen_ai.tool.name", "get_x"),
                    attr("padding", &"x".repeat(pad)),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn ctx() -> IngestContext {
    IngestContext {
        observed_time_ns: now_ns(),
        protocol: "otlp_grpc",
        peer: None,
        source: None,
    }
}

/// Flushes only at shutdown (or never, for a crashed stack).
fn lazy_store() -> StoreConfig {
    StoreConfig {
        flush_interval_ms: 3_600_000,
        ..StoreConfig::default()
    }
}

async fn ingest(stack: &Stack, req: u32, n: u32) {
    let r = stack
        .pipeline
        .reserve()
        .unwrap()
        .ingest(&request(req, n, 10), &ctx())
        .await
        .unwrap();
    assert_eq!(r.rejected_spans, 0);
}

/// Every `event_id` in the store's Parquet files.
fn stored_ids(data: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut dirs = vec![data.join("tool_calls")];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                        .unwrap()
                        .build()
                        .unwrap();
                for b in reader {
                    let b = b.unwrap();
                    let col = b.column_by_name("event_id").unwrap().as_string::<i32>();
                    ids.extend(col.iter().map(|v| v.unwrap().to_owned()));
                }
            }
        }
    }
    ids.sort();
    ids
}

fn assert_exactly_once(data: &Path, expected: usize) {
    let ids = stored_ids(data);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicates in the store");
    assert_eq!(ids.len(), expected);
}

fn segments(data: &Path) -> Vec<(u64, std::path::PathBuf)> {
    segment::list(&wal_dir(data)).unwrap()
}

#[tokio::test]
async fn acknowledged_requests_survive_a_crash_before_any_flush() {
    let dir = tempfile::tempdir().unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    for req in 0..10 {
        ingest(&stack, req, 5).await;
    }
    assert!(stored_ids(dir.path()).is_empty(), "nothing flushed yet");
    // The crash: the stack is abandoned, its buffered records never written.
    std::mem::forget(stack);
    let stack = test_stack::start(dir.path(), WalConfig::default(), StoreConfig::default()).await;
    assert_eq!(stack.report.replayed, 10);
    assert!(stack.report.cuts.is_empty());
    assert_eq!(stack.report.next_seq, 11);
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 50);
}

#[tokio::test]
async fn a_clean_stop_checkpoints_everything_and_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    for req in 0..4 {
        ingest(&stack, req, 3).await;
    }
    stack.shutdown().await;
    assert_eq!(checkpoint::read(&wal_dir(dir.path())).unwrap(), 4);
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    assert_eq!(stack.report.checkpoint, 4);
    assert_eq!(stack.report.replayed, 0);
    ingest(&stack, 9, 1).await;
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 13);
}

#[tokio::test]
async fn records_sealed_before_the_checkpoint_moved_are_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig {
        flush_interval_ms: 20,
        ..StoreConfig::default()
    };
    let stack = test_stack::start(dir.path(), WalConfig::default(), store).await;
    for req in 0..6 {
        ingest(&stack, req, 4).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored_ids(dir.path()).len() < 24 {
        assert!(std::time::Instant::now() < deadline, "not flushed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::mem::forget(stack);
    // A crash between sealing the files and persisting the checkpoint.
    checkpoint::write(&wal_dir(dir.path()), 0).unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    assert_eq!(stack.report.replayed, 6);
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 24);
}

/// Ingests `n` one-span requests into a stack that then crashes; returns the segment.
async fn crashed_log(data: &Path, n: u32) -> std::path::PathBuf {
    let stack = test_stack::start(data, WalConfig::default(), lazy_store()).await;
    for req in 0..n {
        ingest(&stack, req, 1).await;
    }
    std::mem::forget(stack);
    let segs = segments(data);
    assert_eq!(segs.len(), 1);
    segs[0].1.clone()
}

#[tokio::test]
async fn a_torn_tail_is_cut_reported_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let seg = crashed_log(dir.path(), 5).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    // The last write stopped 7 bytes short.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 7).unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    let report = stack.report.clone();
    assert_eq!(report.replayed, 4);
    assert_eq!(report.cuts.len(), 1);
    let cut = &report.cuts[0];
    assert_eq!(cut.damage, Damage::Partial);
    let frame_len = (len - 8) / 5;
    assert_eq!(cut.offset, 8 + 4 * frame_len);
    assert_eq!(cut.bytes, frame_len - 7);
    assert_eq!(
        std::fs::metadata(&cut.quarantined).unwrap().len(),
        frame_len - 7
    );
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), cut.offset);
    // Appending goes on in a new segment, after the last good frame's number.
    assert_eq!(report.next_seq, 5);
    ingest(&stack, 100, 1).await;
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 5);
}

#[tokio::test]
async fn a_bit_flip_cuts_from_the_damaged_frame_on() {
    let dir = tempfile::tempdir().unwrap();
    let seg = crashed_log(dir.path(), 5).await;
    let mut bytes = std::fs::read(&seg).unwrap();
    let frame_len = (bytes.len() - 8) / 5;
    // Inside the third frame's payload.
    let at = 8 + 2 * frame_len + frame::HEADER_LEN + 40;
    bytes[at] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    let report = stack.report.clone();
    assert_eq!(report.replayed, 2);
    assert_eq!(report.cuts.len(), 1);
    assert_eq!(report.cuts[0].damage, Damage::Checksum);
    assert_eq!(report.cuts[0].offset, (8 + 2 * frame_len) as u64);
    assert_eq!(report.cuts[0].bytes, (3 * frame_len) as u64);
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 2);
}

#[tokio::test]
async fn a_retried_request_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    ingest(&stack, 1, 20).await;
    ingest(&stack, 1, 20).await;
    ingest(&stack, 2, 5).await;
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let stack = std::sync::Arc::new(
        test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await,
    );
    let mut tasks = Vec::new();
    for req in 0..128 {
        let s = std::sync::Arc::clone(&stack);
        tasks.push(tokio::spawn(async move { ingest(&s, req, 2).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = std::sync::Arc::clone(&stack.stats);
    let Ok(stack) = std::sync::Arc::try_unwrap(stack) else {
        panic!("stack still shared")
    };
    stack.shutdown().await;
    let (frames, fsyncs) = (
        stats.frames.load(Ordering::Relaxed),
        stats.fsyncs.load(Ordering::Relaxed),
    );
    assert_eq!(frames, 128);
    assert!(fsyncs < frames, "{fsyncs} fsyncs for {frames} frames");
    assert_exactly_once(dir.path(), 256);
}

#[tokio::test]
async fn full_segments_rotate_and_sealed_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_max_bytes: 1 << 20,
        ..WalConfig::default()
    };
    let stack = test_stack::start(dir.path(), config.clone(), lazy_store()).await;
    // About 200 KiB per request: a new segment every five requests.
    for req in 0..12 {
        let r = stack
            .pipeline
            .reserve()
            .unwrap()
            .ingest(&request(req, 10, 20_000), &ctx())
            .await
            .unwrap();
        assert_eq!(r.rejected_spans, 0);
    }
    assert!(segments(dir.path()).len() >= 3);
    let stats = std::sync::Arc::clone(&stack.stats);
    stack.shutdown().await;
    let left = segments(dir.path());
    assert_eq!(left.len(), 1, "only the newest segment stays: {left:?}");
    assert!(stats.segments_deleted.load(Ordering::Relaxed) >= 2);
    assert_eq!(
        stats.disk_bytes.load(Ordering::Relaxed),
        std::fs::metadata(&left[0].1).unwrap().len()
    );
    assert_exactly_once(dir.path(), 120);
}

#[tokio::test]
async fn an_empty_or_headerless_segment_is_removed_and_only_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seg = crashed_log(dir.path(), 2).await;
    let wal = wal_dir(dir.path());
    // A crash right after creating the next segment, and one during its magic.
    std::fs::write(wal.join(segment::name(3)), b"").unwrap();
    std::fs::write(wal.join(segment::name(4)), b"CTW").unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    let report = stack.report.clone();
    assert_eq!(report.replayed, 2);
    assert_eq!(report.empty_removed, 2);
    assert_eq!(report.cuts.len(), 1, "{:?}", report.cuts);
    assert_eq!(report.cuts[0].damage, Damage::Header);
    assert_eq!(report.next_seq, 3);
    stack.shutdown().await;
    assert!(seg.exists());
    assert_exactly_once(dir.path(), 2);
}

/// A segment written by this format's first release (`tests/fixtures/wal`): later builds must
/// still recover it, frame for frame.
#[test]
fn a_version_1_segment_still_recovers() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/wal/v1-three-frames.wal");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&fixture, dir.path().join(segment::name(1))).unwrap();
    let mut tools = Vec::new();
    let report = recover(dir.path(), |seq, payload| {
        let (t, l) = calltrail_schemas::codec::decode_batch(payload).map_err(|e| e.to_string())?;
        assert!(l.is_empty());
        tools.push((seq, t));
        Ok(Replayed::Done)
    })
    .unwrap();
    assert_eq!(report.frames, 3);
    assert!(report.cuts.is_empty());
    assert_eq!(report.next_seq, 4);
    let seqs: Vec<u64> = tools.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for (_, t) in &tools {
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].tool_name.as_deref(), Some("get_x"));
        assert_eq!(t[0].source.ingest_protocol, "otlp_grpc");
    }
}

#[tokio::test]
async fn a_retry_after_a_restart_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    ingest(&stack, 1, 20).await;
    stack.shutdown().await;
    // The exporter timed out before the answer, and retries against the restarted server.
    let stack = test_stack::start(dir.path(), WalConfig::default(), lazy_store()).await;
    ingest(&stack, 1, 20).await;
    ingest(&stack, 2, 3).await;
    stack.shutdown().await;
    assert_exactly_once(dir.path(), 23);
}
