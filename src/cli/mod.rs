//! Command-line interface: one binary, one subcommand per job.

mod api;
mod bucket;
mod chargeback;
mod checkpoint;
mod demo;
mod detect;
mod export;
mod forward;
mod hold;
mod ingest_token;
mod keygen;
mod operations;
mod query;
mod retention;
mod roi;
mod serve;
mod status;
mod time;
mod token;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The flight recorder for AI agents' tool calls: OTLP in, attributed Parquet out, SQL on top.
#[derive(Debug, Parser)]
#[command(name = "calltrail", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the OTLP receivers and the store writer.
    Serve(serve::ServeArgs),
    /// Run a read-only SQL query over the store.
    Query(query::QueryArgs),
    /// Send a deterministic synthetic MCP workload to a running server over OTLP/gRPC.
    Demo(demo::DemoArgs),
    /// Write a checkpoint signing key pair (private key mode 0600; verifiers pin the public key).
    Keygen(keygen::KeygenArgs),
    /// Signed checkpoints: `calltrail checkpoint latest` prints the newest.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Check a store offline: every record, link, segment, tree head and checkpoint.
    Verify(verify::VerifyArgs),
    /// Write a self-contained inclusion proof of one record.
    Prove(verify::ProveArgs),
    /// Check an inclusion proof offline.
    VerifyProof(verify::VerifyProofArgs),
    /// Make a random ingest bearer token and print the `[[auth.tokens]]` entry that accepts it.
    IngestToken(ingest_token::IngestTokenArgs),
    /// Retention: `plan` shows what the policy deletes and why, `apply` deletes it (with
    /// signed receipts).
    Retention(retention::RetentionArgs),
    /// Legal holds: `place`, `list`, `release`. A held record is never deleted.
    Hold(hold::HoldArgs),
    /// The state of a data directory: chain, newest checkpoint, retention per class, holds.
    Status(status::StatusArgs),
    /// SIEM forwarding: `forward test NAME` sends one test event to a destination.
    Forward(forward::ForwardArgs),
    /// Chargeback by team, cost centre, tenant, user or server; `--focus FILE` writes FOCUS 1.2.
    Chargeback(chargeback::ChargebackArgs),
    /// Adoption and value per week: active principals, calls, success rate, latency, top tools.
    Roi(roi::RoiArgs),
    /// Run the anomaly detectors (D1–D9) over a range of hours (default: the last hour).
    Detect(detect::DetectArgs),
    /// List anomaly findings by time, severity, detector or entity.
    Anomalies(detect::AnomaliesArgs),
    /// Show an entity's hour-of-week baseline (user, team or server).
    Baseline(detect::BaselineArgs),
    /// Mint a short-lived query API token with the local key (`--role auditor [--team X]`).
    Token(token::TokenArgs),
    /// Write a compliance bundle: the records a filter selects, a proof of each against a
    /// signed checkpoint, and a signed manifest of every file.
    Export(export::ExportArgs),
    /// Check a compliance bundle offline: signatures, every file, record and proof.
    VerifyExport(export::VerifyExportArgs),
    /// An S3-compatible bucket (`[bucket]`): `init` creates it (with Object Lock when asked),
    /// `push` copies the sealed segments, checkpoints and receipts into it.
    Bucket(bucket::BucketArgs),
}

/// Options shared by commands that read the configuration.
#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Configuration file (TOML). Without it, the embedded defaults apply.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` in the file). Default `./calltrail-data`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<calltrail::config::Config> {
        let mut config = match &self.config {
            Some(p) => calltrail::config::Config::load(p)?,
            None => calltrail::config::Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        Ok(config)
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLTRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calltrail: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::IngestToken(args) => ingest_token::run(&args),
            Command::Keygen(args) => keygen::run(&args),
            Command::Verify(args) => verify::run_verify(&args),
            Command::Prove(args) => verify::run_prove(&args),
            Command::VerifyProof(args) => verify::run_verify_proof(&args),
            Command::Checkpoint(args) => checkpoint::run(&args),
            Command::Retention(args) => retention::run(&args),
            Command::Hold(args) => hold::run(args).await,
            Command::Status(args) => status::run(&args),
            Command::Forward(args) => forward::run(args).await,
            Command::Token(args) => token::run(&args),
            Command::Chargeback(args) => chargeback::run(args).await,
            Command::Roi(args) => roi::run(args).await,
            Command::Detect(args) => detect::run_detect(args).await,
            Command::Anomalies(args) => detect::run_anomalies(args).await,
            Command::Baseline(args) => detect::run_baseline(&args),
            Command::Export(args) => export::run_export(&args),
            Command::VerifyExport(args) => export::run_verify_export(&args),
            Command::Bucket(args) => bucket::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calltrail: {e:#}");
            ExitCode::FAILURE
        }
    }
}
