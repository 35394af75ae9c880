//! `calltrail detect` (score a range of hours: a backfill), `calltrail anomalies` (list
//! findings), `calltrail baseline` (an entity's hour-of-week profile), and the schedule
//! `serve` runs the detectors on.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use calltrail_query::detect::baseline::{self, ENTITIES};
use calltrail_query::detect::{self, AnomalyFilter, DetectConfig, Progress, RunReport, RunRequest};
use calltrail_query::output::{Format, render};
use calltrail_query::{Engine, QueryLimits, Scope};
use calltrail_schemas::finding::{Severity, findings_batch};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use super::ConfigArgs;
use super::time::{parse_time, rfc3339_ns};

const HOUR_NS: i64 = 3_600_000_000_000;
/// The longest range one detector run of a backfill scores (31 days).
const BACKFILL_CHUNK_NS: i64 = 31 * 24 * HOUR_NS;

/// Output formats on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Arguments of `calltrail detect`.
#[derive(Debug, clap::Args)]
pub(crate) struct DetectArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Start of the first hour scored (RFC 3339 or YYYY-MM-DD, UTC). Default: the last
    /// complete hour.
    #[arg(long)]
    from: Option<String>,
    /// End of the last hour scored, exclusive. Default: the start of the current hour.
    #[arg(long)]
    to: Option<String>,
}

/// Arguments of `calltrail anomalies`.
#[derive(Debug, clap::Args)]
pub(crate) struct AnomaliesArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Findings whose window ends after this (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    from: String,
    /// Findings whose window starts before this.
    #[arg(long)]
    to: String,
    /// The lowest severity listed: low, medium, high, critical.
    #[arg(long)]
    severity: Option<String>,
    /// Only this detector (D1 … D9).
    #[arg(long)]
    detector: Option<String>,
    /// Only findings about this principal, team, server or chain.
    #[arg(long)]
    entity: Option<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: OutputFormat,
}

/// Arguments of `calltrail baseline`.
#[derive(Debug, clap::Args)]
pub(crate) struct BaselineArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The kind of entity: user, team or server.
    #[arg(long)]
    entity: String,
    /// The principal, team or server.
    #[arg(long)]
    id: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(crate) async fn run_detect(args: DetectArgs) -> Result<()> {
    let config = args.config.load()?;
    let now = now_ns();
    let current_hour = now.div_euclid(HOUR_NS) * HOUR_NS;
    let to = match &args.to {
        Some(t) => parse_time("to", t)?,
        None => current_hour,
    };
    let from = match &args.from {
        Some(f) => parse_time("from", f)?,
        None => to - HOUR_NS,
    };
    if from >= to {
        bail!("--from must be before --to");
    }
    let engine = Engine::open(&config.data_dir, config.query.clone()).await?;
    let bar = progress_bar();
    let on_progress = |p: Progress| match p {
        Progress::RollupDays(done, total) => {
            bar.set_message("rolling up days");
            bar.set_length(total);
            bar.set_position(done);
        }
        Progress::Hours(done, total) => {
            bar.set_message("scoring hours");
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    // A long backfill runs in chunks: a run holds its range's rollups (and its look-back's) in
    // memory, so chunks keep that bounded whatever the range.
    let mut report = RunReport::default();
    let mut notes = std::collections::BTreeSet::new();
    let mut chunk_from = from;
    while chunk_from < to {
        let chunk_to = (chunk_from + BACKFILL_CHUNK_NS).min(to);
        let request = RunRequest {
            from_ns: chunk_from,
            to_ns: chunk_to,
            now_ns: now,
        };
        let part = detect::run(&engine, &config.detect, &request, &on_progress).await?;
        for note in part.cold_start {
            if notes.insert(note.clone()) {
                bar.suspend(|| eprintln!("{note}"));
            }
        }
        report.hours += part.hours;
        report.days_computed += part.days_computed;
        report.days_reused += part.days_reused;
        report.duplicates += part.duplicates;
        report.suppressed += part.suppressed;
        report.findings.extend(part.findings);
        chunk_from = chunk_to;
    }
    bar.finish_and_clear();
    let mut per_detector = std::collections::BTreeMap::<&str, usize>::new();
    for f in &report.findings {
        *per_detector.entry(f.detector.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = per_detector
        .iter()
        .map(|(d, n)| format!("{d}: {n}"))
        .collect();
    println!(
        "scored {} hours from {} to {}: {} new findings ({}); {} already reported, {} suppressed; rollups: {} days computed, {} reused",
        report.hours,
        rfc3339_ns(from),
        rfc3339_ns(to),
        report.findings.len(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        },
        report.duplicates,
        report.suppressed,
        report.days_computed,
        report.days_reused
    );
    Ok(())
}

pub(crate) async fn run_anomalies(args: AnomaliesArgs) -> Result<()> {
    let config = args.config.load()?;
    let min_severity = args
        .severity
        .as_deref()
        .map(|s| {
            Severity::parse(s)
                .ok_or_else(|| anyhow!("--severity: {s:?} is not low, medium, high or critical"))
        })
        .transpose()?;
    let filter = AnomalyFilter {
        from_ns: parse_time("from", &args.from)?,
        to_ns: parse_time("to", &args.to)?,
        min_severity,
        detector: args.detector.map(|d| d.to_ascii_uppercase()),
        entity: args.entity,
    };
    // The CLI reads the whole store: the largest row cap the limits allow, the configured
    // memory and time bounds.
    let limits = QueryLimits {
        max_rows: 100_000_000,
        ..config.query.clone()
    };
    let engine = Engine::open(&config.data_dir, limits).await?;
    let findings = detect::list(&engine, &Scope::All, &filter).await?;
    let out = match args.format {
        OutputFormat::Json => serde_json::to_vec_pretty(&findings)?,
        OutputFormat::Csv => render(&[findings_batch(&findings)?], Format::Csv)?,
        OutputFormat::Table => {
            let mut t = String::new();
            for f in &findings {
                t.push_str(&format!(
                    "{}  {:<8} {}  {}\n    {}\n",
                    rfc3339_ns(f.window_start_ns),
                    f.severity.as_str(),
                    f.detector,
                    f.rule,
                    f.explanation
                ));
            }
            t.push_str(&format!("{} findings\n", findings.len()));
            t.into_bytes()
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    if !out.ends_with(b"\n") {
        stdout.write_all(b"\n")?;
    }
    Ok(())
}

pub(crate) fn run_baseline(args: &BaselineArgs) -> Result<()> {
    let config = args.config.load()?;
    if !ENTITIES.contains(&args.entity.as_str()) {
        bail!("--entity: {:?} is not user, team or server", args.entity);
    }
    let rows = baseline::load(&config.data_dir, &args.entity, &args.id)?;
    if rows.is_empty() {
        bail!(
            "no baseline for {} {:?}: run `calltrail detect` (or `serve`) first",
            args.entity,
            args.id
        );
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &rows)?;
        writeln!(stdout)?;
        return Ok(());
    }
    writeln!(
        stdout,
        "{:<14} {:>5} {:>8} {:>6} {:>7} {:>7} {:>8} {:>10}",
        "hour of week", "weeks", "calls", "mad", "errors", "denied", "tools", "tokens"
    )?;
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    for r in rows {
        let day = DAYS[usize::try_from(r.hour_of_week / 24).unwrap_or(0) % 7];
        writeln!(
            stdout,
            "{day} {:02}:00      {:>5} {:>8.1} {:>6.1} {:>6.1}% {:>6.1}% {:>8.1} {:>10.0}",
            r.hour_of_week % 24,
            r.weeks,
            r.calls_median,
            r.calls_mad,
            r.error_rate * 100.0,
            r.denied_rate * 100.0,
            r.distinct_tools_median,
            r.tokens_median
        )?;
    }
    Ok(())
}

/// Where the schedule remembers the end of the last hour it scored.
fn last_run_path(data_dir: &Path) -> PathBuf {
    data_dir.join("baselines").join("last_scored_hour")
}

/// The detector schedule of `serve`: every `interval_secs`, score the hours completed since
/// the last run (at most a day of them; a longer outage is left to `calltrail detect`). A
/// failed run is logged and retried at the next tick.
pub(crate) fn spawn_schedule(
    data_dir: &Path,
    limits: QueryLimits,
    cfg: DetectConfig,
) -> Option<JoinHandle<()>> {
    if !cfg.enabled {
        return None;
    }
    let data_dir = data_dir.to_owned();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // The history fold is seconds of CPU: run it on the blocking pool, so the runtime's
            // workers keep serving the receivers and the API meanwhile.
            let (dir, limits, cfg) = (data_dir.clone(), limits.clone(), cfg.clone());
            let handle = tokio::runtime::Handle::current();
            let run = tokio::task::spawn_blocking(move || {
                handle.block_on(scheduled_run(&dir, &limits, &cfg))
            });
            match run.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "The scheduled detector run failed; the next tick retries.");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "The scheduled detector run stopped; the next tick retries.");
                }
            }
        }
    }))
}

async fn scheduled_run(data_dir: &Path, limits: &QueryLimits, cfg: &DetectConfig) -> Result<()> {
    let now = now_ns();
    let to = now.div_euclid(HOUR_NS) * HOUR_NS;
    let marker = last_run_path(data_dir);
    let last = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    let from = last.map_or(to - HOUR_NS, |l| l.max(to - 24 * HOUR_NS));
    if from >= to {
        return Ok(());
    }
    let engine = Engine::open(data_dir, limits.clone()).await?;
    let request = RunRequest {
        from_ns: from,
        to_ns: to,
        now_ns: now,
    };
    let report = detect::run(&engine, cfg, &request, &|_| {}).await?;
    for f in &report.findings {
        tracing::warn!(detector = %f.detector, severity = f.severity.as_str(), entity = %f.entity, "{}", f.explanation);
    }
    tracing::info!(
        hours = report.hours,
        findings = report.findings.len(),
        "Detectors scored the hours since the last run."
    );
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = marker.with_extension("tmp");
    std::fs::write(&tmp, format!("{to}\n"))?;
    std::fs::rename(&tmp, &marker)?;
    Ok(())
}
