//! Streaming RFC 6962 tree computations over leaves fed in order, in O(log n) memory, so a
//! writer or verifier can follow a chain of billions of records without holding its leaves.
//!
//! - [`Frontier`]: the compact range of `[0, size)` (`docs/specs/chain.md` §3, the segment
//!   `frontier`): one perfect subtree hash per set bit of the size. It yields the tree head at
//!   any size and continues the tree after a restart.
//! - [`ProofBuilder`]: inclusion and consistency proofs, identical to
//!   [`merkle::inclusion_proof`] and [`merkle::consistency_proof`], computed while the leaves
//!   stream past.
//!
//! Why streaming proofs work: every node of an RFC 6962 proof for a tree of size n covers a
//! leaf range `[a, b)` that is either a perfect subtree (`b - a` a power of two, `a` a
//! multiple of it), which the frontier builds at the moment leaf `b - 1` arrives, or a node of
//! the tree's right edge (`b = n`), which is the fold of the final frontier's pieces from the
//! right, starting at the piece that begins at `a`. A builder works out those ranges from the
//! sizes alone, keeps each perfect one as it is built, and folds the right-edge ones at the end.

use crate::merkle::{self, Hash, node_hash};

/// The largest tree size accepted from outside ([`Frontier::from_parts`]): a chain numbers its
/// records with Int64 seqs (`docs/specs/chain.md` §2), so it never holds more than 2^63.
/// Capping it also keeps [`Frontier::append`] far from overflowing its `u64` size.
pub const MAX_SIZE: u64 = 1 << 63;

/// Why a streaming tree computation was refused or could not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A frontier must hold exactly one hash per set bit of its size.
    #[error("a frontier of {size} leaves has {expected} hashes, not {got}")]
    FrontierLength {
        /// The tree size given.
        size: u64,
        /// `size.count_ones()`.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// The tree size is above [`MAX_SIZE`].
    #[error("tree size {size} is above the largest a chain can hold (2^63)")]
    TooLarge {
        /// The tree size given.
        size: u64,
    },
    /// An inclusion proof was asked for a leaf index not below the tree size.
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked from a tree larger than the tree it should be a prefix of.
    #[error("a tree of {first} leaves cannot be a prefix of one of {second}")]
    SizesOutOfOrder {
        /// The size of the older tree.
        first: u64,
        /// The size of the newer tree.
        second: u64,
    },
    /// [`ProofBuilder::finish`] was called before every leaf of the tree was pushed.
    #[error("only {pushed} of the tree's {size} leaves were pushed")]
    TooFewLeaves {
        /// The tree size.
        size: u64,
        /// The leaves pushed.
        pushed: u64,
    },
    /// A compact range was offered for leaves that do not come next.
    #[error("leaves [{start}, {end}) cannot follow a tree of {size} leaves")]
    RangeMisplaced {
        /// Leaves so far.
        size: u64,
        /// First leaf of the range.
        start: u64,
        /// One past its last leaf.
        end: u64,
    },
    /// A compact range does not hold one hash per perfect subtree of its leaves.
    #[error("the compact range of [{start}, {end}) has {expected} hashes, not {got}")]
    RangeLength {
        /// First leaf of the range.
        start: u64,
        /// One past its last leaf.
        end: u64,
        /// `range_levels(start, end).len()`.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// A proof needs a node inside a run of leaves that is known only by its compact range
    /// (retention deleted them): only their own proofs need it, and they are gone.
    #[error("a proof needs a node inside the deleted leaves [{start}, {end})")]
    InsideDeleted {
        /// First deleted leaf.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// More leaves than the tree size were pushed; the extra ones were ignored.
    #[error("{pushed} leaves were pushed into a tree of {size}")]
    TooManyLeaves {
        /// The tree size.
        size: u64,
        /// The leaves pushed (saturating at `u64::MAX`).
        pushed: u64,
    },
}

/// The compact range of `[0, size)`: the hashes of the perfect subtrees the first `size`
/// leaves form, largest (leftmost) first, exactly one per set bit of `size`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier read back from storage (a segment's footer or manifest).
    ///
    /// Fails when `hashes` does not hold one hash per set bit of `size`, or when `size` is
    /// above [`MAX_SIZE`]. The hashes themselves cannot be checked here: only a signed tree
    /// head at this size (compare [`Frontier::root`]) pins them.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, TreeError> {
        if size > MAX_SIZE {
            return Err(TreeError::TooLarge { size });
        }
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(TreeError::FrontierLength {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Appends the next leaf (a leaf hash, see [`merkle::leaf_hash`]).
    ///
    /// # Panics
    ///
    /// When the tree already holds `u64::MAX` leaves, which takes 2^63 appends after the
    /// largest [`Frontier::from_parts`] accepts.
    pub fn append(&mut self, leaf: Hash) {
        self.append_visiting(leaf, |_, _| {});
    }

    /// Appends the leaves `[start, end)` given only as their compact range `range`: the hashes
    /// of the perfect subtrees [`range_levels`] names, left to right. This is how a verifier
    /// or prover crosses leaves that retention deleted: a deletion receipt keeps the range.
    pub fn append_range(&mut self, start: u64, end: u64, range: &[Hash]) -> Result<(), TreeError> {
        check_range(self.size, start, end, range)?;
        for (level, hash) in range_levels(start, end).into_iter().zip(range) {
            self.append_node(level, *hash, |_, _| {});
        }
        Ok(())
    }

    /// Appends `leaf` and hands `visit` every perfect subtree that now ends at the new size,
    /// smallest first, with its level (0 for the leaf itself, k for 2^k leaves).
    fn append_visiting(&mut self, leaf: Hash, visit: impl FnMut(u32, &Hash)) {
        self.append_node(0, leaf, visit);
    }

    /// Appends the perfect subtree of 2^`level` leaves whose hash is `hash`; the size must be
    /// a multiple of 2^`level` (checked by the callers).
    fn append_node(&mut self, level: u32, hash: Hash, mut visit: impl FnMut(u32, &Hash)) {
        debug_assert_eq!(self.size % (1 << level), 0, "a perfect subtree is aligned");
        let width = 1u64 << level;
        let mut node = hash;
        let mut level = level;
        visit(level, &node);
        // Each trailing set bit of the old size (above the node's level) is a perfect subtree
        // just left of the new node, of the same size as what has been built so far: merge
        // them, smallest (last) first.
        let mut bits = self.size >> level;
        while bits & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("a frontier holds one hash per set bit of its size");
            node = node_hash(&left, &node);
            level += 1;
            visit(level, &node);
            bits >>= 1;
        }
        self.hashes.push(node);
        self.size = self
            .size
            .checked_add(width)
            .expect("a tree of u64::MAX leaves cannot grow");
    }

    /// The number of leaves appended (or given to [`Frontier::from_parts`]).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree hashes, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The tree head, equal to [`merkle::root`] of every leaf appended; `SHA-256("")` when empty.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }
}

/// The head of the tree made of `pieces` (perfect subtrees of strictly decreasing size, left to
/// right): RFC 6962 splits such a tree after its first piece, so the head nests to the right.
fn fold_right(pieces: &[Hash]) -> Hash {
    match pieces.split_last() {
        None => merkle::root(&[]),
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(*last, |right, left| node_hash(left, &right)),
    }
}

/// The levels of the compact range of `[start, end)`: the largest perfect subtrees that tile
/// it, left to right (a subtree of level k holds 2^k leaves and starts at a multiple of 2^k).
/// Every perfect subtree inside `[start, end)` whose parent is not is one of them, so they are
/// all a proof can need from a run of deleted leaves.
pub fn range_levels(start: u64, end: u64) -> Vec<u32> {
    let mut levels = Vec::new();
    let mut pos = start;
    while pos < end {
        let mut level = if pos == 0 { 63 } else { pos.trailing_zeros() };
        while level > 0 && (end - pos) < (1u64 << level) {
            level -= 1;
        }
        levels.push(level);
        pos += 1u64 << level;
    }
    levels
}

/// Checks that `range` can stand for `[start, end)` appended to a tree of `size` leaves.
fn check_range(size: u64, start: u64, end: u64, range: &[Hash]) -> Result<(), TreeError> {
    if start != size || end < start || end > MAX_SIZE {
        return Err(TreeError::RangeMisplaced { size, start, end });
    }
    let expected = range_levels(start, end).len();
    if range.len() != expected {
        return Err(TreeError::RangeLength {
            start,
            end,
            expected,
            got: range.len(),
        });
    }
    Ok(())
}

/// One proof a [`ProofBuilder`] made with [`ProofBuilder::many`] should produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofRequest {
    /// The inclusion proof of the leaf at this index.
    Inclusion(u64),
    /// The consistency proof from the tree of this many leaves.
    Consistency(u64),
}

/// Where a proof node's hash comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// A perfect subtree of 2^`level` leaves ending at `end`, kept as it is built.
    Perfect { end: u64, level: u32 },
    /// The right-edge node made of the final frontier's pieces from `piece` on.
    Edge { piece: usize },
}

/// A perfect subtree to keep while the leaves stream past, and the proof slot it fills.
#[derive(Clone, Copy, Debug)]
struct Capture {
    end: u64,
    level: u32,
    slot: usize,
}

/// Computes inclusion and consistency proofs of a tree of known size from its leaves pushed in
/// order, holding O(log n) hashes per proof. The proofs are exactly those of
/// [`merkle::inclusion_proof`] and [`merkle::consistency_proof`].
///
/// Leaves pushed beyond the tree size are ignored, and [`ProofBuilder::finish`] then fails with
/// [`TreeError::TooManyLeaves`]: a stream longer than the tree is a caller's mistake.
#[derive(Clone, Debug)]
pub struct ProofBuilder {
    size: u64,
    pushed: u64,
    frontier: Frontier,
    /// Perfect subtrees still to keep, ordered by end then level, as they will be built.
    captures: Vec<Capture>,
    next_capture: usize,
    /// Right-edge nodes: (first frontier piece, slot), resolved at the end.
    edges: Vec<(usize, usize)>,
    slots: Vec<Hash>,
    /// Each requested proof: its slots in proof order.
    proofs: Vec<Vec<usize>>,
}

impl ProofBuilder {
    /// A builder of the inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, TreeError> {
        Self::many(size, &[ProofRequest::Inclusion(index)])
    }

    /// A builder of the consistency proof that the tree of the first `m` leaves is a prefix of
    /// the tree of `n` leaves.
    pub fn consistency(m: u64, n: u64) -> Result<Self, TreeError> {
        Self::many(n, &[ProofRequest::Consistency(m)])
    }

    /// A builder of several proofs in the tree of `size` leaves, all computed in one pass;
    /// [`ProofBuilder::finish_all`] returns them in the order of `requests`.
    pub fn many(size: u64, requests: &[ProofRequest]) -> Result<Self, TreeError> {
        let mut sources = Vec::new();
        let mut proofs = Vec::with_capacity(requests.len());
        for request in requests {
            let first = sources.len();
            match *request {
                ProofRequest::Inclusion(index) => {
                    if index >= size {
                        return Err(TreeError::IndexOutOfRange { index, size });
                    }
                    path_ranges(index, 0, size, size, &mut sources);
                }
                ProofRequest::Consistency(m) => {
                    if m > size {
                        return Err(TreeError::SizesOutOfOrder {
                            first: m,
                            second: size,
                        });
                    }
                    if m > 0 {
                        subproof_ranges(m, 0, size, true, size, &mut sources);
                    }
                }
            }
            proofs.push((first..sources.len()).collect());
        }
        let mut captures = Vec::new();
        let mut edges = Vec::new();
        for (slot, source) in sources.iter().enumerate() {
            match *source {
                Source::Perfect { end, level } => captures.push(Capture { end, level, slot }),
                Source::Edge { piece } => edges.push((piece, slot)),
            }
        }
        // The frontier builds subtrees in order of their end, and smaller before larger at one
        // end: keeping the captures in that order lets `push` look at the next one only.
        captures.sort_by_key(|c| (c.end, c.level));
        Ok(Self {
            size,
            pushed: 0,
            frontier: Frontier::new(),
            captures,
            next_capture: 0,
            edges,
            slots: vec![[0; 32]; sources.len()],
            proofs,
        })
    }

    /// Pushes the next leaf hash: call it with leaves 0, 1, 2, … in order. Leaves beyond the
    /// tree size are ignored (and make [`ProofBuilder::finish`] fail).
    pub fn push(&mut self, leaf: Hash) {
        self.pushed = self.pushed.saturating_add(1);
        if self.pushed > self.size {
            return;
        }
        let end = self.pushed;
        let wanted = self
            .captures
            .get(self.next_capture)
            .is_some_and(|c| c.end == end);
        if !wanted {
            self.frontier.append(leaf);
            return;
        }
        let (captures, slots, next) = (&self.captures, &mut self.slots, &mut self.next_capture);
        self.frontier.append_visiting(leaf, |level, hash| {
            // Several proofs may want the same subtree: fill every slot waiting for it.
            while let Some(c) = captures.get(*next) {
                if c.end != end || c.level != level {
                    break;
                }
                slots[c.slot] = *hash;
                *next += 1;
            }
        });
        debug_assert!(
            self.captures
                .get(self.next_capture)
                .is_none_or(|c| c.end > end),
            "a needed subtree ending at {end} was not built"
        );
    }

    /// Pushes the leaves `[start, end)` given only as their compact range (see
    /// [`Frontier::append_range`]): `start` must be the number of leaves pushed so far. Fails
    /// when a requested proof needs a node inside the range, which only a proof of one of
    /// those leaves does.
    pub fn push_range(&mut self, start: u64, end: u64, range: &[Hash]) -> Result<(), TreeError> {
        check_range(self.pushed, start, end, range)?;
        if end > self.size {
            return Err(TreeError::TooManyLeaves {
                size: self.size,
                pushed: end,
            });
        }
        for (level, hash) in range_levels(start, end).into_iter().zip(range) {
            let node_end = self.pushed + (1u64 << level);
            let (captures, slots, next) = (&self.captures, &mut self.slots, &mut self.next_capture);
            if captures
                .get(*next)
                .is_some_and(|c| c.end < node_end || (c.end == node_end && c.level < level))
            {
                return Err(TreeError::InsideDeleted { start, end });
            }
            self.frontier.append_node(level, *hash, |built, h| {
                while let Some(c) = captures.get(*next) {
                    if c.end != node_end || c.level != built {
                        break;
                    }
                    slots[c.slot] = *h;
                    *next += 1;
                }
            });
            self.pushed = node_end;
        }
        Ok(())
    }

    /// The tree size the proofs are for.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier of the leaves pushed so far (at most the tree size): its
    /// [`Frontier::root`] is the tree head once every leaf is pushed.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The proof, once every leaf of the tree has been pushed: the first request's for a
    /// builder made by [`ProofBuilder::many`] (empty if it had none).
    pub fn finish(self) -> Result<Vec<Hash>, TreeError> {
        Ok(self.finish_all()?.into_iter().next().unwrap_or_default())
    }

    /// Every requested proof, in the order of the requests, once every leaf of the tree has
    /// been pushed.
    pub fn finish_all(mut self) -> Result<Vec<Vec<Hash>>, TreeError> {
        let (size, pushed) = (self.size, self.pushed);
        if pushed < size {
            return Err(TreeError::TooFewLeaves { size, pushed });
        }
        if pushed > size {
            return Err(TreeError::TooManyLeaves { size, pushed });
        }
        debug_assert_eq!(self.next_capture, self.captures.len());
        let pieces = self.frontier.hashes();
        for &(piece, slot) in &self.edges {
            debug_assert!(piece < pieces.len(), "a right-edge node starts at a piece");
            self.slots[slot] = fold_right(pieces.get(piece..).unwrap_or_default());
        }
        let slots = &self.slots;
        Ok(self
            .proofs
            .iter()
            .map(|proof| proof.iter().map(|&s| slots[s]).collect())
            .collect())
    }
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 6962 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// Where the hash of node `[lo, hi)` of the tree of `size` leaves comes from.
fn source(lo: u64, hi: u64, size: u64) -> Source {
    let width = hi - lo;
    if width.is_power_of_two() {
        // Every node of an RFC 6962 tree starts at a multiple of its width when that width is a
        // power of two, so it is one of the subtrees the frontier builds.
        Source::Perfect {
            end: hi,
            level: width.trailing_zeros(),
        }
    } else {
        // Any other node is on the right edge (hi = size) and starts where a frontier piece
        // starts: `lo` is the sum of the larger pieces, one per set bit, hence the index.
        debug_assert_eq!(hi, size);
        Source::Edge {
            piece: lo.count_ones() as usize,
        }
    }
}

/// The nodes of the inclusion proof of `index` in node `[lo, hi)`, as `merkle::path` emits them.
fn path_ranges(index: u64, lo: u64, hi: u64, size: u64, out: &mut Vec<Source>) {
    if hi - lo <= 1 {
        return;
    }
    let mid = lo + split(hi - lo);
    if index < mid {
        path_ranges(index, lo, mid, size, out);
        out.push(source(mid, hi, size));
    } else {
        path_ranges(index, mid, hi, size, out);
        out.push(source(lo, mid, size));
    }
}

/// The nodes of the consistency proof of the first `m` leaves of node `[lo, hi)`, as
/// `merkle::subproof` emits them.
fn subproof_ranges(m: u64, lo: u64, hi: u64, whole: bool, size: u64, out: &mut Vec<Source>) {
    if m == hi - lo {
        if !whole {
            out.push(source(lo, hi, size));
        }
        return;
    }
    let mid = lo + split(hi - lo);
    if lo + m <= mid {
        subproof_ranges(m, lo, mid, whole, size, out);
        out.push(source(mid, hi, size));
    } else {
        subproof_ranges(m - (mid - lo), mid, hi, false, size, out);
        out.push(source(lo, mid, size));
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
