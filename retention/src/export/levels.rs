//! A chain's whole RFC 6962 tree held in memory, level by level, so that the audit paths of
//! any number of records are read off it: each proof costs O(log n) lookups instead of a pass
//! over the chain ([`crate::tree::ProofBuilder`] holds ~1 KiB per requested proof while it
//! streams, which is too much for a million of them).
//!
//! Level k holds the hash of every perfect subtree of 2^k leaves that the tree of `size`
//! leaves contains, left to right: `size >> k` of them. Together that is just under 2·n
//! hashes, **64 bytes per leaf of the tree** (a chain of 5 M records: 320 MB), deleted leaves
//! included. Every other node of the tree lies on its right edge and is one of the at most 63
//! folds of the compact range of `[0, size)` from the right, computed once.
//!
//! Leaves that retention deleted are known only by their compact range (a deletion receipt's
//! `range`, see [`crate::tree::range_levels`]): those perfect subtrees are stored at their
//! levels, and every node below them, or above them together with an unknown sibling, stays
//! unknown. A proof that needs an unknown node (only the proof of a deleted leaf does) fails
//! with [`TreeError::InsideDeleted`].

use crate::merkle::{self, Hash, node_hash};
use crate::tree::{TreeError, range_levels};

/// Stands for a node whose hash is not known (inside deleted leaves). SHA-256 gives all zeros
/// only by chance (about 2^-256), and no one can make it do so, so no real node is mistaken
/// for it; a separate "known" bit per node would cost memory for nothing.
const UNKNOWN: Hash = [0; 32];

/// Levels shorter than this are hashed on the calling thread.
const PARALLEL_MIN_NODES: usize = 1 << 16;

/// Collects a tree's leaves in order (and compact ranges for deleted runs of them).
#[derive(Debug)]
pub(crate) struct LevelsBuilder {
    size: u64,
    leaves: Vec<Hash>,
    /// Perfect subtrees given by compact ranges: (level, index at that level, hash).
    nodes: Vec<(u32, u64, Hash)>,
    deleted: Vec<(u64, u64)>,
}

impl LevelsBuilder {
    /// A builder of the tree of `size` leaves. Fails when `size` does not fit in memory.
    pub(crate) fn new(size: u64) -> Result<Self, TreeError> {
        let cap = usize::try_from(size).map_err(|_| TreeError::TooLarge { size })?;
        Ok(Self {
            size,
            leaves: Vec::with_capacity(cap),
            nodes: Vec::new(),
            deleted: Vec::new(),
        })
    }

    /// Leaves pushed so far (deleted ones included).
    pub(crate) fn pushed(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Pushes the next leaf hash. Leaves beyond the tree size make [`LevelsBuilder::finish`]
    /// fail.
    pub(crate) fn push(&mut self, leaf: Hash) {
        self.leaves.push(leaf);
    }

    /// Pushes the deleted leaves `[start, end)`, known only by their compact range (the
    /// hashes of the perfect subtrees [`range_levels`] names, left to right). `start` must be
    /// the number of leaves pushed so far.
    pub(crate) fn push_range(
        &mut self,
        start: u64,
        end: u64,
        range: &[Hash],
    ) -> Result<(), TreeError> {
        if start != self.pushed() || end < start || end > self.size {
            return Err(TreeError::RangeMisplaced {
                size: self.pushed(),
                start,
                end,
            });
        }
        let levels = range_levels(start, end);
        if levels.len() != range.len() {
            return Err(TreeError::RangeLength {
                start,
                end,
                expected: levels.len(),
                got: range.len(),
            });
        }
        let len = usize::try_from(end).map_err(|_| TreeError::TooLarge { size: end })?;
        self.leaves.resize(len, UNKNOWN);
        let mut pos = start;
        for (level, hash) in levels.into_iter().zip(range) {
            if level == 0 {
                // A perfect subtree of one leaf is that leaf's hash: it is known after all.
                if let Some(leaf) = self.leaves.get_mut(pos as usize) {
                    *leaf = *hash;
                }
            } else {
                self.nodes.push((level, pos >> level, *hash));
            }
            pos += 1 << level;
        }
        self.deleted.push((start, end));
        Ok(())
    }

    /// Builds every level, once all `size` leaves are pushed.
    pub(crate) fn finish(self) -> Result<Levels, TreeError> {
        let pushed = self.pushed();
        if pushed < self.size {
            return Err(TreeError::TooFewLeaves {
                size: self.size,
                pushed,
            });
        }
        if pushed > self.size {
            return Err(TreeError::TooManyLeaves {
                size: self.size,
                pushed,
            });
        }
        let mut levels = vec![self.leaves];
        let mut level = 0u32;
        while levels[level as usize].len() >= 2 {
            let below = &levels[level as usize];
            let mut above = hash_pairs(below);
            level += 1;
            for &(l, index, hash) in &self.nodes {
                if l == level
                    && let Some(node) = usize::try_from(index).ok().and_then(|i| above.get_mut(i))
                {
                    *node = hash;
                }
            }
            levels.push(above);
        }
        let mut tree = Levels {
            size: self.size,
            levels,
            edges: Vec::new(),
            deleted: self.deleted,
        };
        tree.edges = tree.right_edge();
        Ok(tree)
    }
}

/// The parents of `below`'s pairs (an odd last node has none at this level); unknown when a
/// child is.
fn hash_pairs(below: &[Hash]) -> Vec<Hash> {
    let mut above = vec![UNKNOWN; below.len() / 2];
    let fill = |out: &mut [Hash], pairs: &[Hash]| {
        for (node, pair) in out.iter_mut().zip(pairs.chunks_exact(2)) {
            if pair[0] != UNKNOWN && pair[1] != UNKNOWN {
                *node = node_hash(&pair[0], &pair[1]);
            }
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if above.len() < PARALLEL_MIN_NODES || threads < 2 {
        fill(&mut above, below);
        return above;
    }
    let per = above.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (i, chunk) in above.chunks_mut(per).enumerate() {
            let pairs = &below[2 * i * per..];
            s.spawn(move || fill(chunk, pairs));
        }
    });
    above
}

/// A chain's tree of `size` leaves, every perfect subtree hash in memory.
#[derive(Debug)]
pub(crate) struct Levels {
    size: u64,
    /// `levels[k][j]`: the perfect subtree of 2^k leaves starting at leaf j·2^k.
    levels: Vec<Vec<Hash>>,
    /// The right-edge nodes `[lo, size)` that are not perfect subtrees, by `lo`.
    edges: Vec<(u64, Hash)>,
    /// Runs of deleted leaves `[start, end)`, for error messages.
    deleted: Vec<(u64, u64)>,
}

impl Levels {
    /// The number of leaves.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The tree head; `SHA-256("")` for the empty tree.
    pub(crate) fn root(&self) -> Result<Hash, TreeError> {
        if self.size == 0 {
            return Ok(merkle::root(&[]));
        }
        self.node(0, self.size)
    }

    /// The leaf hash at `index`, when known.
    pub(crate) fn leaf(&self, index: u64) -> Option<Hash> {
        let leaf = *self.levels.first()?.get(usize::try_from(index).ok()?)?;
        (leaf != UNKNOWN).then_some(leaf)
    }

    /// The RFC 9162 audit path of leaf `index` in this tree, leaf to root (the same as
    /// [`merkle::inclusion_proof`] over all the leaves).
    pub(crate) fn inclusion(&self, index: u64) -> Result<Vec<Hash>, TreeError> {
        if index >= self.size {
            return Err(TreeError::IndexOutOfRange {
                index,
                size: self.size,
            });
        }
        let mut out = Vec::with_capacity(64 - self.size.leading_zeros() as usize);
        self.path(index, 0, self.size, &mut out)?;
        Ok(out)
    }

    /// RFC 6962 §2.1.1 PATH(m, D[lo:hi]), appending the nodes leaf to root.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), TreeError> {
        if hi - lo <= 1 {
            return Ok(());
        }
        let mid = lo + split(hi - lo);
        if m < mid {
            self.path(m, lo, mid, out)?;
            out.push(self.node(mid, hi)?);
        } else {
            self.path(m, mid, hi, out)?;
            out.push(self.node(lo, mid)?);
        }
        Ok(())
    }

    /// The hash of the tree node over leaves `[lo, hi)`: a perfect subtree, or a node of the
    /// right edge (`hi` = size). Those are the only nodes an RFC 6962 tree has.
    fn node(&self, lo: u64, hi: u64) -> Result<Hash, TreeError> {
        let width = hi - lo;
        let hash = if width.is_power_of_two() && lo.is_multiple_of(width) {
            let level = width.trailing_zeros() as usize;
            self.levels
                .get(level)
                .and_then(|l| l.get(usize::try_from(lo >> level).ok()?))
                .copied()
                .unwrap_or(UNKNOWN)
        } else {
            debug_assert_eq!(
                hi, self.size,
                "a node that is not perfect is on the right edge"
            );
            self.edges
                .iter()
                .find(|(start, _)| *start == lo)
                .map_or(UNKNOWN, |(_, h)| *h)
        };
        if hash == UNKNOWN {
            let (start, end) = self
                .deleted
                .iter()
                .copied()
                .find(|&(s, e)| s < hi && lo < e)
                .unwrap_or((lo, hi));
            return Err(TreeError::InsideDeleted { start, end });
        }
        Ok(hash)
    }

    /// The right-edge nodes: the compact range of `[0, size)` (one perfect subtree per set bit
    /// of the size, largest first) folded from the right, each fold starting at a piece.
    fn right_edge(&self) -> Vec<(u64, Hash)> {
        let mut pieces = Vec::new();
        let mut lo = 0u64;
        for level in (0..64u32).rev() {
            if self.size & (1 << level) != 0 {
                let hash = self
                    .levels
                    .get(level as usize)
                    .and_then(|l| l.get(usize::try_from(lo >> level).ok()?))
                    .copied()
                    .unwrap_or(UNKNOWN);
                pieces.push((lo, hash));
                lo += 1 << level;
            }
        }
        let mut edges = Vec::new();
        let mut right: Option<Hash> = None;
        for &(start, hash) in pieces.iter().rev() {
            let folded = match right {
                None => hash,
                Some(_) if hash == UNKNOWN => UNKNOWN,
                Some(r) if r == UNKNOWN => UNKNOWN,
                Some(r) => node_hash(&hash, &r),
            };
            if right.is_some() {
                edges.push((start, folded));
            }
            right = Some(folded);
        }
        edges
    }
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 6962 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}
