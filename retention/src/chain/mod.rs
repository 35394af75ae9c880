//! The writer's side of the record chain (`docs/specs/chain.md`): every record gets a gap-free
//! seq, a leaf hash over its canonical encoding and a chained hash; every sealed Parquet file is
//! a segment of contiguous seqs with its chain metadata in the footer and a sidecar manifest;
//! every seal and heartbeat signs a checkpoint of the chain's Merkle tree.
//!
//! - [`link`]: genesis and chained hashes, chain ids;
//! - [`segment`]: segment metadata (footer and manifest);
//! - [`head`]: the chain head, the commit record of sealing;
//! - [`checkpoint_log`]: signing and storing checkpoints, never two inconsistent ones;
//! - [`keys`]: key files;
//! - [`config`]: the `[integrity]` section.

pub mod checkpoint_log;
pub mod config;
pub mod head;
pub mod keys;
pub mod link;
pub mod segment;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use calltrail_schemas::arrow_schema::{ChainColumns, with_chain};
use calltrail_schemas::canonical::RowEncoder;
use parquet::file::properties::WriterProperties;

use crate::merkle::{self, Hash};
use crate::note::SigningKey;
use crate::parquet_file::write_atomic;
use crate::policy::RetentionClass;
use crate::tree::Frontier;
use crate::{Error, Result};
pub use checkpoint_log::{CheckpointFeed, CheckpointLog};
pub use config::IntegrityConfig;
pub use head::{ChainState, Head, Pending};
pub use segment::SegmentMeta;

/// Version of the canonical record encoding leaf hashes cover.
pub const CANONICAL_VERSION: u8 = 1;

/// A chain's checkpoint log, shared by the writer (which signs on every seal) and the heartbeat.
pub type SharedLog = Arc<Mutex<CheckpointLog>>;

/// The chain one writer extends.
#[derive(Debug)]
pub struct Chain {
    root: PathBuf,
    state: ChainState,
    log: SharedLog,
}

fn new_state() -> Result<ChainState> {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| Error::Integrity("the system random source failed".into()))?;
    let chain_id = hex::encode(id);
    Ok(ChainState {
        last_hash: link::genesis(&chain_id),
        chain_id,
        next_seq: 0,
        frontier: Frontier::new(),
    })
}

/// Finishes or drops the segment a crash interrupted (see `docs/specs/chain.md` §3).
fn resolve_pending(
    root: &Path,
    key: &SigningKey,
    state: ChainState,
    pending: Pending,
) -> Result<ChainState> {
    let path = root.join(&pending.file);
    if !path.exists() && deleted_by_retention(root, key, &state, &pending) {
        tracing::info!(file = %path.display(),
            "The segment sealed at the last stop has since expired and been deleted, with a receipt.");
        return Ok(pending.after);
    }
    if !path.exists() {
        tracing::info!(file = %path.display(),
            "A segment being sealed at the last stop never reached disk; its records will be chained again from the write-ahead log.");
        return Ok(state);
    }
    let meta = segment::read_footer(&path)?;
    let after = &pending.after;
    match meta {
        Some(m)
            if m.chain_id == state.chain_id
                && m.first_seq == state.next_seq
                && m.tree_size == after.next_seq
                && m.last_hash == after.last_hash =>
        {
            if !segment::manifest_path(&path).exists() {
                segment::write_manifest(&path, &m)?;
            }
            tracing::info!(file = %path.display(), first_seq = m.first_seq, last_seq = m.last_seq,
                "Completed the seal of a segment interrupted at the last stop.");
            Ok(pending.after)
        }
        _ => Err(Error::Integrity(format!(
            "{}: the chain head says this segment was being sealed, but its footer does not match; \
             refusing to guess (run `calltrail verify`)",
            path.display()
        ))),
    }
}

/// Rows per thread below which hashing stays on the calling thread.
/// True when retention deleted the pending segment after it was sealed: its signed receipt
/// describes exactly the segment the head says was being sealed. (Records that expire as they
/// arrive can be deleted before the next seal or start commits the head.)
fn deleted_by_retention(root: &Path, key: &SigningKey, state: &ChainState, p: &Pending) -> bool {
    let path = crate::receipt::receipt_path(root, &state.chain_id, state.next_seq);
    let Ok(note) = std::fs::read_to_string(&path) else {
        return false;
    };
    crate::receipt::DeletionReceipt::open(&note, &key.verifier()).is_ok_and(|r| {
        r.chain_id == state.chain_id
            && r.prev_hash == state.last_hash
            && r.last_hash == p.after.last_hash
            && r.tree_size == p.after.next_seq
            && Path::new(&r.file) == p.file
    })
}

const PARALLEL_MIN_ROWS: usize = 4096;

/// The leaf hashes of the first `rows` rows `encoder` encodes, computed on all of the machine's
/// cores.
pub fn leaf_hashes(encoder: &RowEncoder, rows: usize) -> Vec<Hash> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = rows.div_ceil(threads.max(1)).max(PARALLEL_MIN_ROWS);
    if per >= rows {
        return encoder.leaf_hashes(rows);
    }
    let mut out = vec![[0u8; 32]; rows];
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per).enumerate() {
            s.spawn(move || {
                let mut scratch = Vec::with_capacity(2048);
                for (j, h) in chunk.iter_mut().enumerate() {
                    *h = encoder.leaf_hash(i * per + j, &mut scratch);
                }
            });
        }
    });
    out
}

impl Chain {
    /// Opens the chain of the data directory `root`, recovering an interrupted seal, or starts
    /// one. If the stored chain is shorter than (or diverges from) its newest checkpoint, the
    /// directory was rolled back or damaged: that chain is left as it is and a new one starts,
    /// so no two inconsistent checkpoints are ever signed. Signs a start-up checkpoint.
    pub fn open(
        root: &Path,
        key: &SigningKey,
        log_name: &str,
        feed: CheckpointFeed,
    ) -> Result<Self> {
        let mut state = match Head::read(root)? {
            None => new_state()?,
            Some(Head {
                state,
                pending: None,
            }) => state,
            Some(Head {
                state,
                pending: Some(p),
            }) => resolve_pending(root, key, state, p)?,
        };
        Head {
            state: state.clone(),
            pending: None,
        }
        .write(root)?;
        let mut log =
            CheckpointLog::open(root, &state.chain_id, log_name, key.clone(), feed.clone())?;
        if let Some(last) = log.last() {
            let (size, head) = (last.checkpoint.size, last.checkpoint.root);
            let ours = state.frontier.root();
            if size > state.next_seq || (size == state.next_seq && head != ours) {
                tracing::error!(chain_id = %state.chain_id, checkpoint_size = size, stored_size = state.next_seq,
                    "The stored chain is shorter than, or differs from, its newest signed checkpoint: the data directory was rolled back or damaged. Starting a new chain; run `calltrail verify`.");
                state = new_state()?;
                Head {
                    state: state.clone(),
                    pending: None,
                }
                .write(root)?;
                log = CheckpointLog::open(root, &state.chain_id, log_name, key.clone(), feed)?;
            }
        }
        log.sign(state.next_seq, state.frontier.root())?;
        Ok(Self {
            root: root.to_owned(),
            state,
            log: Arc::new(Mutex::new(log)),
        })
    }

    /// Where the chain stands.
    pub fn state(&self) -> &ChainState {
        &self.state
    }

    /// The checkpoint log, for the heartbeat.
    pub fn log(&self) -> SharedLog {
        Arc::clone(&self.log)
    }

    /// Seals `content` (a content batch of `table`, rows in chain order) as the segment
    /// `dir/name`: records it as pending in the head, chains its rows, writes the Parquet file
    /// with the chain columns and footer metadata (`props` turns the footer pairs into writer
    /// properties), then the manifest, and signs a checkpoint. Returns the file's size and the
    /// segment's metadata.
    ///
    /// Once the Parquet file is in place the chain has advanced, whatever happens next: a
    /// failed manifest or checkpoint write is logged and repaired by the next seal or start,
    /// never by chaining the rows again. The head is not rewritten after the seal: its
    /// `pending` entry already leads to the new state, which a start adopts once it finds the
    /// file. So a seal costs one durable head write, the Parquet file, and nothing else durable.
    pub fn seal(
        &mut self,
        table: &str,
        dir: &Path,
        name: &str,
        content: &RecordBatch,
        props: impl FnOnce(Vec<(String, String)>) -> Result<WriterProperties>,
    ) -> Result<(u64, SegmentMeta)> {
        let leaves = leaf_hashes(&RowEncoder::new(table, content)?, content.num_rows());
        self.seal_hashed(table, dir, name, content, &leaves, None, props)
    }

    /// [`Chain::seal`] for a batch whose leaf hashes (one per row, from [`leaf_hashes`]) were
    /// computed beforehand, off the serial path, and whose records all belong to `class`
    /// (recorded with the segment, so it expires whole).
    #[allow(clippy::too_many_arguments)] // the segment's parts; a struct would only rename them
    pub fn seal_hashed(
        &mut self,
        table: &str,
        dir: &Path,
        name: &str,
        content: &RecordBatch,
        leaves: &[Hash],
        class: Option<&RetentionClass>,
        props: impl FnOnce(Vec<(String, String)>) -> Result<WriterProperties>,
    ) -> Result<(u64, SegmentMeta)> {
        let n = content.num_rows() as u64;
        if n == 0 || leaves.len() != content.num_rows() {
            return Err(Error::Integrity(format!(
                "a segment needs at least one record and one leaf hash per record ({n} records, {} hashes)",
                leaves.len()
            )));
        }
        let chained = link::chain_hashes(&self.state.last_hash, leaves);
        let mut frontier = self.state.frontier.clone();
        for leaf in leaves {
            frontier.append(*leaf);
        }
        let first_seq = self.state.next_seq;
        let last_hash = chained[chained.len() - 1];
        let meta = SegmentMeta {
            chain_id: self.state.chain_id.clone(),
            table: table.to_owned(),
            file: name.to_owned(),
            first_seq,
            last_seq: first_seq + n - 1,
            count: n,
            prev_hash: self.state.last_hash,
            last_hash,
            segment_root: merkle::root(leaves),
            tree_size: first_seq + n,
            tree_root: frontier.root(),
            frontier: frontier.hashes().to_vec(),
            canonical_version: CANONICAL_VERSION,
            retention_class: class.map(|c| c.name.clone()),
            keep_days: class.map(|c| c.keep_days),
        };
        let after = ChainState {
            chain_id: self.state.chain_id.clone(),
            next_seq: meta.tree_size,
            last_hash,
            frontier,
        };
        let batch = with_chain(
            content,
            ChainColumns {
                chain_id: &meta.chain_id,
                first_seq: i64::try_from(first_seq)
                    .map_err(|_| Error::Integrity("seq overflow".into()))?,
                leaf_hashes: leaves,
                chain_hashes: &chained,
            },
        )?;
        let relative = dir.strip_prefix(&self.root).unwrap_or(dir).join(name);
        Head {
            state: self.state.clone(),
            pending: Some(Pending {
                file: relative,
                after: after.clone(),
            }),
        }
        .write(&self.root)?;
        let bytes = write_atomic(dir, name, &batch, props(meta.footer())?)?;
        self.state = after;
        let path = dir.join(name);
        if let Err(e) = segment::write_manifest(&path, &meta) {
            tracing::error!(error = %e, "Writing a segment manifest failed; the footer still holds its chain metadata.");
        }
        // Never an error from here on: the rows are sealed, and a caller retrying would chain
        // them a second time.
        match self.log.lock() {
            Ok(mut log) => {
                if let Err(e) = log.sign(self.state.next_seq, meta.tree_root) {
                    tracing::error!(error = %e, "Signing a checkpoint failed; the next seal or heartbeat signs one.");
                }
            }
            Err(_) => {
                tracing::error!("The checkpoint log lock is poisoned; no checkpoint was signed.");
            }
        }
        Ok((bytes, meta))
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
