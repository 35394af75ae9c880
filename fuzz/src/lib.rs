//! Fuzz harness for Calltrail's ingest path, shared by the libFuzzer targets in
//! `fuzz_targets/` and by the collector's regression test (`collector/tests/fuzz_regressions.rs`),
//! which replays every input kept in `tests/fixtures/fuzz/<target>/` through the same checks.

pub mod harness;
