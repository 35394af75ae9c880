//! Audit events: what people and Calltrail itself did to the record (a legal hold placed or
//! released, later a query run). They are chained and signed like tool calls, in the
//! `audit_events` table, so the record of who held or touched what is as tamper-evident as
//! what it concerns.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt16Builder,
};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::error::ArrowError;

use crate::SCHEMA_VERSION;
use crate::arrow_schema::{append_map, map_builder, map_type, stored, ts, with_metadata};

/// Name of the audit table.
pub const AUDIT_EVENTS: &str = "audit_events";

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unique id of the event.
    pub event_id: String,
    /// When it happened, in nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    /// What happened, dotted: `hold.placed`, `hold.released`.
    pub action: String,
    /// Who did it, as they identified themselves (a person's id, or `calltrail`).
    pub actor: String,
    /// What it concerns: a hold id.
    pub subject: String,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    /// The action's parameters (a hold's scope), sorted by key.
    pub details: Vec<(String, String)>,
}

impl AuditEvent {
    /// The value of the detail `key`.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

static AUDIT_EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f = vec![
        Field::new("schema_version", DataType::UInt16, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("time", ts(), false),
        Field::new("action", DataType::Utf8, false),
        Field::new("actor", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("details", map_type(), true),
    ];
    with_metadata(f, AUDIT_EVENTS)
});

static AUDIT_EVENTS_STORED: LazyLock<SchemaRef> = LazyLock::new(|| stored(&AUDIT_EVENTS_SCHEMA));

/// Arrow schema of the stored `audit_events` table: the event's columns, then the chain's.
pub fn audit_events_schema() -> SchemaRef {
    AUDIT_EVENTS_STORED.clone()
}

/// Builds the content columns of an `audit_events` batch; the writer adds the chain columns.
pub fn audit_events_batch(rows: &[&AuditEvent]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut version = UInt16Builder::with_capacity(n);
    let mut event_id = StringBuilder::new();
    let mut time = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut action = StringBuilder::new();
    let mut actor = StringBuilder::new();
    let mut subject = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut details = map_builder();
    for r in rows {
        version.append_value(SCHEMA_VERSION);
        event_id.append_value(&r.event_id);
        time.append_value(r.time_ns);
        action.append_value(&r.action);
        actor.append_value(&r.actor);
        subject.append_value(&r.subject);
        reason.append_option(r.reason.as_deref());
        let mut kv = r.details.clone();
        kv.sort();
        append_map(&mut details, &kv)?;
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(version.finish()),
        Arc::new(event_id.finish()),
        Arc::new(time.finish()),
        Arc::new(action.finish()),
        Arc::new(actor.finish()),
        Arc::new(subject.finish()),
        Arc::new(reason.finish()),
        Arc::new(details.finish()),
    ];
    RecordBatch::try_new(AUDIT_EVENTS_SCHEMA.clone(), cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{RowEncoder, decode};

    #[test]
    fn audit_events_build_and_encode_canonically() {
        let e = AuditEvent {
            event_id: "e1".into(),
            time_ns: 1_700_000_000_000_000_000,
            action: "hold.placed".into(),
            actor: "carol@bank.example".into(),
            subject: "h-1".into(),
            reason: Some("SEC inquiry 42".into()),
            details: vec![
                ("tenant".into(), "acme".into()),
                ("from".into(), "x".into()),
            ],
        };
        assert_eq!(e.detail("tenant"), Some("acme"));
        let batch = audit_events_batch(&[&e]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        let enc = RowEncoder::new(AUDIT_EVENTS, &batch).unwrap();
        let mut bytes = Vec::new();
        enc.encode(0, &mut bytes);
        let json = decode(&bytes).unwrap().to_json().to_string();
        assert!(
            json.contains("audit_events") && json.contains("SEC inquiry 42"),
            "{json}"
        );
        assert_eq!(
            audit_events_schema().fields().len(),
            batch.num_columns() + 4,
            "the stored schema adds the chain columns"
        );
    }
}
