//! Arbitrary bytes as a write-ahead-log segment: recovery cuts exactly what it reports and
//! leaves a log that recovers cleanly (`calltrail_fuzz::harness::wal_recovery`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calltrail_fuzz::harness::wal_recovery(data));
