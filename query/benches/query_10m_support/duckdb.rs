//! The DuckDB side: runs `duckdb_bench.py` in a Python that has `duckdb`, over the same files
//! and SQL files, and reads its JSON report.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::BenchResult;

/// One query's figures from DuckDB.
#[derive(Debug, Deserialize)]
pub(crate) struct DuckQuery {
    /// Seconds of each timed run.
    pub(crate) runs: Vec<f64>,
    /// The fastest run, in seconds.
    pub(crate) best: f64,
    /// Rows returned.
    pub(crate) rows: usize,
    /// Result column names.
    pub(crate) columns: Vec<String>,
    /// Result rows, values as JSON.
    pub(crate) values: Vec<Vec<serde_json::Value>>,
}

/// The script's report.
#[derive(Debug, Deserialize)]
pub(crate) struct DuckReport {
    /// DuckDB's version.
    pub(crate) duckdb_version: String,
    /// Which `calls` view it ran with (`simple` or `calltrail`).
    pub(crate) view: String,
    /// DuckDB's worker threads.
    pub(crate) threads: serde_json::Value,
    /// Per query name.
    pub(crate) queries: std::collections::BTreeMap<String, DuckQuery>,
}

/// How to run DuckDB.
pub(crate) struct DuckRun<'a> {
    /// The Python interpreter.
    pub(crate) python: &'a Path,
    /// The bench data directory.
    pub(crate) data: &'a Path,
    /// `simple` or `calltrail` (see the script).
    pub(crate) view: &'a str,
    /// Timed runs after the warm-up.
    pub(crate) runs: usize,
    /// (name, SQL file) pairs.
    pub(crate) queries: &'a [(String, std::path::PathBuf)],
}

/// Whether `python` can import duckdb; the reason when not.
pub(crate) fn available(python: &Path) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import duckdb, pyarrow"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot import duckdb and pyarrow: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs the script and parses its report; its progress lines pass through to stderr.
pub(crate) fn run(r: &DuckRun<'_>) -> BenchResult<DuckReport> {
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
    let mut cmd = Command::new(r.python);
    cmd.arg(bench_dir.join("duckdb_bench.py"))
        .arg("--data")
        .arg(r.data)
        .args(["--view", r.view, "--runs", &r.runs.to_string()])
        .arg("--calls-sql")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/calls.sql"));
    for (name, path) in r.queries {
        cmd.arg(format!("{name}={}", path.display()));
    }
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("duckdb_bench.py failed ({})", out.status).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
