//! Attribute keys of the OpenTelemetry MCP and GenAI conventions, and the aliases real
//! instrumentation emits instead (see `docs/specs/record.md`, "Sources").
//!
//! The conventions are at stability "Development", so keys move between releases: every key
//! Calltrail reads is a constant here, and each alias list is ordered by preference.

/// `mcp.method.name`: the JSON-RPC method (`tools/call`, `resources/read`, ...).
pub const MCP_METHOD_NAME: &str = "mcp.method.name";
/// ToolHive's legacy duplicate of [`MCP_METHOD_NAME`].
pub const MCP_METHOD_LEGACY: &str = "mcp.method";
/// `gen_ai.tool.name`: the tool of a `tools/call`.
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// Non-standard tool name key (ToolHive legacy and others).
pub const MCP_TOOL_NAME: &str = "mcp.tool.name";
/// `gen_ai.prompt.name`: the prompt of a `prompts/get`.
pub const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
/// `mcp.resource.uri`: the resource of `resources/read` and `resources/subscribe`.
pub const MCP_RESOURCE_URI: &str = "mcp.resource.uri";
/// `jsonrpc.request.id`: the JSON-RPC request id, as a string.
pub const JSONRPC_REQUEST_ID: &str = "jsonrpc.request.id";
/// Non-standard request id key (Traceloop, ToolHive legacy).
pub const MCP_REQUEST_ID: &str = "mcp.request.id";
/// `error.type`: JSON-RPC code as a string, `tool_error`, an exception type, `timeout` or `_OTHER`.
pub const ERROR_TYPE: &str = "error.type";
/// `rpc.response.status_code`: the JSON-RPC error code as a string.
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
/// Newer name of [`RPC_RESPONSE_STATUS_CODE`] on semconv main.
pub const RPC_STATUS_CODE: &str = "rpc.status_code";
/// `http.response.status_code`, set by HTTP gateways in front of MCP servers.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `gen_ai.operation.name`: `execute_tool`, `chat`, `invoke_agent`, ...
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `mcp.protocol.version`.
pub const MCP_PROTOCOL_VERSION: &str = "mcp.protocol.version";
/// `mcp.session.id` (unreliable in practice: never a key for billing or dedup).
pub const MCP_SESSION_ID: &str = "mcp.session.id";
/// `network.transport`: `pipe`, `tcp`, `quic`.
pub const NETWORK_TRANSPORT: &str = "network.transport";
/// `server.address` (client spans).
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port` (client spans).
pub const SERVER_PORT: &str = "server.port";
/// `client.address` (server spans).
pub const CLIENT_ADDRESS: &str = "client.address";
/// `client.port` (server spans).
pub const CLIENT_PORT: &str = "client.port";

/// Server name keys, in order of preference (vendor keys; semconv has none).
pub const SERVER_NAME_KEYS: &[&str] = &[
    "mcp.server.name",
    "fastmcp.server.name",
    "litellm.mcp.server.name",
];
/// Client name keys, in order of preference.
pub const CLIENT_NAME_KEYS: &[&str] = &["mcp.client.name", "gen_ai.client.name"];

/// Traceloop: the entity (tool) name.
pub const TRACELOOP_ENTITY_NAME: &str = "traceloop.entity.name";
/// Traceloop: the span kind (`tool`, `server`, `workflow`, ...).
pub const TRACELOOP_SPAN_KIND: &str = "traceloop.span.kind";
/// Traceloop: the workflow name; only the server-side instrumentation sets it on tool spans.
pub const TRACELOOP_WORKFLOW_NAME: &str = "traceloop.workflow.name";
/// Traceloop: the captured input (arguments). Sensitive.
pub const TRACELOOP_ENTITY_INPUT: &str = "traceloop.entity.input";
/// Traceloop: the captured output (result). Sensitive.
pub const TRACELOOP_ENTITY_OUTPUT: &str = "traceloop.entity.output";

/// Keys that carry tool arguments: sensitive, never stored as content by default.
pub const ARGUMENT_KEYS: &[&str] = &[
    "gen_ai.tool.call.arguments",
    "mcp.tool.arguments",
    TRACELOOP_ENTITY_INPUT,
];
/// Keys that carry tool results: sensitive, never stored as content by default.
pub const RESULT_KEYS: &[&str] = &[
    "gen_ai.tool.call.result",
    TRACELOOP_ENTITY_OUTPUT,
    "mcp.response.value",
];

/// Keys that carry prompt and completion text on model spans: sensitive, never stored.
pub const LLM_CONTENT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
];

/// Decision attributes of gateways (ToolHive and others); a value of `deny`/`denied` means the
/// call was refused by policy.
pub const DECISION_KEYS: &[&str] = &[
    "authz.decision",
    "rate_limit.decision",
    "mcp.authz.decision",
    "policy.decision",
];

/// `gen_ai.provider.name` (newer) and `gen_ai.system` (older): the model provider.
pub const GEN_AI_PROVIDER_KEYS: &[&str] = &["gen_ai.provider.name", "gen_ai.system"];
/// `gen_ai.request.model`.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.response.model`.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Input token keys, newest first (the legacy name last).
pub const INPUT_TOKEN_KEYS: &[&str] = &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"];
/// Output token keys, newest first.
pub const OUTPUT_TOKEN_KEYS: &[&str] = &[
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
];
/// Cache-read input token keys.
pub const CACHE_READ_TOKEN_KEYS: &[&str] = &["gen_ai.usage.cache_read.input_tokens"];
/// Cache-write input token keys (renamed from `cache_creation`).
pub const CACHE_WRITE_TOKEN_KEYS: &[&str] = &[
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
];
/// Reasoning output token keys.
pub const REASONING_TOKEN_KEYS: &[&str] = &["gen_ai.usage.reasoning.output_tokens"];
/// `gen_ai.operation.name` values that are model inference (the `llm_calls` table).
pub const LLM_OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "create_response",
];

/// Resource `service.name`.
pub const SERVICE_NAME: &str = "service.name";
/// Resource `service.instance.id`.
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// Resource `host.name`.
pub const HOST_NAME: &str = "host.name";
/// Resource `telemetry.sdk.language`.
pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
/// Resource `telemetry.sdk.name`.
pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
/// Resource `telemetry.sdk.version`.
pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
