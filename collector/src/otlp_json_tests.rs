//! OTLP/JSON decoder tests: the captured samples decode to exactly their protobuf twins, and
//! every malformed input is reported at its JSON path.
#![allow(clippy::unwrap_used)]

use super::*;
use prost::Message as _;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/samples");

#[test]
fn samples_match_their_protobuf_twins() {
    let prefixes = [
        "fastmcp4-http",
        "v1-traceloop-stdio",
        "v2-http-legacy",
        "v2-stdio-auto",
    ];
    for prefix in prefixes {
        for n in 1..=2 {
            let stem = format!("{SAMPLES}/{prefix}-traces-00{n}");
            let json = std::fs::read(format!("{stem}.json")).unwrap();
            let pb = std::fs::read(format!("{stem}.pb")).unwrap();
            let from_json = decode_traces(&json).unwrap_or_else(|e| panic!("{stem}.json: {e}"));
            let from_pb = ExportTraceServiceRequest::decode(pb.as_slice()).unwrap();
            let spans: usize = from_pb
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum();
            assert!(spans > 0, "{stem}: no spans");
            assert_eq!(from_json, from_pb, "{stem}");
        }
    }
}

/// A request holding one span with the given JSON members.
fn with_span(members: &str) -> String {
    format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{members}}}]}}]}}]}}"#)
}

/// A request whose resource has one attribute `k` with the given AnyValue JSON.
fn with_value(any_value: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"k","value":{any_value}}}]}}}}]}}"#
    )
}

fn error(body: &str) -> JsonDecodeError {
    match decode_traces(body.as_bytes()) {
        Ok(req) => panic!("decoded {body} into {req:?}"),
        Err(e) => e,
    }
}

fn the_span(req: &ExportTraceServiceRequest) -> &Span {
    &req.resource_spans[0].scope_spans[0].spans[0]
}

fn the_value(body: &str) -> Option<any_value::Value> {
    let req = decode_traces(body.as_bytes()).unwrap();
    req.resource_spans[0].resource.as_ref().unwrap().attributes[0]
        .value
        .clone()
        .unwrap()
        .value
}

const SPAN: &str = "resourceSpans[0].scopeSpans[0].spans[0]";
const VALUE: &str = "resourceSpans[0].resource.attributes[0].value";

#[test]
fn invalid_json_is_reported_at_the_root_with_position() {
    let e = error(r#"{"resourceSpans": ["#);
    assert_eq!(e.path, "$");
    assert!(e.message.contains("line 1 column"), "{}", e.message);
}

#[test]
fn top_level_must_be_an_object() {
    let e = error("[]");
    assert_eq!(e.path, "$");
    assert_eq!(e.message, "expected an object, got an array");
    assert_eq!(error("null").path, "$");
}

#[test]
fn bad_ids_name_their_path() {
    let e = error(&with_span(
        r#""traceId":"0123456789abcdef0123456789abcdeg""#,
    ));
    assert_eq!(e.path, format!("{SPAN}.traceId"));
    let e = error(&with_span(r#""spanId":"abc""#));
    assert_eq!(e.path, format!("{SPAN}.spanId"));
    let e = error(&with_span(r#""links":[{"spanId":"xyz0"}]"#));
    assert_eq!(e.path, format!("{SPAN}.links[0].spanId"));
}

#[test]
fn bad_integers_name_their_path() {
    let e = error(&with_value(r#"{"intValue":"12x"}"#));
    assert_eq!(e.path, format!("{VALUE}.intValue"));
    for t in [r#""-5""#, "-5"] {
        let e = error(&with_span(&format!(r#""startTimeUnixNano":{t}"#)));
        assert_eq!(e.path, format!("{SPAN}.startTimeUnixNano"));
        assert!(e.message.contains("negative"), "{}", e.message);
    }
    for t in [
        r#""18446744073709551616""#,
        "18446744073709551616",
        "1.5",
        "true",
    ] {
        let e = error(&with_span(&format!(r#""endTimeUnixNano":{t}"#)));
        assert_eq!(e.path, format!("{SPAN}.endTimeUnixNano"), "{t}");
    }
    let e = error(&with_span(r#""flags":4294967296"#));
    assert_eq!(e.path, format!("{SPAN}.flags"));
}

#[test]
fn bad_enums_name_their_path() {
    let e = error(&with_span(r#""kind":true"#));
    assert_eq!(e.path, format!("{SPAN}.kind"));
    let e = error(&with_span(r#""status":{"code":"STATUS_CODE_MAYBE"}"#));
    assert_eq!(e.path, format!("{SPAN}.status.code"));
}

#[test]
fn bad_any_values_name_their_path() {
    let e = error(&with_value(r#"{"bytesValue":"not base64!"}"#));
    assert_eq!(e.path, format!("{VALUE}.bytesValue"));
    let e = error(&with_value(r#"{"stringValue":"a","intValue":1}"#));
    assert_eq!(e.path, VALUE);
    let e = error(&with_value(
        r#"{"arrayValue":{"values":[{"boolValue":"yes"}]}}"#,
    ));
    assert_eq!(e.path, format!("{VALUE}.arrayValue.values[0].boolValue"));
}

/// `depth` arrayValue levels, innermost holding an int.
fn nested_arrays(depth: usize) -> Value {
    let mut v = serde_json::json!({"intValue": 1});
    for _ in 0..depth {
        v = serde_json::json!({"arrayValue": {"values": [v]}});
    }
    serde_json::json!({"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":v}]}}]})
}

#[test]
fn nesting_is_limited() {
    assert!(decode_request(&nested_arrays(MAX_VALUE_DEPTH)).is_ok());
    let e = decode_request(&nested_arrays(MAX_VALUE_DEPTH + 1)).unwrap_err();
    let inner = ".arrayValue.values[0]".repeat(MAX_VALUE_DEPTH);
    assert_eq!(e.path, format!("{VALUE}{inner}.arrayValue"));
    assert!(e.message.contains("nested deeper"), "{}", e.message);
    // From bytes, serde_json's recursion limit stops it first, without overflow.
    let body = with_value(&format!(
        "{}{{}}{}",
        r#"{"arrayValue":{"values":["#.repeat(200),
        "]}}".repeat(200)
    ));
    let e = error(&body);
    assert_eq!(e.path, "$");
    assert!(e.message.contains("recursion limit"), "{}", e.message);
}

#[test]
fn snake_case_keys_numbers_strings_and_enum_names() {
    let body = r#"{"resource_spans":[{"schema_url":"s","scope_spans":[{"scope":{"name":"n",
        "dropped_attributes_count":"2"},"spans":[{"trace_id":"0102030405060708090A0B0C0D0E0F10",
        "span_id":"0102030405060708","parent_span_id":"","trace_state":"a=b",
        "kind":"SPAN_KIND_SERVER","start_time_unix_nano":1795453103675615627,
        "end_time_unix_nano":"1795453103685021414",
        "dropped_events_count":3,"dropped_links_count":"4","flags":"256",
        "events":[{"time_unix_nano":"5","name":"e"}],
        "links":[{"trace_id":"0102030405060708090a0b0c0d0e0f10",
        "span_id":"0807060504030201","flags":768}],
        "status":{"message":"boom","code":"STATUS_CODE_ERROR"},"futureField":{"x":1}}]}]}]}"#;
    let req = decode_traces(body.as_bytes()).unwrap();
    assert_eq!(req.resource_spans[0].schema_url, "s");
    assert_eq!(
        req.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .unwrap()
            .dropped_attributes_count,
        2
    );
    let s = the_span(&req);
    assert_eq!(s.trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(s.span_id, (1..=8).collect::<Vec<u8>>());
    assert!(s.parent_span_id.is_empty());
    assert_eq!(s.trace_state, "a=b");
    assert_eq!(s.kind, SpanKind::Server as i32);
    assert_eq!(
        (s.start_time_unix_nano, s.end_time_unix_nano),
        (1795453103675615627, 1795453103685021414)
    );
    assert_eq!(
        (s.dropped_events_count, s.dropped_links_count, s.flags),
        (3, 4, 256)
    );
    assert_eq!(
        (s.events[0].time_unix_nano, s.events[0].name.as_str()),
        (5, "e")
    );
    assert_eq!(
        (s.links[0].span_id.as_slice(), s.links[0].flags),
        (&[8, 7, 6, 5, 4, 3, 2, 1][..], 768)
    );
    let status = s.status.as_ref().unwrap();
    assert_eq!(
        (status.message.as_str(), status.code),
        ("boom", StatusCode::Error as i32)
    );
    let req = decode_traces(with_span(r#""kind":2,"status":{"code":2}"#).as_bytes()).unwrap();
    assert_eq!(the_span(&req).kind, 2);
    assert_eq!(the_span(&req).status.as_ref().unwrap().code, 2);
}

#[test]
fn any_value_variants() {
    use any_value::Value as V;
    assert_eq!(
        the_value(&with_value(r#"{"int_value":-7}"#)),
        Some(V::IntValue(-7))
    );
    assert_eq!(
        the_value(&with_value(r#"{"intValue":"-9223372036854775808"}"#)),
        Some(V::IntValue(i64::MIN))
    );
    assert_eq!(
        the_value(&with_value(r#"{"doubleValue":2}"#)),
        Some(V::DoubleValue(2.0))
    );
    assert_eq!(
        the_value(&with_value(r#"{"doubleValue":"-Infinity"}"#)),
        Some(V::DoubleValue(f64::NEG_INFINITY))
    );
    let nan = the_value(&with_value(r#"{"doubleValue":"NaN"}"#));
    assert!(matches!(nan, Some(V::DoubleValue(d)) if d.is_nan()));
    assert_eq!(
        the_value(&with_value(r#"{"bytesValue":"aGk"}"#)),
        Some(V::BytesValue(b"hi".to_vec()))
    );
    assert_eq!(
        the_value(&with_value(r#"{"bytes_value":"-_8="}"#)),
        Some(V::BytesValue(vec![0xfb, 0xff]))
    );
    assert_eq!(the_value(&with_value("{}")), None);
    assert_eq!(
        the_value(&with_value(r#"{"stringValue":null,"boolValue":true}"#)),
        Some(V::BoolValue(true))
    );
    let kv = the_value(&with_value(
        r#"{"kvlistValue":{"values":[{"key":"a","value":{"stringValue":"b"}}]}}"#,
    ));
    let Some(V::KvlistValue(list)) = kv else {
        panic!("{kv:?}")
    };
    assert_eq!(list.values[0].key, "a");
    assert_eq!(
        list.values[0].value.as_ref().unwrap().value,
        Some(V::StringValue("b".into()))
    );
}

#[test]
fn nulls_are_defaults() {
    let req = decode_traces(
        with_span(r#""traceId":null,"kind":null,"status":null,"events":null"#).as_bytes(),
    );
    assert_eq!(*the_span(&req.unwrap()), Span::default());
    assert!(
        decode_traces(br#"{"resourceSpans":null}"#)
            .unwrap()
            .resource_spans
            .is_empty()
    );
}
