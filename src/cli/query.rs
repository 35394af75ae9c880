//! `calltrail query "SQL"`: read-only SQL over the store.

use std::io::Write;

use anyhow::Result;
use calltrail_query::Engine;
use calltrail_query::output::{Format, render};

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
    /// The SQL query. Tables: tool_calls, llm_calls, audit_events; views: calls (one row per
    /// call), sessions (one row per agent session). Read-only and bounded by `[query]`.
    sql: String,
}

pub(crate) async fn run(args: QueryArgs) -> Result<()> {
    let config = args.config.load()?;
    let engine = Engine::open(&config.data_dir, config.query.clone()).await?;
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
