//! A compact, deterministic binary encoding of records: the payload of the write-ahead log.
//!
//! One encoded batch is `version (u8 = 1) | tool-call count (u32) | tool calls | LLM-call count
//! (u32) | LLM calls`. Integers are little-endian and fixed-width; a string is its byte length
//! (u32) then UTF-8; an optional value is a tag byte (0 absent, 1 present) then the value; an
//! enum is one byte; a list is its length (u32) then its items. Fields follow the order of the
//! struct definitions in [`crate::record`]. The same records always encode to the same bytes.
//!
//! Decoding validates everything (lengths against the bytes left, UTF-8, tags, enum codes,
//! trailing bytes) and never panics: a corrupted payload is an error, not a crash.

use std::sync::Arc;

use crate::record::{
    Attribution, LlmCall, OperationClass, Outcome, Payload, PrincipalKind, Side, Source, ToolCall,
};

/// Version byte of the batch encoding.
pub const CODEC_VERSION: u8 = 1;

/// The ingest protocol names a decoded record may carry (they are `&'static str` in
/// [`Source`]); any other name is a decode error.
const PROTOCOLS: &[&str] = &["otlp_grpc", "otlp_http_protobuf", "otlp_http_json"];

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The payload ended before a value was complete.
    #[error("truncated payload: {0} needs more bytes than are left")]
    Truncated(&'static str),
    /// The version byte is not one this build reads.
    #[error("unsupported record encoding version {0}")]
    Version(u8),
    /// A string is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
    /// A tag or enum byte has no meaning.
    #[error("invalid {what} code {code}")]
    Code {
        /// Which field.
        what: &'static str,
        /// The byte found.
        code: u8,
    },
    /// An ingest protocol name this build does not know.
    #[error("unknown ingest protocol {0:?}")]
    Protocol(String),
    /// Bytes were left after the last record.
    #[error("{0} trailing bytes after the last record")]
    Trailing(usize),
}

/// Encodes a batch of records.
pub fn encode_batch(tool_calls: &[ToolCall], llm_calls: &[LlmCall]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 1024 * (tool_calls.len() + llm_calls.len()));
    out.push(CODEC_VERSION);
    put_len(&mut out, tool_calls.len());
    for r in tool_calls {
        put_tool_call(&mut out, r);
    }
    put_len(&mut out, llm_calls.len());
    for r in llm_calls {
        put_llm_call(&mut out, r);
    }
    out
}

/// Decodes a batch written by [`encode_batch`].
pub fn decode_batch(bytes: &[u8]) -> Result<(Vec<ToolCall>, Vec<LlmCall>), CodecError> {
    let mut r = Reader { buf: bytes };
    let version = r.u8("version")?;
    if version != CODEC_VERSION {
        return Err(CodecError::Version(version));
    }
    // Every record takes well over 8 bytes, so a count above `remaining / 8` is corrupt; the
    // cap keeps a corrupted count from reserving gigabytes.
    let n = r.count("tool-call count", 8)?;
    let mut tool_calls = Vec::with_capacity(n);
    for _ in 0..n {
        tool_calls.push(r.tool_call()?);
    }
    let n = r.count("LLM-call count", 8)?;
    let mut llm_calls = Vec::with_capacity(n);
    for _ in 0..n {
        llm_calls.push(r.llm_call()?);
    }
    if !r.buf.is_empty() {
        return Err(CodecError::Trailing(r.buf.len()));
    }
    Ok((tool_calls, llm_calls))
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Records come from size-limited requests: no string or list nears 4 GiB.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_i64(out, v);
        }
    }
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[(String, String)]) {
    put_len(out, pairs.len());
    for (k, v) in pairs {
        put_str(out, k);
        put_str(out, v);
    }
}

fn put_attribution(out: &mut Vec<u8>, a: &Attribution) {
    put_opt_str(out, a.principal.as_deref());
    put_opt_str(out, a.principal_source.as_deref());
    out.push(match a.principal_kind {
        None => 0,
        Some(PrincipalKind::Human) => 1,
        Some(PrincipalKind::ServiceAccount) => 2,
        Some(PrincipalKind::Unattributed) => 3,
    });
    put_str(out, &a.principal_reason);
    put_opt_str(out, a.team.as_deref());
    put_opt_str(out, a.tenant.as_deref());
    put_opt_str(out, a.cost_center.as_deref());
}

fn put_source(out: &mut Vec<u8>, s: &Source) {
    put_opt_str(out, s.service.as_deref());
    put_opt_str(out, s.instance.as_deref());
    put_opt_str(out, s.sdk.as_deref());
    put_opt_str(out, s.scope.as_deref());
    put_str(out, s.ingest_protocol);
    put_opt_str(out, s.ingest_peer.as_deref());
    put_opt_str(out, s.ingest_source.as_deref());
}

fn put_payload(out: &mut Vec<u8>, p: &Payload) {
    put_opt_str(out, p.sha256.as_deref());
    put_opt_i64(out, p.size);
    put_opt_str(out, p.content.as_deref());
}

fn put_tool_call(out: &mut Vec<u8>, r: &ToolCall) {
    put_str(out, &r.event_id);
    put_str(out, &r.trace_id);
    put_str(out, &r.span_id);
    put_opt_str(out, r.parent_span_id.as_deref());
    put_str(out, &r.call_id);
    out.push(u8::from(r.is_request));
    out.push(match r.side {
        Side::Client => 0,
        Side::Server => 1,
    });
    put_str(out, &r.span_name);
    put_i64(out, r.start_time_ns);
    put_i64(out, r.end_time_ns);
    put_i64(out, r.observed_time_ns);
    put_str(out, &r.method);
    put_opt_str(out, r.tool_name.as_deref());
    put_opt_str(out, r.prompt_name.as_deref());
    put_opt_str(out, r.resource_uri.as_deref());
    out.push(match r.operation_class {
        OperationClass::Read => 0,
        OperationClass::Write => 1,
        OperationClass::Delete => 2,
        OperationClass::Admin => 3,
        OperationClass::Unknown => 4,
    });
    out.push(match r.outcome {
        Outcome::Ok => 0,
        Outcome::ToolError => 1,
        Outcome::ProtocolError => 2,
        Outcome::Denied => 3,
    });
    put_opt_str(out, r.error_type.as_deref());
    put_opt_i64(out, r.jsonrpc_code);
    put_opt_str(out, r.error_message.as_deref());
    put_opt_str(out, r.request_id.as_deref());
    put_opt_str(out, r.protocol_version.as_deref());
    put_opt_str(out, r.session_id.as_deref());
    put_opt_str(out, r.server_name.as_deref());
    put_opt_str(out, r.client_name.as_deref());
    put_attribution(out, &r.attribution);
    put_opt_str(out, r.network_transport.as_deref());
    put_opt_str(out, r.client_address.as_deref());
    put_opt_i64(out, r.client_port);
    put_opt_str(out, r.server_address.as_deref());
    put_opt_i64(out, r.server_port);
    put_source(out, &r.source);
    put_payload(out, &r.arguments);
    put_payload(out, &r.result);
    put_pairs(out, &r.attributes);
    put_pairs(out, &r.resource_attributes);
}

fn put_llm_call(out: &mut Vec<u8>, r: &LlmCall) {
    put_str(out, &r.event_id);
    put_str(out, &r.trace_id);
    put_str(out, &r.span_id);
    put_opt_str(out, r.parent_span_id.as_deref());
    put_str(out, &r.span_name);
    put_i64(out, r.start_time_ns);
    put_i64(out, r.end_time_ns);
    put_i64(out, r.observed_time_ns);
    put_opt_str(out, r.operation.as_deref());
    put_opt_str(out, r.provider.as_deref());
    put_opt_str(out, r.request_model.as_deref());
    put_opt_str(out, r.response_model.as_deref());
    put_opt_i64(out, r.input_tokens);
    put_opt_i64(out, r.output_tokens);
    put_opt_i64(out, r.cache_read_input_tokens);
    put_opt_i64(out, r.cache_write_input_tokens);
    put_opt_i64(out, r.reasoning_output_tokens);
    out.push(u8::from(r.is_error));
    put_opt_str(out, r.error_type.as_deref());
    put_attribution(out, &r.attribution);
    put_source(out, &r.source);
    put_pairs(out, &r.attributes);
}

/// A cursor over the payload; every read checks the bytes left.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A list length, checked against the bytes left assuming `min_item` bytes per item.
    fn count(&mut self, what: &'static str, min_item: usize) -> Result<usize, CodecError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(CodecError::Truncated(what));
        }
        Ok(n)
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, CodecError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            code => Err(CodecError::Code { what, code }),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        let n = self.u32(what)? as usize;
        let b = self.take(n, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| CodecError::Utf8(what))
    }

    fn opt_string(&mut self, what: &'static str) -> Result<Option<String>, CodecError> {
        if self.bool(what)? {
            self.string(what).map(Some)
        } else {
            Ok(None)
        }
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, CodecError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn opt_i64(&mut self, what: &'static str) -> Result<Option<i64>, CodecError> {
        if self.bool(what)? {
            self.i64(what).map(Some)
        } else {
            Ok(None)
        }
    }

    fn pairs(&mut self, what: &'static str) -> Result<Vec<(String, String)>, CodecError> {
        // A pair is at least two 4-byte lengths.
        let n = self.count(what, 8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((self.string(what)?, self.string(what)?));
        }
        Ok(v)
    }

    fn attribution(&mut self) -> Result<Attribution, CodecError> {
        Ok(Attribution {
            principal: self.opt_string("principal")?,
            principal_source: self.opt_string("principal_source")?,
            principal_kind: match self.u8("principal_kind")? {
                0 => None,
                1 => Some(PrincipalKind::Human),
                2 => Some(PrincipalKind::ServiceAccount),
                3 => Some(PrincipalKind::Unattributed),
                code => {
                    return Err(CodecError::Code {
                        what: "principal_kind",
                        code,
                    });
                }
            },
            principal_reason: self.string("principal_reason")?,
            team: self.opt_string("team")?,
            tenant: self.opt_string("tenant")?,
            cost_center: self.opt_string("cost_center")?,
        })
    }

    fn source(&mut self) -> Result<Source, CodecError> {
        let service = self.opt_string("service")?;
        let instance = self.opt_string("instance")?;
        let sdk = self.opt_string("sdk")?;
        let scope = self.opt_string("scope")?;
        let protocol = self.string("ingest_protocol")?;
        let ingest_protocol = PROTOCOLS
            .iter()
            .find(|p| **p == protocol)
            .ok_or(CodecError::Protocol(protocol))?;
        Ok(Source {
            service,
            instance,
            sdk,
            scope,
            ingest_protocol,
            ingest_peer: self.opt_string("ingest_peer")?,
            ingest_source: self.opt_string("ingest_source")?,
        })
    }

    fn payload(&mut self, what: &'static str) -> Result<Payload, CodecError> {
        Ok(Payload {
            sha256: self.opt_string(what)?,
            size: self.opt_i64(what)?,
            content: self.opt_string(what)?,
        })
    }

    fn tool_call(&mut self) -> Result<ToolCall, CodecError> {
        Ok(ToolCall {
            event_id: self.string("event_id")?,
            trace_id: self.string("trace_id")?,
            span_id: self.string("span_id")?,
            parent_span_id: self.opt_string("parent_span_id")?,
            call_id: self.string("call_id")?,
            is_request: self.bool("is_request")?,
            side: match self.u8("side")? {
                0 => Side::Client,
                1 => Side::Server,
                code => return Err(CodecError::Code { what: "side", code }),
            },
            span_name: self.string("span_name")?,
            start_time_ns: self.i64("start_time")?,
            end_time_ns: self.i64("end_time")?,
            observed_time_ns: self.i64("observed_time")?,
            method: self.string("method")?,
            tool_name: self.opt_string("tool_name")?,
            prompt_name: self.opt_string("prompt_name")?,
            resource_uri: self.opt_string("resource_uri")?,
            operation_class: match self.u8("operation_class")? {
                0 => OperationClass::Read,
                1 => OperationClass::Write,
                2 => OperationClass::Delete,
                3 => OperationClass::Admin,
                4 => OperationClass::Unknown,
                code => {
                    return Err(CodecError::Code {
                        what: "operation_class",
                        code,
                    });
                }
            },
            outcome: match self.u8("outcome")? {
                0 => Outcome::Ok,
                1 => Outcome::ToolError,
                2 => Outcome::ProtocolError,
                3 => Outcome::Denied,
                code => {
                    return Err(CodecError::Code {
                        what: "outcome",
                        code,
                    });
                }
            },
            error_type: self.opt_string("error_type")?,
            jsonrpc_code: self.opt_i64("jsonrpc_code")?,
            error_message: self.opt_string("error_message")?,
            request_id: self.opt_string("request_id")?,
            protocol_version: self.opt_string("protocol_version")?,
            session_id: self.opt_string("session_id")?,
            server_name: self.opt_string("server_name")?,
            client_name: self.opt_string("client_name")?,
            attribution: self.attribution()?,
            network_transport: self.opt_string("network_transport")?,
            client_address: self.opt_string("client_address")?,
            client_port: self.opt_i64("client_port")?,
            server_address: self.opt_string("server_address")?,
            server_port: self.opt_i64("server_port")?,
            source: Arc::new(self.source()?),
            arguments: self.payload("arguments")?,
            result: self.payload("result")?,
            attributes: self.pairs("attributes")?,
            resource_attributes: Arc::new(self.pairs("resource_attributes")?),
        })
    }

    fn llm_call(&mut self) -> Result<LlmCall, CodecError> {
        Ok(LlmCall {
            event_id: self.string("event_id")?,
            trace_id: self.string("trace_id")?,
            span_id: self.string("span_id")?,
            parent_span_id: self.opt_string("parent_span_id")?,
            span_name: self.string("span_name")?,
            start_time_ns: self.i64("start_time")?,
            end_time_ns: self.i64("end_time")?,
            observed_time_ns: self.i64("observed_time")?,
            operation: self.opt_string("operation")?,
            provider: self.opt_string("provider")?,
            request_model: self.opt_string("request_model")?,
            response_model: self.opt_string("response_model")?,
            input_tokens: self.opt_i64("input_tokens")?,
            output_tokens: self.opt_i64("output_tokens")?,
            cache_read_input_tokens: self.opt_i64("cache_read_input_tokens")?,
            cache_write_input_tokens: self.opt_i64("cache_write_input_tokens")?,
            reasoning_output_tokens: self.opt_i64("reasoning_output_tokens")?,
            is_error: self.bool("is_error")?,
            error_type: self.opt_string("error_type")?,
            attribution: self.attribution()?,
            source: Arc::new(self.source()?),
            attributes: self.pairs("attributes")?,
        })
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
pub(crate) mod tests;
