//! `calltrail export` and `calltrail verify-export`: a compliance bundle of the records a filter
//! selects, with the proofs a regulator checks offline (`docs/export.md`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use calltrail_retention::chain::keys::{default_private_key, read_signing_key, read_verifier_key};
use calltrail_retention::export::{
    ExportOptions, ExportReport, ExportSummary, Format, Selection, export, verify_export,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
use super::time::parse_time;

/// Arguments of `calltrail export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Records whose start time is at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z,
    /// or YYYY-MM-DD for midnight UTC).
    #[arg(long)]
    from: String,
    /// Records whose start time is before this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    to: String,
    /// Only records of this tenant (repeat for any of several).
    #[arg(long)]
    tenant: Vec<String>,
    /// Only records of this principal (repeat for any of several).
    #[arg(long)]
    principal: Vec<String>,
    /// Only tool calls to this MCP server (repeat for any of several); LLM calls are left out.
    #[arg(long)]
    server: Vec<String>,
    /// Only calls of this tool (repeat for any of several); LLM calls are left out.
    #[arg(long)]
    tool: Vec<String>,
    /// The records' format: Parquet, or also JSON Lines or CSV beside the Parquet copy.
    #[arg(long, default_value = "parquet", value_parser = ["parquet", "jsonl", "csv"])]
    format: String,
    /// The bundle directory to create; it must not exist.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Arguments of `calltrail verify-export`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyExportArgs {
    /// The bundle (`calltrail export --out`).
    dir: PathBuf,
    /// The public key the bundle must be signed with, as received from the store's operator.
    #[arg(long)]
    pubkey: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} records ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(crate) fn run_export(args: &ExportArgs) -> Result<()> {
    let config = args.config.load()?;
    let data_dir = config.data_dir;
    let key_path = config
        .integrity
        .signing_key
        .clone()
        .unwrap_or_else(|| default_private_key(&data_dir));
    if !key_path.exists() {
        bail!(
            "no signing key at {}: the export signs its manifest with the store's key (set integrity.signing_key)",
            key_path.display()
        );
    }
    let key = read_signing_key(&key_path)?;
    let format: Format = args
        .format
        .parse()
        .map_err(|e: String| anyhow!("--format: {e}"))?;
    let options = ExportOptions {
        out: args.out.clone(),
        selection: Selection {
            from_ns: parse_time("from", &args.from)?,
            to_ns: parse_time("to", &args.to)?,
            tenants: args.tenant.clone(),
            principals: args.principal.clone(),
            servers: args.server.clone(),
            tools: args.tool.clone(),
        },
        format,
        key,
    };
    let bar = progress_bar("exporting");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let summary = export(&data_dir, &options, &progress)
        .with_context(|| format!("exporting {} to {}", data_dir.display(), args.out.display()))?;
    bar.finish_and_clear();
    print_summary(&summary);
    Ok(())
}

fn print_summary(s: &ExportSummary) {
    let tables: Vec<String> = s.tables.iter().map(|(t, n)| format!("{n} {t}")).collect();
    println!(
        "Exported {} records ({}) to {}: {} files, {} bytes.",
        s.records,
        if tables.is_empty() {
            "none".to_owned()
        } else {
            tables.join(", ")
        },
        s.out.display(),
        s.files,
        s.bytes
    );
    for c in &s.chains {
        println!(
            "  chain {}: {} records, proven against its checkpoint of size {}; {} deletion receipts",
            c.chain_id, c.records, c.tree_size, c.receipts
        );
    }
    for n in &s.notes {
        println!("  note: {n}");
    }
}

fn print_report(r: &ExportReport) {
    let tables: Vec<String> = r.tables.iter().map(|(t, n)| format!("{n} {t}")).collect();
    println!(
        "Verified export {}: {} files, {} records ({}), {} proofs led to {} signed checkpoint(s).",
        r.dir.display(),
        r.files,
        r.records,
        if tables.is_empty() {
            "none".to_owned()
        } else {
            tables.join(", ")
        },
        r.proofs_verified,
        r.chains.iter().filter(|c| c.tree_size.is_some()).count()
    );
    for c in &r.chains {
        let size = c
            .tree_size
            .map_or("not verified".to_owned(), |s| format!("size {s}"));
        let at = c
            .signed_at
            .map_or(String::new(), |t| format!(", signed at Unix time {t}"));
        println!(
            "  chain {}: checkpoint {size}{at}; {} proofs verified; {} deletion receipts verified",
            c.chain_id, c.proofs_verified, c.receipts
        );
    }
    if r.ok {
        println!("OK: the bundle is complete and every record is proven.");
    } else {
        println!("FAILED CHECKS ({}):", r.findings.len());
        for f in &r.findings {
            println!("  {f}");
        }
    }
}

pub(crate) fn run_verify_export(args: &VerifyExportArgs) -> Result<()> {
    let pubkey = read_verifier_key(&args.pubkey)?;
    let bar = progress_bar("verifying");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = verify_export(&args.dir, &pubkey, &progress)?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if !report.ok {
        bail!("verify-export: {} check(s) failed", report.findings.len());
    }
    Ok(())
}
