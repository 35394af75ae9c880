//! Retention benchmark: builds a store of many small expired segments (one per hour, class
//! `reads`), then times `retention plan` and `retention apply` over them, and `verify` across
//! the gaps the deletions leave.
//!
//! Run (release build, the bench profile):
//!
//! ```text
//! cargo bench --bench retention -- [--segments N] [--rows R] [--dir DIR]
//! ```
//!
//! Defaults: 10 000 segments of 20 records, in a temporary directory (`--dir` must not exist:
//! apply deletes what it builds). Records come from `calltrail::workload::Workload`, mapped as
//! ingest does, and are sealed with the writer's own sealing code. A legal hold scoped to one
//! principal over the first day makes the plan read the rows of the segments it overlaps.
//!
//! It prints the build time, then plan and apply (segments/s, each deletion reading and
//! checking its segment, writing and fsyncing a signed receipt, and deleting the files), and
//! verify over the store left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use calltrail::workload::Workload;
use std::sync::Arc;

use arrow::array::AsArray;
use calltrail_retention::chain::{Chain, IntegrityConfig, leaf_hashes};
use calltrail_retention::enforce::{apply, plan};
use calltrail_retention::holds::{HoldScope, Holds, new_id, placed_event};
use calltrail_retention::layout::{Layout, Partition};
use calltrail_retention::note::SigningKey;
use calltrail_retention::parquet_file::writer_properties;
use calltrail_retention::policy::{RetentionClass, RetentionConfig};
use calltrail_retention::verify::{VerifyOptions, verify};
use calltrail_retention::{StoreConfig, StoreWriter};
use calltrail_schemas::arrow_schema::{self, TOOL_CALLS};
use calltrail_schemas::canonical::RowEncoder;
use calltrail_schemas::{Attributor, IngestContext, OperationClass, ToolCall, map_request};

mod support;
use support::arg;

const HOUR_NS: i64 = 3_600_000_000_000;

/// Seals `segments` segments of `rows` reads each, one per hour from `base` (ns).
fn build(root: &Path, key: &SigningKey, segments: usize, rows: usize, base: i64) {
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = Chain::open(root, key, "bench.calltrail", feed).expect("chain");
    let layout = Layout::new(root, "bench");
    let mut workload = Workload::new(11, base, 1_000_000);
    let ctx = IngestContext {
        observed_time_ns: base,
        protocol: "otlp_grpc",
        peer: Some("127.0.0.1:5555".into()),
        source: None,
    };
    let attributor = Attributor::default();
    let class = RetentionClass {
        name: "reads".into(),
        keep_days: 396,
    };
    let mut pool: Vec<ToolCall> = Vec::new();
    let started = Instant::now();
    for s in 0..segments {
        while pool.len() < rows {
            pool.extend(map_request(&workload.next_request(500), &ctx, &attributor).tool_calls);
        }
        let hour = base + s as i64 * HOUR_NS;
        let mut calls: Vec<ToolCall> = pool.drain(..rows).collect();
        for (i, c) in calls.iter_mut().enumerate() {
            c.start_time_ns = hour + i as i64 * 1_000_000;
            c.end_time_ns = c.start_time_ns + 1_000_000;
            c.operation_class = OperationClass::Read;
        }
        let refs: Vec<&ToolCall> = calls.iter().collect();
        let batch = arrow_schema::tool_calls_batch(&refs).expect("batch");
        let leaves = leaf_hashes(&RowEncoder::new(TOOL_CALLS, &batch).expect("encoder"), rows);
        let dir = layout.partition_dir(TOOL_CALLS, Partition::of(hour));
        let name = layout.next_file_name(s as i64, s as u64, s as u64);
        chain
            .seal_hashed(
                TOOL_CALLS,
                &dir,
                &name,
                &batch,
                &leaves,
                Some(&class),
                |kv| writer_properties(1, 9, kv),
            )
            .expect("seal");
    }
    println!(
        "built {segments} segments of {rows} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Places a hold on the principal of the first record, over the first day, through a writer
/// as `calltrail hold` does.
fn place_hold(root: &Path, key: &SigningKey, policy: &RetentionConfig, base: i64) {
    let scope = HoldScope {
        principal: Some(first_principal(root)),
        from_ns: Some(base),
        to_ns: Some(base + 24 * HOUR_NS),
        ..HoldScope::default()
    };
    let event = placed_event(&new_id().expect("id"), &scope, "bench", "bench", base).expect("hold");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let writer = StoreWriter::spawn(
            StoreConfig::default(),
            Arc::new(Layout::new(root, "benchhold")),
            &IntegrityConfig {
                log_name: "bench.calltrail".into(),
                ..IntegrityConfig::default()
            },
            key,
            policy,
        )
        .expect("writer");
        writer.audit().append(event).await.expect("hold");
        writer.shutdown().await;
    });
}

/// A principal that occurs in the store: the first non-null one of the first segment.
fn first_principal(root: &Path) -> String {
    let mut stack = vec![root.join(TOOL_CALLS)];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    let file = std::fs::File::open(&files[0]).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    for batch in reader {
        let batch = batch.expect("batch");
        let col = batch.column_by_name("principal").expect("principal column");
        let col = col.as_string::<i32>();
        if let Some(p) = col.iter().flatten().next() {
            return p.to_owned();
        }
    }
    panic!("no principal in the first segment")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let segments: usize = arg(&args, "--segments")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rows: usize = arg(&args, "--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tmp;
    let root: PathBuf = match arg(&args, "--dir") {
        Some(d) => {
            assert!(
                !Path::new(&d).exists(),
                "--dir {d} exists: apply would delete from it"
            );
            PathBuf::from(d)
        }
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_owned()
        }
    };
    let key = SigningKey::generate("bench.calltrail").expect("key");
    // Far enough before 2026-11-23 that even the newest of 10 000 hourly segments has expired
    // under `reads` (396 days).
    let base = 1_795_400_000_000_000_000i64 - (400 * 24 + segments as i64) * HOUR_NS;
    build(&root, &key, segments, rows, base);
    let now = 1_795_400_000i64;
    let policy = RetentionConfig::default();
    place_hold(&root, &key, &policy, base);

    let t = Instant::now();
    let holds = Holds::load(&root).expect("holds");
    let p = plan(&root, &policy, &holds, now).expect("plan");
    let plan_secs = t.elapsed().as_secs_f64();
    println!(
        "plan: {} expired segments, {} due and {} held, in {plan_secs:.2} s ({:.0} segments/s)",
        p.delete.len() + p.held.len(),
        p.delete.len(),
        p.held.len(),
        segments as f64 / plan_secs
    );

    let t = Instant::now();
    let report = apply(&root, &p, &key, now, &|_, _| {}).expect("apply");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "apply: deleted {} segments ({} records, {} bytes) with {} signed receipts in {secs:.2} s ({:.0} segments/s); refused {}",
        report.deleted,
        report.records,
        report.bytes,
        report.receipts.len(),
        report.deleted as f64 / secs,
        report.refused.len()
    );
    assert_eq!(
        report.deleted as usize + p.held.len(),
        segments,
        "every segment had expired"
    );

    let t = Instant::now();
    let v = verify(
        &root,
        &VerifyOptions {
            pubkey: key.verifier(),
            trusted: None,
            from_ns: None,
            to_ns: None,
            threads: 2,
        },
        &|_, _| {},
    )
    .expect("verify");
    println!(
        "verify across {} receipts: {:.2} s; findings {}",
        v.chains.iter().map(|c| c.receipts).sum::<u64>(),
        t.elapsed().as_secs_f64(),
        v.findings.len()
    );
    assert!(v.ok, "{:?}", v.findings.first());
}
