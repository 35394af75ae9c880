//! C2SP tlog checkpoints (`c2sp.org/tlog-checkpoint`): the text a log signs to commit to its
//! Merkle tree head, and that text signed as a note (`docs/specs/chain.md` §4).
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <base64 (standard, padded) of the tree head>
//! timestamp <unix seconds>
//! ```
//!
//! The first three lines are the spec's; any further lines are extension lines, opaque to the
//! spec. Ours is `timestamp <unix seconds>`, when the checkpoint was signed, so a verifier can
//! tell a live idle log (heartbeats re-sign the same tree) from a silent one. Other extension
//! lines are read past and dropped.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::merkle::Hash;
use crate::note::{NoteError, SigningKey, VerifierKey, open_note, sign_note};

/// The start of our extension line.
const TIMESTAMP_PREFIX: &str = "timestamp ";

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint text does not have the tlog-checkpoint form; the message says what is
    /// wrong.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The origin of a checkpoint to sign is empty or holds a space, `+` or control character
    /// (the spec asks logs for a schema-less URL without spaces or `+`).
    #[error(
        "invalid checkpoint origin {0:?}: it must be non-empty, without spaces, '+' or control characters"
    )]
    InvalidOrigin(String),
    /// Signing the checkpoint, or verifying its signature, failed.
    #[error("checkpoint signature: {0}")]
    Signature(#[from] NoteError),
}

/// A tree head as a checkpoint states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, `<log name>/<chain id>` for ours.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 tree head of those leaves.
    pub root: Hash,
    /// When the checkpoint was signed, in Unix seconds: the `timestamp` extension line.
    pub timestamp: Option<u64>,
}

impl Checkpoint {
    /// The checkpoint text: `<origin>\n<size>\n<base64 root>\n`, then `timestamp <seconds>\n` if
    /// there is a timestamp.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        if let Some(ts) = self.timestamp {
            text.push_str(&format!("{TIMESTAMP_PREFIX}{ts}\n"));
        }
        text
    }

    /// Parses a checkpoint text strictly: at least three lines, each ending in a newline and
    /// none empty; a non-empty origin; a decimal size without leading zeros (but `0`); a root of
    /// exactly 32 bytes in canonical padded base64. Extension lines are read past, except that
    /// a line starting `timestamp ` must be `timestamp <decimal seconds>` and appear once.
    ///
    /// The origin may hold spaces or `+`: the spec only recommends against them and tells
    /// clients not to assume it; callers compare the origin with the one they expect.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        use CheckpointError::Malformed;
        // A note can hold no control character but newline; a '\r' would be a CRLF copy.
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(Malformed("a control character other than newline"));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(Malformed("the last line does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(Malformed("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(Malformed("the origin is empty"));
        }
        let size = parse_decimal(size).ok_or(Malformed(
            "the tree size is not a decimal number without leading zeros that fits 64 bits",
        ))?;
        let root = parse_root(root).ok_or(Malformed(
            "the root is not 32 bytes in canonical padded base64",
        ))?;
        let mut timestamp = None;
        for line in lines {
            if line.is_empty() {
                return Err(Malformed("an empty extension line"));
            }
            if let Some(seconds) = line.strip_prefix(TIMESTAMP_PREFIX) {
                if timestamp.is_some() {
                    return Err(Malformed("more than one timestamp line"));
                }
                timestamp = Some(parse_decimal(seconds).ok_or(Malformed(
                    "the timestamp is not a decimal number without leading zeros that fits 64 bits",
                ))?);
            }
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            timestamp,
        })
    }
}

/// A checkpoint and the signed note that states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The signed note, byte for byte as signed or read: the form to store and forward.
    pub note: String,
}

impl SignedCheckpoint {
    /// Signs `cp` with `key`. The origin must be non-empty and hold no space, `+` or control
    /// character, so that every checkpoint we sign parses back to itself.
    pub fn sign(cp: Checkpoint, key: &SigningKey) -> Result<Self, CheckpointError> {
        let origin_ok = !cp.origin.is_empty()
            && !cp
                .origin
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control());
        if !origin_ok {
            return Err(CheckpointError::InvalidOrigin(cp.origin));
        }
        let note = sign_note(&cp.to_text(), key)?;
        Ok(Self {
            checkpoint: cp,
            note,
        })
    }

    /// Verifies `note`'s signature by the pinned key `verifier`, then parses its text as a
    /// checkpoint. The text is not looked at before the signature verifies.
    pub fn open(note: &str, verifier: &VerifierKey) -> Result<Self, CheckpointError> {
        let text = open_note(note, verifier)?;
        Ok(Self {
            checkpoint: Checkpoint::parse(text)?,
            note: note.to_owned(),
        })
    }
}

/// An ASCII decimal number without a sign or leading zeros (but `0` itself) that fits a `u64`.
fn parse_decimal(s: &str) -> Option<u64> {
    // u64::from_str alone would accept a leading '+' and leading zeros.
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// A 32-byte hash in canonical padded standard base64 (the engine refuses missing padding and
/// non-zero trailing bits, so each hash has exactly one accepted spelling).
fn parse_root(s: &str) -> Option<Hash> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
