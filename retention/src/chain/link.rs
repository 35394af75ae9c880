//! How records link into a chain: the genesis value, the chained hash, and valid chain ids
//! (`docs/specs/chain.md` §2).

use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Longest chain id accepted.
pub const MAX_CHAIN_ID_LEN: usize = 128;

/// `chain_hash[-1]`: `SHA-256("calltrail-chain-v1\n" || chain id)`.
pub fn genesis(chain_id: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"calltrail-chain-v1\n");
    h.update(chain_id.as_bytes());
    h.finalize().into()
}

/// `chain_hash[seq] = SHA-256(0x02 || chain_hash[seq-1] || leaf_hash[seq])`.
pub fn chain_hash(prev: &Hash, leaf: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([2u8]);
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// The chained hashes of `leaves` following `prev`.
pub fn chain_hashes(prev: &Hash, leaves: &[Hash]) -> Vec<Hash> {
    let mut out = Vec::with_capacity(leaves.len());
    let mut last = *prev;
    for leaf in leaves {
        last = chain_hash(&last, leaf);
        out.push(last);
    }
    out
}

/// Why a chain id is not acceptable, or `None` when it is: 1 to 128 characters of
/// `[A-Za-z0-9._-]`.
pub fn chain_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > MAX_CHAIN_ID_LEN {
        return Some("a chain id has 1 to 128 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("a chain id uses only A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_depend_on_order_and_chain() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let g = genesis("c1");
        assert_ne!(g, genesis("c2"));
        assert_ne!(chain_hashes(&g, &[a, b]), chain_hashes(&g, &[b, a]));
        assert_eq!(
            chain_hashes(&g, &[a, b])[1],
            chain_hash(&chain_hash(&g, &a), &b)
        );
        assert_eq!(
            hex::encode(genesis("0123456789abcdef0123456789abcdef")),
            hex::encode(Sha256::digest(
                b"calltrail-chain-v1\n0123456789abcdef0123456789abcdef"
            ))
        );
    }

    #[test]
    fn the_spec_vectors_hold() {
        let g = genesis("0123456789abcdef0123456789abcdef");
        let mut leaf = [0u8; 32];
        hex::decode_to_slice(
            "0e7b104a36f7adcf9c6a80f75ac63fd738fd84940dca13c4f9bacff6105290b4",
            &mut leaf,
        )
        .unwrap();
        let spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/specs/chain.md"
        ))
        .unwrap();
        for v in [hex::encode(g), hex::encode(chain_hash(&g, &leaf))] {
            assert!(spec.contains(&v), "docs/specs/chain.md cites {v}");
        }
    }

    #[test]
    fn chain_ids_are_checked() {
        assert!(chain_id_problem("kafka.prod-eu_1.otlp_spans.3").is_none());
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(chain_id_problem(bad).is_some(), "{bad:?}");
        }
    }
}
