//! Every proof of every small tree verifies, and every tampering the transparency-dev negative
//! vectors describe (a flipped bit, a component added or removed, index ±1, size ×2 or ÷2, a
//! wrong leaf or head) fails.

use super::*;

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("record {i}").as_bytes()))
        .collect()
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn known_heads() {
    assert_eq!(
        hex(&root(&[])),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "the empty tree is SHA-256 of nothing"
    );
    assert_eq!(
        hex(&leaf_hash(b"")),
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
        let l = leaves(n);
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
        let l = leaves(n);
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
