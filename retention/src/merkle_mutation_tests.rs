//! Mutation vectors in the manner of transparency-dev/merkle's `testdata/inclusion` and
//! `testdata/consistency`: every good proof of many trees is tampered with in every way those
//! describe and more (a bit flipped in each hash; a hash prepended, appended, removed or
//! inserted at each position; neighbours swapped; index or sizes off by one, doubled or halved;
//! a wrong leaf; wrong, empty, random or swapped heads; an empty proof), and every tampering
//! must fail.
//!
//! One family can legitimately verify: a tree size off by one. An RFC 6962 proof commits to its
//! tree head, not to its size (a signed checkpoint binds the two): the proof of leaf 0 in a tree
//! of 3 leaves, `[l1, l2]`, combines exactly as a proof in a tree of 4 would, so it verifies
//! against the 3-leaf head with size 4 too. Those probes are checked against a reference
//! verifier derived from the recursive definitions of RFC 9162 §2.1.3.1 and §2.1.4.1 rather than
//! from the bit walk of §2.1.3.2 and §2.1.4.2, which must agree with ours on every probe.

use super::tests::{CT_CONSISTENCY, CT_INCLUSION, CT_ROOTS, ct_leaves, ct_proof};
use super::*;
use crate::test_support::{leaves, unhex};
use std::slice::Iter;

/// transparency-dev's `sha256SomeHash`: garbage of the right length.
const SOME: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

fn some() -> Hash {
    unhex(SOME)
}

fn empty_head() -> Hash {
    root(&[])
}

/// The head of a tree of `size` leaves rebuilt along the audit path of `index` (PATH, RFC 9162
/// §2.1.3.1, read backwards), taking proof hashes in the order PATH emits them.
fn path_head(index: u64, size: u64, leaf: &Hash, proof: &mut Iter<'_, Hash>) -> Option<Hash> {
    if size == 1 {
        return Some(*leaf);
    }
    let k = split(size as usize) as u64;
    if index < k {
        let left = path_head(index, k, leaf, proof)?;
        Some(node_hash(&left, proof.next()?))
    } else {
        let right = path_head(index - k, size - k, leaf, proof)?;
        Some(node_hash(proof.next()?, &right))
    }
}

fn reference_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], head: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut rest = proof.iter();
    path_head(index, size, leaf, &mut rest).is_some_and(|h| rest.next().is_none() && &h == head)
}

/// The heads of the first `m` leaves and of all `n` leaves of a subtree, rebuilt from a
/// consistency proof (SUBPROOF, RFC 9162 §2.1.4.1, read backwards); `whole` as in SUBPROOF:
/// the old head itself stands for a subtree the proof leaves out.
fn subproof_heads(
    m: u64,
    n: u64,
    whole: bool,
    old_head: &Hash,
    proof: &mut Iter<'_, Hash>,
) -> Option<(Hash, Hash)> {
    if m == n {
        let h = if whole { *old_head } else { *proof.next()? };
        return Some((h, h));
    }
    let k = split(n as usize) as u64;
    if m <= k {
        let (old, left) = subproof_heads(m, k, whole, old_head, proof)?;
        Some((old, node_hash(&left, proof.next()?)))
    } else {
        let (old_right, right) = subproof_heads(m - k, n - k, false, old_head, proof)?;
        let left = proof.next()?;
        Some((node_hash(left, &old_right), node_hash(left, &right)))
    }
}

fn reference_consistency(m: u64, n: u64, root1: &Hash, root2: &Hash, proof: &[Hash]) -> bool {
    if m > n {
        return false;
    }
    if m == 0 {
        return proof.is_empty() && *root1 == empty_head() && (n > 0 || root1 == root2);
    }
    if m == n {
        return proof.is_empty() && root1 == root2;
    }
    let mut rest = proof.iter();
    subproof_heads(m, n, true, root1, &mut rest)
        .is_some_and(|(old, new)| rest.next().is_none() && &old == root1 && &new == root2)
}

/// The proof with each of its hashes replaced, one at a time, by `f` of it.
fn each_changed(proof: &[Hash], f: impl Fn(usize, &Hash) -> Hash) -> Vec<(String, Vec<Hash>)> {
    (0..proof.len())
        .map(|c| {
            let mut p = proof.to_vec();
            p[c] = f(c, &p[c]);
            (format!("proof[{c}] changed"), p)
        })
        .collect()
}

/// Every tampering of the proof alone; `extra` are hashes worth smuggling in (heads, leaf).
fn tampered_proofs(proof: &[Hash], extra: &[Hash]) -> Vec<(String, Vec<Hash>)> {
    let mut out = Vec::new();
    for bit in [3usize, 100, 255] {
        out.extend(each_changed(proof, |c, h| {
            let mut h = *h;
            let bit = (bit + 7 * c) % 256;
            h[bit / 8] ^= 1 << (bit % 8);
            h
        }));
    }
    let mut smuggled = vec![some(), [0; 32]];
    smuggled.extend_from_slice(extra);
    smuggled.extend(proof.first());
    for x in &smuggled {
        for at in 0..=proof.len() {
            let mut p = proof.to_vec();
            p.insert(at, *x);
            out.push((format!("inserted at {at}"), p));
        }
    }
    for at in 0..proof.len() {
        let mut p = proof.to_vec();
        p.remove(at);
        out.push((format!("removed {at}"), p));
        if at + 1 < proof.len() {
            p = proof.to_vec();
            p.swap(at, at + 1);
            out.push((format!("swapped {at} and {}", at + 1), p));
            // A duplicated neighbour in place of the original.
            p = proof.to_vec();
            p[at + 1] = p[at];
            out.push((format!("proof[{}] duplicated", at), p));
        }
    }
    if !proof.is_empty() {
        out.push(("empty proof".into(), vec![]));
    }
    out
}

/// Checks a good inclusion proof and every tampering of it; returns how many probes ran.
fn check_inclusion_mutations(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    head: &Hash,
) -> usize {
    let ctx = format!("index {index} size {size}");
    assert_eq!(
        verify_inclusion(index, size, leaf, proof, head),
        Ok(()),
        "{ctx}"
    );
    assert!(reference_inclusion(index, size, leaf, proof, head), "{ctx}");
    let mut probes = 0;
    let mut must_fail = |desc: &str, i: u64, n: u64, leaf: &Hash, proof: &[Hash], head: &Hash| {
        assert!(
            verify_inclusion(i, n, leaf, proof, head).is_err(),
            "{ctx}: accepted with {desc}"
        );
        assert!(
            !reference_inclusion(i, n, leaf, proof, head),
            "{ctx}: {desc}"
        );
        probes += 1;
    };
    for (desc, p) in tampered_proofs(proof, &[*head, *leaf]) {
        must_fail(&desc, index, size, leaf, &p, head);
    }
    for (desc, i) in [
        ("index - 1", index.wrapping_sub(1)),
        ("index + 1", index + 1),
        ("index ^ 2", index ^ 2),
        ("index ^ 1", index ^ 1),
    ] {
        must_fail(desc, i, size, leaf, proof, head);
    }
    for (desc, n) in [
        ("size * 2", size * 2),
        ("size / 2", size / 2),
        ("size 0", 0),
    ] {
        must_fail(desc, index, n, leaf, proof, head);
    }
    let wrong_leaf = leaf_hash(b"WrongLeaf");
    must_fail("wrong leaf", index, size, &wrong_leaf, proof, head);
    must_fail("leaf flipped", index, size, &flip(leaf), proof, head);
    for (desc, h) in [
        ("empty head", empty_head()),
        ("random head", some()),
        ("head flipped", flip(head)),
    ] {
        must_fail(desc, index, size, leaf, proof, &h);
    }
    if leaf != head {
        must_fail("head is the leaf", index, size, leaf, proof, leaf);
        must_fail("leaf and head swapped", index, size, head, proof, leaf);
    }
    // Off by one in size: the reference verifier decides.
    for n in [size - 1, size + 1] {
        let ours = verify_inclusion(index, n, leaf, proof, head).is_ok();
        assert_eq!(
            ours,
            reference_inclusion(index, n, leaf, proof, head),
            "{ctx}: size {n}"
        );
        probes += 1;
    }
    probes + 1
}

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h[31] ^= 1;
    h
}

/// Checks a good consistency proof (0 < m < n) and every tampering of it; returns how many
/// probes ran.
fn check_consistency_mutations(
    m: u64,
    n: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> usize {
    let ctx = format!("{m} -> {n}");
    assert_eq!(
        verify_consistency(m, n, root1, root2, proof),
        Ok(()),
        "{ctx}"
    );
    assert!(reference_consistency(m, n, root1, root2, proof), "{ctx}");
    let mut probes = 0;
    let mut must_fail = |desc: &str, m: u64, n: u64, r1: &Hash, r2: &Hash, proof: &[Hash]| {
        assert!(
            verify_consistency(m, n, r1, r2, proof).is_err(),
            "{ctx}: accepted with {desc}"
        );
        assert!(!reference_consistency(m, n, r1, r2, proof), "{ctx}: {desc}");
        probes += 1;
    };
    for (desc, p) in tampered_proofs(proof, &[*root1, *root2]) {
        must_fail(&desc, m, n, root1, root2, &p);
    }
    for (desc, m2) in [
        ("size1 - 1", m - 1),
        ("size1 + 1", m + 1),
        ("size1 ^ 2", m ^ 2),
        ("size1 0", 0),
        ("size1 = size2", n),
    ] {
        must_fail(desc, m2, n, root1, root2, proof);
    }
    for (desc, n2) in [
        ("size2 * 2", n * 2),
        ("size2 / 2", n / 2),
        ("size2 = size1", m),
    ] {
        must_fail(desc, m, n2, root1, root2, proof);
    }
    let wrong = leaf_hash(b"WrongRoot");
    for (desc, r1, r2) in [
        ("wrong root1", wrong, *root2),
        ("wrong root2", *root1, wrong),
        ("root1 flipped", flip(root1), *root2),
        ("root2 flipped", *root1, flip(root2)),
        ("swapped roots", *root2, *root1),
        ("root1 = root2", *root2, *root2),
        ("root2 = root1", *root1, *root1),
        ("empty root1", empty_head(), *root2),
        ("empty root2", *root1, empty_head()),
        ("both empty", empty_head(), empty_head()),
        ("random root1", some(), *root2),
    ] {
        must_fail(desc, m, n, &r1, &r2, proof);
    }
    // Off by one in size2: the reference verifier decides.
    for n2 in [n - 1, n + 1] {
        let ours = verify_consistency(m, n2, root1, root2, proof).is_ok();
        assert_eq!(
            ours,
            reference_consistency(m, n2, root1, root2, proof),
            "{ctx}: size2 {n2}"
        );
        probes += 1;
    }
    probes + 1
}

#[test]
fn certificate_transparency_proofs_survive_no_tampering() {
    let l = ct_leaves();
    for (index, size, proof) in CT_INCLUSION {
        let head = unhex(CT_ROOTS[size as usize]);
        check_inclusion_mutations(index, size, &l[index as usize], &ct_proof(proof), &head);
    }
    for (m, n, proof) in CT_CONSISTENCY {
        if m == n {
            continue;
        }
        let (r1, r2) = (unhex(CT_ROOTS[m as usize]), unhex(CT_ROOTS[n as usize]));
        check_consistency_mutations(m, n, &r1, &r2, &ct_proof(proof));
    }
}

#[test]
fn every_inclusion_proof_to_40_leaves_survives_no_tampering() {
    let l = leaves(40);
    let mut probes = 0;
    for n in 1..=40u64 {
        let head = root(&l[..n as usize]);
        for i in 0..n {
            let proof = inclusion_proof(i as usize, &l[..n as usize]).unwrap();
            probes += check_inclusion_mutations(i, n, &l[i as usize], &proof, &head);
        }
    }
    assert!(probes > 60_000, "{probes} probes");
}

#[test]
fn every_consistency_proof_to_40_leaves_survives_no_tampering() {
    let l = leaves(40);
    let mut probes = 0;
    for n in 2..=40u64 {
        let head = root(&l[..n as usize]);
        for m in 1..n {
            let proof = consistency_proof(m as usize, &l[..n as usize]).unwrap();
            probes += check_consistency_mutations(m, n, &root(&l[..m as usize]), &head, &proof);
        }
    }
    assert!(probes > 60_000, "{probes} probes");
}

#[test]
fn proofs_in_larger_trees_survive_no_tampering() {
    let l = leaves(3_000);
    for n in [255u64, 256, 257, 1000, 2047, 2048, 2049, 3000] {
        let leaves = &l[..n as usize];
        let head = root(leaves);
        for k in [1, 2, n / 3, n / 2, n - 2, n - 1] {
            let proof = inclusion_proof(k as usize, leaves).unwrap();
            check_inclusion_mutations(k, n, &leaves[k as usize], &proof, &head);
            let proof = consistency_proof(k as usize, leaves).unwrap();
            check_consistency_mutations(k, n, &root(&leaves[..k as usize]), &head, &proof);
        }
    }
}

#[test]
fn some_off_by_one_sizes_verify_because_proofs_commit_to_heads_not_sizes() {
    let l = leaves(4);
    let proof = inclusion_proof(0, &l[..3]).unwrap();
    let head3 = root(&l[..3]);
    assert_eq!(verify_inclusion(0, 4, &l[0], &proof, &head3), Ok(()));
    let proof = consistency_proof(1, &l[..3]).unwrap();
    assert_eq!(verify_consistency(1, 4, &l[0], &head3, &proof), Ok(()));
}

#[test]
fn empty_and_single_leaf_trees() {
    let (e, x, y) = (empty_head(), some(), leaf_hash(b"y"));
    // The empty tree holds no leaf, whatever the proof or head.
    for (leaf, head) in [(e, e), (x, e), (e, x), (x, x)] {
        assert_eq!(
            verify_inclusion(0, 0, &leaf, &[], &head),
            Err(ProofError::OutOfRange)
        );
    }
    assert!(verify_inclusion(0, 0, &x, &[x], &x).is_err());
    // A one-leaf tree's head is its leaf, with an empty proof.
    assert_eq!(verify_inclusion(0, 1, &y, &[], &y), Ok(()));
    assert!(verify_inclusion(0, 1, &y, &[], &x).is_err());
    assert!(verify_inclusion(0, 1, &y, &[], &e).is_err());
    assert!(verify_inclusion(0, 1, &y, &[y], &node_hash(&y, &y)).is_err());
    assert!(verify_inclusion(1, 1, &y, &[], &y).is_err());
    // An empty proof never stands for a larger tree.
    let l = leaves(5);
    for n in 2..=5 {
        let head = root(&l[..n]);
        for (i, leaf) in l[..n].iter().enumerate() {
            assert!(verify_inclusion(i as u64, n as u64, leaf, &[], &head).is_err());
        }
    }

    // transparency-dev's table of trivial consistency cases, with one difference: the empty
    // tree has exactly one head, so a size-0 "old" tree with any other head is refused.
    // (size1, size2, root1, root2, proof, verifies)
    type Case<'a> = (u64, u64, Hash, Hash, &'a [Hash], bool);
    let cases: [Case<'_>; 16] = [
        (0, 0, e, e, &[], true),
        (0, 0, x, y, &[], false),
        (0, 0, x, x, &[], false),
        (0, 0, e, x, &[], false),
        (0, 0, e, e, &[e], false),
        (0, 1, e, y, &[], true),
        (0, 1, x, y, &[], false),
        (0, 1, e, y, &[e], false),
        (1, 1, y, y, &[], true),
        (1, 1, x, y, &[], false),
        (1, 1, e, y, &[], false),
        (1, 1, y, y, &[e], false),
        (1, 0, y, e, &[], false),
        (2, 1, x, y, &[], false),
        (1, 2, y, x, &[], false),
        (1, 2, l[0], root(&l[..2]), &[], false),
    ];
    for (m, n, r1, r2, proof, ok) in cases {
        assert_eq!(
            verify_consistency(m, n, &r1, &r2, proof).is_ok(),
            ok,
            "{m} -> {n} {proof:?}"
        );
        assert_eq!(reference_consistency(m, n, &r1, &r2, proof), ok);
    }
    assert_eq!(
        verify_consistency(1, 2, &l[0], &root(&l[..2]), &[l[1]]),
        Ok(())
    );
}
