//! `calltrail verify`, `calltrail prove` and `calltrail verify-proof`: offline integrity checks
//! of a store and of single records (`docs/specs/chain.md` §5–6).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use calltrail_retention::chain::keys::read_verifier_key;
use calltrail_retention::proof::{prove, verify_proof};
use calltrail_retention::verify::{Report, VerifyOptions, verify};
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
use super::time::parse_time;

/// Arguments of `calltrail verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The store (a data directory, or a copy of one).
    dir: PathBuf,
    /// The public key checkpoints must be signed with (`calltrail keygen`, or
    /// `<data_dir>/keys/calltrail.pub`).
    #[arg(long)]
    pubkey: PathBuf,
    /// A checkpoint kept off-box: the store must extend it (detects rollback and tail
    /// truncation even when the attacker also removed the newest checkpoints).
    #[arg(long)]
    trusted_checkpoint: Option<PathBuf>,
    /// Only segments of hours from this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Only segments of hours before this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `calltrail prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The record's event id.
    event_id: String,
    #[command(flatten)]
    config: ConfigArgs,
    /// Write the proof here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `calltrail verify-proof`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyProofArgs {
    /// The proof document (`calltrail prove`).
    file: PathBuf,
    /// The public key the checkpoint must be signed with.
    #[arg(long)]
    pubkey: PathBuf,
}

fn print_human(report: &Report) {
    println!(
        "Verified {}: {} segments, {} records, {} chain(s).",
        report.root.display(),
        report.segments,
        report.records,
        report.chains.len()
    );
    for c in &report.chains {
        let newest = c
            .newest_checkpoint
            .map_or("none".to_owned(), |(size, at)| match at {
                Some(t) => format!("size {size}, signed at Unix time {t}"),
                None => format!("size {size}"),
            });
        println!(
            "  chain {}: {} records in {} segments, size {}; {} valid checkpoints (newest: {newest}); {} tree heads recomputed and matched",
            c.chain_id, c.records, c.segments, c.size, c.checkpoints, c.heads_matched
        );
    }
    for n in &report.notes {
        println!("  note: {n}");
    }
    if report.ok {
        println!("OK: no tampering found.");
    } else {
        println!("FINDINGS ({}):", report.findings.len());
        for f in &report.findings {
            println!("  {f}");
        }
    }
}

pub(crate) fn run_verify(args: &VerifyArgs) -> Result<()> {
    let pubkey = read_verifier_key(&args.pubkey)?;
    let trusted = match &args.trusted_checkpoint {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("--trusted-checkpoint: cannot read {}", p.display()))?,
        ),
        None => None,
    };
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let options = VerifyOptions {
        pubkey,
        trusted,
        from_ns: args
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?,
        to_ns: args
            .to
            .as_deref()
            .map(|s| parse_time("to", s))
            .transpose()?,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "verifying {bar:40} {pos}/{len} records ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = verify(&args.dir, &options, &progress)?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    if !report.ok {
        bail!("verify found {} problem(s)", report.findings.len());
    }
    Ok(())
}

pub(crate) fn run_prove(args: &ProveArgs) -> Result<()> {
    let data_dir = args.config.load()?.data_dir;
    let proof = prove(&data_dir, &args.event_id)?;
    let json = serde_json::to_string_pretty(&proof)? + "\n";
    match &args.out {
        Some(p) => std::fs::write(p, json)
            .with_context(|| format!("--out: cannot write {}", p.display()))?,
        None => print!("{json}"),
    }
    Ok(())
}

pub(crate) fn run_verify_proof(args: &VerifyProofArgs) -> Result<()> {
    let pubkey = read_verifier_key(&args.pubkey)?;
    let json = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let check = verify_proof(&json, &pubkey).context("the proof does not verify")?;
    println!(
        "OK: event {} is seq {} of chain {}, in the tree of {} records signed{}.",
        check.event_id,
        check.seq,
        check.chain_id,
        check.tree_size,
        check
            .signed_at
            .map_or(String::new(), |t| format!(" at Unix time {t}"))
    );
    Ok(())
}
