//! `calltrail retention plan|apply`: what the retention policy deletes and why, and deleting
//! it, each segment behind a signed deletion receipt. `serve` runs the same apply on a schedule
//! ([`spawn_schedule`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use calltrail::config::Config;
use calltrail_retention::chain::keys::{default_private_key, read_signing_key};
use calltrail_retention::enforce::{ApplyReport, Plan, apply, plan};
use calltrail_retention::holds::Holds;
use calltrail_retention::note::SigningKey;
use calltrail_retention::policy::RetentionConfig;
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
use super::time::{parse_time, rfc3339_s};

/// Arguments of `calltrail retention`.
#[derive(Debug, clap::Args)]
pub(crate) struct RetentionArgs {
    #[command(subcommand)]
    command: RetentionCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RetentionCommand {
    /// Show what retention would delete, by rule, and what legal holds keep. Changes nothing.
    Plan {
        #[command(flatten)]
        config: ConfigArgs,
        /// Plan as of this time instead of now (RFC 3339 or YYYY-MM-DD): what will have
        /// expired by then.
        #[arg(long)]
        as_of: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the expired segments no legal hold preserves, writing a signed receipt for each.
    Apply {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The signing key of the store: receipts must verify under the key its checkpoints do.
pub(crate) fn store_key(config: &Config) -> Result<SigningKey> {
    let path: PathBuf = config
        .integrity
        .signing_key
        .clone()
        .unwrap_or_else(|| default_private_key(&config.data_dir));
    read_signing_key(&path).with_context(|| {
        format!(
            "integrity.signing_key: cannot read {} (deletion receipts are signed with the store's key)",
            path.display()
        )
    })
}

/// The plan for `config`'s store at `now` (Unix seconds).
pub(crate) fn plan_at(config: &Config, now: i64) -> Result<Plan> {
    let root = &config.data_dir;
    let holds =
        Holds::load(root).with_context(|| format!("reading legal holds in {}", root.display()))?;
    Ok(plan(root, &config.retention, &holds, now)?)
}

pub(crate) fn run(args: &RetentionArgs) -> Result<()> {
    match &args.command {
        RetentionCommand::Plan {
            config,
            as_of,
            json,
        } => {
            let config = config.load()?;
            config.retention.validate()?;
            let now = match as_of {
                Some(t) => parse_time("as-of", t)?.div_euclid(1_000_000_000),
                None => now_s(),
            };
            let p = plan_at(&config, now)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print_plan(&p);
            }
            Ok(())
        }
        RetentionCommand::Apply { config, json } => {
            let config = config.load()?;
            config.retention.validate()?;
            let key = store_key(&config)?;
            let now = now_s();
            let p = plan_at(&config, now)?;
            let bar = progress_bar(p.delete.len() as u64);
            let report = apply(&config.data_dir, &p, &key, now, &|done, _| {
                if let Some(b) = &bar {
                    b.set_position(done);
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report, &p);
            }
            if !report.refused.is_empty() {
                anyhow::bail!(
                    "{} expired segment(s) were kept because they fail their integrity check",
                    report.refused.len()
                );
            }
            Ok(())
        }
    }
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if total == 0 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("deleting {bar:40} {pos}/{len} segments, {eta} left")
    {
        bar.set_style(style);
    }
    Some(bar)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_plan(p: &Plan) {
    println!("Retention plan as of {}:", rfc3339_s(p.now));
    if p.delete.is_empty() {
        println!("  nothing has expired.");
    }
    let mut rules: Vec<&str> = p.delete.iter().map(|s| s.rule.as_str()).collect();
    rules.dedup();
    rules.sort_unstable();
    rules.dedup();
    for rule in rules {
        let segs: Vec<_> = p.delete.iter().filter(|s| s.rule == rule).collect();
        let records: u64 = segs.iter().map(|s| s.records).sum();
        let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
        let oldest = segs.iter().map(|s| s.partition_start).min().unwrap_or(0);
        let newest = segs.iter().map(|s| s.partition_start).max().unwrap_or(0);
        println!(
            "  delete {} segment(s), {records} records, {} — rule {rule}, keep {} days: records from {} to {} (hours) expired",
            segs.len(),
            human_bytes(bytes),
            segs[0].keep_days,
            rfc3339_s(oldest),
            rfc3339_s(newest + 3600),
        );
    }
    for s in &p.held {
        println!(
            "  keep {} ({} records, class {}, expired {}): held by {}",
            s.file.display(),
            s.records,
            s.class,
            rfc3339_s(s.expires_at),
            s.held_by.join(", ")
        );
    }
    for note in &p.skipped {
        println!("  skip {note}");
    }
}

fn print_report(r: &ApplyReport, p: &Plan) {
    println!(
        "Deleted {} expired segment(s) ({} records, {}), each with a signed receipt under receipts/; {} kept by legal holds.",
        r.deleted,
        r.records,
        human_bytes(r.bytes),
        p.held.len()
    );
    for why in &r.refused {
        println!("  kept: {why}");
    }
}

/// Applies the retention policy every `apply_every_secs` (first run after one interval, so a
/// restart loop cannot turn into a deletion loop), until the task is aborted.
pub(crate) fn spawn_schedule(
    data_dir: &Path,
    retention: &RetentionConfig,
    key: SigningKey,
) -> Option<tokio::task::JoinHandle<()>> {
    if retention.apply_every_secs == 0 {
        return None;
    }
    let every = Duration::from_secs(retention.apply_every_secs);
    let (root, policy) = (data_dir.to_owned(), retention.clone());
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (root, policy, key) = (root.clone(), policy.clone(), key.clone());
            let run = tokio::task::spawn_blocking(move || {
                let now = now_s();
                let holds = Holds::load(&root)?;
                let p = plan(&root, &policy, &holds, now)?;
                apply(&root, &p, &key, now, &|_, _| {}).map(|r| (r, p.held.len()))
            })
            .await;
            match run {
                Ok(Ok((r, held))) if r.deleted > 0 || !r.refused.is_empty() || held > 0 => {
                    tracing::info!(
                        deleted = r.deleted,
                        records = r.records,
                        bytes = r.bytes,
                        held,
                        refused = r.refused.len(),
                        "Applied the retention policy."
                    );
                    for why in &r.refused {
                        tracing::error!(segment = %why, "Retention kept an expired segment that fails its integrity check.");
                    }
                }
                Ok(Ok(_)) => tracing::debug!("Retention: nothing has expired."),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "Applying the retention policy failed; it is retried at the next interval.");
                }
                Err(e) => tracing::error!(error = %e, "The retention task failed."),
            }
        }
    }))
}
