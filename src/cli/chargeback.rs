//! `calltrail chargeback`: who pays for which MCP usage, over the store, with the price tables
//! of `[chargeback]`; `--focus FILE` writes FOCUS 1.2 rows (CSV, or Parquet for `.parquet`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use calltrail_query::chargeback::{self, ChargebackRequest, Dimension, Granularity};
use calltrail_query::output::{Format, render};
use calltrail_query::{Engine, Scope, focus};

use super::ConfigArgs;

/// Output formats on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Arguments of `calltrail chargeback`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChargebackArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Start of the range (RFC 3339 or YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    from: String,
    /// End of the range, exclusive.
    #[arg(long)]
    to: String,
    /// Group by team, cost_center, tenant, user or server.
    #[arg(long, default_value = "team")]
    by: String,
    /// Period length: day or month.
    #[arg(long, default_value = "month")]
    granularity: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    format: OutputFormat,
    /// Write FOCUS 1.2 rows (team × server × tool × hour) to this file instead: CSV, or
    /// Parquet when it ends in `.parquet`.
    #[arg(long)]
    focus: Option<PathBuf>,
}

fn time(flag: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chargeback::parse_time(text)
        .ok_or_else(|| anyhow!("--{flag}: {text:?} is neither RFC 3339 nor YYYY-MM-DD"))
}

pub(crate) async fn run(args: ChargebackArgs) -> Result<()> {
    let config = args.config.load()?;
    let (from, to) = (time("from", &args.from)?, time("to", &args.to)?);
    let engine = Engine::open(&config.data_dir, config.query.clone()).await?;
    if let Some(path) = &args.focus {
        let report = chargeback::compute(
            &engine,
            &config.chargeback,
            &focus::request(from, to),
            &Scope::All,
        )
        .await?;
        let batch = focus::rows(&report, &config.chargeback)?;
        let parquet = path.extension().is_some_and(|e| e == "parquet");
        if parquet {
            focus::write_parquet(&batch, path)
        } else {
            focus::write_csv(&batch, path)
        }
        .with_context(|| format!("--focus: cannot write {}", path.display()))?;
        eprintln!(
            "wrote {} FOCUS rows to {} (price tables {})",
            batch.num_rows(),
            path.display(),
            report.versions().join(", ")
        );
        return Ok(());
    }
    let by = Dimension::parse(&args.by)
        .filter(|d| *d != Dimension::Tool)
        .ok_or_else(|| {
            anyhow!(
                "--by: {:?} is not one of team, cost_center, tenant, user, server",
                args.by
            )
        })?;
    let granularity = Granularity::parse(&args.granularity)
        .filter(|g| *g != Granularity::Hour)
        .ok_or_else(|| {
            anyhow!(
                "--granularity: {:?} is not one of day, month",
                args.granularity
            )
        })?;
    let request = ChargebackRequest {
        from,
        to,
        by: vec![by],
        granularity,
    };
    let report = chargeback::compute(&engine, &config.chargeback, &request, &Scope::All).await?;
    let mut out = match args.format {
        OutputFormat::Json => {
            let mut v = serde_json::to_vec_pretty(&report.to_json())?;
            v.push(b'\n');
            v
        }
        OutputFormat::Csv => render(&[report.to_batch()?], Format::Csv)?,
        OutputFormat::Table => {
            let mut t = render(&[report.to_batch()?], Format::Table)?;
            t.extend_from_slice(
                format!(
                    "\nplatform cost {} {}: allocated {}, idle {}\n",
                    chargeback::decimal(report.platform_cost_micros),
                    report.currency,
                    chargeback::decimal(report.allocated_micros()),
                    chargeback::decimal(report.idle_micros()),
                )
                .as_bytes(),
            );
            t
        }
    };
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}
