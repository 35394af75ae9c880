//! Arbitrary bytes as an OTLP/HTTP protobuf or OTLP/gRPC message body (after framing and
//! decompression): decode, map, attribute, check the invariants of `calltrail_fuzz::harness`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calltrail_fuzz::harness::protobuf(data));
