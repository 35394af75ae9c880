//! What a destination is sent: a record read back from the store (a row of an Arrow batch, with
//! its chain position), an anomaly finding (a row of the `anomalies` table, which is derived
//! data and not chained), or a signed checkpoint. Formats read records and findings through
//! typed accessors ([`RecordRow`], [`FindingRow`]), by column name, so they never depend on
//! column order.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeBinaryArray, MapArray, RecordBatch, StringArray,
};
use arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampNanosecondType, UInt16Type,
};
use calltrail_schemas::finding::Severity;

/// The kind of an event, as SIEMs see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A row of `tool_calls`.
    ToolCall,
    /// A row of `llm_calls`.
    LlmCall,
    /// A row of `audit_events` (a legal hold placed or released).
    Audit,
    /// A signed checkpoint of a chain: its newest head, kept off-box.
    Checkpoint,
    /// A row of `anomalies`: what a detector found in one window.
    Finding,
}

impl EventKind {
    /// The stable name used in headers, structured data and native JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToolCall => "tool_call",
            Self::LlmCall => "llm_call",
            Self::Audit => "audit",
            Self::Checkpoint => "checkpoint",
            Self::Finding => "finding",
        }
    }

    /// The kind of rows of `table`, if it is a chained table Calltrail forwards as records
    /// (findings are read as [`FindingRow`]s, not records, so `anomalies` is not one).
    pub fn of_table(table: &str) -> Option<Self> {
        match table {
            "tool_calls" => Some(Self::ToolCall),
            "llm_calls" => Some(Self::LlmCall),
            "audit_events" => Some(Self::Audit),
            _ => None,
        }
    }
}

/// What every event carries, whatever its format, so a SIEM can deduplicate and detect gaps:
/// the event id, the chain, the seq and the leaf hash. A finding has no chain position: its
/// chain id and hash are empty and its seq 0; its event id (the finding id) is the dedup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// The event's kind.
    pub kind: EventKind,
    /// Stable id: the record's event id, a finding's id, or
    /// `checkpoint:<chain>:<size>:<timestamp>`.
    pub event_id: String,
    /// The chain.
    pub chain_id: String,
    /// The record's seq; for a checkpoint, its tree size.
    pub seq: u64,
    /// The record's leaf hash (hex); for a checkpoint, its root hash (hex).
    pub hash: String,
    /// When it happened (ns since the epoch): the call's start, the checkpoint's signing, or
    /// the finding's detection.
    pub time_ns: i64,
    /// The tenant (legal entity), when known.
    pub tenant: Option<String>,
    /// The principal, when known.
    pub principal: Option<String>,
    /// Syslog severity (RFC 5424: 0 emergency … 7 debug): 4 for denied calls and errors, 5
    /// for writes, deletes and admin calls and for checkpoints, 6 otherwise; for findings,
    /// low 5 (notice), medium 4 (warning), high 3 (error), critical 2 (critical).
    pub severity: u8,
}

/// Column positions of one batch, looked up once per batch rather than once per value.
#[derive(Debug, Clone)]
pub struct Columns {
    table: String,
    index: HashMap<String, usize>,
}

impl Columns {
    /// The columns of `batch`, a batch of `table`.
    pub fn new(table: &str, batch: &RecordBatch) -> Self {
        let index = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), i))
            .collect();
        Self {
            table: table.to_owned(),
            index,
        }
    }
}

/// One value of a record, typed by its column (see [`RecordRow::cells`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// Null.
    Null,
    /// Text.
    Str(&'a str),
    /// An integer (Int64 or UInt16).
    Int(i64),
    /// A Float64.
    Float(f64),
    /// A Boolean.
    Bool(bool),
    /// A timestamp, in nanoseconds since the epoch.
    TimeNs(i64),
    /// A 32-byte hash.
    Hash(&'a [u8]),
    /// A map: read it with [`RecordRow::map`].
    Map,
    /// A type forwarding does not know.
    Other,
}

/// One stored record: row `row` of `batch`.
#[derive(Debug, Clone, Copy)]
pub struct RecordRow<'a> {
    batch: &'a RecordBatch,
    columns: &'a Columns,
    row: usize,
}

impl<'a> RecordRow<'a> {
    /// Row `row` of `batch`, whose columns are `columns`.
    pub fn new(batch: &'a RecordBatch, columns: &'a Columns, row: usize) -> Self {
        Self {
            batch,
            columns,
            row,
        }
    }

    /// The table the record is from.
    pub fn table(&self) -> &'a str {
        &self.columns.table
    }

    fn column(&self, name: &str) -> Option<&'a dyn Array> {
        let i = *self.columns.index.get(name)?;
        let c = self.batch.column(i).as_ref();
        c.is_valid(self.row).then_some(c)
    }

    /// The names of the record's columns, in stored order.
    pub fn column_names(&self) -> impl Iterator<Item = &'a str> {
        self.batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
    }

    /// Every column's name and value, in stored order, each typed once by its column: the
    /// fast way to walk a whole record (native JSON does).
    pub fn cells(&self) -> impl Iterator<Item = (&'a str, Cell<'a>)> + 'a {
        let (batch, row) = (self.batch, self.row);
        batch
            .schema_ref()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(move |(field, c)| {
                let name = field.name().as_str();
                if c.is_null(row) {
                    return (name, Cell::Null);
                }
                let cell = match c.data_type() {
                    DataType::Utf8 => Cell::Str(c.as_string::<i32>().value(row)),
                    DataType::Int64 => Cell::Int(c.as_primitive::<Int64Type>().value(row)),
                    DataType::UInt16 => {
                        Cell::Int(i64::from(c.as_primitive::<UInt16Type>().value(row)))
                    }
                    DataType::Float64 => Cell::Float(c.as_primitive::<Float64Type>().value(row)),
                    DataType::Boolean => Cell::Bool(c.as_boolean().value(row)),
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                        Cell::TimeNs(c.as_primitive::<TimestampNanosecondType>().value(row))
                    }
                    DataType::FixedSizeBinary(_) => Cell::Hash(c.as_fixed_size_binary().value(row)),
                    DataType::Map(..) => Cell::Map,
                    _ => Cell::Other,
                };
                (name, cell)
            })
    }

    /// A text column's value; `None` when null or not text.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        let c: &StringArray = self.column(name)?.as_string_opt::<i32>()?;
        Some(c.value(self.row))
    }

    /// An integer column's value (Int64 or UInt16).
    pub fn int(&self, name: &str) -> Option<i64> {
        let c = self.column(name)?;
        match c.data_type() {
            DataType::Int64 => Some(c.as_primitive::<Int64Type>().value(self.row)),
            DataType::UInt16 => Some(i64::from(c.as_primitive::<UInt16Type>().value(self.row))),
            _ => None,
        }
    }

    /// A Float64 column's value.
    pub fn float(&self, name: &str) -> Option<f64> {
        Some(
            self.column(name)?
                .as_primitive_opt::<Float64Type>()?
                .value(self.row),
        )
    }

    /// A Boolean column's value.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        let c: &BooleanArray = self.column(name)?.as_boolean_opt()?;
        Some(c.value(self.row))
    }

    /// A timestamp column's value, in nanoseconds since the epoch.
    pub fn time_ns(&self, name: &str) -> Option<i64> {
        let c = self.column(name)?;
        match c.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                Some(c.as_primitive::<TimestampNanosecondType>().value(self.row))
            }
            _ => None,
        }
    }

    /// A 32-byte hash column's value, as lowercase hex.
    pub fn hash_hex(&self, name: &str) -> Option<String> {
        let c: &FixedSizeBinaryArray = self.column(name)?.as_fixed_size_binary_opt()?;
        Some(hex::encode(c.value(self.row)))
    }

    /// A map column's entries, in stored order (values may be null).
    pub fn map(&self, name: &str) -> Vec<(&'a str, Option<&'a str>)> {
        let Some(c) = self.column(name) else {
            return Vec::new();
        };
        let Some(m) = c.as_any().downcast_ref::<MapArray>() else {
            return Vec::new();
        };
        let offsets = m.value_offsets();
        let (start, end) = (offsets[self.row] as usize, offsets[self.row + 1] as usize);
        let (Some(keys), Some(values)) = (
            m.keys().as_string_opt::<i32>(),
            m.values().as_string_opt::<i32>(),
        ) else {
            return Vec::new();
        };
        (start..end)
            .map(|i| (keys.value(i), values.is_valid(i).then(|| values.value(i))))
            .collect()
    }

    /// The record's kind, from its table.
    pub fn kind(&self) -> EventKind {
        EventKind::of_table(self.table()).unwrap_or(EventKind::ToolCall)
    }

    /// The event id, chain position and the fields transports route by.
    pub fn meta(&self) -> EventMeta {
        let kind = self.kind();
        let severity = match kind {
            EventKind::ToolCall => match self.str("outcome") {
                Some("denied" | "tool_error" | "protocol_error") => 4,
                _ => match self.str("operation_class") {
                    Some("write" | "delete" | "admin") => 5,
                    _ => 6,
                },
            },
            EventKind::LlmCall => {
                if self.boolean("is_error") == Some(true) {
                    4
                } else {
                    6
                }
            }
            EventKind::Audit => 5,
            // Not tables of records ([`RecordRow::kind`] never says so): never reached.
            EventKind::Checkpoint | EventKind::Finding => 5,
        };
        EventMeta {
            kind,
            event_id: self.str("event_id").unwrap_or_default().to_owned(),
            chain_id: self.str("chain_id").unwrap_or_default().to_owned(),
            seq: self
                .int("seq")
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or_default(),
            hash: self.hash_hex("leaf_hash").unwrap_or_default(),
            time_ns: self
                .time_ns("start_time")
                .or_else(|| self.time_ns("time"))
                .unwrap_or_default(),
            tenant: self.str("tenant").map(str::to_owned),
            principal: self
                .str("principal")
                .or_else(|| self.str("actor"))
                .map(str::to_owned),
            severity,
        }
    }
}

/// A signed checkpoint, forwarded so that the newest chain head exists outside Calltrail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEvent {
    /// The chain.
    pub chain_id: String,
    /// The checkpoint's origin line (`<log name>/<chain id>`).
    pub origin: String,
    /// The tree size: records in the chain.
    pub size: u64,
    /// The tree head, hex.
    pub root_hex: String,
    /// When it was signed (Unix seconds), when it says.
    pub timestamp: Option<u64>,
    /// The signed note itself, verifiable with the store's public key.
    pub note: String,
}

impl CheckpointEvent {
    /// Its meta: id `checkpoint:<chain>:<size>:<timestamp>`, seq = size, hash = root.
    pub fn meta(&self) -> EventMeta {
        let ts = self.timestamp.unwrap_or_default();
        EventMeta {
            kind: EventKind::Checkpoint,
            event_id: format!("checkpoint:{}:{}:{ts}", self.chain_id, self.size),
            chain_id: self.chain_id.clone(),
            seq: self.size,
            hash: self.root_hex.clone(),
            time_ns: i64::try_from(ts)
                .unwrap_or_default()
                .saturating_mul(1_000_000_000),
            tenant: None,
            principal: None,
            severity: 5,
        }
    }
}

/// One anomaly finding: row `row` of a batch of the `anomalies` table
/// (`calltrail_schemas::finding::anomalies_schema`). Read by column name like a record; the
/// accessors return `None` for a null, a missing column or a column of another type, so an
/// odd file never makes a format fail.
#[derive(Debug, Clone, Copy)]
pub struct FindingRow<'a> {
    row: RecordRow<'a>,
}

impl<'a> FindingRow<'a> {
    /// Row `row` of `batch`, whose columns are `columns` (made with the table name
    /// `anomalies`).
    pub fn new(batch: &'a RecordBatch, columns: &'a Columns, row: usize) -> Self {
        Self {
            row: RecordRow::new(batch, columns, row),
        }
    }

    /// A text column's value.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.row.str(name)
    }

    /// A Float64 column's value.
    pub fn float(&self, name: &str) -> Option<f64> {
        self.row.float(name)
    }

    /// A timestamp column's value, in nanoseconds since the epoch.
    pub fn time_ns(&self, name: &str) -> Option<i64> {
        self.row.time_ns(name)
    }

    /// Every column's name and value, in stored order (see [`RecordRow::cells`]).
    pub fn cells(&self) -> impl Iterator<Item = (&'a str, Cell<'a>)> + 'a {
        self.row.cells()
    }

    /// The finding's severity; `None` when the stored text is not one Calltrail knows.
    pub fn severity(&self) -> Option<Severity> {
        self.str("severity").and_then(Severity::parse)
    }

    /// Its meta: id = the finding id, no chain position, time = when it was detected.
    pub fn meta(&self) -> EventMeta {
        // Syslog severities whose names say the same: notice, warning, error, critical. An
        // unknown severity is a warning: a finding is worth a look whatever its label.
        let severity = match self.severity() {
            Some(Severity::Low) => 5,
            Some(Severity::Medium) | None => 4,
            Some(Severity::High) => 3,
            Some(Severity::Critical) => 2,
        };
        EventMeta {
            kind: EventKind::Finding,
            event_id: self.str("finding_id").unwrap_or_default().to_owned(),
            chain_id: String::new(),
            seq: 0,
            hash: String::new(),
            time_ns: self
                .time_ns("detected_at")
                .or_else(|| self.time_ns("window_start"))
                .unwrap_or_default(),
            tenant: self.str("tenant").map(str::to_owned),
            principal: self.str("principal").map(str::to_owned),
            severity,
        }
    }
}

/// An event to format.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stored record.
    Record(RecordRow<'a>),
    /// A signed checkpoint.
    Checkpoint(&'a CheckpointEvent),
    /// An anomaly finding.
    Finding(FindingRow<'a>),
}

impl Event<'_> {
    /// Its meta.
    pub fn meta(&self) -> EventMeta {
        match self {
            Self::Record(r) => r.meta(),
            Self::Checkpoint(c) => c.meta(),
            Self::Finding(f) => f.meta(),
        }
    }
}
