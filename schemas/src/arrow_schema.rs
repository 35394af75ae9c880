//! Arrow schemas of the `tool_calls` and `llm_calls` tables, and builders that turn records
//! into `RecordBatch`es. Column order and meaning: `docs/specs/record.md`.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeBinaryArray, Float64Builder, Int64Array, Int64Builder,
    MapBuilder, MapFieldNames, RecordBatch, StringArray, StringBuilder, TimestampNanosecondBuilder,
    UInt16Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::SCHEMA_VERSION;
use crate::record::{Attribution, LlmCall, Payload, Source, ToolCall};

/// Schema metadata key carrying [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "calltrail.schema_version";
/// Schema metadata key naming the table (`tool_calls` or `llm_calls`).
pub const TABLE_KEY: &str = "calltrail.table";
/// Name of the tool-call table.
pub const TOOL_CALLS: &str = "tool_calls";
/// Name of the LLM inference table.
pub const LLM_CALLS: &str = "llm_calls";

pub(crate) fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Parquet's MAP convention (`key_value` / `key` / `value`), so every reader sees a map.
fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

pub(crate) fn map_type() -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn req(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, false)
}

fn opt(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, true)
}

/// The chain columns every stored row ends with (`docs/specs/chain.md` §2).
fn chain_fields() -> [Field; 4] {
    [
        req("chain_id", DataType::Utf8),
        req("seq", DataType::Int64),
        req("leaf_hash", DataType::FixedSizeBinary(32)),
        req("chain_hash", DataType::FixedSizeBinary(32)),
    ]
}

/// A batch's place in its chain: the values of the chain columns.
#[derive(Debug, Clone, Copy)]
pub struct ChainColumns<'a> {
    /// The chain id.
    pub chain_id: &'a str,
    /// Seq of the first row; the rows' seqs are consecutive.
    pub first_seq: i64,
    /// One leaf hash per row.
    pub leaf_hashes: &'a [[u8; 32]],
    /// One chained hash per row.
    pub chain_hashes: &'a [[u8; 32]],
}

/// Appends the chain columns to a content batch built by [`tool_calls_batch`] or
/// [`llm_calls_batch`], giving a batch of the stored schema ([`tool_calls_schema`],
/// [`llm_calls_schema`]).
pub fn with_chain(batch: &RecordBatch, chain: ChainColumns<'_>) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    if chain.leaf_hashes.len() != n || chain.chain_hashes.len() != n {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{n} rows but {} leaf hashes and {} chained hashes",
            chain.leaf_hashes.len(),
            chain.chain_hashes.len()
        )));
    }
    let schema = stored(&batch.schema());
    let hashes = |h: &[[u8; 32]]| {
        FixedSizeBinaryArray::try_from_iter(h.iter()).map(|a| Arc::new(a) as ArrayRef)
    };
    let mut cols = batch.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec![chain.chain_id; n])));
    cols.push(Arc::new(Int64Array::from_iter_values(
        (0..n as i64).map(|i| chain.first_seq + i),
    )));
    cols.push(hashes(chain.leaf_hashes)?);
    cols.push(hashes(chain.chain_hashes)?);
    RecordBatch::try_new(schema, cols)
}

pub(crate) fn with_metadata(fields: Vec<Field>, table: &str) -> SchemaRef {
    let metadata = [
        (SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
        (TABLE_KEY.to_string(), table.to_string()),
    ]
    .into_iter()
    .collect();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

fn attribution_fields() -> Vec<Field> {
    vec![
        s("principal"),
        s("principal_source"),
        req("principal_kind", DataType::Utf8),
        req("principal_reason", DataType::Utf8),
        s("team"),
        s("tenant"),
        s("cost_center"),
    ]
}

fn source_fields() -> Vec<Field> {
    vec![
        s("source_service"),
        s("source_instance"),
        s("source_sdk"),
        s("source_scope"),
        req("ingest_protocol", DataType::Utf8),
        s("ingest_peer"),
        s("ingest_source"),
    ]
}

static TOOL_CALLS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![
        req("schema_version", DataType::UInt16),
        req("event_id", DataType::Utf8),
        req("trace_id", DataType::Utf8),
        req("span_id", DataType::Utf8),
        s("parent_span_id"),
        req("call_id", DataType::Utf8),
        req("is_request", DataType::Boolean),
        req("side", DataType::Utf8),
        req("span_name", DataType::Utf8),
        req("start_time", ts()),
        req("end_time", ts()),
        req("duration_ms", DataType::Float64),
        req("observed_time", ts()),
        req("method", DataType::Utf8),
        s("tool_name"),
        s("prompt_name"),
        s("resource_uri"),
        s("target"),
        req("operation_class", DataType::Utf8),
        req("outcome", DataType::Utf8),
        s("error_type"),
        opt("jsonrpc_code", DataType::Int64),
        s("error_message"),
        s("request_id"),
        s("protocol_version"),
        s("session_id"),
        s("server_name"),
        s("client_name"),
    ];
    f.extend(attribution_fields());
    f.extend([
        s("network_transport"),
        s("client_address"),
        opt("client_port", DataType::Int64),
        s("server_address"),
        opt("server_port", DataType::Int64),
    ]);
    f.extend(source_fields());
    f.extend([
        s("arguments_sha256"),
        opt("arguments_size", DataType::Int64),
        s("arguments"),
        s("result_sha256"),
        opt("result_size", DataType::Int64),
        s("result"),
        opt("attributes", map_type()),
        opt("resource_attributes", map_type()),
    ]);
    with_metadata(f, TOOL_CALLS)
});

static TOOL_CALLS_STORED: LazyLock<SchemaRef> = LazyLock::new(|| stored(&TOOL_CALLS_SCHEMA));
static LLM_CALLS_STORED: LazyLock<SchemaRef> = LazyLock::new(|| stored(&LLM_CALLS_SCHEMA));

pub(crate) fn stored(content: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = content
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(chain_fields());
    Arc::new(Schema::new_with_metadata(
        fields,
        content.metadata().clone(),
    ))
}

static LLM_CALLS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![
        req("schema_version", DataType::UInt16),
        req("event_id", DataType::Utf8),
        req("trace_id", DataType::Utf8),
        req("span_id", DataType::Utf8),
        s("parent_span_id"),
        req("span_name", DataType::Utf8),
        req("start_time", ts()),
        req("end_time", ts()),
        req("duration_ms", DataType::Float64),
        req("observed_time", ts()),
        s("operation"),
        s("provider"),
        s("request_model"),
        s("response_model"),
        opt("input_tokens", DataType::Int64),
        opt("output_tokens", DataType::Int64),
        opt("cache_read_input_tokens", DataType::Int64),
        opt("cache_write_input_tokens", DataType::Int64),
        opt("reasoning_output_tokens", DataType::Int64),
        req("is_error", DataType::Boolean),
        s("error_type"),
    ];
    f.extend(attribution_fields());
    f.extend(source_fields());
    f.push(opt("attributes", map_type()));
    with_metadata(f, LLM_CALLS)
});

/// Arrow schema of the stored `tool_calls` table: the record's columns, then the chain's.
pub fn tool_calls_schema() -> SchemaRef {
    TOOL_CALLS_STORED.clone()
}

/// Arrow schema of the stored `llm_calls` table: the record's columns, then the chain's.
pub fn llm_calls_schema() -> SchemaRef {
    LLM_CALLS_STORED.clone()
}

fn duration_ms(start: i64, end: i64) -> f64 {
    end.saturating_sub(start) as f64 / 1e6
}

struct AttributionCols {
    principal: StringBuilder,
    principal_source: StringBuilder,
    principal_kind: StringBuilder,
    principal_reason: StringBuilder,
    team: StringBuilder,
    tenant: StringBuilder,
    cost_center: StringBuilder,
}

impl AttributionCols {
    fn new(n: usize) -> Self {
        Self {
            principal: StringBuilder::with_capacity(n, n * 16),
            principal_source: StringBuilder::with_capacity(n, n * 16),
            principal_kind: StringBuilder::with_capacity(n, n * 8),
            principal_reason: StringBuilder::with_capacity(n, n * 16),
            team: StringBuilder::with_capacity(n, n * 8),
            tenant: StringBuilder::with_capacity(n, n * 8),
            cost_center: StringBuilder::with_capacity(n, n * 8),
        }
    }

    fn append(&mut self, a: &Attribution) {
        self.principal.append_option(a.principal.as_deref());
        self.principal_source
            .append_option(a.principal_source.as_deref());
        self.principal_kind.append_value(a.kind().as_str());
        self.principal_reason.append_value(&a.principal_reason);
        self.team.append_option(a.team.as_deref());
        self.tenant.append_option(a.tenant.as_deref());
        self.cost_center.append_option(a.cost_center.as_deref());
    }

    fn finish(mut self, out: &mut Vec<ArrayRef>) {
        for b in [
            &mut self.principal,
            &mut self.principal_source,
            &mut self.principal_kind,
            &mut self.principal_reason,
            &mut self.team,
            &mut self.tenant,
            &mut self.cost_center,
        ] {
            out.push(Arc::new(b.finish()));
        }
    }
}

struct SourceCols {
    service: StringBuilder,
    instance: StringBuilder,
    sdk: StringBuilder,
    scope: StringBuilder,
    ingest_protocol: StringBuilder,
    ingest_peer: StringBuilder,
    ingest_source: StringBuilder,
}

impl SourceCols {
    fn new(n: usize) -> Self {
        Self {
            service: StringBuilder::with_capacity(n, n * 16),
            instance: StringBuilder::with_capacity(n, n * 16),
            sdk: StringBuilder::with_capacity(n, n * 16),
            scope: StringBuilder::with_capacity(n, n * 16),
            ingest_protocol: StringBuilder::with_capacity(n, n * 12),
            ingest_peer: StringBuilder::with_capacity(n, n * 16),
            ingest_source: StringBuilder::with_capacity(n, n * 8),
        }
    }

    fn append(&mut self, s: &Source) {
        self.service.append_option(s.service.as_deref());
        self.instance.append_option(s.instance.as_deref());
        self.sdk.append_option(s.sdk.as_deref());
        self.scope.append_option(s.scope.as_deref());
        self.ingest_protocol.append_value(s.ingest_protocol);
        self.ingest_peer.append_option(s.ingest_peer.as_deref());
        self.ingest_source.append_option(s.ingest_source.as_deref());
    }

    fn finish(mut self, out: &mut Vec<ArrayRef>) {
        for b in [
            &mut self.service,
            &mut self.instance,
            &mut self.sdk,
            &mut self.scope,
            &mut self.ingest_protocol,
            &mut self.ingest_peer,
            &mut self.ingest_source,
        ] {
            out.push(Arc::new(b.finish()));
        }
    }
}

pub(crate) type StringMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

pub(crate) fn map_builder() -> StringMapBuilder {
    MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    )
}

pub(crate) fn append_map(
    b: &mut StringMapBuilder,
    kv: &[(String, String)],
) -> Result<(), ArrowError> {
    for (k, v) in kv {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    b.append(true)
}

fn append_payload(
    sha: &mut StringBuilder,
    size: &mut Int64Builder,
    content: &mut StringBuilder,
    p: &Payload,
) {
    sha.append_option(p.sha256.as_deref());
    size.append_option(p.size);
    content.append_option(p.content.as_deref());
}

/// Builds the content columns of a `tool_calls` batch from records, in the order given; the
/// writer adds the chain columns with [`with_chain`].
pub fn tool_calls_batch(rows: &[&ToolCall]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut version = UInt16Builder::with_capacity(n);
    let mut event_id = StringBuilder::with_capacity(n, n * 24);
    let mut trace_id = StringBuilder::with_capacity(n, n * 24);
    let mut span_id = StringBuilder::with_capacity(n, n * 24);
    let mut parent_span_id = StringBuilder::with_capacity(n, n * 24);
    let mut call_id = StringBuilder::with_capacity(n, n * 24);
    let mut side = StringBuilder::with_capacity(n, n * 24);
    let mut span_name = StringBuilder::with_capacity(n, n * 24);
    let mut method = StringBuilder::with_capacity(n, n * 24);
    let mut is_request = BooleanBuilder::with_capacity(n);
    let mut start = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut duration = Float64Builder::with_capacity(n);
    let mut observed = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut tool_name = StringBuilder::new();
    let mut prompt_name = StringBuilder::new();
    let mut resource_uri = StringBuilder::new();
    let mut target = StringBuilder::new();
    let mut op_class = StringBuilder::new();
    let mut outcome = StringBuilder::new();
    let mut error_type = StringBuilder::new();
    let mut jsonrpc_code = Int64Builder::with_capacity(n);
    let mut error_message = StringBuilder::new();
    let mut request_id = StringBuilder::new();
    let mut protocol_version = StringBuilder::new();
    let mut session_id = StringBuilder::new();
    let mut server_name = StringBuilder::new();
    let mut client_name = StringBuilder::new();
    let mut attribution = AttributionCols::new(n);
    let mut transport = StringBuilder::new();
    let mut client_address = StringBuilder::new();
    let mut client_port = Int64Builder::with_capacity(n);
    let mut server_address = StringBuilder::new();
    let mut server_port = Int64Builder::with_capacity(n);
    let mut source = SourceCols::new(n);
    let mut args_sha = StringBuilder::new();
    let mut args_size = Int64Builder::with_capacity(n);
    let mut args = StringBuilder::new();
    let mut result_sha = StringBuilder::new();
    let mut result_size = Int64Builder::with_capacity(n);
    let mut result = StringBuilder::new();
    let mut attributes = map_builder();
    let mut resource_attributes = map_builder();

    for r in rows {
        version.append_value(SCHEMA_VERSION);
        event_id.append_value(&r.event_id);
        trace_id.append_value(&r.trace_id);
        span_id.append_value(&r.span_id);
        parent_span_id.append_option(r.parent_span_id.as_deref());
        call_id.append_value(&r.call_id);
        is_request.append_value(r.is_request);
        side.append_value(r.side.as_str());
        span_name.append_value(&r.span_name);
        start.append_value(r.start_time_ns);
        end.append_value(r.end_time_ns);
        duration.append_value(duration_ms(r.start_time_ns, r.end_time_ns));
        observed.append_value(r.observed_time_ns);
        method.append_value(&r.method);
        tool_name.append_option(r.tool_name.as_deref());
        prompt_name.append_option(r.prompt_name.as_deref());
        resource_uri.append_option(r.resource_uri.as_deref());
        target.append_option(r.target());
        op_class.append_value(r.operation_class.as_str());
        outcome.append_value(r.outcome.as_str());
        error_type.append_option(r.error_type.as_deref());
        jsonrpc_code.append_option(r.jsonrpc_code);
        error_message.append_option(r.error_message.as_deref());
        request_id.append_option(r.request_id.as_deref());
        protocol_version.append_option(r.protocol_version.as_deref());
        session_id.append_option(r.session_id.as_deref());
        server_name.append_option(r.server_name.as_deref());
        client_name.append_option(r.client_name.as_deref());
        attribution.append(&r.attribution);
        transport.append_option(r.network_transport.as_deref());
        client_address.append_option(r.client_address.as_deref());
        client_port.append_option(r.client_port);
        server_address.append_option(r.server_address.as_deref());
        server_port.append_option(r.server_port);
        source.append(&r.source);
        append_payload(&mut args_sha, &mut args_size, &mut args, &r.arguments);
        append_payload(&mut result_sha, &mut result_size, &mut result, &r.result);
        append_map(&mut attributes, &r.attributes)?;
        append_map(&mut resource_attributes, &r.resource_attributes)?;
    }

    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(version.finish()),
        Arc::new(event_id.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent_span_id.finish()),
        Arc::new(call_id.finish()),
        Arc::new(is_request.finish()),
        Arc::new(side.finish()),
        Arc::new(span_name.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(duration.finish()),
        Arc::new(observed.finish()),
        Arc::new(method.finish()),
        Arc::new(tool_name.finish()),
        Arc::new(prompt_name.finish()),
        Arc::new(resource_uri.finish()),
        Arc::new(target.finish()),
        Arc::new(op_class.finish()),
        Arc::new(outcome.finish()),
        Arc::new(error_type.finish()),
        Arc::new(jsonrpc_code.finish()),
        Arc::new(error_message.finish()),
        Arc::new(request_id.finish()),
        Arc::new(protocol_version.finish()),
        Arc::new(session_id.finish()),
        Arc::new(server_name.finish()),
        Arc::new(client_name.finish()),
    ];
    attribution.finish(&mut cols);
    cols.extend([
        Arc::new(transport.finish()) as ArrayRef,
        Arc::new(client_address.finish()),
        Arc::new(client_port.finish()),
        Arc::new(server_address.finish()),
        Arc::new(server_port.finish()),
    ]);
    source.finish(&mut cols);
    cols.extend([
        Arc::new(args_sha.finish()) as ArrayRef,
        Arc::new(args_size.finish()),
        Arc::new(args.finish()),
        Arc::new(result_sha.finish()),
        Arc::new(result_size.finish()),
        Arc::new(result.finish()),
        Arc::new(attributes.finish()),
        Arc::new(resource_attributes.finish()),
    ]);
    RecordBatch::try_new(TOOL_CALLS_SCHEMA.clone(), cols)
}

/// Builds the content columns of an `llm_calls` batch from records, in the order given; the
/// writer adds the chain columns with [`with_chain`].
pub fn llm_calls_batch(rows: &[&LlmCall]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut version = UInt16Builder::with_capacity(n);
    let mut event_id = StringBuilder::new();
    let mut trace_id = StringBuilder::new();
    let mut span_id = StringBuilder::new();
    let mut parent = StringBuilder::new();
    let mut span_name = StringBuilder::new();
    let mut start = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut duration = Float64Builder::with_capacity(n);
    let mut observed = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut operation = StringBuilder::new();
    let mut provider = StringBuilder::new();
    let mut request_model = StringBuilder::new();
    let mut response_model = StringBuilder::new();
    let mut tokens: Vec<Int64Builder> = (0..5).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut is_error = BooleanBuilder::with_capacity(n);
    let mut error_type = StringBuilder::new();
    let mut attribution = AttributionCols::new(n);
    let mut source = SourceCols::new(n);
    let mut attributes = map_builder();

    for r in rows {
        version.append_value(SCHEMA_VERSION);
        event_id.append_value(&r.event_id);
        trace_id.append_value(&r.trace_id);
        span_id.append_value(&r.span_id);
        parent.append_option(r.parent_span_id.as_deref());
        span_name.append_value(&r.span_name);
        start.append_value(r.start_time_ns);
        end.append_value(r.end_time_ns);
        duration.append_value(duration_ms(r.start_time_ns, r.end_time_ns));
        observed.append_value(r.observed_time_ns);
        operation.append_option(r.operation.as_deref());
        provider.append_option(r.provider.as_deref());
        request_model.append_option(r.request_model.as_deref());
        response_model.append_option(r.response_model.as_deref());
        let counts = [
            r.input_tokens,
            r.output_tokens,
            r.cache_read_input_tokens,
            r.cache_write_input_tokens,
            r.reasoning_output_tokens,
        ];
        for (b, v) in tokens.iter_mut().zip(counts) {
            b.append_option(v);
        }
        is_error.append_value(r.is_error);
        error_type.append_option(r.error_type.as_deref());
        attribution.append(&r.attribution);
        source.append(&r.source);
        append_map(&mut attributes, &r.attributes)?;
    }

    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(version.finish()),
        Arc::new(event_id.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(span_name.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(duration.finish()),
        Arc::new(observed.finish()),
        Arc::new(operation.finish()),
        Arc::new(provider.finish()),
        Arc::new(request_model.finish()),
        Arc::new(response_model.finish()),
    ];
    cols.extend(tokens.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.push(Arc::new(is_error.finish()));
    cols.push(Arc::new(error_type.finish()));
    attribution.finish(&mut cols);
    source.finish(&mut cols);
    cols.push(Arc::new(attributes.finish()));
    RecordBatch::try_new(LLM_CALLS_SCHEMA.clone(), cols)
}
