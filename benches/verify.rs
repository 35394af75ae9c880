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

use calltrail_retention::note::SigningKey;
use calltrail_retention::verify::{VerifyOptions, verify};
use calltrail_schemas::arrow_schema::TOOL_CALLS;
use calltrail_schemas::canonical::RowEncoder;
use sha2::{Digest, Sha256};

mod support;
use support::{arg, build_store};

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
        build_store(&root, records)
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
