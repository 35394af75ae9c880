//! Reading OTLP attribute values: lookups by key and rendering any value as text.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// The value of `key`, if present and not empty.
pub fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The value of `key` rendered as text (see [`render`]).
pub fn attr_string<'a>(kvs: &'a [KeyValue], key: &str) -> Option<Cow<'a, str>> {
    attr(kvs, key).map(render)
}

/// The first present key of `keys`, rendered as text.
pub fn first_string<'a>(kvs: &'a [KeyValue], keys: &[&str]) -> Option<Cow<'a, str>> {
    keys.iter().find_map(|k| attr_string(kvs, k))
}

/// The value of `key` as an integer: an int, or a string holding one.
pub fn attr_i64(kvs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(kvs, key)? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.trim().parse().ok(),
        Value::DoubleValue(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        _ => None,
    }
}

/// The first present key of `keys` as an integer.
pub fn first_i64(kvs: &[KeyValue], keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| attr_i64(kvs, k))
}

/// Text form of a value: strings as-is, numbers and booleans in their usual form, bytes as
/// lowercase hex, arrays and key-value lists as JSON.
pub fn render(v: &Value) -> Cow<'_, str> {
    match v {
        Value::StringValue(s) => Cow::Borrowed(s.as_str()),
        Value::BoolValue(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::IntValue(i) => Cow::Owned(i.to_string()),
        Value::DoubleValue(d) => Cow::Owned(d.to_string()),
        Value::BytesValue(b) => Cow::Owned(hex::encode(b)),
        Value::ArrayValue(_) | Value::KvlistValue(_) => Cow::Owned(to_json(v).to_string()),
        // A string-table index only meaningful in the profiles signal; kept as the number.
        Value::StringValueStrindex(i) => Cow::Owned(i.to_string()),
    }
}

fn any_to_json(v: &AnyValue) -> serde_json::Value {
    v.value.as_ref().map_or(serde_json::Value::Null, to_json)
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(hex::encode(b)),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(any_to_json).collect()),
        Value::KvlistValue(l) => J::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
        Value::StringValueStrindex(i) => J::from(*i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    #[test]
    fn renders_every_kind() {
        assert_eq!(render(&Value::IntValue(-3)), "-3");
        assert_eq!(render(&Value::BoolValue(true)), "true");
        assert_eq!(render(&Value::BytesValue(vec![0xab, 1])), "ab01");
        let arr = Value::ArrayValue(ArrayValue {
            values: vec![any(Value::IntValue(1)), any(Value::StringValue("a".into()))],
        });
        assert_eq!(render(&arr), r#"[1,"a"]"#);
        let kv = Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(any(Value::DoubleValue(0.5))),
                ..Default::default()
            }],
        });
        assert_eq!(render(&kv), r#"{"k":0.5}"#);
    }

    #[test]
    fn integers_from_strings() {
        let kvs = vec![KeyValue {
            key: "n".into(),
            value: Some(any(Value::StringValue(" 42 ".into()))),
            ..Default::default()
        }];
        assert_eq!(attr_i64(&kvs, "n"), Some(42));
        assert_eq!(attr_i64(&kvs, "missing"), None);
    }
}
