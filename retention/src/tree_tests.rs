//! The streaming computations agree with the slice ones of `merkle` for every small tree and
//! for random larger ones: the same heads, the same frontier pieces, byte-identical proofs.

use super::*;
use crate::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
};
use crate::test_support::{Rng, leaves, unhex};

/// The pieces a frontier of `size` should hold, from the slice functions: the perfect subtrees
/// of the set bits of `size`, largest first.
fn expected_pieces(l: &[Hash]) -> Vec<Hash> {
    let size = l.len() as u64;
    let mut start = 0u64;
    let mut out = Vec::new();
    for bit in (0..64).rev() {
        if size & (1 << bit) != 0 {
            let end = start + (1 << bit);
            out.push(root(&l[start as usize..end as usize]));
            start = end;
        }
    }
    out
}

#[test]
fn frontier_head_and_pieces_match_the_slice_functions_for_every_size_to_300() {
    let l = leaves(300);
    let mut f = Frontier::new();
    assert_eq!(
        f.root(),
        root(&[]),
        "the empty tree's head is SHA-256 of nothing"
    );
    assert!(f.hashes().is_empty());
    for (n, leaf) in l.iter().enumerate() {
        f.append(*leaf);
        let n = n + 1;
        assert_eq!(f.size(), n as u64);
        assert_eq!(f.hashes().len(), n.count_ones() as usize, "size {n}");
        assert_eq!(f.hashes(), expected_pieces(&l[..n]).as_slice(), "size {n}");
        assert_eq!(f.root(), root(&l[..n]), "size {n}");
    }
}

#[test]
fn frontier_head_matches_for_random_large_sizes() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..4 {
        let n = rng.range(1_000, 40_000);
        let l = leaves(n);
        let mut f = Frontier::new();
        for leaf in &l {
            f.append(*leaf);
        }
        assert_eq!(f.root(), root(&l), "size {n}");
        assert_eq!(f.hashes(), expected_pieces(&l).as_slice(), "size {n}");
    }
}

#[test]
fn frontier_matches_the_transparency_dev_compact_trees() {
    // certificate-transparency / transparency-dev `testonly`: LeafInputs, and the compact
    // range of each tree size from NodeHashes (CompactTrees).
    let inputs: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let l0_0 = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
    let l0_2 = "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7";
    let l0_4 = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b";
    let l0_6 = "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f";
    let l1_0 = "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125";
    let l1_2 = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a";
    let l2_0 = "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7";
    let l3_0 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";
    let compact: [&[&str]; 8] = [
        &[l0_0],
        &[l1_0],
        &[l1_0, l0_2],
        &[l2_0],
        &[l2_0, l0_4],
        &[l2_0, l1_2],
        &[l2_0, l1_2, l0_6],
        &[l3_0],
    ];
    let mut f = Frontier::new();
    for (input, want) in inputs.iter().zip(compact) {
        f.append(leaf_hash(input));
        let want: Vec<Hash> = want.iter().map(|h| unhex(h)).collect();
        assert_eq!(f.hashes(), want.as_slice(), "size {}", f.size());
    }
    assert_eq!(f.root(), unhex(l3_0));
}

#[test]
fn from_parts_round_trips_and_continues_the_same_tree() {
    let l = leaves(70);
    let mut f = Frontier::new();
    for (n, leaf) in l.iter().enumerate() {
        let restored = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
        assert_eq!(restored, f);
        // A writer restarted from a footer's frontier goes on with the same tree.
        let mut continued = restored;
        for later in &l[n..] {
            continued.append(*later);
        }
        assert_eq!(continued.root(), root(&l), "restarted at {n}");
        f.append(*leaf);
    }
}

#[test]
fn from_parts_rejects_a_frontier_of_the_wrong_shape() {
    let h = leaf_hash(b"x");
    assert_eq!(Frontier::from_parts(0, vec![]), Ok(Frontier::new()));
    assert_eq!(
        Frontier::from_parts(0, vec![h]),
        Err(TreeError::FrontierLength {
            size: 0,
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        Frontier::from_parts(7, vec![h, h]),
        Err(TreeError::FrontierLength {
            size: 7,
            expected: 3,
            got: 2
        })
    );
    assert!(Frontier::from_parts(8, vec![h, h]).is_err());
    assert!(Frontier::from_parts(8, vec![h]).is_ok());
    assert!(Frontier::from_parts(MAX_SIZE, vec![h]).is_ok());
    assert_eq!(
        Frontier::from_parts(MAX_SIZE + 1, vec![h, h]),
        Err(TreeError::TooLarge { size: MAX_SIZE + 1 })
    );
    assert!(Frontier::from_parts(u64::MAX, vec![h; 64]).is_err());
}

/// Streams `l` through `builder` and returns its proof.
fn stream(mut builder: ProofBuilder, l: &[Hash]) -> Vec<Hash> {
    for leaf in l {
        builder.push(*leaf);
    }
    assert_eq!(builder.frontier().root(), root(l));
    builder.finish().unwrap()
}

fn check_inclusion(index: u64, l: &[Hash], head: &Hash) {
    let n = l.len() as u64;
    let got = stream(ProofBuilder::inclusion(index, n).unwrap(), l);
    let want = inclusion_proof(index as usize, l).unwrap();
    assert_eq!(got, want, "inclusion index={index} size={n}");
    assert_eq!(
        verify_inclusion(index, n, &l[index as usize], &got, head),
        Ok(())
    );
}

fn check_consistency(m: u64, l: &[Hash], head: &Hash) {
    let n = l.len() as u64;
    let got = stream(ProofBuilder::consistency(m, n).unwrap(), l);
    let want = consistency_proof(m as usize, l).unwrap();
    assert_eq!(got, want, "consistency m={m} n={n}");
    assert_eq!(
        verify_consistency(m, n, &root(&l[..m as usize]), head, &got),
        Ok(())
    );
}

#[test]
fn streamed_proofs_equal_the_slice_proofs_for_every_tree_to_70() {
    for n in 0..=70 {
        let l = leaves(n);
        let head = root(&l);
        for index in 0..n {
            check_inclusion(index, &l, &head);
        }
        for m in 0..=n {
            check_consistency(m, &l, &head);
        }
    }
}

#[test]
fn streamed_proofs_equal_the_slice_proofs_for_random_trees() {
    let mut rng = Rng(0x5eed_0002);
    let l = leaves(4_096);
    for _ in 0..20 {
        let n = rng.range(71, 4_096);
        let l = &l[..n as usize];
        let head = root(l);
        check_inclusion(rng.range(0, n - 1), l, &head);
        check_inclusion(n - 1, l, &head);
        check_consistency(rng.range(1, n - 1), l, &head);
    }
    // Powers of two and their neighbours, where the right edge is a perfect subtree.
    for n in [1023u64, 1024, 1025, 4096] {
        let l = &l[..n as usize];
        let head = root(l);
        for k in [0, 1, n / 2 - 1, n / 2, n / 2 + 1, n - 1] {
            check_inclusion(k, l, &head);
            check_consistency(k, l, &head);
        }
        check_consistency(n, l, &head);
    }
}

#[test]
fn one_pass_builds_many_proofs() {
    for n in [1u64, 2, 7, 8, 37, 64, 100] {
        let l = leaves(n);
        let mut requests = Vec::new();
        for k in 0..n {
            requests.push(ProofRequest::Inclusion(k));
            requests.push(ProofRequest::Consistency(k));
        }
        requests.push(ProofRequest::Consistency(n));
        requests.push(ProofRequest::Inclusion(n / 2));
        let mut builder = ProofBuilder::many(n, &requests).unwrap();
        assert_eq!(builder.size(), n);
        for leaf in &l {
            builder.push(*leaf);
        }
        let proofs = builder.finish_all().unwrap();
        assert_eq!(proofs.len(), requests.len());
        for (request, got) in requests.iter().zip(&proofs) {
            let want = match *request {
                ProofRequest::Inclusion(k) => inclusion_proof(k as usize, &l),
                ProofRequest::Consistency(m) => consistency_proof(m as usize, &l),
            };
            assert_eq!(Some(got), want.as_ref(), "n={n} {request:?}");
        }
    }
    let none = ProofBuilder::many(3, &[]).unwrap();
    assert_eq!(stream(none, &leaves(3)), Vec::<Hash>::new());
}

#[test]
fn builder_refuses_bad_requests_and_short_or_long_streams() {
    assert_eq!(
        ProofBuilder::inclusion(5, 5).err(),
        Some(TreeError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert!(ProofBuilder::inclusion(0, 0).is_err());
    assert_eq!(
        ProofBuilder::consistency(6, 5).err(),
        Some(TreeError::SizesOutOfOrder {
            first: 6,
            second: 5
        })
    );
    assert!(
        ProofBuilder::many(4, &[ProofRequest::Inclusion(1), ProofRequest::Inclusion(4)]).is_err()
    );

    let l = leaves(9);
    let mut short = ProofBuilder::inclusion(3, 9).unwrap();
    for leaf in &l[..8] {
        short.push(*leaf);
    }
    assert_eq!(
        short.finish(),
        Err(TreeError::TooFewLeaves { size: 9, pushed: 8 })
    );

    let mut long = ProofBuilder::consistency(3, 8).unwrap();
    for leaf in &l {
        long.push(*leaf);
    }
    // The extra leaf is not part of the tree.
    assert_eq!(long.frontier().root(), root(&l[..8]));
    assert_eq!(
        long.finish(),
        Err(TreeError::TooManyLeaves { size: 8, pushed: 9 })
    );

    // Trees with nothing to prove need no leaves beyond their size.
    assert_eq!(
        ProofBuilder::consistency(0, 0).unwrap().finish(),
        Ok(vec![])
    );
    assert!(stream(ProofBuilder::inclusion(0, 1).unwrap(), &l[..1]).is_empty());
}

/// The compact range of `l[start..end]` computed from the leaves, as a receipt keeps it.
fn range_of(l: &[Hash], start: u64, end: u64) -> Vec<Hash> {
    let mut pos = start;
    range_levels(start, end)
        .into_iter()
        .map(|level| {
            let next = pos + (1 << level);
            let h = root(&l[pos as usize..next as usize]);
            pos = next;
            h
        })
        .collect()
}

#[test]
fn range_levels_tile_the_range_with_aligned_perfect_subtrees() {
    for start in 0..70u64 {
        for end in start..140u64 {
            let mut pos = start;
            let levels = range_levels(start, end);
            for (i, &level) in levels.iter().enumerate() {
                let w = 1u64 << level;
                assert_eq!(pos % w, 0, "[{start},{end}) node {i} is not aligned");
                pos += w;
                // Maximal: the parent (aligned at 2w) does not fit inside the range.
                let parent = pos - w - (pos - w) % (2 * w);
                assert!(
                    parent < start || parent + 2 * w > end,
                    "[{start},{end}) node {i} could be larger"
                );
            }
            assert_eq!(pos, end, "[{start},{end}) is tiled exactly");
        }
    }
}

#[test]
fn a_deleted_run_crossed_by_its_compact_range_keeps_heads_and_proofs_of_the_rest() {
    let mut rng = Rng(0x5eed_0002);
    for round in 0..300 {
        let n = rng.range(2, 300);
        let l = leaves(n);
        let start = rng.range(0, n - 1);
        let end = rng.range(start + 1, n);
        let hole = range_of(&l, start, end);

        let mut f = Frontier::new();
        for leaf in &l[..start as usize] {
            f.append(*leaf);
        }
        f.append_range(start, end, &hole).unwrap();
        assert_eq!(f.hashes(), expected_pieces(&l[..end as usize]).as_slice());
        for leaf in &l[end as usize..] {
            f.append(*leaf);
        }
        assert_eq!(f.root(), root(&l), "round {round}: head across the hole");

        let index = rng.range(0, n - 1);
        let mut b = ProofBuilder::inclusion(index, n).unwrap();
        for leaf in &l[..start as usize] {
            b.push(*leaf);
        }
        let crossed = b.push_range(start, end, &hole);
        // A proof never holds its own leaf, so a deleted leaf kept as a lone level-0 node
        // still has one (useless without the leaf); one inside a larger node has none.
        let mut pos = start;
        let inside_node = range_levels(start, end).into_iter().any(|level| {
            let node = pos..pos + (1 << level);
            pos = node.end;
            level > 0 && node.contains(&index)
        });
        if inside_node {
            assert_eq!(
                crossed,
                Err(TreeError::InsideDeleted { start, end }),
                "round {round}: a deleted leaf cannot be proved"
            );
            continue;
        }
        crossed.unwrap();
        for leaf in &l[end as usize..] {
            b.push(*leaf);
        }
        assert_eq!(
            b.finish().unwrap(),
            inclusion_proof(index as usize, &l).unwrap(),
            "round {round}: proof of {index} across [{start},{end}) in {n}"
        );
    }
}

#[test]
fn misplaced_or_short_ranges_are_refused() {
    let l = leaves(10);
    let mut f = Frontier::new();
    assert!(matches!(
        f.append_range(1, 4, &range_of(&l, 1, 4)),
        Err(TreeError::RangeMisplaced { .. })
    ));
    assert!(matches!(
        f.append_range(0, 6, &range_of(&l, 0, 4)),
        Err(TreeError::RangeLength { .. })
    ));
    let mut b = ProofBuilder::inclusion(9, 10).unwrap();
    assert!(matches!(
        b.push_range(0, 12, &range_of(&leaves(12), 0, 12)),
        Err(TreeError::TooManyLeaves { .. })
    ));
}
