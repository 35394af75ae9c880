//! Arbitrary bytes as an OTLP/HTTP JSON body (after decompression): decode with the receiver's
//! decoder, map, attribute, check the invariants of `calltrail_fuzz::harness`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calltrail_fuzz::harness::json(data));
