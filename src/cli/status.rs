//! `calltrail status`: the state of a data directory at a glance, read from its files (a
//! server may be running on it or not): the chain and its newest checkpoint, and retention
//! per class with the legal holds in force.

use anyhow::{Context, Result};
use calltrail_retention::chain::checkpoint_log::{checkpoints_dir, read_notes};
use calltrail_retention::chain::head::Head;
use calltrail_retention::checkpoint::Checkpoint;
use calltrail_retention::enforce::{ClassStatus, plan};
use calltrail_retention::holds::{Hold, Holds};
use serde::Serialize;

use super::ConfigArgs;
use super::hold::print_hold;
use super::time::rfc3339_s;

/// Arguments of `calltrail status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct ChainStatus {
    chain_id: String,
    records: u64,
    newest_checkpoint_size: Option<u64>,
    newest_checkpoint_at: Option<u64>,
}

#[derive(Debug, Serialize)]
struct RetentionStatus {
    classes: Vec<ClassStatus>,
    /// Expired, unheld segments the next apply deletes.
    due_segments: u64,
    due_records: u64,
    /// Expired segments kept by holds.
    held_segments: u64,
    /// Segments deleted so far (deletion receipts).
    receipts: u64,
}

#[derive(Debug, Serialize)]
struct DestinationStatus {
    name: String,
    /// Sealed records past its cursor (before filtering).
    lag_records: u64,
    /// Seconds since the oldest of them was sealed; 0 when caught up.
    lag_seconds: u64,
    /// Events in its dead-letter file.
    dead_letters: u64,
    /// Per chain, the next seq it will be sent.
    cursor: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct Status<'a> {
    data_dir: String,
    chain: Option<ChainStatus>,
    retention: RetentionStatus,
    holds: Vec<&'a Hold>,
    forwarding: Vec<DestinationStatus>,
}

/// Each configured destination's position, from its cursor file and the store.
fn forwarding(config: &calltrail::config::Config) -> Result<Vec<DestinationStatus>> {
    use calltrail_collector::forward::cursor::Cursor;
    use calltrail_collector::forward::dead_letter;
    use calltrail_collector::forward::source::StoreSource;
    let root = &config.data_dir;
    let mut out = Vec::new();
    for d in &config.forward.destinations {
        let cursor = Cursor::load(root, &d.name)?.unwrap_or_default();
        let backlog = StoreSource::new(root).pending(&cursor)?;
        let lag_seconds = backlog
            .segments
            .values()
            .filter_map(|s| s.first()?.sealed_at)
            .min()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map_or(0, |d| d.as_secs());
        let ends = backlog.ends;
        let lag_records = ends
            .iter()
            .map(|(chain, end)| end.saturating_sub(cursor.next(chain)))
            .sum();
        let dead_letters = std::fs::read(dead_letter::path(root, &d.name))
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64);
        out.push(DestinationStatus {
            name: d.name.clone(),
            lag_records,
            lag_seconds,
            dead_letters,
            cursor: cursor.next_seq,
        });
    }
    Ok(out)
}

pub(crate) fn run(args: &StatusArgs) -> Result<()> {
    let config = args.config.load()?;
    config.retention.validate()?;
    with_status(&config, |status| {
        if args.json {
            println!("{}", serde_json::to_string_pretty(status)?);
        } else {
            print_status(status);
        }
        Ok(())
    })?
}

/// The status as JSON (the web UI's integrity page): `chains` (a list), `retention`, `holds`
/// in force, `forwarding`.
pub(crate) fn status_json(config: &calltrail::config::Config) -> Result<serde_json::Value> {
    with_status(config, |s| {
        let mut v = serde_json::to_value(s)?;
        if let Some(o) = v.as_object_mut() {
            let chain = o.remove("chain").unwrap_or_default();
            let chains = if chain.is_null() { vec![] } else { vec![chain] };
            o.insert("chains".into(), chains.into());
        }
        Ok(v)
    })?
}

/// Reads the store's status and hands it to `f`.
fn with_status<T>(
    config: &calltrail::config::Config,
    f: impl FnOnce(&Status<'_>) -> T,
) -> Result<T> {
    let root = &config.data_dir;
    let chain = match Head::read(root)? {
        Some(head) => {
            let id = head.state.chain_id;
            let notes = read_notes(&checkpoints_dir(root, &id))?;
            // The log is ours and was verified when signed; `verify` checks signatures.
            let newest = notes.last().and_then(|n| {
                let text = n.split("\n\n").next()?;
                Checkpoint::parse(&format!("{text}\n")).ok()
            });
            // A segment sealed but not yet committed to the head counts once it is on disk.
            let records = match &head.pending {
                Some(p) if root.join(&p.file).exists() => p.after.next_seq,
                _ => head.state.next_seq,
            };
            Some(ChainStatus {
                chain_id: id,
                records,
                newest_checkpoint_size: newest.as_ref().map(|c| c.size),
                newest_checkpoint_at: newest.and_then(|c| c.timestamp),
            })
        }
        None => None,
    };
    let holds =
        Holds::load(root).with_context(|| format!("reading legal holds in {}", root.display()))?;
    let p = plan(
        root,
        &config.retention,
        &holds,
        chrono::Utc::now().timestamp(),
    )?;
    let receipts = calltrail_retention::receipt::list(root)?.len() as u64;
    let status = Status {
        data_dir: root.display().to_string(),
        chain,
        retention: RetentionStatus {
            classes: p.classes.clone(),
            due_segments: p.delete.len() as u64,
            due_records: p.delete.iter().map(|s| s.records).sum(),
            held_segments: p.held.len() as u64,
            receipts,
        },
        holds: holds.active().collect(),
        forwarding: forwarding(config)?,
    };
    Ok(f(&status))
}

fn print_status(s: &Status<'_>) {
    println!("Data directory {}", s.data_dir);
    match &s.chain {
        Some(c) => println!(
            "Chain {}: {} records; newest checkpoint {}",
            c.chain_id,
            c.records,
            match (c.newest_checkpoint_size, c.newest_checkpoint_at) {
                (Some(n), Some(t)) => format!("size {n}, signed {}", rfc3339_s(t as i64)),
                (Some(n), None) => format!("size {n}"),
                _ => "none".into(),
            }
        ),
        None => println!("No chain yet: nothing has been recorded."),
    }
    println!();
    println!("Retention");
    println!(
        "  {:<16} {:>9} {:>9} {:>12} {:>12}  {:<20}  {:<20}",
        "class", "keep days", "segments", "records", "bytes", "oldest record (hour)", "next expiry"
    );
    for c in &s.retention.classes {
        println!(
            "  {:<16} {:>9} {:>9} {:>12} {:>12}  {:<20}  {:<20}",
            c.class,
            c.keep_days,
            c.segments,
            c.records,
            c.bytes,
            c.oldest.map_or("-".into(), rfc3339_s),
            c.next_expiry.map_or("-".into(), rfc3339_s),
        );
    }
    let r = &s.retention;
    println!(
        "  due now: {} segment(s), {} records; kept past expiry by holds: {}; deleted so far: {} (signed receipts)",
        r.due_segments, r.due_records, r.held_segments, r.receipts
    );
    println!();
    if s.forwarding.is_empty() {
        println!("Forwarding: no destination configured");
    } else {
        println!("Forwarding");
        for d in &s.forwarding {
            println!(
                "  {:<20} lag {} records, {} s; {} dead letters",
                d.name, d.lag_records, d.lag_seconds, d.dead_letters
            );
        }
    }
    println!();
    if s.holds.is_empty() {
        println!("Legal holds: none in force");
    } else {
        println!("Legal holds in force: {}", s.holds.len());
        for h in &s.holds {
            print!("  ");
            print_hold(h);
        }
    }
}
