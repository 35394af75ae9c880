//! Signing and keeping a chain's checkpoints (`docs/specs/chain.md` §4). Every checkpoint is
//! appended to `<data>/checkpoints/<chain id>/<YYYY-MM-DD>.jsonl` (one `{"note": ...}` line
//! each) and published to subscribers. The log refuses to sign anything inconsistent
//! with what it signed before.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::files::{ensure_dir, sync_dir};
use crate::merkle::Hash;
use crate::note::SigningKey;
use crate::{Error, Result, io_err};

/// Where subscribers (the SIEM forwarders) receive each new checkpoint.
pub type CheckpointFeed = watch::Sender<Option<Arc<SignedCheckpoint>>>;

/// The directory of a chain's checkpoints under the data directory `root`.
pub fn checkpoints_dir(root: &Path, chain_id: &str) -> PathBuf {
    root.join("checkpoints").join(chain_id)
}

/// One line of a chain's checkpoint log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// The log file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The note the line holds, or the raw line when it is not a `{"note": ...}` entry.
    pub entry: std::result::Result<String, String>,
}

/// Every line of the checkpoint logs in `dir`, oldest first, except an unterminated last line
/// (a crash while appending leaves one; it is not evidence).
pub fn read_log(dir: &Path) -> Result<Vec<LogLine>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).map_err(io_err("read", &f))?;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let note = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("note").and_then(|n| n.as_str()).map(str::to_owned));
            let torn = i + 1 == lines.len() && !text.ends_with('\n');
            let entry = match note {
                Some(n) => Ok(n),
                None if torn => continue,
                None => Err((*line).to_owned()),
            };
            out.push(LogLine {
                file: f.clone(),
                line: i + 1,
                entry,
            });
        }
    }
    Ok(out)
}

/// The checkpoint notes stored in `dir`, oldest first.
pub fn read_notes(dir: &Path) -> Result<Vec<String>> {
    Ok(read_log(dir)?
        .into_iter()
        .filter_map(|l| l.entry.ok())
        .collect())
}

/// Signs a chain's checkpoints, never two inconsistent ones.
#[derive(Debug)]
pub struct CheckpointLog {
    dir: PathBuf,
    origin: String,
    key: SigningKey,
    last: Option<Arc<SignedCheckpoint>>,
    feed: CheckpointFeed,
}

impl CheckpointLog {
    /// Opens the log of `chain_id` under `root`, remembering the newest checkpoint stored there
    /// that verifies under `key`.
    pub fn open(
        root: &Path,
        chain_id: &str,
        log_name: &str,
        key: SigningKey,
        feed: CheckpointFeed,
    ) -> Result<Self> {
        let dir = checkpoints_dir(root, chain_id);
        let origin = format!("{log_name}/{chain_id}");
        let verifier = key.verifier();
        let last = read_notes(&dir)?
            .iter()
            .rev()
            .find_map(|n| SignedCheckpoint::open(n, &verifier).ok())
            .filter(|c| c.checkpoint.origin == origin)
            .map(Arc::new);
        Ok(Self {
            dir,
            origin,
            key,
            last,
            feed,
        })
    }

    /// The newest checkpoint signed (this run or an earlier one).
    pub fn last(&self) -> Option<&Arc<SignedCheckpoint>> {
        self.last.as_ref()
    }

    /// The origin line of this chain's checkpoints.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs, stores and publishes a checkpoint of the tree of `size` leaves with head `root`.
    /// Refuses a size below one already signed, or a different head for a size already signed.
    pub fn sign(&mut self, size: u64, root: Hash) -> Result<Arc<SignedCheckpoint>> {
        if let Some(last) = &self.last {
            let prev = &last.checkpoint;
            if size < prev.size || (size == prev.size && root != prev.root) {
                return Err(Error::Integrity(format!(
                    "refusing to sign a checkpoint of size {size} for {}: it would be \
                     inconsistent with the signed checkpoint of size {}",
                    self.origin, prev.size
                )));
            }
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            timestamp: Some(chrono::Utc::now().timestamp().max(0) as u64),
        };
        let signed = Arc::new(SignedCheckpoint::sign(checkpoint, &self.key)?);
        self.append(&signed.note)?;
        self.last = Some(Arc::clone(&signed));
        self.feed.send_replace(Some(Arc::clone(&signed)));
        Ok(signed)
    }

    /// Re-signs the newest tree with the current time: the heartbeat that shows an idle log
    /// is alive. Does nothing before the first checkpoint.
    pub fn heartbeat(&mut self) -> Result<Option<Arc<SignedCheckpoint>>> {
        let Some(last) = &self.last else {
            return Ok(None);
        };
        let (size, root) = (last.checkpoint.size, last.checkpoint.root);
        self.sign(size, root).map(Some)
    }

    fn append(&self, note: &str) -> Result<()> {
        ensure_dir(&self.dir)?;
        let day = chrono::Utc::now().format("%Y-%m-%d");
        let path = self.dir.join(format!("{day}.jsonl"));
        let created = !path.exists();
        let mut line = serde_json::to_string(&serde_json::json!({ "note": note }))
            .map_err(|e| Error::Integrity(format!("encoding a checkpoint: {e}")))?;
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        // Not fsynced: a checkpoint only ever covers a sealed (durable) tree, so one lost to a
        // crash is consistent with whatever is signed after it, and a start signs a fresh one.
        f.write_all(line.as_bytes())
            .map_err(io_err("append", &path))?;
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}
