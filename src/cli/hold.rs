//! `calltrail hold place|list|release`: legal holds. Placing and releasing one is an audit
//! event sealed into the chain: through the running server's control socket when `serve` holds
//! the data directory, else by a writer started here for the purpose.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use calltrail::config::Config;
use calltrail::control;
use calltrail_retention::chain::keys;
use calltrail_retention::holds::{Hold, HoldScope, Holds, new_id, placed_event, released_event};
use calltrail_retention::{Layout, StoreWriter};
use calltrail_schemas::audit::AuditEvent;

use super::ConfigArgs;
use super::serve::lock_data_dir;
use super::time::{parse_time, rfc3339_ns};

/// Arguments of `calltrail hold`.
#[derive(Debug, clap::Args)]
pub(crate) struct HoldArgs {
    #[command(subcommand)]
    command: HoldCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HoldCommand {
    /// Place a hold: records in its scope are never deleted until it is released.
    Place {
        #[command(flatten)]
        config: ConfigArgs,
        /// Who places it (recorded in the chain).
        #[arg(long)]
        by: String,
        /// Why (recorded in the chain): a matter, an inquiry, a case number.
        #[arg(long)]
        reason: String,
        /// Only records of this tenant (legal entity).
        #[arg(long)]
        tenant: Option<String>,
        /// Only records of this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only records of this MCP server.
        #[arg(long)]
        server: Option<String>,
        /// Only records that started at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Only records that started before this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
    },
    /// List holds (in force only, unless --all).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Released holds too.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release a hold: its records then follow the retention policy again.
    Release {
        /// The hold's id (`hold-…`).
        id: String,
        #[command(flatten)]
        config: ConfigArgs,
        /// Who releases it (recorded in the chain).
        #[arg(long)]
        by: String,
        /// Why (recorded in the chain).
        #[arg(long)]
        reason: String,
    },
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub(crate) async fn run(args: HoldArgs) -> Result<()> {
    match args.command {
        HoldCommand::Place {
            config,
            by,
            reason,
            tenant,
            principal,
            server,
            from,
            to,
        } => {
            let config = config.load()?;
            let scope = HoldScope {
                tenant,
                principal,
                server,
                from_ns: from.as_deref().map(|f| parse_time("from", f)).transpose()?,
                to_ns: to.as_deref().map(|t| parse_time("to", t)).transpose()?,
            };
            let id = new_id()?;
            let event = placed_event(&id, &scope, &reason, &by, now_ns())?;
            let seq = record(&config, event).await?;
            println!("{id}");
            eprintln!(
                "Placed legal hold {id} on {} (audit record seq {seq}).",
                scope.describe()
            );
            Ok(())
        }
        HoldCommand::List { config, all, json } => {
            let config = config.load()?;
            let holds = Holds::load(&config.data_dir)
                .with_context(|| format!("reading holds in {}", config.data_dir.display()))?;
            let shown: Vec<&Hold> = holds
                .all()
                .iter()
                .filter(|h| all || h.is_active())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else if shown.is_empty() {
                println!("No legal holds{}.", if all { "" } else { " in force" });
            } else {
                for h in shown {
                    print_hold(h);
                }
            }
            Ok(())
        }
        HoldCommand::Release {
            id,
            config,
            by,
            reason,
        } => {
            let config = config.load()?;
            let holds = Holds::load(&config.data_dir)?;
            let Some(hold) = holds.get(&id) else {
                bail!("no hold {id} in {}", config.data_dir.display());
            };
            let event = released_event(hold, &reason, &by, now_ns())?;
            let seq = record(&config, event).await?;
            eprintln!("Released legal hold {id} (audit record seq {seq}).");
            Ok(())
        }
    }
}

/// One hold, for `hold list` and `status`.
pub(crate) fn print_hold(h: &Hold) {
    println!(
        "{}  {}  placed {} by {}: {}",
        h.id,
        h.scope.describe(),
        rfc3339_ns(h.placed_at_ns),
        h.placed_by,
        h.reason
    );
    if let Some(r) = &h.released {
        println!(
            "    released {} by {}{}",
            rfc3339_ns(r.at_ns),
            r.by,
            r.reason
                .as_deref()
                .map_or(String::new(), |why| format!(": {why}"))
        );
    }
}

/// Seals `event` into the chain of `config`'s data directory: through the server when one runs,
/// else with a writer of our own (holding the directory's lock meanwhile).
async fn record(config: &Config, event: AuditEvent) -> Result<u64> {
    let data_dir = &config.data_dir;
    let wal_dir = data_dir.join("wal");
    std::fs::create_dir_all(&wal_dir)
        .with_context(|| format!("data_dir: cannot create {}", wal_dir.display()))?;
    let Ok(_lock) = lock_data_dir(&wal_dir) else {
        return control::append_audit(data_dir, event)
            .await
            .context("a calltrail server holds the data directory; asking it to record the hold");
    };
    let key = keys::load_or_create(
        config.integrity.signing_key.as_deref(),
        data_dir,
        &config.integrity.log_name,
    )?;
    let layout = Arc::new(Layout::new(
        data_dir,
        format!("hold{:04x}", std::process::id() & 0xffff),
    ));
    let writer = StoreWriter::spawn(
        config.store.clone(),
        layout,
        &config.integrity,
        &key,
        &config.retention,
    )?;
    let seq = writer.audit().append(event).await;
    writer.shutdown().await;
    Ok(seq?)
}
