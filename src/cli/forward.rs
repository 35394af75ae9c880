//! `calltrail forward test NAME`: sends one test event to a configured destination and reports
//! success or the exact error (name resolution, connection, TLS, authentication, topic).

use anyhow::{Result, anyhow, bail};
use calltrail::workload::Workload;
use calltrail_collector::forward::deliver::send_test;
use calltrail_collector::forward::event::{Columns, Event, RecordRow};
use calltrail_schemas::arrow_schema::{self, ChainColumns, TOOL_CALLS};
use calltrail_schemas::canonical::RowEncoder;
use calltrail_schemas::{Attributor, IngestContext, map_request};
use sha2::{Digest, Sha256};

use super::ConfigArgs;

/// Arguments of `calltrail forward`.
#[derive(Debug, clap::Args)]
pub(crate) struct ForwardArgs {
    #[command(subcommand)]
    command: ForwardCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ForwardCommand {
    /// Send one test event (a synthetic tool call, event id `calltrail-forward-test-…`) to the
    /// destination NAME, as its format and transport would, and wait for confirmation.
    Test {
        /// The destination's name in `[[forward.destinations]]`.
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// A synthetic tool call, stored-row shaped, with chain columns of a `test` chain.
fn test_batch(now_ns: i64) -> Result<arrow::array::RecordBatch> {
    let mut workload = Workload::new(1, now_ns, 1_000_000);
    let ctx = IngestContext {
        observed_time_ns: now_ns,
        protocol: "forward_test",
        peer: None,
        source: None,
    };
    let mut call = map_request(&workload.next_request(3), &ctx, &Attributor::default())
        .tool_calls
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the synthetic workload produced no tool call"))?;
    call.event_id = format!("calltrail-forward-test-{now_ns}");
    let batch = arrow_schema::tool_calls_batch(&[&call])?;
    let mut bytes = Vec::new();
    RowEncoder::new(TOOL_CALLS, &batch)?.encode(0, &mut bytes);
    let leaf: [u8; 32] = Sha256::new()
        .chain_update([0u8])
        .chain_update(&bytes)
        .finalize()
        .into();
    Ok(arrow_schema::with_chain(
        &batch,
        ChainColumns {
            chain_id: "forward-test",
            first_seq: 0,
            leaf_hashes: &[leaf],
            chain_hashes: &[[0u8; 32]],
        },
    )?)
}

pub(crate) async fn run(args: ForwardArgs) -> Result<()> {
    let ForwardCommand::Test { name, config } = args.command;
    let config = config.load()?;
    let Some(dest) = config.forward.destination(&name) else {
        bail!(
            "no destination {name:?} in [[forward.destinations]] (configured: {})",
            config
                .forward
                .destinations
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let batch = test_batch(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())?;
    let columns = Columns::new(TOOL_CALLS, &batch);
    let event = Event::Record(RecordRow::new(&batch, &columns, 0));
    let id = event.meta().event_id;
    match send_test(dest, &event).await {
        Ok(()) => {
            println!("{name}: delivered test event {id}");
            Ok(())
        }
        Err(e) => bail!("{name}: {e}"),
    }
}
