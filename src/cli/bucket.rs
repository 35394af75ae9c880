//! `calltrail bucket init|push`: the store's sealed files in an S3-compatible bucket, optionally
//! under S3 Object Lock (`[bucket]` in the configuration; credentials from the environment).

use std::io::IsTerminal;

use anyhow::{Context, Result, anyhow, bail};
use calltrail_retention::bucket::config::{Bucket, credentials_from_env};
use calltrail_retention::bucket::object_lock::BucketError;
use calltrail_retention::bucket::push::{Destination, list, push};
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;

/// Arguments of `calltrail bucket`.
#[derive(Debug, clap::Args)]
pub(crate) struct BucketArgs {
    #[command(subcommand)]
    command: BucketCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BucketCommand {
    /// Create the bucket with Object Lock when `bucket.object_lock` is not `off` (an existing
    /// bucket must already have it); with `off`, check that the bucket exists.
    Init(InitArgs),
    /// Copy the sealed segments, manifests, receipts, checkpoint logs and public keys into the
    /// bucket (files already there are skipped), locking each segment until its retention expiry
    /// when `bucket.object_lock` is on.
    Push(PushArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Args)]
struct PushArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub(crate) async fn run(args: BucketArgs) -> Result<()> {
    match args.command {
        BucketCommand::Init(a) => init(&a.config).await,
        BucketCommand::Push(a) => run_push(&a.config).await,
    }
}

/// The configured bucket, connected with the environment's credentials.
pub(crate) fn connect(config: &calltrail::config::Config) -> Result<Bucket> {
    let Some(settings) = &config.bucket else {
        bail!("the configuration has no [bucket] section (pass --config FILE with one)");
    };
    let credentials = credentials_from_env()?;
    Ok(settings.connect(credentials)?)
}

async fn init(args: &ConfigArgs) -> Result<()> {
    let config = args.load()?;
    let bucket = connect(&config)?;
    let name = &bucket.settings.bucket;
    match bucket.settings.object_lock.mode() {
        // Look before creating: S3 in us-east-1 answers 200 to creating a bucket this account
        // already owns, and some S3-compatible servers then change its settings.
        Some(mode) => match bucket.lock.bucket_lock_enabled().await {
            Ok(true) => println!(
                "Bucket {name} already exists with Object Lock; pushed segments will be locked in {mode} mode."
            ),
            Ok(false) => bail!(
                "bucket {name} exists without Object Lock, which cannot be turned on here: use a new bucket or set bucket.object_lock = \"off\""
            ),
            Err(BucketError::Status { code, .. }) if code == "NoSuchBucket" => {
                bucket
                    .lock
                    .create_bucket_with_lock()
                    .await
                    .with_context(|| format!("cannot create bucket {name} with Object Lock"))?;
                println!(
                    "Created bucket {name} with Object Lock; pushed segments will be locked in {mode} mode."
                );
            }
            Err(e) => {
                return Err(anyhow!(e).context(format!("cannot read bucket {name}'s Object Lock")));
            }
        },
        None => {
            let locked = bucket
                .lock
                .bucket_lock_enabled()
                .await
                .with_context(|| format!("bucket {name} is not reachable or does not exist"))?;
            let lock = if locked {
                " (it has Object Lock, unused while bucket.object_lock = \"off\")"
            } else {
                ""
            };
            println!(
                "Bucket {name} exists{lock}; nothing to create with bucket.object_lock = \"off\"."
            );
        }
    }
    Ok(())
}

/// A progress bar in bytes on a terminal, nothing otherwise.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "push {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn run_push(args: &ConfigArgs) -> Result<()> {
    let config = args.load()?;
    let bucket = connect(&config)?;
    let root = &config.data_dir;
    if !root.is_dir() {
        bail!("data directory {} does not exist", root.display());
    }
    let items = list(root, &config.retention, chrono::Utc::now())?;
    let bar = progress_bar(items.iter().map(|i| i.bytes).sum());
    let summary = push(root, &items, &Destination::of(&bucket), |item, _| {
        bar.inc(item.bytes);
    })
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    println!(
        "Pushed {} files ({} bytes) to {}, skipped {} already there, locked {} object versions.",
        summary.pushed,
        summary.bytes,
        bucket.settings.url(),
        summary.skipped,
        summary.locked
    );
    Ok(())
}
