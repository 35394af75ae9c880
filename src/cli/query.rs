//! `calltrail query "SQL"`: read-only SQL over the store.

use std::io::Write;

use anyhow::Result;
use calltrail_query::Engine;
use calltrail_query::output::{Format, render};
use calltrail_query::store_source::BucketSource;

use super::ConfigArgs;

/// Output formats on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Arguments of `calltrail query`.
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: OutputFormat,
    /// Read the tables from the configuration's `[bucket]` (what `calltrail bucket push`
    /// copied) instead of the data directory. Credentials come from `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    #[arg(long)]
    from_bucket: bool,
    /// The SQL query. Tables: tool_calls, llm_calls, audit_events; views: calls (one row per
    /// call), sessions (one row per agent session). Read-only and bounded by `[query]`.
    sql: String,
}

pub(crate) async fn run(args: QueryArgs) -> Result<()> {
    let config = args.config.load()?;
    let engine = if args.from_bucket {
        let bucket = super::bucket::connect(&config)?;
        let source = BucketSource::new(&bucket.settings.url(), bucket.object_store())?;
        Engine::open_bucket(source, config.query.clone()).await?
    } else {
        Engine::open(&config.data_dir, config.query.clone()).await?
    };
    let batches = engine.query(&args.sql).await?;
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
    };
    let mut out = render(&batches, format)?;
    if format == Format::Table {
        out.push(b'\n');
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}
