//! Verify benchmark: builds a store of chained records with the writer's own sealing code, then
//! times `calltrail verify` over it and measures the limits under it.
//!
//! Run (release build, the bench profile):
//!
//! ```text
//! cargo bench --bench verify -- [--records N] [--dir DIR] [--threads T]
//! ```
//!
//! Defaults: 5 000 000 records, a temporary directory (an existing `--dir` holding a store is
//! reused as it is, so repeated runs skip the build), threads = available cores. Records come
//! from `calltrail::workload::Workload` (realistic MCP agent tasks), mapped and attributed as
//! ingest does, sealed in segments of 32 768 tool calls (the writer's default flush size).
//!
//! It prints: the build rate; verify's records/s and wall time, with its finding count (must be
//! 0); and, over the first segments, what each stage costs alone on one core: Parquet decoding,
//! canonical encoding, and SHA-256 over the encoded bytes (the hash's own limit, in records/s and
//! MB/s).

use std::path::{Path, PathBuf};
use std::time::Instant;

use calltrail::workload::Workload;
use calltrail_retention::chain::Chain;
use calltrail_retention::layout::{Layout, Partition};
use calltrail_retention::note::SigningKey;
use calltrail_retention::parquet_file::writer_properties;
use calltrail_retention::verify::{VerifyOptions, verify};
use calltrail_schemas::arrow_schema::{self, TOOL_CALLS};
use calltrail_schemas::canonical::RowEncoder;
use calltrail_schemas::{Attributor, IngestContext, ToolCall, map_request};
use sha2::{Digest, Sha256};

const SEGMENT_ROWS: usize = 32_768;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn build(root: &Path, records: usize) -> SigningKey {
    let key = SigningKey::generate("bench.calltrail").expect("key");
    std::fs::create_dir_all(root).expect("store dir");
    std::fs::write(root.join("bench.key"), key.to_text()).expect("key file");
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = Chain::open(root, &key, "bench.calltrail", feed).expect("chain");
    let layout = Layout::new(root, "bench");
    let base = 1_795_400_000_000_000_000i64;
    let mut workload = Workload::new(7, base, 2_000_000);
    let ctx = IngestContext {
        observed_time_ns: base,
        protocol: "otlp_grpc",
        peer: Some("127.0.0.1:5555".into()),
        source: None,
    };
    let attributor = Attributor::default();
    let started = Instant::now();
    let (mut done, mut buf, mut n) = (0usize, Vec::<ToolCall>::new(), 0i64);
    while done < records {
        let req = workload.next_request(1000);
        buf.extend(map_request(&req, &ctx, &attributor).tool_calls);
        while buf.len() >= SEGMENT_ROWS || (done + buf.len() >= records && !buf.is_empty()) {
            let take = buf.len().min(SEGMENT_ROWS).min(records - done);
            let rows: Vec<ToolCall> = buf.drain(..take).collect();
            let refs: Vec<&ToolCall> = rows.iter().collect();
            let batch = arrow_schema::tool_calls_batch(&refs).expect("batch");
            let dir = layout.partition_dir(TOOL_CALLS, Partition::of(rows[0].start_time_ns));
            let name = layout.next_file_name(n, n as u64, n as u64);
            chain
                .seal(TOOL_CALLS, &dir, &name, &batch, |kv| {
                    writer_properties(1, 9, kv)
                })
                .expect("seal");
            n += 1;
            done += take;
            if done >= records {
                buf.clear();
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "built {done} records in {n} segments in {secs:.1} s ({:.0} records/s, single thread)",
        done as f64 / secs
    );
    key
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("list").flatten() {
        let p = e.path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// Per-stage costs over `files`, one core.
fn stages(files: &[PathBuf]) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let t = Instant::now();
    let mut batches = Vec::new();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).expect("open"))
            .expect("parquet")
            .with_batch_size(8192)
            .build()
            .expect("reader");
        batches.extend(r.map(|b| b.expect("batch")));
    }
    let decode = t.elapsed().as_secs_f64();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let t = Instant::now();
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(rows);
    for b in &batches {
        let enc = RowEncoder::new(TOOL_CALLS, b).expect("encoder");
        for i in 0..b.num_rows() {
            let mut out = Vec::with_capacity(1024);
            enc.encode(i, &mut out);
            encoded.push(out);
        }
    }
    let encode = t.elapsed().as_secs_f64();
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let t = Instant::now();
    let mut x = 0u8;
    for e in &encoded {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(e);
        x ^= h.finalize()[0];
    }
    let hash = t.elapsed().as_secs_f64();
    std::hint::black_box(x);
    let per = |s: f64| rows as f64 / s;
    println!(
        "stages over {rows} records ({} canonical bytes/record), one core:",
        bytes / rows.max(1)
    );
    println!("  parquet decode     {:>12.0} records/s", per(decode));
    println!("  canonical encode   {:>12.0} records/s", per(encode));
    println!(
        "  sha-256            {:>12.0} records/s ({:.0} MB/s)",
        per(hash),
        bytes as f64 / hash / 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = arg(&args, "--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let threads: usize = arg(&args, "--threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let tmp;
    let root = match arg(&args, "--dir") {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_owned()
        }
    };
    let key = if root.join("bench.key").exists() {
        let text = std::fs::read_to_string(root.join("bench.key")).expect("key file");
        println!("reusing the store in {}", root.display());
        SigningKey::parse(&text).expect("key")
    } else {
        build(&root, records)
    };
    let options = VerifyOptions {
        pubkey: key.verifier(),
        trusted: None,
        from_ns: None,
        to_ns: None,
        threads,
    };
    let t = Instant::now();
    let report = verify(&root, &options, &|_, _| {}).expect("verify");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "verify: {} records in {} segments in {secs:.2} s = {:.0} records/s on {threads} threads; findings: {}",
        report.records,
        report.segments,
        report.records as f64 / secs,
        report.findings.len()
    );
    assert!(
        report.ok,
        "a freshly built store must verify clean: {:?}",
        report.findings
    );
    let mut files = Vec::new();
    parquet_files(&root.join(TOOL_CALLS), &mut files);
    files.sort();
    files.truncate(8);
    stages(&files);
}
