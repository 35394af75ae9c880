//! Round trips over records mapped from real captured payloads, and corrupted payloads.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;
use crate::{Attributor, IngestContext, map_request};

pub(crate) fn sample_records() -> Vec<ToolCall> {
    let dir = format!("{}/../tests/fixtures/samples", env!("CARGO_MANIFEST_DIR"));
    let ctx = IngestContext {
        observed_time_ns: 1_800_000_000_000_000_000,
        protocol: "otlp_http_json",
        peer: Some("127.0.0.1:5555".into()),
        source: Some("gateway-eu-1".into()),
    };
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pb") {
            let req = ExportTraceServiceRequest::decode(std::fs::read(&path).unwrap().as_slice())
                .unwrap();
            all.extend(map_request(&req, &ctx, &Attributor::default()).tool_calls);
        }
    }
    assert!(all.len() > 50, "the samples hold many tool calls");
    all
}

pub(crate) fn llm_call() -> LlmCall {
    LlmCall {
        event_id: "0f1e2d3c-4b5a-8978-8695-a4b3c2d1e0f9".into(),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        parent_span_id: None,
        span_name: "chat claude".into(),
        start_time_ns: 1,
        end_time_ns: -2,
        observed_time_ns: i64::MAX,
        operation: Some("chat".into()),
        provider: Some("anthropic".into()),
        request_model: Some("claude-x".into()),
        response_model: None,
        input_tokens: Some(1200),
        output_tokens: Some(0),
        cache_read_input_tokens: None,
        cache_write_input_tokens: Some(7),
        reasoning_output_tokens: None,
        is_error: true,
        error_type: Some("overloaded — ü".into()),
        attribution: Attribution {
            principal: Some("alice@bank.example".into()),
            principal_kind: Some(PrincipalKind::Human),
            principal_reason: "directory".into(),
            ..Attribution::default()
        },
        source: Arc::new(Source {
            ingest_protocol: "otlp_grpc",
            ..Source::default()
        }),
        attributes: vec![("k".into(), String::new())],
    }
}

#[test]
fn real_records_round_trip_exactly() {
    let tools = sample_records();
    let llms = vec![llm_call(), llm_call()];
    let bytes = encode_batch(&tools, &llms);
    let (t, l) = decode_batch(&bytes).unwrap();
    assert_eq!(t, tools);
    assert_eq!(l, llms);
    // Deterministic: encoding the decoded records gives the same bytes.
    assert_eq!(encode_batch(&t, &l), bytes);
}

#[test]
fn an_empty_batch_round_trips() {
    let bytes = encode_batch(&[], &[]);
    assert_eq!(bytes.len(), 9);
    let (t, l) = decode_batch(&bytes).unwrap();
    assert!(t.is_empty() && l.is_empty());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let tools: Vec<ToolCall> = sample_records().into_iter().take(3).collect();
    let bytes = encode_batch(&tools, &[llm_call()]);
    for n in 0..bytes.len() {
        assert!(
            decode_batch(&bytes[..n]).is_err(),
            "prefix of {n} bytes decoded"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode_batch(&longer), Err(CodecError::Trailing(1)));
}

#[test]
fn corrupted_bytes_never_panic() {
    let tools: Vec<ToolCall> = sample_records().into_iter().take(2).collect();
    let bytes = encode_batch(&tools, &[llm_call()]);
    let mut decoded_differently = 0;
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            if let Ok((t, l)) = decode_batch(&b)
                && (t != tools || l != [llm_call()])
            {
                decoded_differently += 1;
            }
        }
    }
    // Flips inside string contents decode (the WAL's CRC catches those); the point is no panic.
    assert!(decoded_differently > 0);
}

#[test]
fn unknown_versions_codes_and_protocols_are_named() {
    let mut bytes = encode_batch(&[], &[llm_call()]);
    bytes[0] = 9;
    assert_eq!(decode_batch(&bytes), Err(CodecError::Version(9)));
    let mut odd = llm_call();
    odd.source = Arc::new(Source {
        ingest_protocol: "carrier_pigeon",
        ..Source::default()
    });
    let err = decode_batch(&encode_batch(&[], &[odd])).unwrap_err();
    assert_eq!(err, CodecError::Protocol("carrier_pigeon".into()));
    let huge_count = [1u8, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        decode_batch(&huge_count),
        Err(CodecError::Truncated("tool-call count"))
    );
}
