//! Export benchmark: times `calltrail export` of about a million records with their proofs,
//! and `calltrail verify-export` of the bundle, over a store of chained records.
//!
//! Run (release build, the bench profile):
//!
//! ```text
//! cargo bench --bench export -- [--dir DIR] [--records N] [--select N] [--out DIR]
//! ```
//!
//! `--dir` is a store built by this benchmark or by `cargo bench --bench verify -- --dir DIR`
//! (a `bench.key` beside its data), reused read-only; without one, a store of `--records`
//! (default 5 000 000) realistic tool calls is built in a temporary directory first. `--select`
//! (default 1 000 000) is how many records each export selects, in two shapes:
//!
//! - **dense**: a time range holding the first `--select` records: consecutive seqs, whose
//!   audit paths share most of their nodes;
//! - **sparse**: one tenant (about half the callers) over a longer range: every other record or
//!   so, the harder case for the proofs' size.
//!
//! For each it prints the export's wall time, the bundle's bytes (records and proofs apart),
//! verify-export's wall time, and the process's peak resident memory so far.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampNanosecondType;
use calltrail_retention::export::{ExportOptions, Format, Selection, export, verify_export};
use calltrail_retention::note::SigningKey;
use calltrail_schemas::arrow_schema::TOOL_CALLS;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod support;
use support::{arg, build_store};

const TENANT: &str = "acme-bank-eu";

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

/// The start times of every record, and of those of `TENANT`, each sorted.
fn start_times(root: &Path) -> (Vec<i64>, Vec<i64>) {
    let mut files = Vec::new();
    parquet_files(&root.join(TOOL_CALLS), &mut files);
    let (mut all, mut tenant) = (Vec::new(), Vec::new());
    for f in files {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).expect("open"))
                .expect("parquet");
        let mask = ProjectionMask::columns(builder.parquet_schema(), ["start_time", "tenant"]);
        for batch in builder.with_projection(mask).build().expect("reader") {
            let batch = batch.expect("batch");
            let t = batch
                .column_by_name("start_time")
                .expect("start_time")
                .as_primitive::<TimestampNanosecondType>();
            let who = batch
                .column_by_name("tenant")
                .expect("tenant")
                .as_string::<i32>();
            for i in 0..batch.num_rows() {
                all.push(t.value(i));
                if who.is_valid(i) && who.value(i) == TENANT {
                    tenant.push(t.value(i));
                }
            }
        }
    }
    all.sort_unstable();
    tenant.sort_unstable();
    (all, tenant)
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    dir_bytes(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}

fn run(root: &Path, key: &SigningKey, name: &str, selection: Selection, out: &Path) {
    let bundle = out.join(name);
    let options = ExportOptions {
        out: bundle.clone(),
        selection,
        format: Format::Parquet,
        key: key.clone(),
    };
    let t = Instant::now();
    let summary = export(root, &options, &|_, _| {}).expect("export");
    let secs = t.elapsed().as_secs_f64();
    let records = dir_bytes(&bundle.join("records"));
    let proofs = dir_bytes(&bundle.join("proofs"));
    println!(
        "{name}: exported {} records with proofs in {secs:.2} s ({:.0} records/s); bundle {} bytes \
         ({:.1} MB: records {:.1} MB = {:.0} B/record, proofs {:.1} MB = {:.0} B/record); peak RSS {:.0} MiB",
        summary.records,
        summary.records as f64 / secs,
        summary.bytes,
        summary.bytes as f64 / 1e6,
        records as f64 / 1e6,
        records as f64 / summary.records.max(1) as f64,
        proofs as f64 / 1e6,
        proofs as f64 / summary.records.max(1) as f64,
        peak_rss_mib()
    );
    let t = Instant::now();
    let report = verify_export(&bundle, &key.verifier(), &|_, _| {}).expect("verify-export");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name}: verify-export checked {} records and {} proofs in {secs:.2} s ({:.0} records/s); ok: {}; peak RSS {:.0} MiB",
        report.records,
        report.proofs_verified,
        report.records as f64 / secs,
        report.ok,
        peak_rss_mib()
    );
    assert!(report.ok, "{:?}", report.findings.first());
    std::fs::remove_dir_all(&bundle).expect("remove the bundle");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = arg(&args, "--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let select: usize = arg(&args, "--select")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp;
    let root = match arg(&args, "--dir") {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_owned()
        }
    };
    let key = if root.join("bench.key").exists() {
        println!("reusing the store in {}", root.display());
        let text = std::fs::read_to_string(root.join("bench.key")).expect("key file");
        SigningKey::parse(&text).expect("key")
    } else {
        build_store(&root, records)
    };
    let out_tmp = tempfile::tempdir().expect("tempdir");
    let out = arg(&args, "--out").map_or_else(|| out_tmp.path().to_owned(), PathBuf::from);
    let (all, tenant) = start_times(&root);
    println!(
        "store: {} records, {} of tenant {TENANT}",
        all.len(),
        tenant.len()
    );
    let cut = |times: &[i64]| times.get(select).map_or(i64::MAX, |t| *t);
    run(
        &root,
        &key,
        "dense",
        Selection {
            from_ns: all[0],
            to_ns: cut(&all),
            ..Selection::default()
        },
        &out,
    );
    run(
        &root,
        &key,
        "sparse",
        Selection {
            from_ns: tenant[0],
            to_ns: cut(&tenant),
            tenants: vec![TENANT.into()],
            ..Selection::default()
        },
        &out,
    );
}
