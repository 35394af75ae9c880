//! The `[integrity]` configuration section: the signing key and checkpoint cadence.

use std::path::PathBuf;

use serde::Deserialize;

use crate::{Error, Result};

/// How the store signs its checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// The private key file (`calltrail keygen`). Unset: `<data_dir>/keys/calltrail.key`,
    /// created with its public key (`calltrail.pub`) on first start. Verifiers pin the public
    /// key, so keep it, and keep the private key readable by Calltrail only.
    pub signing_key: Option<PathBuf>,
    /// The log's name: checkpoints' origin is `<log_name>/<chain id>`, and a generated key is
    /// named after it. Default `calltrail.local`.
    pub log_name: String,
    /// Sign a checkpoint at least this often even when nothing is written, so an idle log is
    /// seen to be alive. Default 60.
    pub heartbeat_secs: u64,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            log_name: "calltrail.local".into(),
            heartbeat_secs: 60,
        }
    }
}

impl IntegrityConfig {
    /// Checks values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: &str| {
            Err(Error::Config {
                key: format!("integrity.{key}"),
                message: message.into(),
            })
        };
        if self.log_name.is_empty()
            || self.log_name.len() > 200
            || self.log_name.chars().any(|c| c.is_whitespace() || c == '+')
        {
            return bad(
                "log_name",
                "must be 1 to 200 characters without spaces or '+'",
            );
        }
        if !(1..=3600).contains(&self.heartbeat_secs) {
            return bad("heartbeat_secs", "must be between 1 and 3600");
        }
        Ok(())
    }
}
