//! OTLP/JSON decoding for trace exports.
//!
//! Turns the body of an OTLP/HTTP `POST /v1/traces` sent with
//! `Content-Type: application/json` into the same prost
//! [`ExportTraceServiceRequest`] the protobuf and gRPC receivers produce, so
//! everything downstream sees one type.
//!
//! It follows the "JSON Protobuf Encoding" rules of the OTLP specification:
//! lowerCamelCase keys (the proto's snake_case names are accepted too), hex
//! trace/span ids, 64-bit integers as strings or numbers, enums as integers or
//! names, base64 for `bytesValue`, unknown keys ignored and `null` meaning
//! "default". It walks a [`serde_json::Value`] by hand rather than using
//! opentelemetry-proto's `with-serde` feature so that every error names the
//! exact JSON path of the offending value, which is what a sender needs to
//! fix its exporter.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

/// Error decoding an OTLP/JSON body; `path` is a JSON path such as `resourceSpans[0].scopeSpans[1].spans[3].traceId`.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON at {path}: {message}")]
pub struct JsonDecodeError {
    /// Where the problem is: `$` for the document itself, otherwise keys
    /// (as spelled in the input) and array indices from the top level.
    pub path: String,
    /// What is wrong with the value at `path`.
    pub message: String,
}

/// Decodes an OTLP/JSON ExportTraceServiceRequest.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonDecodeError> {
    // serde_json's own recursion limit (128) keeps parsing itself from
    // overflowing the stack; its message carries line and column.
    let root: Value = serde_json::from_slice(body).map_err(|e| Path::Root.err(e.to_string()))?;
    decode_request(&root)
}

/// How many arrayValue/kvlistValue levels may nest inside one attribute value.
///
/// With serde_json's default recursion limit a parsed body cannot get this
/// deep (each level costs three or four JSON levels), so this guards the
/// recursion below independently of how the `Value` was produced.
const MAX_VALUE_DEPTH: usize = 64;

type R<T> = Result<T, JsonDecodeError>;

/// A JSON path kept as a chain of borrowed segments, so the happy path never
/// allocates for it; it is rendered to a string only when an error is built.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path::Key(self, key)
    }

    fn render(&self) -> String {
        match self {
            Path::Root => "$".to_owned(),
            // Top-level keys are written bare: `resourceSpans[0]`, not `$.resourceSpans[0]`.
            Path::Key(Path::Root, key) => (*key).to_owned(),
            Path::Key(parent, key) => format!("{}.{key}", parent.render()),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }

    fn err(&self, message: impl Into<String>) -> JsonDecodeError {
        JsonDecodeError {
            path: self.render(),
            message: message.into(),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(what: &str, v: &Value, path: &Path<'_>) -> JsonDecodeError {
    path.err(format!("expected {what}, got {}", json_kind(v)))
}

/// Looks a field up by its JSON name, then by its proto (snake_case) name.
/// Returns the key as spelled in the input so error paths match the body.
/// `null` counts as absent, which gives the field its default.
fn lookup<'v>(m: &'v Map<String, Value>, camel: &str, snake: &str) -> Option<(&'v str, &'v Value)> {
    let present = |name: &str| m.get_key_value(name).filter(|(_, v)| !v.is_null());
    present(camel)
        .or_else(|| present(snake))
        .map(|(k, v)| (k.as_str(), v))
}

/// Decodes an optional field with `f`; `None` when absent or null.
fn field<'v, T>(
    m: &'v Map<String, Value>,
    path: &Path<'_>,
    camel: &str,
    snake: &str,
    f: impl FnOnce(&'v Value, &Path<'_>) -> R<T>,
) -> R<Option<T>> {
    match lookup(m, camel, snake) {
        None => Ok(None),
        Some((key, v)) => f(v, &path.key(key)).map(Some),
    }
}

/// Decodes a repeated field, each element with `f`; empty when absent or null.
fn list<'v, T>(
    m: &'v Map<String, Value>,
    path: &Path<'_>,
    camel: &str,
    snake: &str,
    f: impl Fn(&'v Value, &Path<'_>) -> R<T>,
) -> R<Vec<T>> {
    let Some((key, v)) = lookup(m, camel, snake) else {
        return Ok(Vec::new());
    };
    let path = path.key(key);
    let Value::Array(items) = v else {
        return Err(expected("an array", v, &path));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| f(item, &Path::Index(&path, i)))
        .collect()
}

fn object<'v>(v: &'v Value, path: &Path<'_>) -> R<&'v Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(expected("an object", v, path)),
    }
}

fn string(v: &Value, path: &Path<'_>) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(expected("a string", v, path)),
    }
}

fn boolean(v: &Value, path: &Path<'_>) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(expected("true or false", v, path)),
    }
}

fn uint64(v: &Value, path: &Path<'_>) -> R<u64> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            // serde_json keeps integers that fit as i64/u64; anything else is a float.
            if n.is_i64() {
                path.err(format!("negative value {n} for an unsigned integer"))
            } else {
                path.err(format!("{n} is not an integer in the uint64 range"))
            }
        }),
        Value::String(s) => s.parse::<u64>().map_err(|e| {
            if s.starts_with('-') && s[1..].parse::<u64>().is_ok() {
                path.err(format!("negative value {s:?} for an unsigned integer"))
            } else {
                path.err(format!("invalid uint64 {s:?}: {e}"))
            }
        }),
        _ => Err(expected("an integer (number or decimal string)", v, path)),
    }
}

fn int64(v: &Value, path: &Path<'_>) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| path.err(format!("{n} is not an integer in the int64 range"))),
        Value::String(s) => s
            .parse::<i64>()
            .map_err(|e| path.err(format!("invalid int64 {s:?}: {e}"))),
        _ => Err(expected("an integer (number or decimal string)", v, path)),
    }
}

fn uint32(v: &Value, path: &Path<'_>) -> R<u32> {
    let n = uint64(v, path)?;
    u32::try_from(n).map_err(|_| path.err(format!("{n} is out of range for uint32")))
}

fn double(v: &Value, path: &Path<'_>) -> R<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| path.err(format!("{n} is not a double"))),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            // The protobuf JSON mapping also allows numbers quoted as strings;
            // Rust's "inf"/"nan" spellings are not JSON, so only finite ones pass.
            _ => match s.parse::<f64>() {
                Ok(d) if d.is_finite() => Ok(d),
                _ => Err(path.err(format!("invalid double {s:?}"))),
            },
        },
        _ => Err(expected(
            "a number or \"NaN\", \"Infinity\", \"-Infinity\"",
            v,
            path,
        )),
    }
}

/// An enum as its integer value or its proto name. Unknown integers are kept,
/// as protobuf enums are open; unknown names are an error.
fn enumeration(v: &Value, path: &Path<'_>, by_name: fn(&str) -> Option<i32>) -> R<i32> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| path.err(format!("{n} is not a valid enum value"))),
        Value::String(s) => by_name(s).ok_or_else(|| path.err(format!("unknown enum name {s:?}"))),
        _ => Err(expected("an enum integer or name", v, path)),
    }
}

fn span_kind_by_name(s: &str) -> Option<i32> {
    SpanKind::from_str_name(s).map(|k| k as i32)
}

fn status_code_by_name(s: &str) -> Option<i32> {
    StatusCode::from_str_name(s).map(|c| c as i32)
}

/// Trace and span ids: OTLP/JSON uses hex here, not protobuf's base64.
fn hex_id(v: &Value, path: &Path<'_>) -> R<Vec<u8>> {
    let Value::String(s) = v else {
        return Err(expected("a hex string", v, path));
    };
    hex::decode(s).map_err(|e| path.err(format!("invalid hex id {s:?}: {e}")))
}

// The protobuf JSON mapping accepts padded or unpadded input, so padding is not
// enforced; non-zero trailing bits are tolerated like most decoders do.
const B64_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, B64_CONFIG);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, B64_CONFIG);

fn base64_bytes(v: &Value, path: &Path<'_>) -> R<Vec<u8>> {
    let Value::String(s) = v else {
        return Err(expected("a base64 string", v, path));
    };
    B64_STANDARD
        .decode(s)
        // The protobuf JSON mapping also allows the URL-safe alphabet.
        .or_else(|e| {
            if s.contains(['-', '_']) {
                B64_URL_SAFE.decode(s)
            } else {
                Err(e)
            }
        })
        .map_err(|e| path.err(format!("invalid base64: {e}")))
}

fn decode_request(root: &Value) -> R<ExportTraceServiceRequest> {
    let path = Path::Root;
    let m = object(root, &path)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: list(m, &path, "resourceSpans", "resource_spans", resource_spans)?,
    })
}

fn resource_spans(v: &Value, path: &Path<'_>) -> R<ResourceSpans> {
    let m = object(v, path)?;
    Ok(ResourceSpans {
        resource: field(m, path, "resource", "resource", resource)?,
        scope_spans: list(m, path, "scopeSpans", "scope_spans", scope_spans)?,
        schema_url: field(m, path, "schemaUrl", "schema_url", string)?.unwrap_or_default(),
    })
}

fn resource(v: &Value, path: &Path<'_>) -> R<Resource> {
    let m = object(v, path)?;
    Ok(Resource {
        attributes: attributes(m, path)?,
        dropped_attributes_count: dropped_attributes(m, path)?,
        entity_refs: list(m, path, "entityRefs", "entity_refs", entity_ref)?,
    })
}

fn entity_ref(v: &Value, path: &Path<'_>) -> R<EntityRef> {
    let m = object(v, path)?;
    Ok(EntityRef {
        schema_url: field(m, path, "schemaUrl", "schema_url", string)?.unwrap_or_default(),
        r#type: field(m, path, "type", "type", string)?.unwrap_or_default(),
        id_keys: list(m, path, "idKeys", "id_keys", string)?,
        description_keys: list(m, path, "descriptionKeys", "description_keys", string)?,
    })
}

fn scope_spans(v: &Value, path: &Path<'_>) -> R<ScopeSpans> {
    let m = object(v, path)?;
    Ok(ScopeSpans {
        scope: field(m, path, "scope", "scope", scope)?,
        spans: list(m, path, "spans", "spans", span)?,
        schema_url: field(m, path, "schemaUrl", "schema_url", string)?.unwrap_or_default(),
    })
}

fn scope(v: &Value, path: &Path<'_>) -> R<InstrumentationScope> {
    let m = object(v, path)?;
    Ok(InstrumentationScope {
        name: field(m, path, "name", "name", string)?.unwrap_or_default(),
        version: field(m, path, "version", "version", string)?.unwrap_or_default(),
        attributes: attributes(m, path)?,
        dropped_attributes_count: dropped_attributes(m, path)?,
    })
}

fn span(v: &Value, path: &Path<'_>) -> R<Span> {
    let m = object(v, path)?;
    let kind = |v: &Value, p: &Path<'_>| enumeration(v, p, span_kind_by_name);
    Ok(Span {
        trace_id: field(m, path, "traceId", "trace_id", hex_id)?.unwrap_or_default(),
        span_id: field(m, path, "spanId", "span_id", hex_id)?.unwrap_or_default(),
        trace_state: field(m, path, "traceState", "trace_state", string)?.unwrap_or_default(),
        parent_span_id: field(m, path, "parentSpanId", "parent_span_id", hex_id)?
            .unwrap_or_default(),
        flags: field(m, path, "flags", "flags", uint32)?.unwrap_or_default(),
        name: field(m, path, "name", "name", string)?.unwrap_or_default(),
        kind: field(m, path, "kind", "kind", kind)?.unwrap_or_default(),
        start_time_unix_nano: field(m, path, "startTimeUnixNano", "start_time_unix_nano", uint64)?
            .unwrap_or_default(),
        end_time_unix_nano: field(m, path, "endTimeUnixNano", "end_time_unix_nano", uint64)?
            .unwrap_or_default(),
        attributes: attributes(m, path)?,
        dropped_attributes_count: dropped_attributes(m, path)?,
        events: list(m, path, "events", "events", event)?,
        dropped_events_count: field(
            m,
            path,
            "droppedEventsCount",
            "dropped_events_count",
            uint32,
        )?
        .unwrap_or_default(),
        links: list(m, path, "links", "links", link)?,
        dropped_links_count: field(m, path, "droppedLinksCount", "dropped_links_count", uint32)?
            .unwrap_or_default(),
        status: field(m, path, "status", "status", status)?,
    })
}

fn event(v: &Value, path: &Path<'_>) -> R<Event> {
    let m = object(v, path)?;
    Ok(Event {
        time_unix_nano: field(m, path, "timeUnixNano", "time_unix_nano", uint64)?
            .unwrap_or_default(),
        name: field(m, path, "name", "name", string)?.unwrap_or_default(),
        attributes: attributes(m, path)?,
        dropped_attributes_count: dropped_attributes(m, path)?,
    })
}

fn link(v: &Value, path: &Path<'_>) -> R<Link> {
    let m = object(v, path)?;
    Ok(Link {
        trace_id: field(m, path, "traceId", "trace_id", hex_id)?.unwrap_or_default(),
        span_id: field(m, path, "spanId", "span_id", hex_id)?.unwrap_or_default(),
        trace_state: field(m, path, "traceState", "trace_state", string)?.unwrap_or_default(),
        attributes: attributes(m, path)?,
        dropped_attributes_count: dropped_attributes(m, path)?,
        flags: field(m, path, "flags", "flags", uint32)?.unwrap_or_default(),
    })
}

fn status(v: &Value, path: &Path<'_>) -> R<Status> {
    let m = object(v, path)?;
    let code = |v: &Value, p: &Path<'_>| enumeration(v, p, status_code_by_name);
    Ok(Status {
        message: field(m, path, "message", "message", string)?.unwrap_or_default(),
        code: field(m, path, "code", "code", code)?.unwrap_or_default(),
    })
}

fn attributes(m: &Map<String, Value>, path: &Path<'_>) -> R<Vec<KeyValue>> {
    list(m, path, "attributes", "attributes", |v, p| {
        key_value(v, p, 0)
    })
}

fn dropped_attributes(m: &Map<String, Value>, path: &Path<'_>) -> R<u32> {
    Ok(field(
        m,
        path,
        "droppedAttributesCount",
        "dropped_attributes_count",
        uint32,
    )?
    .unwrap_or_default())
}

/// `depth` is the number of arrayValue/kvlistValue levels around this pair.
fn key_value(v: &Value, path: &Path<'_>, depth: usize) -> R<KeyValue> {
    let m = object(v, path)?;
    Ok(KeyValue {
        key: field(m, path, "key", "key", string)?.unwrap_or_default(),
        value: field(m, path, "value", "value", |v, p| any_value(v, p, depth))?,
        // key_strindex belongs to the profiles signal; receivers of other signals ignore it.
        key_strindex: 0,
    })
}

#[derive(Clone, Copy)]
enum ValueKey {
    String,
    Bool,
    Int,
    Double,
    Array,
    Kvlist,
    Bytes,
}

const VALUE_KEYS: [(&str, &str, ValueKey); 7] = [
    ("stringValue", "string_value", ValueKey::String),
    ("boolValue", "bool_value", ValueKey::Bool),
    ("intValue", "int_value", ValueKey::Int),
    ("doubleValue", "double_value", ValueKey::Double),
    ("arrayValue", "array_value", ValueKey::Array),
    ("kvlistValue", "kvlist_value", ValueKey::Kvlist),
    ("bytesValue", "bytes_value", ValueKey::Bytes),
];

fn any_value(v: &Value, path: &Path<'_>, depth: usize) -> R<AnyValue> {
    let m = object(v, path)?;
    // A oneof: at most one value key may be set; none at all is the empty value.
    let mut present = VALUE_KEYS
        .iter()
        .filter_map(|&(camel, snake, which)| lookup(m, camel, snake).map(|(k, v)| (k, v, which)));
    let Some((key, v, which)) = present.next() else {
        return Ok(AnyValue { value: None });
    };
    if let Some((other, _, _)) = present.next() {
        return Err(path.err(format!(
            "AnyValue sets both {key} and {other}; at most one is allowed"
        )));
    }
    let path = path.key(key);
    let nested = || {
        if depth >= MAX_VALUE_DEPTH {
            Err(path.err(format!(
                "values nested deeper than {MAX_VALUE_DEPTH} levels"
            )))
        } else {
            Ok(depth + 1)
        }
    };
    let value = match which {
        ValueKey::String => any_value::Value::StringValue(string(v, &path)?),
        ValueKey::Bool => any_value::Value::BoolValue(boolean(v, &path)?),
        ValueKey::Int => any_value::Value::IntValue(int64(v, &path)?),
        ValueKey::Double => any_value::Value::DoubleValue(double(v, &path)?),
        ValueKey::Bytes => any_value::Value::BytesValue(base64_bytes(v, &path)?),
        ValueKey::Array => {
            let inner = nested()?;
            let values = list(object(v, &path)?, &path, "values", "values", |v, p| {
                any_value(v, p, inner)
            })?;
            any_value::Value::ArrayValue(ArrayValue { values })
        }
        ValueKey::Kvlist => {
            let inner = nested()?;
            let values = list(object(v, &path)?, &path, "values", "values", |v, p| {
                key_value(v, p, inner)
            })?;
            any_value::Value::KvlistValue(KeyValueList { values })
        }
    };
    Ok(AnyValue { value: Some(value) })
}

#[cfg(test)]
#[path = "otlp_json_tests.rs"]
mod tests;
