//! Query benchmark: chargeback, ROI and an ad hoc per-user filter over 10 million synthetic
//! calls in 30 days, through `calltrail_query::Engine`, side by side with DuckDB on the same
//! files in the same run.
//!
//! Run (release build, the bench profile):
//!
//! ```text
//! CALLTRAIL_BENCH_DIR=/work/.cache/bench-10m \
//!   cargo bench -p calltrail-query --bench query_10m -- [--rows N] [--days D] [--dir DIR]
//!   [--runs R] [--no-duckdb] [--explain] [--experiments] [--sql TEXT]
//! ```
//!
//! - Data: `--dir`, else `$CALLTRAIL_BENCH_DIR`, else `target/bench-query-10m`. Generated once
//!   (`query_10m_support/generate.rs`: the store's layout, schemas and file properties) and
//!   reused while its marker file names the same size. Defaults: 10 000 000 tool calls (and a
//!   third as many LLM calls) over 30 days from 2025-06-02.
//! - Queries: `benches/sql/*.sql`, the single source for both engines; each is timed best of
//!   `--runs` (default 3) after one warm-up, every run printed. `Engine::query` builds a session
//!   per query, as the API does, so the figures include listing the files.
//! - DuckDB: `benches/duckdb_bench.py` run by `$CALLTRAIL_BENCH_PYTHON` (default
//!   `.venv-test/bin/python`), with the simple `calls` view (the column the ratio uses) and with
//!   query/sql/calls.sql itself. Skipped, with a note, when that Python has no duckdb.
//! - Cross-check: both engines must return the same rows and values (numbers to 1e-6
//!   relative); a mismatch is printed and the bench exits non-zero.
//! - Reports: the API's monthly chargeback by team and ROI by team (`chargeback::compute`,
//!   `roi::compute`) over the data set's days, served from the daily report rollups
//!   (`report_rollup.rs`). The first run starts with no rollups under `<dir>/reports/` (it is
//!   removed) and builds them: "cold"; the next `--runs` read them: "warm". `--no-reports`
//!   skips them; `--reports-only` skips the SQL queries through the engine (DuckDB still runs).
//! - `--explain` prints `EXPLAIN ANALYZE` of each query through the engine; `--experiments`
//!   times session-setting variants on a local copy of the engine's session; `--sql TEXT` runs
//!   one statement through the engine (after generating the data if needed), prints it and
//!   its time, and stops.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use calltrail_query::chargeback::{self, ChargebackRequest, Dimension, Granularity};
use calltrail_query::price_table::ChargebackConfig;
use calltrail_query::roi::{self, RoiRequest};
use calltrail_query::{Engine, QueryLimits, Scope};

mod query_10m_support;
use query_10m_support::duckdb::{self, DuckReport, DuckRun};
use query_10m_support::experiments;
use query_10m_support::{BenchResult, compare, generate};

/// The queries, by name, in `benches/sql/`.
const QUERIES: &[&str] = &["chargeback_by_team", "roi_by_team", "user_filter"];
/// Memory a bench query may hold: generous, the machine's RAM is the real bound.
const MEMORY_MIB: usize = 12 * 1024;

/// Command-line settings.
struct Args {
    rows: usize,
    days: u32,
    dir: PathBuf,
    runs: usize,
    duckdb: bool,
    explain: bool,
    experiments: bool,
    python: PathBuf,
    sql: Option<String>,
    reports: bool,
    queries: bool,
}

fn parse_args() -> BenchResult<Args> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    let has = |flag: &str| argv.iter().any(|a| a == flag);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = value("--dir")
        .or_else(|| std::env::var("CALLTRAIL_BENCH_DIR").ok())
        .map_or_else(|| manifest.join("../target/bench-query-10m"), PathBuf::from);
    let python = std::env::var("CALLTRAIL_BENCH_PYTHON")
        .map_or_else(|_| manifest.join("../.venv-test/bin/python"), PathBuf::from);
    Ok(Args {
        rows: value("--rows").map_or(Ok(10_000_000), |v| v.parse())?,
        days: value("--days").map_or(Ok(30), |v| v.parse())?,
        dir,
        runs: value("--runs").map_or(Ok(3), |v| v.parse())?.max(1),
        duckdb: !has("--no-duckdb"),
        explain: has("--explain"),
        experiments: has("--experiments"),
        python,
        sql: value("--sql"),
        reports: !has("--no-reports"),
        queries: !has("--reports-only"),
    })
}

fn sql_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/sql/{name}.sql"))
}

/// Our timings and last result of one query.
struct Ours {
    runs: Vec<f64>,
    batches: Vec<RecordBatch>,
}

impl Ours {
    fn best(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

async fn time_engine(engine: &Engine, name: &str, sql: &str, runs: usize) -> BenchResult<Ours> {
    let mut times = Vec::new();
    let mut batches = Vec::new();
    for i in 0..=runs {
        let started = Instant::now();
        batches = engine.query(sql).await?;
        let secs = started.elapsed().as_secs_f64();
        let label = if i == 0 {
            "warm-up".to_string()
        } else {
            format!("run {i}")
        };
        eprintln!("  calltrail {name} {label}: {secs:.3} s");
        if i > 0 {
            times.push(secs);
        }
    }
    Ok(Ours {
        runs: times,
        batches,
    })
}

/// The price table of `benches/sql/chargeback_by_team.sql`, for the chargeback report.
const PRICES: &str = r#"
currency = "USD"
[[price_tables]]
version = "bench"
platform_monthly_cost = 30000.0
default_per_call = 0.002
per_second = 0.0001
default_per_1k_input_tokens = 0.003
default_per_1k_output_tokens = 0.015
[[price_tables.calls]]
operation_class = "read"
per_call = 0.001
[[price_tables.calls]]
operation_class = "write"
per_call = 0.005
[[price_tables.calls]]
operation_class = "delete"
per_call = 0.01
"#;

/// Times the chargeback and ROI reports: the first run cold (no rollups), then `runs` warm.
/// Returns (name, cold seconds, warm runs, rows).
async fn time_reports(
    args: &Args,
    engine: &Engine,
) -> BenchResult<Vec<(&'static str, f64, Vec<f64>, usize)>> {
    let rollups = args.dir.join("reports");
    if rollups.exists() {
        std::fs::remove_dir_all(&rollups)?;
    }
    let config: ChargebackConfig = toml::from_str(PRICES)?;
    config.validate()?;
    let from = chargeback::parse_time("2025-06-02").ok_or("bad start")?;
    let to = from + chrono::Duration::days(i64::from(args.days));
    let mut out = Vec::new();
    for name in ["chargeback_report", "roi_report"] {
        let mut times = Vec::new();
        let mut rows = 0;
        for i in 0..=args.runs {
            let started = Instant::now();
            rows = if name == "chargeback_report" {
                let request = ChargebackRequest {
                    from,
                    to,
                    by: vec![Dimension::Team],
                    granularity: Granularity::Month,
                };
                chargeback::compute(engine, &config, &request, &Scope::All)
                    .await?
                    .rows
                    .len()
            } else {
                let request = RoiRequest {
                    from,
                    to,
                    by: Some(Dimension::Team),
                };
                roi::compute(engine, &request, &Scope::All)
                    .await?
                    .weeks
                    .len()
            };
            let secs = started.elapsed().as_secs_f64();
            let label = if i == 0 {
                "cold".to_string()
            } else {
                format!("warm {i}")
            };
            eprintln!("  calltrail {name} {label}: {secs:.3} s ({rows} rows)");
            times.push(secs);
        }
        let cold = times.remove(0);
        out.push((name, cold, times, rows));
    }
    Ok(out)
}

fn runs_text(runs: &[f64]) -> String {
    runs.iter()
        .map(|s| format!("{s:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_table(
    ours: &BTreeMap<&str, Ours>,
    simple: Option<&DuckReport>,
    full: Option<&DuckReport>,
) {
    println!();
    println!(
        "{:<20} {:>11} {:>11} {:>7} {:>12} {:>8} {:>8}   runs (calltrail | duckdb)",
        "query", "calltrail s", "duckdb s", "ratio", "duckdb+view s", "rows", "duckdb"
    );
    for name in QUERIES {
        let o = ours.get(name);
        let d = simple.and_then(|r| r.queries.get(*name));
        let f = full.and_then(|r| r.queries.get(*name));
        if o.is_none() && d.is_none() {
            continue;
        }
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |s| format!("{s:.3}"));
        let ratio = match (o, d) {
            (Some(o), Some(d)) => format!("{:.2}x", o.best() / d.best),
            _ => "-".into(),
        };
        println!(
            "{:<20} {:>11} {:>11} {:>7} {:>12} {:>8} {:>8}   {} | {}",
            name,
            cell(o.map(Ours::best)),
            cell(d.map(|d| d.best)),
            ratio,
            cell(f.map(|f| f.best)),
            o.map_or_else(|| "-".into(), |o| o.rows().to_string()),
            d.map_or_else(|| "-".into(), |d| d.rows.to_string()),
            o.map_or_else(|| "-".into(), |o| runs_text(&o.runs)),
            d.map_or_else(|| "-".into(), |d| runs_text(&d.runs)),
        );
    }
    println!(
        "\nratio = calltrail / duckdb (simple `calls` view); duckdb+view = DuckDB running \
         query/sql/calls.sql itself. Best of runs after one warm-up."
    );
}

async fn run_experiments(args: &Args, sqls: &[(String, String)]) -> BenchResult<()> {
    println!(
        "\nsession experiments (local copy of the engine's session; best of {} s):",
        args.runs
    );
    print!("{:<58}", "variant");
    for (name, _) in sqls {
        print!(" {name:>20}");
    }
    println!();
    for v in experiments::variants() {
        print!("{:<58}", v.name);
        for (_, sql) in sqls {
            match experiments::time(&args.dir, MEMORY_MIB, &v, sql, args.runs).await {
                Ok((runs, rows)) => {
                    let best = runs.iter().copied().fold(f64::INFINITY, f64::min);
                    print!(" {:>20}", format!("{best:.3} ({rows})"));
                }
                Err(e) => print!(
                    " {:>20}",
                    format!("error: {e}").chars().take(20).collect::<String>()
                ),
            }
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
        println!();
    }
    Ok(())
}

async fn bench(args: &Args) -> BenchResult<bool> {
    if generate::is_ready(&args.dir, args.rows, args.days) {
        eprintln!("reusing the data set in {}", args.dir.display());
    } else {
        eprintln!(
            "generating {} tool calls over {} days into {}",
            args.rows,
            args.days,
            args.dir.display()
        );
        let started = Instant::now();
        generate::generate(&args.dir, args.rows, args.days)?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "generated in {secs:.1} s ({:.0} rows/s)",
            args.rows as f64 / secs
        );
    }
    let limits = QueryLimits {
        max_rows: 10_000_000,
        timeout_ms: 3_600_000,
        memory_limit_mib: MEMORY_MIB,
        max_sql_bytes: 1024 * 1024,
    };
    let engine = Engine::open(&args.dir, limits).await?;
    if let Some(sql) = &args.sql {
        // Ad hoc (investigation): one statement through the engine, its result and time.
        let started = Instant::now();
        let result = engine.query(sql).await?;
        println!("{}", pretty_format_batches(&result)?);
        println!("{:.3} s", started.elapsed().as_secs_f64());
        return Ok(true);
    }
    let mut sqls = Vec::new();
    for name in QUERIES {
        sqls.push((name.to_string(), std::fs::read_to_string(sql_path(name))?));
    }
    let mut ours = BTreeMap::new();
    for (name, sql) in sqls.iter().filter(|_| args.queries) {
        ours.insert(
            name.as_str(),
            time_engine(&engine, name, sql, args.runs).await?,
        );
    }
    if args.explain {
        for (name, sql) in &sqls {
            let plan = engine.query(&format!("EXPLAIN ANALYZE {sql}")).await?;
            println!(
                "\n== EXPLAIN ANALYZE {name}\n{}",
                pretty_format_batches(&plan)?
            );
        }
    }
    let reports = if args.reports {
        time_reports(args, &engine).await?
    } else {
        Vec::new()
    };
    let files: Vec<(String, PathBuf)> = QUERIES
        .iter()
        .map(|n| (n.to_string(), sql_path(n)))
        .collect();
    let (mut simple, mut full) = (None, None);
    if args.duckdb {
        match duckdb::available(&args.python) {
            Ok(()) => {
                let run = |view| DuckRun {
                    python: &args.python,
                    data: &args.dir,
                    view,
                    runs: args.runs,
                    queries: &files,
                };
                simple = Some(duckdb::run(&run("simple"))?);
                full = Some(duckdb::run(&run("calltrail"))?);
            }
            Err(e) => println!("DuckDB skipped: {e}. Reporting Calltrail's figures only."),
        }
    }
    print_table(&ours, simple.as_ref(), full.as_ref());
    if !reports.is_empty() {
        println!(
            "\n{:<20} {:>11} {:>11} {:>8}   warm runs",
            "report", "cold s", "warm s", "rows"
        );
        for (name, cold, warm, rows) in &reports {
            let best = warm.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "{name:<20} {cold:>11.3} {best:>11.3} {rows:>8}   {}",
                runs_text(warm)
            );
        }
        println!(
            "cold = first use, building the daily rollups of every day; warm = best of the \
             runs after it. Compare with the chargeback_by_team and roi_by_team rows above."
        );
    }
    let mut ok = true;
    for report in [&simple, &full].into_iter().flatten() {
        println!(
            "DuckDB {} ({} threads, `calls` view: {})",
            report.duckdb_version, report.threads, report.view
        );
        for name in QUERIES {
            let (Some(o), Some(d)) = (ours.get(name), report.queries.get(*name)) else {
                continue;
            };
            let diffs = compare::compare(&o.batches, d)?;
            if diffs.is_empty() {
                println!("  {name}: same {} rows and values", d.rows);
            } else {
                ok = false;
                println!("  !!! MISMATCH in {name} ({} view):", report.view);
                for d in diffs {
                    println!("  !!!   {d}");
                }
            }
        }
    }
    if args.experiments {
        run_experiments(args, &sqls).await?;
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad arguments: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("the engines disagree: see the mismatches above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("query_10m failed: {e}");
            ExitCode::FAILURE
        }
    }
}
