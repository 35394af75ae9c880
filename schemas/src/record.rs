//! The canonical records: one [`ToolCall`] per MCP operation span, one [`LlmCall`] per model
//! inference span. Field meanings are specified in `docs/specs/record.md`.

use std::fmt;
use std::sync::Arc;

/// Which perspective a span records: the caller's (CLIENT) or the callee's (SERVER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The MCP client (or a gateway acting as one) sent the request.
    Client,
    /// The MCP server handled the request.
    Server,
}

impl Side {
    /// The value stored in the `side` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// What a call does to the system behind the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationClass {
    /// Reads or lists data.
    Read,
    /// Creates or changes data, or has an effect outside (a payment, a message).
    Write,
    /// Removes data.
    Delete,
    /// Changes permissions, configuration or the server itself.
    Admin,
    /// Not classified by the catalog nor by the tool name.
    Unknown,
}

impl OperationClass {
    /// The value stored in the `operation_class` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationClass::Read => "read",
            OperationClass::Write => "write",
            OperationClass::Delete => "delete",
            OperationClass::Admin => "admin",
            OperationClass::Unknown => "unknown",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Ok,
    /// The tool ran and reported failure (`CallToolResult.isError`), usually on an HTTP 200.
    ToolError,
    /// The JSON-RPC request failed (an error response, a timeout, an exception).
    ProtocolError,
    /// Refused by authentication, authorization or a gateway policy.
    Denied,
}

impl Outcome {
    /// The value stored in the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Denied => "denied",
        }
    }
}

/// Whom a call can be blamed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    Human,
    /// A shared bot, workload identity or OAuth client id: not a person.
    ServiceAccount,
    /// No principal on the span or its resource.
    Unattributed,
}

impl PrincipalKind {
    /// The value stored in the `principal_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::ServiceAccount => "service_account",
            PrincipalKind::Unattributed => "unattributed",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a record is attributed to, resolved by [`crate::Attributor`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attribution {
    /// The principal (user id, e-mail, workload or client id), as found.
    pub principal: Option<String>,
    /// Where the principal came from, e.g. `span:enduser.id` or `resource:user.id`.
    pub principal_source: Option<String>,
    /// Human, service account or unattributed.
    pub principal_kind: Option<PrincipalKind>,
    /// Why the kind was chosen, e.g. `directory`, `client_id_pattern:claude-desktop`.
    pub principal_reason: String,
    /// Team, from the directory or an attribute.
    pub team: Option<String>,
    /// Tenant or legal entity.
    pub tenant: Option<String>,
    /// Cost centre.
    pub cost_center: Option<String>,
}

impl Attribution {
    /// The principal kind, `unattributed` when none was resolved.
    pub fn kind(&self) -> PrincipalKind {
        self.principal_kind.unwrap_or(PrincipalKind::Unattributed)
    }
}

/// Where a record came from: the exporting process and the ingest connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    /// Resource `service.name` of the exporting process.
    pub service: Option<String>,
    /// Resource `service.instance.id`, else `host.name`.
    pub instance: Option<String>,
    /// `telemetry.sdk.name`/`language`/`version`, e.g. `opentelemetry/python/1.45.2`.
    pub sdk: Option<String>,
    /// Instrumentation scope name and version, e.g. `mcp-python-sdk`.
    pub scope: Option<String>,
    /// Receiver that took the data: `otlp_grpc`, `otlp_http_protobuf` or `otlp_http_json`.
    pub ingest_protocol: &'static str,
    /// Peer address of the connection that delivered it.
    pub ingest_peer: Option<String>,
    /// Authenticated source name (ingest authentication), when configured.
    pub ingest_source: Option<String>,
}

/// What is kept of a tool's arguments or result (see [`crate::sensitive`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// Hex SHA-256 of the content, unless the policy is `none`.
    pub sha256: Option<String>,
    /// Size of the content in bytes, unless the policy is `none`.
    pub size: Option<i64>,
    /// The content itself, only under the `full` policy.
    pub content: Option<String>,
}

/// One MCP operation as seen by one side: the canonical row of the `tool_calls` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Deterministic id: a hash of trace id, span id and side, formatted as a UUID.
    pub event_id: String,
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// 16 lowercase hex characters.
    pub span_id: String,
    /// Parent span, 16 hex characters, absent for a root span.
    pub parent_span_id: Option<String>,
    /// Span id of the wire request this record belongs to: the key that pairs client and server
    /// records of one call within a trace.
    pub call_id: String,
    /// False for spans that were never a request on the wire (e.g. FastMCP's orphan root
    /// `tools/list` spans); such records are kept for audit but not counted as calls.
    pub is_request: bool,
    /// Client or server perspective.
    pub side: Side,
    /// The span name as sent.
    pub span_name: String,
    /// Span start, nanoseconds since the Unix epoch (UTC).
    pub start_time_ns: i64,
    /// Span end, nanoseconds since the Unix epoch (UTC).
    pub end_time_ns: i64,
    /// When Calltrail received it, nanoseconds since the Unix epoch (UTC).
    pub observed_time_ns: i64,
    /// `mcp.method.name`.
    pub method: String,
    /// Tool name for `tools/call`.
    pub tool_name: Option<String>,
    /// Prompt name for `prompts/get`.
    pub prompt_name: Option<String>,
    /// Resource URI for `resources/*`.
    pub resource_uri: Option<String>,
    /// Read, write, delete, admin or unknown.
    pub operation_class: OperationClass,
    /// Ok, tool error, protocol error or denied.
    pub outcome: Outcome,
    /// `error.type` as sent (or derived from the status code).
    pub error_type: Option<String>,
    /// JSON-RPC error code, when there is one.
    pub jsonrpc_code: Option<i64>,
    /// Span status message.
    pub error_message: Option<String>,
    /// JSON-RPC request id (`jsonrpc.request.id` or `mcp.request.id`).
    pub request_id: Option<String>,
    /// `mcp.protocol.version`.
    pub protocol_version: Option<String>,
    /// `mcp.session.id`: informative only.
    pub session_id: Option<String>,
    /// The MCP server's name.
    pub server_name: Option<String>,
    /// The MCP client's name.
    pub client_name: Option<String>,
    /// Who made the call.
    pub attribution: Attribution,
    /// `network.transport`.
    pub network_transport: Option<String>,
    /// `client.address`.
    pub client_address: Option<String>,
    /// `client.port`.
    pub client_port: Option<i64>,
    /// `server.address`.
    pub server_address: Option<String>,
    /// `server.port`.
    pub server_port: Option<i64>,
    /// Who sent it (shared by every record of one resource and scope).
    pub source: Arc<Source>,
    /// What is kept of the tool arguments.
    pub arguments: Payload,
    /// What is kept of the tool result.
    pub result: Payload,
    /// Remaining span attributes, values rendered as text (JSON for arrays and maps).
    pub attributes: Vec<(String, String)>,
    /// Resource attributes, values rendered as text (shared by every record of one resource).
    pub resource_attributes: Arc<Vec<(String, String)>>,
}

impl ToolCall {
    /// The call's target: tool, prompt or resource, whichever applies.
    pub fn target(&self) -> Option<&str> {
        self.tool_name
            .as_deref()
            .or(self.prompt_name.as_deref())
            .or(self.resource_uri.as_deref())
    }
}

/// One model inference span (`gen_ai.operation.name` = `chat`, ...): the row of `llm_calls`.
///
/// Tokens live here, not on MCP spans; chargeback joins them to tool calls by trace id.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    /// Deterministic id from trace id and span id, formatted as a UUID.
    pub event_id: String,
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// 16 lowercase hex characters.
    pub span_id: String,
    /// Parent span, absent for a root span.
    pub parent_span_id: Option<String>,
    /// The span name as sent.
    pub span_name: String,
    /// Span start, nanoseconds since the Unix epoch (UTC).
    pub start_time_ns: i64,
    /// Span end, nanoseconds since the Unix epoch (UTC).
    pub end_time_ns: i64,
    /// When Calltrail received it.
    pub observed_time_ns: i64,
    /// `gen_ai.operation.name`, e.g. `chat`.
    pub operation: Option<String>,
    /// `gen_ai.provider.name` or `gen_ai.system`.
    pub provider: Option<String>,
    /// `gen_ai.request.model`.
    pub request_model: Option<String>,
    /// `gen_ai.response.model`.
    pub response_model: Option<String>,
    /// `gen_ai.usage.input_tokens` (or legacy `prompt_tokens`).
    pub input_tokens: Option<i64>,
    /// `gen_ai.usage.output_tokens` (or legacy `completion_tokens`).
    pub output_tokens: Option<i64>,
    /// `gen_ai.usage.cache_read.input_tokens`.
    pub cache_read_input_tokens: Option<i64>,
    /// `gen_ai.usage.cache_write.input_tokens` (or `cache_creation`).
    pub cache_write_input_tokens: Option<i64>,
    /// `gen_ai.usage.reasoning.output_tokens`.
    pub reasoning_output_tokens: Option<i64>,
    /// True when the span status is ERROR or `error.type` is set.
    pub is_error: bool,
    /// `error.type`.
    pub error_type: Option<String>,
    /// Who made the call.
    pub attribution: Attribution,
    /// Who sent it (shared by every record of one resource and scope).
    pub source: Arc<Source>,
    /// Remaining span attributes.
    pub attributes: Vec<(String, String)>,
}
