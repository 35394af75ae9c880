//! Writing result batches to files, each atomically: CSV and Parquet for the FOCUS export,
//! Parquet for the detectors' rollups, profiles and findings.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use crate::{Error, Result};

/// Writes `batch` to `path` as CSV (RFC 4180: a header row, CRLF line ends, fields quoted when
/// needed with quotes doubled), datetimes as RFC 3339 UTC (`2026-03-01T00:00:00Z`), decimals
/// as plain decimal text, nulls as empty fields. Atomic: a reader sees the old file or the
/// new one.
pub fn write_csv(batch: &RecordBatch, path: &Path) -> Result<()> {
    write_atomic(path, |file| csv_into(batch, file))
}

/// `batch` as the CSV [`write_csv`] writes, in memory (the API's downloads).
pub(crate) fn csv_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    csv_into(batch, Vec::new())
}

fn csv_into<W: Write>(batch: &RecordBatch, out: W) -> Result<W> {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .with_line_terminator(arrow::csv::writer::Terminator::CRLF)
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%SZ".into())
        .build(BufWriter::new(out));
    w.write(batch).map_err(out_err)?;
    w.into_inner().into_inner().map_err(|e| out_err(e.error()))
}

/// Writes `batch` to `path` as Parquet (zstd), atomically.
pub fn write_parquet(batch: &RecordBatch, path: &Path) -> Result<()> {
    write_atomic(path, |file| {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(out_err)?;
        w.write(batch).map_err(out_err)?;
        w.into_inner().map_err(out_err)
    })
}

fn out_err(e: impl std::fmt::Display) -> Error {
    Error::Output(e.to_string())
}

/// Writes `path` through a temporary file beside it, fsynced and renamed into place, then
/// syncs the directory, so that a crash leaves the old file or the new, never a part.
fn write_atomic(path: &Path, write: impl FnOnce(File) -> Result<File>) -> Result<()> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::Output(format!("{what} {}: {e}", p.display()))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Output(format!("{} is not a file name", path.display())))?;
    calltrail_retention::files::ensure_dir(dir).map_err(out_err)?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        let mut file = write(file)?;
        file.flush().map_err(|e| io("write", &tmp, e))?;
        file.sync_all().map_err(|e| io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io("rename", &tmp, e))?;
        calltrail_retention::files::sync_dir(dir).map_err(out_err)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is never read.
        let _ = fs::remove_file(&tmp);
    }
    result
}
