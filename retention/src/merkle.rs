//! RFC 6962 (RFC 9162 §2.1) Merkle trees over record leaf hashes: the tree head of a sequence
//! of leaves, inclusion proofs (one leaf is in a tree of size n) and consistency proofs (the
//! tree of size m is a prefix of the tree of size n), and their verification.
//!
//! Leaves are already hashed (`SHA-256(0x00 || canonical record bytes)`, see [`leaf_hash`]);
//! interior nodes are `SHA-256(0x01 || left || right)`; a tree of n > 1 leaves splits at the
//! largest power of two below n; the empty tree's head is `SHA-256("")`. Verification follows
//! the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size, or the first tree is larger than the second.
    #[error("the index or sizes are out of range")]
    OutOfRange,
    /// The proof has too many or too few hashes for the sizes given.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The proof's hashes do not lead to the tree head given.
    #[error("the proof does not lead to the tree head")]
    Mismatch,
}

/// The leaf hash of an entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// An interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The tree head (MTH) of `leaves`, each a leaf hash.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof (PATH) of leaf `index` in the tree of `leaves`; `None` when `index` is
/// out of range.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (index < leaves.len()).then(|| {
        let mut proof = Vec::new();
        path(index, leaves, &mut proof);
        proof
    })
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// The consistency proof (PROOF) that the tree of the first `m` leaves is a prefix of the tree
/// of all `leaves`; `None` when `m` is larger than the tree.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (m <= leaves.len()).then(|| {
        let mut proof = Vec::new();
        if m > 0 {
            subproof(m, leaves, true, &mut proof);
        }
        proof
    })
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Shifts `fnode` and `snode` right together until `fnode`'s low bit is set or it is 0.
fn shift_to_set_bit(fnode: &mut u64, snode: &mut u64) {
    while *fnode & 1 == 0 && *fnode != 0 {
        *fnode >>= 1;
        *snode >>= 1;
    }
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves whose head is
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                shift_to_set_bit(&mut fnode, &mut snode);
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// Verifies that the tree of `size1` leaves with head `root1` is a prefix of the tree of
/// `size2` leaves with head `root2` (RFC 9162 §2.1.4.2).
///
/// With nothing to prove (`size1` is 0 or equals `size2`) the proof must be empty and the heads
/// must be ones such trees can have: `SHA-256("")` for an empty first tree, and equal heads for
/// equal sizes.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::OutOfRange);
    }
    if size1 == size2 || size1 == 0 {
        // Nothing to prove (the RFC 9162 walk below needs 0 < size1 < size2): the empty tree is
        // a prefix of any tree, and a tree of itself. The heads still have to fit: two trees of
        // one size are the same tree only with the same head (both empty ones included), and
        // the empty tree has no head but SHA-256("").
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        let same = size1 != size2 || root1 == root2;
        let empty = size1 != 0 || *root1 == root(&[]);
        return if same && empty {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    if fnode & 1 == 1 {
        while fnode & 1 == 1 {
            fnode >>= 1;
            snode >>= 1;
        }
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                shift_to_set_bit(&mut fnode, &mut snode);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != root1 || &sr != root2 {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "merkle_mutation_tests.rs"]
mod mutation_tests;
