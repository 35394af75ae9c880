//! Writes the synthetic data set straight into a store data directory, one hour partition at a
//! time on every core, in the store's own file shape.
//!
//! Layout and files are the store's (`docs/specs/record.md`): `<table>/date=…/hour=…/*.parquet`,
//! the stored Arrow schemas (record columns then chain columns), rows sorted by `start_time`,
//! and the writer's properties (`calltrail_retention::parquet_file::writer_properties`: zstd
//! level 1, page statistics, no dictionary on id columns) in files of at most 32 768 rows, the
//! writer's default flush size, each one row group.
//!
//! Bench data only: the chain columns hold one fixed chain id, consecutive seqs per table and
//! deterministic fake hashes, so `calltrail verify` would reject this store. The queries never
//! read the hashes; they are there so the files have the stored width.

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;
use calltrail_retention::layout::Partition;
use calltrail_retention::parquet_file::writer_properties;
use calltrail_schemas::SCHEMA_VERSION;
use calltrail_schemas::arrow_schema::{
    self, ChainColumns, LLM_CALLS, SCHEMA_VERSION_KEY, TABLE_KEY, TOOL_CALLS,
};
use parquet::arrow::ArrowWriter;

use super::BenchResult;
use super::calls::{self, Catalog};
use super::rng::mix;

/// Rows per file: the store writer's default flush size (`store.flush_max_rows`).
const FILE_ROWS: usize = 32_768;
/// The first day of the data set, 2025-06-02 (a Monday), in days since the epoch.
pub(crate) const FIRST_DAY: i64 = 20_241;
/// The seed of every random stream; change it and the data (and the SQL files' principal and
/// day) no longer line up with earlier runs.
const SEED: u64 = 0xca11_7a11;
/// The fixed chain id of the fake chain columns.
const CHAIN_ID: &str = "00000000000000000000000062656e63";
/// The marker file: written last, it says the directory holds a complete data set of a size.
const MARKER: &str = "calltrail-bench.txt";
/// Bump when the generated data changes, so stale directories are rebuilt.
const DATA_VERSION: u32 = 1;

/// How many tool calls each hour gets.
#[derive(Debug, Clone)]
struct HourPlan {
    index: u64,
    partition: Partition,
    tool_rows: usize,
    tool_first_seq: i64,
    llm_first_seq: i64,
}

/// Relative traffic of an hour: weekdays carry four times a weekend day, and the working day
/// (peaking at 13:00 UTC) about seven times the night.
fn weight(day: i64, hour: u32) -> f64 {
    // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
    let weekday = (day + 3).rem_euclid(7) < 5;
    let diurnal = 0.15 + 0.85 * (-((f64::from(hour) - 13.0) / 4.0).powi(2)).exp();
    if weekday { diurnal } else { diurnal * 0.25 }
}

/// Splits `total` tool calls over `days` × 24 hours by [`weight`], summing exactly to `total`.
fn plan(total: usize, days: u32) -> Vec<HourPlan> {
    let hours: Vec<(i64, u32)> = (0..i64::from(days))
        .flat_map(|d| (0..24).map(move |h| (FIRST_DAY + d, h)))
        .collect();
    let sum: f64 = hours.iter().map(|&(d, h)| weight(d, h)).sum();
    let mut counts: Vec<usize> = hours
        .iter()
        .map(|&(d, h)| (total as f64 * weight(d, h) / sum) as usize)
        .collect();
    // Flooring loses at most one row per hour; the busiest hours take them back.
    let short = total - counts.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    for &i in order.iter().cycle().take(short) {
        counts[i] += 1;
    }
    let (mut tool_seq, mut llm_seq) = (0i64, 0i64);
    hours
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (&(day, hour), n))| {
            let p = HourPlan {
                index: i as u64,
                partition: Partition { day, hour },
                tool_rows: n,
                tool_first_seq: tool_seq,
                llm_first_seq: llm_seq,
            };
            tool_seq += n as i64;
            llm_seq += n.div_ceil(3) as i64;
            p
        })
        .collect()
}

fn marker_text(total: usize, days: u32) -> String {
    format!("rows={total} days={days} data_version={DATA_VERSION}\n")
}

/// True when `dir` already holds the data set of this size (its marker says so).
pub(crate) fn is_ready(dir: &Path, total: usize, days: u32) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m == marker_text(total, days))
}

/// Generates `total` tool calls over `days` days into `dir`, replacing an earlier bench data
/// set there. Refuses a non-empty directory that is not one of ours, so a real store is never
/// overwritten.
pub(crate) fn generate(dir: &Path, total: usize, days: u32) -> BenchResult<()> {
    fs::create_dir_all(dir)?;
    let ours = dir.join(MARKER).exists();
    if !ours && fs::read_dir(dir)?.next().is_some() {
        return Err(format!(
            "{} is not empty and has no {MARKER}: refusing to write bench data into it",
            dir.display()
        )
        .into());
    }
    // The marker goes first so a run cut short stays recognisably ours (and stale).
    fs::write(dir.join(MARKER), "incomplete\n")?;
    for table in [TOOL_CALLS, LLM_CALLS] {
        let t = dir.join(table);
        if t.exists() {
            fs::remove_dir_all(&t)?;
        }
    }
    let hours = plan(total, days);
    let catalog = Catalog::new();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(h) = hours.get(i) else { break };
                    if let Err(e) = write_hour(dir, &catalog, h) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e.to_string());
                        }
                        break;
                    }
                    if h.partition.hour == 23 {
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!("  generated {} ({secs:.0} s)", h.partition.path());
                    }
                }
            });
        }
    });
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e.into());
    }
    let tmp = dir.join(format!(".{MARKER}.tmp"));
    fs::write(&tmp, marker_text(total, days))?;
    fs::rename(&tmp, dir.join(MARKER))?;
    Ok(())
}

fn write_hour(dir: &Path, catalog: &Catalog, h: &HourPlan) -> BenchResult<()> {
    let start_ns = (h.partition.day * 86_400 + i64::from(h.partition.hour) * 3600) * 1_000_000_000;
    let (tools, llms) = calls::hour(catalog, SEED, h.index, start_ns, h.tool_rows);
    write_table(dir, TOOL_CALLS, h, &tools, h.tool_first_seq, |rows| {
        arrow_schema::tool_calls_batch(rows)
    })?;
    write_table(dir, LLM_CALLS, h, &llms, h.llm_first_seq, |rows| {
        arrow_schema::llm_calls_batch(rows)
    })
}

/// A fake 32-byte hash of `(table, seq)`.
fn fake_hash(salt: u64, seq: i64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(salt ^ (seq as u64) << 2 ^ i as u64).to_le_bytes());
    }
    out
}

fn write_table<T>(
    dir: &Path,
    table: &str,
    h: &HourPlan,
    rows: &[T],
    first_seq: i64,
    build: impl Fn(&[&T]) -> Result<RecordBatch, arrow::error::ArrowError>,
) -> BenchResult<()> {
    let part_dir = dir.join(table).join(h.partition.path());
    fs::create_dir_all(&part_dir)?;
    let salt = if table == TOOL_CALLS { 0x1eaf } else { 0x11a1 };
    for (n, chunk) in rows.chunks(FILE_ROWS).enumerate() {
        let seq = first_seq + (n * FILE_ROWS) as i64;
        let refs: Vec<&T> = chunk.iter().collect();
        let content = build(&refs)?;
        let leaves: Vec<[u8; 32]> = (0..chunk.len() as i64)
            .map(|i| fake_hash(salt, seq + i))
            .collect();
        let chained: Vec<[u8; 32]> = (0..chunk.len() as i64)
            .map(|i| fake_hash(!salt, seq + i))
            .collect();
        let batch = arrow_schema::with_chain(
            &content,
            ChainColumns {
                chain_id: CHAIN_ID,
                first_seq: seq,
                leaf_hashes: &leaves,
                chain_hashes: &chained,
            },
        )?;
        let sort = batch.schema().index_of("start_time")?;
        let metadata = vec![
            (SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
            (TABLE_KEY.to_string(), table.to_string()),
        ];
        let props = writer_properties(1, sort, metadata)?;
        let name = format!("bench-{:05}-{n}.parquet", h.index);
        // Temp name then rename, as the store does, so a cut-short run leaves no torn
        // `.parquet`; no fsync: bench data is rebuilt rather than recovered.
        let tmp = part_dir.join(format!(".{name}.tmp"));
        let mut writer =
            ArrowWriter::try_new(fs::File::create(&tmp)?, batch.schema(), Some(props))?;
        writer.write(&batch)?;
        writer.close()?;
        fs::rename(&tmp, part_dir.join(name))?;
    }
    Ok(())
}
