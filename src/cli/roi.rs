//! `calltrail roi`: adoption and value per week (active principals, calls, success rate,
//! latency, servers and tools in use, attribution coverage, top tools) over the store.

use std::io::Write;

use anyhow::{Result, anyhow};
use calltrail_query::chargeback::{self, Dimension};
use calltrail_query::output::{Format, render};
use calltrail_query::roi::{self, RoiRequest};
use calltrail_query::{Engine, Scope};

use super::ConfigArgs;

/// Output formats on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Arguments of `calltrail roi`.
#[derive(Debug, clap::Args)]
pub(crate) struct RoiArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Start of the range (RFC 3339 or YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    from: String,
    /// End of the range, exclusive.
    #[arg(long)]
    to: String,
    /// Group by team, tenant, cost_center or server; `all` for the whole organisation.
    #[arg(long, default_value = "team")]
    by: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: OutputFormat,
}

pub(crate) async fn run(args: RoiArgs) -> Result<()> {
    let config = args.config.load()?;
    let time = |flag: &str, text: &str| {
        chargeback::parse_time(text)
            .ok_or_else(|| anyhow!("--{flag}: {text:?} is neither RFC 3339 nor YYYY-MM-DD"))
    };
    let by = match args.by.as_str() {
        "all" => None,
        name => Some(Dimension::parse(name).ok_or_else(|| {
            anyhow!("--by: {name:?} is not one of team, tenant, cost_center, server, all")
        })?),
    };
    let request = RoiRequest {
        from: time("from", &args.from)?,
        to: time("to", &args.to)?,
        by,
    };
    let engine = Engine::open(&config.data_dir, config.query.clone()).await?;
    let report = roi::compute(&engine, &request, &Scope::All).await?;
    let mut out = match args.format {
        OutputFormat::Json => serde_json::to_vec_pretty(&report)?,
        OutputFormat::Csv => render(&[report.to_batch()?], Format::Csv)?,
        OutputFormat::Table => {
            let mut t = render(&[report.to_batch()?], Format::Table)?;
            t.extend_from_slice(b"\n\ntop tools:\n");
            for tool in &report.top_tools {
                t.extend_from_slice(
                    format!(
                        "  {:<20} {:<24} {:<28} {}\n",
                        tool.key.as_deref().unwrap_or("(none)"),
                        tool.server.as_deref().unwrap_or("-"),
                        tool.tool,
                        tool.calls
                    )
                    .as_bytes(),
                );
            }
            t
        }
    };
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}
