//! Daily rollups of the calls: what every rule and baseline reads instead of the calls. A day is
//! rolled up once (three SQL queries over that day's partitions, `query/sql/detect/`) and kept
//! under `<data_dir>/baselines/rollup/date=YYYY-MM-DD/`, with the listing of the source files
//! it was computed from; it is computed again only when that listing changes (the current day,
//! or a day that late data reached). That is what makes runs incremental: a run reads the
//! rollups of its history and the calls of the days that changed, never all the calls.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use calltrail_schemas::arrow_schema::{LLM_CALLS, TOOL_CALLS};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use crate::engine::{DateRange, Engine};
use crate::files::write_parquet;
use crate::{Error, Result};

const CALLS_SQL: &str = include_str!("../../sql/detect/rollup_calls.sql");
const QUARTERS_SQL: &str = include_str!("../../sql/detect/rollup_quarters.sql");
const TOKENS_SQL: &str = include_str!("../../sql/detect/rollup_tokens.sql");

/// The parts of a day's rollup: file stem and query.
const PARTS: [(&str, &str); 3] = [
    ("calls", CALLS_SQL),
    ("quarters", QUARTERS_SQL),
    ("tokens", TOKENS_SQL),
];

/// Name of the file that records which source files a day's rollup was computed from; written
/// last, so a day whose rollup was interrupted is computed again.
const SOURCES: &str = "sources.sha256";

/// One day's rollup, as batches of the three queries' results.
#[derive(Debug, Default, Clone)]
pub(crate) struct DayRollup {
    /// `rollup_calls.sql`: per hour, principal, server, item and class.
    pub(crate) calls: Vec<RecordBatch>,
    /// `rollup_quarters.sql`: per 15-minute bucket and server.
    pub(crate) quarters: Vec<RecordBatch>,
    /// `rollup_tokens.sql`: per hour and principal.
    pub(crate) tokens: Vec<RecordBatch>,
}

impl DayRollup {
    fn part_mut(&mut self, name: &str) -> &mut Vec<RecordBatch> {
        match name {
            "calls" => &mut self.calls,
            "quarters" => &mut self.quarters,
            _ => &mut self.tokens,
        }
    }
}

/// How a day's rollup was obtained, for the run's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Obtained {
    /// Read back: its sources had not changed.
    Reused,
    /// Computed from the day's calls.
    Computed,
    /// The day has no calls at all.
    Empty,
}

fn rollup_dir(data_dir: &Path, date: &str) -> PathBuf {
    data_dir
        .join("baselines")
        .join("rollup")
        .join(format!("date={date}"))
}

fn io_error(path: &Path, e: &io::Error) -> Error {
    Error::Internal(format!("{}: {e}", path.display()))
}

/// A digest of the day's source files (path and size of every Parquet file of the two calls
/// tables in the day's partitions), or `None` when the day has none.
pub(crate) fn source_digest(data_dir: &Path, date: &str) -> Result<Option<String>> {
    let mut files = Vec::new();
    for table in [TOOL_CALLS, LLM_CALLS] {
        let day = data_dir.join(table).join(format!("date={date}"));
        let hours = match fs::read_dir(&day) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&day, &e)),
        };
        for hour in hours {
            let hour = hour.map_err(|e| io_error(&day, &e))?.path();
            let Ok(entries) = fs::read_dir(&hour) else {
                continue;
            };
            for f in entries.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "parquet") {
                    let len = f.metadata().map_err(|e| io_error(&p, &e))?.len();
                    files.push(format!("{} {len}", p.display()));
                }
            }
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.as_bytes());
        h.update(b"\n");
    }
    Ok(Some(hex::encode(h.finalize())))
}

fn read_part(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path, &e)),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))
}

/// Replaces `path` with `batches` (atomically), or removes it when there are none.
fn write_part(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        return match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(path, &e)),
        };
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches)
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    write_parquet(&batch, path)
}

/// A day's stored rollup, as [`stored`] finds it.
#[derive(Debug)]
pub(crate) enum Stored {
    /// The day has no calls.
    Empty,
    /// Stored for the current sources (their digest): read back.
    Fresh(DayRollup, String),
    /// Missing or stored for other sources: to be computed (the sources' digest).
    Stale(String),
}

/// The stored rollup of `date` when its sources are unchanged. Plain file reads, no query:
/// a run reads many days this way on several threads.
pub(crate) fn stored(data_dir: &Path, date: &str) -> Result<Stored> {
    let Some(digest) = source_digest(data_dir, date)? else {
        return Ok(Stored::Empty);
    };
    let dir = rollup_dir(data_dir, date);
    if !fs::read_to_string(dir.join(SOURCES)).is_ok_and(|s| s.trim() == digest) {
        return Ok(Stored::Stale(digest));
    }
    let mut rollup = DayRollup::default();
    for (name, _) in PARTS {
        *rollup.part_mut(name) = read_part(&dir.join(format!("{name}.parquet")))?;
    }
    Ok(Stored::Fresh(rollup, digest))
}

/// The rollup of `date` (`YYYY-MM-DD`), given what [`stored`] found: read back when its
/// sources are unchanged, else computed from the day's calls and stored; with the digest of
/// the sources it is kept under (none for a day without calls).
pub(crate) async fn day(
    engine: &Engine,
    date: &str,
    found: Stored,
) -> Result<(DayRollup, Obtained, Option<String>)> {
    let digest = match found {
        Stored::Empty => return Ok((DayRollup::default(), Obtained::Empty, None)),
        Stored::Fresh(rollup, digest) => return Ok((rollup, Obtained::Reused, Some(digest))),
        Stored::Stale(digest) => digest,
    };
    let data_dir = engine.data_dir();
    let dir = rollup_dir(data_dir, date);
    let sources = dir.join(SOURCES);
    let mut rollup = DayRollup::default();
    let range = DateRange {
        first: date.to_string(),
        last: date.to_string(),
    };
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, &e))?;
    // The old digest goes first: a crash part-way leaves a day that is computed again.
    match fs::remove_file(&sources) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&sources, &e)),
    }
    for (name, sql) in PARTS {
        let batches: Vec<RecordBatch> = engine
            .query_internal(sql, &range)
            .await?
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .collect();
        write_part(&dir.join(format!("{name}.parquet")), &batches)?;
        *rollup.part_mut(name) = batches;
    }
    let tmp = dir.join(format!("{SOURCES}.tmp"));
    fs::write(&tmp, format!("{digest}\n")).map_err(|e| io_error(&tmp, &e))?;
    fs::rename(&tmp, &sources).map_err(|e| io_error(&sources, &e))?;
    Ok((rollup, Obtained::Computed, Some(digest)))
}
