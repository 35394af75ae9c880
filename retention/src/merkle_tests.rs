//! The RFC 6962 known answers of certificate-transparency (tree heads, inclusion and consistency
//! proofs), every proof of every small tree verifies, and every tampering the transparency-dev
//! negative vectors describe (a flipped bit, a component added or removed, index ±1, size ×2 or
//! ÷2, a wrong leaf or head) fails. `merkle_mutation_tests.rs` tampers far more thoroughly.

use super::*;
use crate::test_support::{leaves, unhex};

// The certificate-transparency RFC 6962 test vectors, as published in transparency-dev/merkle
// (`testonly/constants.go`: LeafInputs, RootHashes; `proof/verify_test.go`: the known proofs,
// there with 1-based leaf numbers, here with 0-based indexes).

/// The eight leaf inputs (not yet leaf-hashed).
pub(super) const CT_INPUTS: [&[u8]; 8] = [
    b"",
    &[0x00],
    &[0x10],
    &[0x20, 0x21],
    &[0x30, 0x31],
    &[0x40, 0x41, 0x42, 0x43],
    &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
    &[
        0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e,
        0x6f,
    ],
];

/// The tree heads of the first 0 to 8 leaves.
pub(super) const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Known inclusion proofs: (leaf index, tree size, audit path).
pub(super) const CT_INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// Known consistency proofs: (first size, second size, proof).
pub(super) const CT_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// The leaf hashes of [`CT_INPUTS`].
pub(super) fn ct_leaves() -> Vec<Hash> {
    CT_INPUTS.iter().map(|input| leaf_hash(input)).collect()
}

pub(super) fn ct_proof(hexes: &[&str]) -> Vec<Hash> {
    hexes.iter().map(|h| unhex(h)).collect()
}

#[test]
fn certificate_transparency_known_heads() {
    let l = ct_leaves();
    for (size, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(root(&l[..size])), *want, "size {size}");
    }
}

#[test]
fn certificate_transparency_known_inclusion_proofs() {
    let l = ct_leaves();
    for (index, size, want) in CT_INCLUSION {
        let (i, n) = (index as usize, size as usize);
        let want = ct_proof(want);
        assert_eq!(
            inclusion_proof(i, &l[..n]),
            Some(want.clone()),
            "index {i} size {n}"
        );
        let head = unhex(CT_ROOTS[n]);
        assert_eq!(verify_inclusion(index, size, &l[i], &want, &head), Ok(()));
    }
}

#[test]
fn certificate_transparency_known_consistency_proofs() {
    let l = ct_leaves();
    for (m, n, want) in CT_CONSISTENCY {
        let want = ct_proof(want);
        assert_eq!(
            consistency_proof(m as usize, &l[..n as usize]),
            Some(want.clone()),
            "{m} -> {n}"
        );
        let (old, new) = (unhex(CT_ROOTS[m as usize]), unhex(CT_ROOTS[n as usize]));
        assert_eq!(verify_consistency(m, n, &old, &new, &want), Ok(()));
    }
}

#[test]
fn known_heads() {
    assert_eq!(
        hex::encode(root(&[])),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "the empty tree is SHA-256 of nothing"
    );
    assert_eq!(
        hex::encode(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "SHA-256 of the single byte 0x00"
    );
    let l = leaves(5);
    assert_eq!(root(&l[..1]), l[0]);
    assert_eq!(root(&l[..3]), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    assert_eq!(
        root(&l),
        node_hash(
            &node_hash(&node_hash(&l[0], &l[1]), &node_hash(&l[2], &l[3])),
            &l[4]
        )
    );
}

#[test]
fn every_inclusion_proof_verifies_and_every_tampering_fails() {
    for n in 1..=40usize {
        let l = leaves(n as u64);
        let head = root(&l);
        for i in 0..n {
            let proof = inclusion_proof(i, &l).unwrap();
            let (iu, nu) = (i as u64, n as u64);
            assert_eq!(
                verify_inclusion(iu, nu, &l[i], &proof, &head),
                Ok(()),
                "n={n} i={i}"
            );
            for (c, _) in proof.iter().enumerate() {
                let mut bad = proof.clone();
                bad[c][7] ^= 0x04;
                assert!(verify_inclusion(iu, nu, &l[i], &bad, &head).is_err());
            }
            let mut longer = proof.clone();
            longer.push(l[0]);
            assert!(verify_inclusion(iu, nu, &l[i], &longer, &head).is_err());
            let mut prefixed = vec![l[0]];
            prefixed.extend_from_slice(&proof);
            assert!(verify_inclusion(iu, nu, &l[i], &prefixed, &head).is_err());
            if !proof.is_empty() {
                assert!(verify_inclusion(iu, nu, &l[i], &proof[1..], &head).is_err());
                assert!(verify_inclusion(iu, nu, &l[i], &proof[..proof.len() - 1], &head).is_err());
            }
            if i + 1 < n {
                assert!(verify_inclusion(iu + 1, nu, &l[i], &proof, &head).is_err());
            }
            if i > 0 {
                assert!(verify_inclusion(iu - 1, nu, &l[i], &proof, &head).is_err());
            }
            assert!(verify_inclusion(iu, nu * 2, &l[i], &proof, &head).is_err());
            if n > 1 {
                assert!(verify_inclusion(iu, nu / 2, &l[i], &proof, &head).is_err());
            }
            let other = leaf_hash(b"not a record");
            assert!(verify_inclusion(iu, nu, &other, &proof, &head).is_err());
            assert!(verify_inclusion(iu, nu, &l[i], &proof, &other).is_err());
        }
        assert!(inclusion_proof(n, &l).is_none());
        assert_eq!(
            verify_inclusion(n as u64, n as u64, &l[0], &[], &head),
            Err(ProofError::OutOfRange)
        );
    }
}

#[test]
fn every_consistency_proof_verifies_and_every_tampering_fails() {
    for n in 1..=33usize {
        let l = leaves(n as u64);
        let head = root(&l);
        for m in 0..=n {
            let old = root(&l[..m]);
            let proof = consistency_proof(m, &l).unwrap();
            let (mu, nu) = (m as u64, n as u64);
            assert_eq!(
                verify_consistency(mu, nu, &old, &head, &proof),
                Ok(()),
                "m={m} n={n}"
            );
            if m == 0 || m == n {
                assert!(proof.is_empty());
                continue;
            }
            for (c, _) in proof.iter().enumerate() {
                let mut bad = proof.clone();
                bad[c][0] ^= 0x80;
                assert!(
                    verify_consistency(mu, nu, &old, &head, &bad).is_err(),
                    "m={m} n={n} c={c}"
                );
            }
            let mut longer = proof.clone();
            longer.push(l[0]);
            assert!(verify_consistency(mu, nu, &old, &head, &longer).is_err());
            assert!(verify_consistency(mu, nu, &old, &head, &proof[..proof.len() - 1]).is_err());
            let other = leaf_hash(b"forged");
            assert!(verify_consistency(mu, nu, &other, &head, &proof).is_err());
            assert!(verify_consistency(mu, nu, &old, &other, &proof).is_err());
            assert!(verify_consistency(mu + 1, nu, &old, &head, &proof).is_err());
            assert!(verify_consistency(mu - 1, nu, &old, &head, &proof).is_err());
            assert!(verify_consistency(mu, nu * 2, &old, &head, &proof).is_err());
        }
        assert!(consistency_proof(n + 1, &l).is_none());
        assert_eq!(
            verify_consistency(nu_plus(n), n as u64, &head, &head, &[]),
            Err(ProofError::OutOfRange)
        );
    }
}

fn nu_plus(n: usize) -> u64 {
    n as u64 + 1
}

#[test]
fn a_truncated_log_is_not_consistent_with_its_old_head() {
    // The tail-truncation CloudTrail misses: a tree that lost its last records cannot prove it
    // extends the head published before.
    let l = leaves(10);
    let published = root(&l);
    let truncated = &l[..7];
    let proof = consistency_proof(7, truncated).unwrap();
    assert!(verify_consistency(10, 7, &published, &root(truncated), &proof).is_err());
    assert!(
        verify_consistency(
            7,
            10,
            &root(truncated),
            &published,
            &consistency_proof(7, &l).unwrap()
        )
        .is_ok()
    );
}
