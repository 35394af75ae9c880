//! The chain head, `<data>/chain/head.json`: where the chain stands (next seq, last chained
//! hash, the tree's frontier) and the segment being sealed, if any. It is the commit record of
//! sealing (`docs/specs/chain.md` §3): written with `pending` before a segment's Parquet file is
//! renamed into place, and without it once the segment is complete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::write_bytes_atomic;
use crate::merkle::Hash;
use crate::tree::Frontier;
use crate::{Error, Result, io_err};

/// Where a chain stands: what the next record links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The chain id.
    pub chain_id: String,
    /// Seq of the next record (= records chained so far = tree size).
    pub next_seq: u64,
    /// Chained hash of the last record, or the genesis value.
    pub last_hash: Hash,
    /// Compact range of the tree over every leaf so far.
    pub frontier: Frontier,
}

/// A segment whose Parquet file may or may not have been renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The Parquet file, relative to the data directory.
    pub file: PathBuf,
    /// The state once the segment is in the chain.
    pub after: ChainState,
}

/// The head file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The committed state.
    pub state: ChainState,
    /// The segment being sealed.
    pub pending: Option<Pending>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    chain_id: String,
    next_seq: u64,
    #[serde(with = "crate::hash_hex::one")]
    last_hash: Hash,
    #[serde(with = "crate::hash_hex::list")]
    frontier: Vec<Hash>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingJson {
    file: PathBuf,
    after: StateJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadJson {
    version: u32,
    state: StateJson,
    pending: Option<PendingJson>,
}

impl StateJson {
    fn of(s: &ChainState) -> Self {
        Self {
            chain_id: s.chain_id.clone(),
            next_seq: s.next_seq,
            last_hash: s.last_hash,
            frontier: s.frontier.hashes().to_vec(),
        }
    }

    fn parse(self) -> Option<ChainState> {
        Some(ChainState {
            chain_id: self.chain_id,
            next_seq: self.next_seq,
            last_hash: self.last_hash,
            frontier: Frontier::from_parts(self.next_seq, self.frontier).ok()?,
        })
    }
}

/// The head file of the data directory `root`.
pub fn head_path(root: &Path) -> PathBuf {
    root.join("chain").join("head.json")
}

impl Head {
    /// Reads the head; `None` when there is none yet (a new data directory).
    pub fn read(root: &Path) -> Result<Option<Self>> {
        let path = head_path(root);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let corrupt = |what: &str| Error::Integrity(format!("{}: {what}", path.display()));
        let json: HeadJson = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(&format!("not a chain head: {e}")))?;
        if json.version != 1 {
            return Err(corrupt("unknown version"));
        }
        let state = json
            .state
            .parse()
            .ok_or_else(|| corrupt("malformed state"))?;
        let pending = match json.pending {
            None => None,
            Some(p) => Some(Pending {
                file: p.file,
                after: p
                    .after
                    .parse()
                    .ok_or_else(|| corrupt("malformed pending state"))?,
            }),
        };
        Ok(Some(Self { state, pending }))
    }

    /// Replaces the head file atomically and durably.
    pub fn write(&self, root: &Path) -> Result<()> {
        let json = HeadJson {
            version: 1,
            state: StateJson::of(&self.state),
            pending: self.pending.as_ref().map(|p| PendingJson {
                file: p.file.clone(),
                after: StateJson::of(&p.after),
            }),
        };
        let bytes = serde_json::to_vec_pretty(&json)
            .map_err(|e| Error::Integrity(format!("encoding the chain head: {e}")))?;
        write_bytes_atomic(&head_path(root), &bytes)
    }
}
