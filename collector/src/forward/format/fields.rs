//! The flat list of key/value fields the line formats (CEF and LEEF) carry, with one set of
//! extraction rules for both: each format only names the keys its own way, so the two never
//! drift apart in what they say about an event.

use std::borrow::Cow;

use super::FormatOptions;
use super::common::{Addr, addr, map_object, port, span_ns, succeeded};
use crate::forward::event::{CheckpointEvent, Event, EventKind, FindingRow, RecordRow};

/// What a field is. Each kind of event uses a subset; within one event no two fields share a
/// CEF custom slot (`cs3` is the target of a tool call, the model of an LLM call, the subject
/// of an audit event, the origin of a checkpoint, the tool of a finding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// Start (or audit time, or signing time, or when a finding was detected).
    Start,
    /// End.
    End,
    /// The stable event id.
    EventId,
    /// The event kind (`tool_call`, ...).
    Kind,
    /// The MCP method, LLM operation, audit action, or `checkpoint`.
    Action,
    /// `success` or `failure`.
    Success,
    /// Tool calls: the stored outcome; audit events: the actor's reason.
    Reason,
    /// The principal (audit: the actor).
    Principal,
    /// The client's IP.
    SrcIp,
    /// The client's address when it is not an IP.
    SrcHost,
    /// The client's port.
    SrcPort,
    /// The server's IP.
    DstIp,
    /// The server's address when it is not an IP.
    DstHost,
    /// The server's port.
    DstPort,
    /// The MCP client's name.
    Client,
    /// The error message, or a checkpoint's signed note.
    Message,
    /// The chain.
    ChainId,
    /// The record's seq.
    Seq,
    /// The record's leaf hash.
    LeafHash,
    /// A checkpoint's tree size.
    TreeSize,
    /// A checkpoint's root hash.
    RootHash,
    /// A checkpoint's origin line.
    Origin,
    /// The call's target (tool, prompt or resource).
    Target,
    /// The MCP server's name.
    Server,
    /// The team.
    Team,
    /// The tenant.
    Tenant,
    /// The JSON-RPC error code.
    JsonrpcCode,
    /// Duration in milliseconds.
    DurationMs,
    /// human, service_account or unattributed.
    PrincipalKind,
    /// The error type.
    ErrorType,
    /// The trace id.
    TraceId,
    /// The span id.
    SpanId,
    /// client or server.
    Side,
    /// The operation class.
    OperationClass,
    /// The model (response model, else request model).
    Model,
    /// The model provider.
    Provider,
    /// Input tokens.
    InputTokens,
    /// Output tokens.
    OutputTokens,
    /// An audit event's subject.
    Subject,
    /// An audit event's details, as a JSON object.
    Details,
    /// SHA-256 of the tool arguments.
    ArgumentsSha256,
    /// Size of the tool arguments.
    ArgumentsSize,
    /// The tool arguments.
    Arguments,
    /// SHA-256 of the tool result.
    ResultSha256,
    /// Size of the tool result.
    ResultSize,
    /// The tool result.
    Result,
    /// Start of a finding's window.
    WindowStart,
    /// End of a finding's window (exclusive).
    WindowEnd,
    /// The detector of a finding (`D1`...).
    Detector,
    /// The rule of a finding (`volume_spike`...).
    Rule,
    /// A finding's severity: low, medium, high, critical.
    FindingSeverity,
    /// What a finding is about: user, team, server, chain, pipeline.
    EntityKind,
    /// Which one.
    Entity,
    /// The value a finding saw in its window.
    Observed,
    /// The baseline it was compared with.
    Expected,
    /// The rule's score.
    Score,
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
    /// Text, as stored.
    Text(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// An unsigned integer (a tree size).
    UInt(u64),
    /// A float.
    Float(f64),
    /// A time, ns since the epoch.
    Time(i64),
}

/// Collects fields, leaving out absent and empty values (CEF parsers drop `key=` with no
/// value, and an empty field says nothing a SIEM can use).
#[derive(Debug, Default)]
struct Fields<'a>(Vec<(Key, Val<'a>)>);

impl<'a> Fields<'a> {
    fn text(&mut self, key: Key, value: Option<&'a str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.0.push((key, Val::Text(Cow::Borrowed(v))));
        }
    }

    fn owned(&mut self, key: Key, value: String) {
        if !value.is_empty() {
            self.0.push((key, Val::Text(Cow::Owned(value))));
        }
    }

    fn val(&mut self, key: Key, value: Option<Val<'a>>) {
        if let Some(v) = value {
            self.0.push((key, v));
        }
    }

    fn address(&mut self, ip: Key, host: Key, value: Option<&'a str>) {
        match value.map(addr) {
            Some(Addr::Ip(a)) => self.owned(ip, a.to_string()),
            Some(Addr::Host(h)) => self.text(host, Some(h)),
            None => {}
        }
    }
}

/// The fields of `event`, in the order the line formats write them.
pub(super) fn fields<'a>(event: &Event<'a>, options: &FormatOptions) -> Vec<(Key, Val<'a>)> {
    let mut f = Fields::default();
    match event {
        Event::Record(row) => record(&mut f, event, row, options),
        Event::Checkpoint(c) => checkpoint(&mut f, c),
        Event::Finding(row) => finding(&mut f, row),
    }
    f.0
}

fn record<'a>(f: &mut Fields<'a>, event: &Event<'a>, row: &RecordRow<'a>, options: &FormatOptions) {
    let kind = row.kind();
    let (start, end) = span_ns(row);
    f.val(Key::Start, start.map(Val::Time));
    f.val(Key::End, end.map(Val::Time));
    f.text(Key::EventId, row.str("event_id"));
    f.text(Key::Kind, Some(kind.as_str()));
    match kind {
        EventKind::ToolCall => f.text(Key::Action, row.str("method")),
        EventKind::LlmCall => f.text(
            Key::Action,
            Some(row.str("operation").unwrap_or("inference")),
        ),
        EventKind::Audit | EventKind::Checkpoint | EventKind::Finding => {
            f.text(Key::Action, row.str("action"));
        }
    }
    let success = succeeded(event).map(|ok| if ok { "success" } else { "failure" });
    f.text(Key::Success, success);
    match kind {
        EventKind::ToolCall => f.text(Key::Reason, row.str("outcome")),
        _ => f.text(Key::Reason, row.str("reason")),
    }
    f.text(
        Key::Principal,
        row.str("principal").or_else(|| row.str("actor")),
    );
    f.address(Key::SrcIp, Key::SrcHost, row.str("client_address"));
    f.val(
        Key::SrcPort,
        port(row, "client_port").map(|p| Val::Int(p.into())),
    );
    f.address(Key::DstIp, Key::DstHost, row.str("server_address"));
    f.val(
        Key::DstPort,
        port(row, "server_port").map(|p| Val::Int(p.into())),
    );
    f.text(Key::Client, row.str("client_name"));
    f.text(Key::Message, row.str("error_message"));
    f.text(Key::ChainId, row.str("chain_id"));
    f.val(Key::Seq, row.int("seq").map(Val::Int));
    f.val(
        Key::LeafHash,
        row.hash_hex("leaf_hash").map(|h| Val::Text(h.into())),
    );
    match kind {
        EventKind::ToolCall => {
            f.text(Key::Target, row.str("target"));
            f.text(Key::Server, row.str("server_name"));
        }
        EventKind::LlmCall => {
            let model = row
                .str("response_model")
                .or_else(|| row.str("request_model"));
            f.text(Key::Model, model);
            f.text(Key::Provider, row.str("provider"));
        }
        EventKind::Audit | EventKind::Checkpoint | EventKind::Finding => {
            f.text(Key::Subject, row.str("subject"));
            let details = map_object(row, "details");
            if details.as_object().is_some_and(|d| !d.is_empty()) {
                f.owned(Key::Details, details.to_string());
            }
        }
    }
    f.text(Key::Team, row.str("team"));
    f.text(Key::Tenant, row.str("tenant"));
    f.val(Key::JsonrpcCode, row.int("jsonrpc_code").map(Val::Int));
    f.val(Key::InputTokens, row.int("input_tokens").map(Val::Int));
    f.val(Key::OutputTokens, row.int("output_tokens").map(Val::Int));
    f.val(Key::DurationMs, row.float("duration_ms").map(Val::Float));
    f.text(Key::PrincipalKind, row.str("principal_kind"));
    f.text(Key::ErrorType, row.str("error_type"));
    f.text(Key::TraceId, row.str("trace_id"));
    f.text(Key::SpanId, row.str("span_id"));
    f.text(Key::Side, row.str("side"));
    f.text(Key::OperationClass, row.str("operation_class"));
    if options.include_payloads {
        f.text(Key::ArgumentsSha256, row.str("arguments_sha256"));
        f.val(Key::ArgumentsSize, row.int("arguments_size").map(Val::Int));
        f.text(Key::Arguments, row.str("arguments"));
        f.text(Key::ResultSha256, row.str("result_sha256"));
        f.val(Key::ResultSize, row.int("result_size").map(Val::Int));
        f.text(Key::Result, row.str("result"));
    }
}

fn checkpoint<'a>(f: &mut Fields<'a>, c: &'a CheckpointEvent) {
    let meta = c.meta();
    f.val(Key::Start, c.timestamp.map(|_| Val::Time(meta.time_ns)));
    f.owned(Key::EventId, meta.event_id);
    f.text(Key::Kind, Some("checkpoint"));
    f.text(Key::Action, Some("checkpoint"));
    f.text(Key::Success, Some("success"));
    f.text(Key::Message, Some(&c.note));
    f.text(Key::ChainId, Some(&c.chain_id));
    f.val(Key::TreeSize, Some(Val::UInt(c.size)));
    f.text(Key::RootHash, Some(&c.root_hex));
    f.text(Key::Origin, Some(&c.origin));
}

/// A finding's fields: no chain position (findings are not chained), the explanation as the
/// message.
fn finding<'a>(f: &mut Fields<'a>, row: &FindingRow<'a>) {
    f.val(Key::Start, row.time_ns("detected_at").map(Val::Time));
    f.val(Key::WindowStart, row.time_ns("window_start").map(Val::Time));
    f.val(Key::WindowEnd, row.time_ns("window_end").map(Val::Time));
    f.text(Key::EventId, row.str("finding_id"));
    f.text(Key::Kind, Some(EventKind::Finding.as_str()));
    f.text(Key::Principal, row.str("principal"));
    f.text(Key::Message, row.str("explanation"));
    f.text(Key::Detector, row.str("detector"));
    f.text(Key::Rule, row.str("rule"));
    f.text(Key::FindingSeverity, row.str("severity"));
    f.text(Key::EntityKind, row.str("entity_kind"));
    f.text(Key::Entity, row.str("entity"));
    f.text(Key::Target, row.str("tool_name"));
    f.text(Key::Server, row.str("server_name"));
    f.text(Key::Team, row.str("team"));
    f.text(Key::Tenant, row.str("tenant"));
    f.val(Key::Observed, row.float("observed").map(Val::Float));
    f.val(Key::Expected, row.float("expected").map(Val::Float));
    f.val(Key::Score, row.float("score").map(Val::Float));
}
