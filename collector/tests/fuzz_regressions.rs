//! Replays every input kept in `tests/fixtures/fuzz/<target>/` (crashes the fuzzers found, edge
//! cases of the decoders) through the fuzz harness itself (`fuzz/src/harness.rs`): decode as
//! that target does, map, attribute, and check the same invariants, so a fixed crash stays
//! fixed under plain `cargo test`.
#![allow(clippy::unwrap_used)]

#[allow(unreachable_pub)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/fuzz");

/// Runs `f` on every file of `tests/fixtures/fuzz/<target>/`; returns how many there were.
fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(FIXTURES).join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        // The harness panics with the broken invariant; name the input it came from.
        if let Err(panic) = std::panic::catch_unwind(|| f(&data)) {
            eprintln!("fuzz regression {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
    files.len()
}

#[test]
fn otlp_protobuf_regressions() {
    assert!(replay("otlp_protobuf", harness::protobuf) > 0);
}

#[test]
fn otlp_json_regressions() {
    assert!(replay("otlp_json", harness::json) > 0);
}

#[test]
fn wal_recovery_regressions() {
    assert!(replay("wal_recovery", harness::wal_recovery) > 0);
}
