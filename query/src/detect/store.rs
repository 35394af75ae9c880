//! The `anomalies` table on disk: `<data_dir>/anomalies/date=YYYY-MM-DD/<run>.parquet`, by the
//! UTC date of each finding's window start. A run writes one file per date holding only the
//! findings no earlier file of that date has (`finding_id`), so scheduled runs and backfills
//! over the same hours never report a finding twice; files are written once, atomically.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use calltrail_schemas::finding::{ANOMALIES, Finding, findings_batch, findings_from_batch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::files::write_parquet;
use crate::{Error, Result};

/// The UTC date (`YYYY-MM-DD`) of `ns`: a findings partition.
pub(crate) fn date_of(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d")
        .to_string()
}

fn date_dir(data_dir: &Path, date: &str) -> PathBuf {
    data_dir.join(ANOMALIES).join(format!("date={date}"))
}

fn internal(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{}: {e}", path.display()))
}

/// The findings stored for `date`.
pub(crate) fn read_date(data_dir: &Path, date: &str) -> Result<Vec<Finding>> {
    let dir = date_dir(data_dir, date);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(internal(&dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let file = fs::File::open(&path).map_err(|e| internal(&path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| internal(&path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| internal(&path, e))?;
            out.extend(findings_from_batch(&batch).map_err(|e| internal(&path, e))?);
        }
    }
    Ok(out)
}

/// Stores the findings not stored before; returns them (the new ones), in input order.
pub(crate) fn append(data_dir: &Path, findings: Vec<Finding>, run_ns: i64) -> Result<Vec<Finding>> {
    let mut by_date: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for f in findings {
        by_date
            .entry(date_of(f.window_start_ns))
            .or_default()
            .push(f);
    }
    let mut added = Vec::new();
    for (date, findings) in by_date {
        let mut seen: HashSet<String> = read_date(data_dir, &date)?
            .into_iter()
            .map(|f| f.finding_id)
            .collect();
        let new: Vec<Finding> = findings
            .into_iter()
            .filter(|f| seen.insert(f.finding_id.clone()))
            .collect();
        if new.is_empty() {
            continue;
        }
        write_file(&date_dir(data_dir, &date), &new, run_ns)?;
        added.extend(new);
    }
    Ok(added)
}

fn write_file(dir: &Path, findings: &[Finding], run_ns: i64) -> Result<()> {
    let batch = findings_batch(findings).map_err(|e| internal(dir, e))?;
    // Names sort by run time; the process id keeps two concurrent runs apart.
    let name = format!("{run_ns:020}-{}.parquet", std::process::id());
    write_parquet(&batch, &dir.join(name))
}

#[cfg(test)]
mod tests {
    use calltrail_schemas::finding::Severity;

    use super::*;
    use crate::detect::draft::finding;

    fn sample(entity: &str, start_ns: i64) -> Finding {
        let mut f = finding("D1", "volume_spike", "user", entity, start_ns, start_ns + 1);
        f.severity = Severity::High;
        f.explanation = format!("{entity} did something");
        f
    }

    #[test]
    fn a_finding_is_stored_once_whichever_run_finds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day = 86_400_000_000_000;
        let first = vec![sample("alice", 0), sample("bob", day)];
        let added = append(dir.path(), first.clone(), 1).expect("first run");
        assert_eq!(added, first);
        let again = vec![sample("alice", 0), sample("carol", 0)];
        let added = append(dir.path(), again, 2).expect("second run");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].entity, "carol");
        let stored = read_date(dir.path(), "1970-01-01").expect("read");
        let names: Vec<&str> = stored.iter().map(|f| f.entity.as_str()).collect();
        assert_eq!(names, ["alice", "carol"]);
        assert_eq!(read_date(dir.path(), "1970-01-02").expect("read").len(), 1);
    }
}
