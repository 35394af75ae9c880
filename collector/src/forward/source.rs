//! Reading the store back in chain order: the sealed segments each chain holds past a
//! destination's cursor, and their rows. The store is the forwarders' only source, so a
//! destination that was down catches up from it for as long as retention keeps the data.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use arrow::array::RecordBatch;
use calltrail_retention::chain::segment::SegmentMeta;
use calltrail_retention::discover;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::cursor::Cursor;

/// Rows per batch read from a segment.
const READ_BATCH_ROWS: usize = 4096;

/// Errors reading the store.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Listing the store failed.
    #[error("listing the store: {0}")]
    List(#[from] calltrail_retention::Error),
    /// A segment (or a findings file) could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A directory of the store could not be listed.
    #[error("listing {path}: {source}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file listed a moment ago is gone: retention removed it before it could be read.
    #[error("{path}: removed before it could be read")]
    Vanished {
        /// The file.
        path: PathBuf,
    },
}

/// A sealed segment with records a destination has not had yet.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The file, relative to the data directory.
    pub file: PathBuf,
    /// Its chain metadata.
    pub meta: SegmentMeta,
    /// When it was sealed (its file's modification time).
    pub sealed_at: Option<SystemTime>,
}

/// What a destination has not had yet: per chain, the segments holding seqs at or past its
/// cursor, in seq order; and per chain, the seq after its newest sealed record.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    /// Per chain, the segments to deliver, in seq order.
    pub segments: BTreeMap<String, Vec<Pending>>,
    /// Per chain, the seq after its newest sealed record.
    pub ends: BTreeMap<String, u64>,
}

/// The store, as the forwarders read it. Remembers segment metadata between listings, so a
/// listing after the first reads only new files' manifests.
#[derive(Debug)]
pub struct StoreSource {
    root: PathBuf,
    known: HashMap<PathBuf, SegmentMeta>,
}

impl StoreSource {
    /// The store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            known: HashMap::new(),
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What `cursor` has not had yet.
    pub fn pending(&mut self, cursor: &Cursor) -> Result<Backlog, SourceError> {
        let files = discover::segment_files(&self.root)?;
        let mut by_chain: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
        let mut ends: BTreeMap<String, u64> = BTreeMap::new();
        let mut present = std::collections::HashSet::new();
        for file in files {
            present.insert(file.clone());
            let meta = match self.known.get(&file) {
                Some(m) => m.clone(),
                None => {
                    // A file without readable metadata is skipped until it has some.
                    let Some(m) = discover::describe(&self.root, file.clone()).meta else {
                        continue;
                    };
                    self.known.insert(file.clone(), m.clone());
                    m
                }
            };
            let end = ends.entry(meta.chain_id.clone()).or_default();
            *end = (*end).max(meta.last_seq + 1);
            if meta.last_seq < cursor.next(&meta.chain_id) {
                continue;
            }
            let sealed_at = std::fs::metadata(self.root.join(&file))
                .and_then(|m| m.modified())
                .ok();
            by_chain
                .entry(meta.chain_id.clone())
                .or_default()
                .push(Pending {
                    file,
                    meta,
                    sealed_at,
                });
        }
        // Forget files retention deleted, so memory follows the store.
        self.known.retain(|f, _| present.contains(f));
        for segs in by_chain.values_mut() {
            segs.sort_by_key(|p| p.meta.first_seq);
        }
        Ok(Backlog {
            segments: by_chain,
            ends,
        })
    }

    /// The rows of a segment, in seq order.
    pub fn read(&self, p: &Pending) -> Result<Vec<RecordBatch>, SourceError> {
        read_segment(&self.root, p)
    }
}

/// The rows of the segment `p` of the store at `root`, in seq order (the writer assigns seqs in
/// row order).
pub fn read_segment(root: &Path, p: &Pending) -> Result<Vec<RecordBatch>, SourceError> {
    let path = root.join(&p.file);
    let err = |message: String| SourceError::Read {
        path: path.clone(),
        message,
    };
    let file = std::fs::File::open(&path).map_err(|e| err(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| err(e.to_string()))?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| err(e.to_string()))?;
    reader.map(|b| b.map_err(|e| err(e.to_string()))).collect()
}
