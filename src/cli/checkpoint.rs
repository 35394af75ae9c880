//! `calltrail checkpoint latest`: the newest signed checkpoint, for handing to an auditor or
//! storing somewhere an attacker of this machine cannot reach.

use anyhow::{Context, Result, bail};
use calltrail_retention::chain::checkpoint_log::{checkpoints_dir, read_notes};
use calltrail_retention::chain::head::Head;

use super::ConfigArgs;

/// Arguments of `calltrail checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    #[command(subcommand)]
    command: CheckpointCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CheckpointCommand {
    /// Print the newest checkpoint of a chain (default: the chain the server extends).
    Latest {
        #[command(flatten)]
        config: ConfigArgs,
        /// The chain id.
        #[arg(long)]
        chain: Option<String>,
    },
}

pub(crate) fn run(args: &CheckpointArgs) -> Result<()> {
    let CheckpointCommand::Latest { config, chain } = &args.command;
    let data_dir = config.load()?.data_dir;
    let chain_id = match chain {
        Some(c) => c.clone(),
        None => match Head::read(&data_dir)? {
            Some(head) => head.state.chain_id,
            None => bail!(
                "{} holds no chain yet (start `calltrail serve` on it)",
                data_dir.display()
            ),
        },
    };
    let dir = checkpoints_dir(&data_dir, &chain_id);
    let notes = read_notes(&dir).with_context(|| format!("reading {}", dir.display()))?;
    match notes.last() {
        Some(note) => {
            print!("{note}");
            Ok(())
        }
        None => bail!("no checkpoint of chain {chain_id} in {}", dir.display()),
    }
}
