//! A proof built from a store verifies with the public key alone, and any change to it fails.

use super::*;
use crate::note::SigningKey;
use crate::test_support::store;

#[test]
fn proofs_verify_and_every_edit_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = store(dir.path(), &[3, 5, 2]);
    for (id, seq) in [("e0", 0), ("e4", 4), ("e9", 9)] {
        let proof = prove(dir.path(), id).unwrap();
        assert_eq!((proof.seq, proof.tree_size), (seq, 10));
        let json = serde_json::to_string(&proof).unwrap();
        let check = verify_proof(&json, &key.verifier()).unwrap();
        assert_eq!((check.event_id.as_str(), check.seq), (id, seq));

        let mut edits: Vec<InclusionProof> = Vec::new();
        let mut p = proof.clone();
        p.seq += 1;
        edits.push(p);
        let mut p = proof.clone();
        p.record["fields"]["tool_name"] = "delete_everything".into();
        edits.push(p);
        let mut p = proof.clone();
        let mut bytes = BASE64.decode(&p.canonical).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        p.canonical = BASE64.encode(&bytes);
        edits.push(p);
        let mut p = proof.clone();
        if let Some(h) = p.audit_path.first_mut() {
            h.replace_range(0..1, if h.starts_with('0') { "1" } else { "0" });
        }
        edits.push(p);
        let mut p = proof.clone();
        p.audit_path.push(hex::encode([0u8; 32]));
        edits.push(p);
        let mut p = proof.clone();
        p.checkpoint = p.checkpoint.replacen("\n10\n", "\n11\n", 1);
        edits.push(p);
        let mut p = proof.clone();
        p.event_id = "e1".into();
        edits.push(p);
        for (i, edited) in edits.iter().enumerate() {
            let json = serde_json::to_string(edited).unwrap();
            assert!(
                verify_proof(&json, &key.verifier()).is_err(),
                "{id}: edit {i} must fail"
            );
        }
        let other = SigningKey::generate("other").unwrap();
        assert!(
            verify_proof(&json, &other.verifier()).is_err(),
            "another key"
        );
    }
    assert!(prove(dir.path(), "nope").is_err());
}
