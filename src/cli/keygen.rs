//! `calltrail keygen`: a checkpoint signing key pair.

use std::path::PathBuf;

use anyhow::Result;
use calltrail_retention::chain::keys;
use calltrail_retention::note::SigningKey;

/// Arguments of `calltrail keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Key name, shown in every signature line (no spaces or '+').
    #[arg(long, default_value = "calltrail.local")]
    name: String,
    /// Path prefix of the files: `<out>.key` (private, mode 0600) and `<out>.pub` (public).
    #[arg(long, default_value = "calltrail")]
    out: PathBuf,
}

pub(crate) fn run(args: &KeygenArgs) -> Result<()> {
    let key = SigningKey::generate(&args.name)?;
    let private = args.out.with_extension("key");
    let public = args.out.with_extension("pub");
    keys::write_key_pair(&key, &private, &public)?;
    println!(
        "private key: {} (mode 0600; set [integrity] signing_key to it)",
        private.display()
    );
    println!("public key:  {} (give it to verifiers)", public.display());
    println!("{}", key.verifier().to_text());
    Ok(())
}
