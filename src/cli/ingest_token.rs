//! `calltrail ingest-token`: a new random bearer token for an OTLP sender, and the
//! configuration entry that accepts it. Only the token's SHA-256 goes into the config.

use std::io::Read;

use anyhow::{Context, Result};
use calltrail_collector::auth::token_sha256;

/// Arguments of `calltrail ingest-token`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestTokenArgs {
    /// The source name recorded on every row this token delivers, e.g. `gateway-eu-1`.
    #[arg(long)]
    source: String,
}

pub(crate) fn run(args: &IngestTokenArgs) -> Result<()> {
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("cannot read /dev/urandom")?;
    let token = format!("ctk_{}", hex::encode(secret));
    println!(
        "token (give it to the sender, as `Authorization: Bearer <token>`; it is not stored):"
    );
    println!("  {token}");
    println!();
    println!("add to calltrail.toml:");
    println!("[[auth.tokens]]");
    println!("source = {:?}", args.source);
    println!("sha256 = \"{}\"", token_sha256(&token));
    Ok(())
}
