//! The detectors (D1–D9) against labelled data: 60 days of an organisation's MCP activity with
//! incidents injected at known times (`support/labelled.rs`), written by the real store writer.
//! `calltrail detect` backfills days 28–59 and `calltrail anomalies` lists the findings; each
//! detector must find at least 90 % of the incidents labelled with it with at least 80 % of its
//! findings on a labelled entity and window (D9: every chain gap). A second run finds nothing
//! new, a five-day store stays quiet and says which detectors lacked history, and every volume
//! and breadth finding's numbers are those SQL over the same store gives.
//!
//! The 60-day store is generated once per test binary run into
//! `$CARGO_TARGET_TMPDIR/detect_labelled/store` and left there for inspection (the config beside
//! it: `calltrail query -c .../calltrail.toml ...`). Run with `-- --nocapture` for the table of
//! precision and recall, the false positives and the missed incidents.

#![allow(clippy::unwrap_used)]

#[path = "support/labelled.rs"]
mod labelled;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use calltrail_schemas::finding::Finding;
use labelled::checks::{
    DETECTORS, assert_every_detector_has_incidents, assert_incidents_are_in_the_data,
    assert_normal_data_is_quiet,
};
use labelled::{DAY, DAYS, Dataset, HOUR, Incident, Store, day_ns, rfc3339};
use support::{BIN, Output, duckdb_rows, run};

/// The backfill is allowed this long (a debug build over 300 000 calls).
const DETECT_TIMEOUT: Duration = Duration::from_secs(1800);
const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// The labelled 60-day store and its config file, written once.
struct Labelled {
    store: Store,
    config: PathBuf,
}

fn labelled() -> &'static Labelled {
    static STORE: OnceLock<Labelled> = OnceLock::new();
    STORE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("detect_labelled");
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("store");
        std::fs::create_dir_all(&dir).expect("create the labelled store's directory");
        let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let store = rt.block_on(labelled::write_store(&dir, DAYS));
        let config = write_config(&root, &store);
        Labelled { store, config }
    })
}

/// `calltrail.toml` in `dir`: the data dir and the approved servers.
fn write_config(dir: &Path, store: &Store) -> PathBuf {
    let servers: Vec<String> = store
        .approved_servers
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    // A debug build plans a query of the `calls` view over 60 days in about 30 s: the default
    // timeout (30 s) would cancel most of them.
    let text = format!(
        "data_dir = {:?}\n\n[query]\ntimeout_ms = 1800000\n\n[detect]\napproved_servers = [{}]\n",
        store.dir.display().to_string(),
        servers.join(", ")
    );
    let path = dir.join("calltrail.toml");
    std::fs::write(&path, text).expect("write calltrail.toml");
    path
}

/// Runs the binary with `args`; its output, or why it failed.
fn try_calltrail(args: &[&str], timeout: Duration) -> Result<Output, String> {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let out = run(cmd, timeout);
    if !out.status.success() {
        return Err(format!(
            "calltrail {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status, out.stdout, out.stderr
        ));
    }
    Ok(out)
}

/// Runs the binary with `args`; panics with its output unless it exits 0.
fn calltrail(args: &[&str], timeout: Duration) -> Output {
    try_calltrail(args, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// `calltrail detect -c CONFIG --from FROM --to TO`.
fn try_detect(config: &Path, from: i64, to: i64) -> Result<Output, String> {
    let config = config.to_string_lossy();
    let (from, to) = (rfc3339(from), rfc3339(to));
    let args = ["detect", "-c", &config, "--from", &from, "--to", &to];
    try_calltrail(&args, DETECT_TIMEOUT)
}

/// `calltrail anomalies -c CONFIG --from FROM --to TO -f json`, parsed.
fn try_anomalies(config: &Path, from: i64, to: i64) -> Result<Vec<Finding>, String> {
    let config = config.to_string_lossy();
    let (from, to) = (rfc3339(from), rfc3339(to));
    let args = [
        "anomalies",
        "-c",
        &config,
        "--from",
        &from,
        "--to",
        &to,
        "-f",
        "json",
    ];
    let out = try_calltrail(&args, CLI_TIMEOUT)?;
    let text = out.stdout.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| {
        format!("calltrail anomalies printed no JSON array of findings ({e}):\n{text}")
    })
}

/// [`try_detect`], panicking on failure.
fn detect(config: &Path, from: i64, to: i64) -> Output {
    try_detect(config, from, to).unwrap_or_else(|e| panic!("{e}"))
}

/// [`try_anomalies`], panicking on failure.
fn anomalies(config: &Path, from: i64, to: i64) -> Vec<Finding> {
    try_anomalies(config, from, to).unwrap_or_else(|e| panic!("{e}"))
}

/// The scored range of the labelled run: days 28–59, so every window has 28 days of history.
fn scored_range() -> (i64, i64) {
    (day_ns(28), day_ns(DAYS))
}

/// The findings of the backfill over the labelled store. Run once: a failure is kept too, so
/// that every test using it fails at once with it instead of running the backfill again.
fn detected() -> &'static [Finding] {
    static FOUND: OnceLock<Result<Vec<Finding>, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let l = labelled();
        let (from, to) = scored_range();
        let out = try_detect(&l.config, from, to)?;
        println!("calltrail detect:\n{}{}", out.stdout, out.stderr);
        try_anomalies(&l.config, from, to)
    });
    match found {
        Ok(findings) => findings,
        Err(e) => panic!("the backfill over the labelled store failed: {e}"),
    }
}

// ----- scoring -----

fn matches(f: &Finding, i: &Incident) -> bool {
    f.entity_kind == i.entity_kind
        && f.entity == i.entity
        && f.window_start_ns < i.end_ns
        && i.start_ns < f.window_end_ns
}

/// One detector's figures.
#[derive(Default)]
struct Score {
    incidents: usize,
    caught: usize,
    findings: usize,
    true_positives: usize,
    false_positives: Vec<String>,
    missed: Vec<String>,
}

impl Score {
    fn precision(&self) -> f64 {
        if self.findings == 0 {
            return 1.0;
        }
        self.true_positives as f64 / self.findings as f64
    }

    fn recall(&self) -> f64 {
        if self.incidents == 0 {
            return 1.0;
        }
        self.caught as f64 / self.incidents as f64
    }
}

fn score(detector: &str, findings: &[Finding], incidents: &[Incident]) -> Score {
    let mine: Vec<&Finding> = findings.iter().filter(|f| f.detector == detector).collect();
    let mut s = Score {
        findings: mine.len(),
        ..Score::default()
    };
    for f in &mine {
        if incidents.iter().any(|i| matches(f, i)) {
            s.true_positives += 1;
        } else {
            s.false_positives.push(format!(
                "{} {}={} [{} .. {}) observed {} expected {:?}: {}",
                f.rule,
                f.entity_kind,
                f.entity,
                rfc3339(f.window_start_ns),
                rfc3339(f.window_end_ns),
                f.observed,
                f.expected,
                f.explanation
            ));
        }
    }
    for i in incidents.iter().filter(|i| i.detectors.contains(&detector)) {
        s.incidents += 1;
        if mine.iter().any(|f| matches(f, i)) {
            s.caught += 1;
        } else {
            s.missed.push(format!(
                "{}={} [{} .. {}): {}",
                i.entity_kind,
                i.entity,
                rfc3339(i.start_ns),
                rfc3339(i.end_ns),
                i.what
            ));
        }
    }
    s
}

fn print_scores(scores: &BTreeMap<&str, Score>) {
    println!("detector  incidents  findings   TP  precision  recall");
    for (d, s) in scores {
        println!(
            "{d:<8}  {:>9}  {:>8}  {:>3}  {:>9.2}  {:>6.2}",
            s.incidents,
            s.findings,
            s.true_positives,
            s.precision(),
            s.recall()
        );
    }
    for (d, s) in scores {
        for (what, list) in [
            ("false positive", &s.false_positives),
            ("missed", &s.missed),
        ] {
            if !list.is_empty() {
                println!("{d} {what}s ({} in all, first 10):", list.len());
            }
            for line in list.iter().take(10) {
                println!("  {line}");
            }
        }
    }
}

#[test]
fn detectors_find_the_labelled_incidents() {
    let l = labelled();
    let found = detected();
    let scores: BTreeMap<&str, Score> = DETECTORS
        .iter()
        .map(|d| (*d, score(d, found, &l.store.incidents)))
        .collect();
    print_scores(&scores);
    let mut failures = Vec::new();
    for (d, s) in &scores {
        let (recall, precision) = if *d == "D9" { (1.0, 0.0) } else { (0.9, 0.8) };
        if s.recall() < recall {
            failures.push(format!("{d} recall {:.2} < {recall}", s.recall()));
        }
        if s.precision() < precision {
            failures.push(format!("{d} precision {:.2} < {precision}", s.precision()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));

    // A second backfill over the same range finds the same findings and stores none twice.
    let (from, to) = scored_range();
    detect(&l.config, from, to);
    let again = anomalies(&l.config, from, to);
    let ids = |fs: &[Finding]| fs.iter().map(|f| f.finding_id.clone()).collect::<Vec<_>>();
    let (mut first, mut second) = (ids(found), ids(&again));
    first.sort();
    second.sort();
    assert_eq!(first, second, "a second run changed the findings");
    let distinct: BTreeSet<&String> = second.iter().collect();
    assert_eq!(distinct.len(), second.len(), "a finding is listed twice");
}

#[test]
fn cold_start_stays_silent_or_falls_back() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("store");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let store = rt.block_on(labelled::write_store(&data, 5));
    assert!(store.incidents.is_empty(), "five days hold no incident");
    let config = write_config(dir.path(), &store);
    let (from, to) = (day_ns(3), day_ns(5));
    let out = detect(&config, from, to);
    let said = format!("{}\n{}", out.stdout, out.stderr);
    let cold: Vec<&str> = said
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("cold start"))
        .collect();
    assert!(
        cold.iter()
            .any(|l| ["D1", "D4", "D6", "D8"].iter().any(|d| l.contains(d))),
        "no line says which detectors had a cold start:\n{said}"
    );
    let history_based: Vec<Finding> = anomalies(&config, from, to)
        .into_iter()
        .filter(|f| ["D1", "D4", "D6", "D8"].contains(&f.detector.as_str()))
        .collect();
    assert!(
        history_based.is_empty(),
        "normal users flagged with 3 days of history: {history_based:#?}"
    );
}

/// The integers in `text`.
fn integers(text: &str) -> BTreeSet<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// What SQL counts in each finding's window, by finding id: calls, distinct targets, distinct
/// tools, distinct resources. One query for all: in a debug build, planning a query of the
/// `calls` view over the 60-day store alone takes about 30 s.
fn window_counts(config: &Path, findings: &[&Finding]) -> HashMap<String, [i64; 4]> {
    let windows: Vec<String> = findings
        .iter()
        .map(|f| {
            let who = f.principal.clone().unwrap_or_else(|| f.entity.clone());
            format!(
                "('{}', '{}', {}, {})",
                f.finding_id,
                who.replace('\'', "''"),
                f.window_start_ns,
                f.window_end_ns
            )
        })
        .collect();
    let first = findings
        .iter()
        .map(|f| f.window_start_ns)
        .min()
        .unwrap_or(0);
    let sql = format!(
        "WITH w AS (SELECT column1 AS id, column2 AS principal, column3 AS ws, column4 AS we \
         FROM (VALUES {})) \
         SELECT w.id, count(c.call_id) AS n, count(DISTINCT c.target) AS targets, \
         count(DISTINCT c.tool_name) AS tools, count(DISTINCT c.resource_uri) AS resources \
         FROM w LEFT JOIN (SELECT * FROM calls WHERE date >= '{}') c \
         ON c.principal = w.principal AND CAST(c.start_time AS BIGINT) >= w.ws \
         AND CAST(c.start_time AS BIGINT) < w.we GROUP BY w.id",
        windows.join(", "),
        &rfc3339(first - first.rem_euclid(DAY))[..10]
    );
    let config = config.to_string_lossy();
    let out = calltrail(
        &["query", "-c", &config, "-f", "json", &sql],
        DETECT_TIMEOUT,
    );
    let rows: Vec<support::Row> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("the window counts are no JSON rows ({e}):\n{}", out.stdout));
    rows.iter()
        .map(|r| {
            let n = |c: &str| support::int(r, c).unwrap();
            let id = support::text(r, "id").unwrap();
            (id, [n("n"), n("targets"), n("tools"), n("resources")])
        })
        .collect()
}

#[test]
fn explanations_contain_the_numbers_they_claim() {
    let l = labelled();
    let checked: Vec<&Finding> = detected()
        .iter()
        .filter(|f| f.detector == "D1" || f.detector == "D8")
        .collect();
    assert!(!checked.is_empty(), "no D1 or D8 finding to check");
    let counts = window_counts(&l.config, &checked);
    for f in checked {
        assert_eq!(f.entity_kind, "user", "{f:?}");
        let [n, targets, tools, resources] = counts[&f.finding_id];
        // Volume counts calls; breadth counts tools or resources, whichever the rule counted.
        let sql = if f.detector == "D1" {
            vec![n]
        } else {
            vec![targets, tools, resources]
        };
        let observed = f.observed as i64;
        assert!(
            f.observed.fract() == 0.0 && sql.contains(&observed),
            "{} observed {} but SQL counts {sql:?}: {f:?}",
            f.detector,
            f.observed
        );
        assert!(
            integers(&f.explanation).contains(&observed),
            "the explanation does not state {observed}: {:?}",
            f.explanation
        );
    }
}

// ----- the generator itself -----

/// Hours in which one principal's calls reach `min` (`count`) or `min` distinct targets
/// (`distinct`), from DuckDB over the written Parquet: `(principal, hour start ns, value)`.
fn busy_hours(dir: &Path, value: &str, min: i64) -> Vec<(String, i64, i64)> {
    let sql = format!(
        "SELECT principal, epoch_ns(start_time) // {HOUR} AS h, {value} AS v FROM t \
         WHERE principal_kind = 'human' GROUP BY 1, 2 HAVING {value} >= {min} ORDER BY 3 DESC"
    );
    duckdb_rows(dir, "tool_calls", &sql)
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].parse::<i64>().unwrap() * HOUR,
                r[2].parse().unwrap(),
            )
        })
        .collect()
}

/// True when an incident on `entity` (a `kind`) overlaps `[start, end)`.
fn explained(incidents: &[Incident], kind: &str, entity: &str, start: i64, end: i64) -> bool {
    incidents.iter().any(|i| {
        i.entity_kind == kind && i.entity == entity && i.start_ns < end && start < i.end_ns
    })
}

/// DuckDB over the written files: volumes, and every busy or broad hour of a human is an
/// incident's.
fn check_store_with_duckdb(store: &Store) {
    let dir = &store.dir;
    let totals = duckdb_rows(
        dir,
        "tool_calls",
        "SELECT count(*), count(DISTINCT principal), count(DISTINCT team), count(DISTINCT server_name), \
         avg(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) FROM t",
    );
    println!(
        "duckdb tool_calls: rows, principals, teams, servers, error rate = {:?}",
        totals[0]
    );
    let rows: u64 = totals[0][0].parse().unwrap();
    assert_eq!(rows, store.tool_calls as u64 - store.deleted.0);
    let llm = duckdb_rows(
        dir,
        "llm_calls",
        "SELECT count(*), sum(input_tokens + output_tokens) FROM t",
    );
    println!("duckdb llm_calls: rows, tokens = {:?}", llm[0]);
    assert_eq!(
        llm[0][0].parse::<u64>().unwrap(),
        store.llm_calls as u64 - store.deleted.1
    );
    let typical = duckdb_rows(
        dir,
        "tool_calls",
        "SELECT median(n), quantile_cont(n, 0.99), max(n) FROM (SELECT count(*) AS n FROM t \
         WHERE principal_kind = 'human' GROUP BY principal, epoch_ns(start_time) // 3600000000000)",
    );
    println!(
        "duckdb calls per active human hour: median, p99, max = {:?}",
        typical[0]
    );
    for (value, min) in [("count(*)", 20), ("count(DISTINCT target)", 10)] {
        let hours = busy_hours(dir, value, min);
        println!(
            "duckdb: {} human hours with {value} >= {min}, top: {:?}",
            hours.len(),
            hours.first()
        );
        for (who, h, v) in hours {
            assert!(
                explained(&store.incidents, "user", &who, h, h + HOUR),
                "{who} has {v} ({value}) at {} outside any incident",
                rfc3339(h)
            );
        }
    }
}

/// DuckDB: every user day of more than twice the user's median tokens is a blow-up.
fn check_tokens_with_duckdb(store: &Store) {
    let sql = "WITH d AS (SELECT principal, epoch_ns(start_time) // 86400000000000 AS day, \
               sum(input_tokens + output_tokens) AS tokens FROM t GROUP BY 1, 2), \
               m AS (SELECT principal, median(tokens) AS med FROM d GROUP BY 1) \
               SELECT d.principal, d.day, d.tokens / m.med FROM d JOIN m USING (principal) \
               WHERE d.tokens > 1.25 * m.med ORDER BY 3 DESC";
    let days = duckdb_rows(&store.dir, "llm_calls", sql);
    println!(
        "duckdb: {} user days above 1.25x the user's median tokens: {days:?}",
        days.len()
    );
    for d in days {
        let start = d[1].parse::<i64>().unwrap() * DAY;
        assert!(
            explained(&store.incidents, "user", &d[0], start, start + DAY),
            "{} used {}x their median tokens on {}",
            d[0],
            d[2],
            rfc3339(start)
        );
    }
}

/// DuckDB: every quarter hour of a server with 10 or more failures is an error storm.
fn check_errors_with_duckdb(store: &Store) {
    let quarter = 15 * 60 * 1_000_000_000i64;
    let sql = format!(
        "SELECT server_name, epoch_ns(start_time) // {quarter} AS q, \
         count(*) FILTER (WHERE outcome <> 'ok') AS errors, count(*) AS calls FROM t \
         GROUP BY 1, 2 ORDER BY errors DESC, calls DESC LIMIT 12"
    );
    let rows = duckdb_rows(&store.dir, "tool_calls", &sql);
    println!("duckdb: worst server quarter hours (server, quarter, errors, calls): {rows:?}");
    for r in rows.iter().filter(|r| r[2].parse::<i64>().unwrap() >= 10) {
        let start = r[1].parse::<i64>().unwrap() * quarter;
        assert!(
            explained(&store.incidents, "server", &r[0], start, start + quarter),
            "{} had {} failures in the quarter from {}",
            r[0],
            r[2],
            rfc3339(start)
        );
    }
}

/// Each gap left a hole in the chain's seqs.
fn assert_gaps_cut(store: &Store) {
    let segments = labelled::segments(&store.dir);
    let holes = segments
        .windows(2)
        .filter(|w| w[0].first_seq + w[0].count != w[1].first_seq)
        .count();
    println!(
        "{} segments, {holes} seq holes, {:?} (tool, LLM) calls cut",
        segments.len(),
        store.deleted
    );
    assert_eq!(holes, labelled::GAP_DAYS.len());
    assert_eq!(segments[0].first_seq, 0);
}

#[test]
fn generator_is_deterministic_and_has_every_incident() {
    let a = Dataset::generate(DAYS);
    let b = Dataset::generate(DAYS);
    assert!(
        a.calls == b.calls && a.llm == b.llm && a.incidents == b.incidents,
        "two generations differ"
    );
    let short = Dataset::generate(5);
    let prefix: Vec<_> = a
        .calls
        .iter()
        .filter(|e| e.t < day_ns(5))
        .copied()
        .collect();
    assert!(short.calls == prefix, "five days are not a prefix of sixty");

    let humans = a
        .org
        .principals
        .iter()
        .filter(|p| p.kind == calltrail_schemas::PrincipalKind::Human)
        .count();
    println!(
        "{} principals ({humans} humans), {} teams, {} tool calls ({} in incidents), {} LLM calls",
        a.org.principals.len(),
        a.org.teams.len(),
        a.calls.len(),
        a.calls.iter().filter(|e| e.incident).count(),
        a.llm.len()
    );
    assert!(a.org.principals.len() >= 200 && a.org.teams.len() >= 10);
    for team in &a.org.teams {
        let settled = team
            .humans
            .iter()
            .filter(|w| !a.org.principals[**w as usize].is_joiner())
            .count();
        assert!(settled >= 12, "{} has {settled} people", team.name);
    }
    assert!(
        (200_000..=400_000).contains(&a.calls.len()),
        "{} calls",
        a.calls.len()
    );
    assert_normal_data_is_quiet(&a);
    assert_incidents_are_in_the_data(&a);

    let l = labelled();
    println!(
        "generated and wrote {} tool calls and {} LLM calls in {:.1} s ({:.1} s of CPU)",
        l.store.tool_calls,
        l.store.llm_calls,
        l.store.elapsed.as_secs_f64(),
        l.store.cpu.as_secs_f64()
    );
    assert_every_detector_has_incidents(&l.store.incidents);
    assert_gaps_cut(&l.store);
    check_store_with_duckdb(&l.store);
    check_tokens_with_duckdb(&l.store);
    check_errors_with_duckdb(&l.store);
}
