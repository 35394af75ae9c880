//! The `anomalies` table read back for forwarding: which findings files a destination has not
//! had yet, and their rows.
//!
//! Layout (written by the detectors, `calltrail_schemas::finding`):
//! `<data_dir>/anomalies/date=YYYY-MM-DD/<run>.parquet`, partitioned by the UTC date of each
//! finding's window start. Every file is written once, atomically (a hidden temporary name,
//! then a rename), and never modified; within a date partition, file names sort in the order
//! the files were written. Those two facts are what make a [`FindingsCursor`] (per date, the
//! newest file delivered) a complete position: a file appears whole or not at all, and a new
//! one in a partition always sorts after every older one there. Partitions themselves are not
//! written in date order (a late or backfill run adds files to an older date), which is why the
//! cursor keeps one position per date rather than one overall.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use calltrail_schemas::finding::ANOMALIES;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::cursor::FindingsCursor;
use super::source::SourceError;

/// Rows per batch read from a findings file.
const READ_BATCH_ROWS: usize = 4096;

/// The prefix of a date partition's directory name.
const DATE_PREFIX: &str = "date=";

/// One findings file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingsFile {
    /// Its date partition, `YYYY-MM-DD`.
    pub date: String,
    /// Its file name.
    pub name: String,
}

impl FindingsFile {
    /// Its path relative to the data directory.
    pub fn path(&self) -> PathBuf {
        Path::new(ANOMALIES)
            .join(format!("{DATE_PREFIX}{}", self.date))
            .join(&self.name)
    }
}

/// The `anomalies` table as listed: per date partition, its files' names in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingsListing {
    /// Per date, the file names, sorted.
    pub files: BTreeMap<String, Vec<String>>,
}

impl FindingsListing {
    /// Lists the table of the store at `root` (empty when it has none yet). Only complete
    /// Parquet files count: hidden names (`.x.tmp`, a write in progress) and `_`-prefixed ones
    /// (Hive's convention for metadata) are left out.
    pub fn list(root: &Path) -> Result<Self, SourceError> {
        let table = root.join(ANOMALIES);
        let mut files = BTreeMap::new();
        for (date, dir) in subdirs(&table)? {
            let mut names = parquet_files(&dir)?;
            names.sort();
            files.insert(date, names);
        }
        Ok(Self { files })
    }

    /// Every date partition present, with files or not.
    pub fn dates(&self) -> BTreeSet<String> {
        self.files.keys().cloned().collect()
    }

    /// The files `cursor` has not had, oldest date first, in name order within a date.
    pub fn pending(&self, cursor: &FindingsCursor) -> Vec<FindingsFile> {
        self.files
            .iter()
            .flat_map(|(date, names)| {
                names
                    .iter()
                    .filter(|name| !cursor.is_delivered(date, name))
                    .map(|name| FindingsFile {
                        date: date.clone(),
                        name: name.clone(),
                    })
            })
            .collect()
    }

    /// A cursor past every file listed: where a destination that starts `now` begins.
    pub fn end(&self) -> FindingsCursor {
        let delivered = self
            .files
            .iter()
            .filter_map(|(date, names)| Some((date.clone(), names.last()?.clone())))
            .collect();
        FindingsCursor { delivered }
    }
}

/// The `date=` partitions of `table`, by date; none when the table does not exist yet.
fn subdirs(table: &Path) -> Result<Vec<(String, PathBuf)>, SourceError> {
    let entries = match std::fs::read_dir(table) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SourceError::ListDir {
                path: table.to_owned(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::ListDir {
            path: table.to_owned(),
            source,
        })?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry.file_name();
        let date = name.to_str().and_then(|n| n.strip_prefix(DATE_PREFIX));
        if let (true, Some(date)) = (is_dir, date) {
            out.push((date.to_owned(), entry.path()));
        }
    }
    Ok(out)
}

/// The names of the complete Parquet files in `dir`.
fn parquet_files(dir: &Path) -> Result<Vec<String>, SourceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // Retention removed the partition between the two listings.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SourceError::ListDir {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::ListDir {
            path: dir.to_owned(),
            source,
        })?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".parquet") && !name.starts_with(['.', '_']) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The rows of the findings file `file` of the store at `root`. A file that is gone
/// (retention removed it after the listing) is [`SourceError::Vanished`].
pub fn read_findings(root: &Path, file: &FindingsFile) -> Result<Vec<RecordBatch>, SourceError> {
    let path = root.join(file.path());
    let err = |message: String| SourceError::Read {
        path: path.clone(),
        message,
    };
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::Vanished { path });
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| err(e.to_string()))?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| err(e.to_string()))?;
    reader.map(|b| b.map_err(|e| err(e.to_string()))).collect()
}

#[cfg(test)]
#[path = "findings_tests.rs"]
pub(crate) mod tests;
