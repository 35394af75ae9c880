//! Calltrail's native JSON: the stored row as one object, column name → value, in stored
//! column order after a leading `"kind"`. Timestamps are RFC 3339 UTC with nanoseconds, hashes
//! lowercase hex, maps objects; payload columns are left out unless `include_payloads`.
//! A checkpoint is `{"kind":"checkpoint","event_id","chain_id","origin","size","root",
//! "timestamp","note"}`. A finding is its row of `anomalies` the same way, after
//! `"kind":"finding"` (its id is `finding_id`; it has no chain columns).
//!
//! The object is written by hand rather than through `serde_json::Map` so that keys keep the
//! stored order (the `preserve_order` feature would change map order for the whole workspace).

use serde_json::Value;

use super::common::{PAYLOAD_COLUMNS, map_object, rfc3339};
use super::{FormatError, FormatOptions};
use crate::forward::event::{Cell, CheckpointEvent, Event, EventKind, FindingRow, RecordRow};

/// Map-typed columns of the forwarded tables. [`RecordRow::map`] cannot tell a null map from
/// an empty one, so these are always written as objects.
const MAP_COLUMNS: [&str; 3] = ["attributes", "resource_attributes", "details"];

/// Appends `event` as native JSON.
pub(super) fn encode(
    event: &Event<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    match event {
        Event::Record(row) => record(row, options, out),
        Event::Checkpoint(c) => checkpoint(c, out),
        Event::Finding(f) => finding(f, out),
    }
}

fn record(
    row: &RecordRow<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let mut obj = Writer::new(out);
    obj.field("kind", row.kind().as_str())?;
    // Each cell is typed once by its column and written straight out: no intermediate value.
    for (name, cell) in row.cells() {
        if !options.include_payloads && PAYLOAD_COLUMNS.contains(&name) {
            continue;
        }
        match cell {
            Cell::Map => obj.field(name, map_object(row, name))?,
            Cell::Null if MAP_COLUMNS.contains(&name) => obj.field(name, map_object(row, name))?,
            _ => scalar(&mut obj, name, cell)?,
        }
    }
    obj.finish();
    Ok(())
}

/// A finding: its row, after `"kind":"finding"`. The `anomalies` table has no maps and no
/// payload columns.
fn finding(f: &FindingRow<'_>, out: &mut Vec<u8>) -> Result<(), FormatError> {
    let mut obj = Writer::new(out);
    obj.field("kind", EventKind::Finding.as_str())?;
    for (name, cell) in f.cells() {
        scalar(&mut obj, name, cell)?;
    }
    obj.finish();
    Ok(())
}

/// Writes one cell that is not a map (a map, or a type we do not know, is null).
fn scalar(obj: &mut Writer<'_>, name: &str, cell: Cell<'_>) -> Result<(), FormatError> {
    match cell {
        Cell::Str(s) => obj.field(name, s),
        Cell::Int(i) => obj.field(name, i),
        // NaN and infinities become null: JSON has no way to write them.
        Cell::Float(f) => obj.field(name, Value::from(f)),
        Cell::Bool(b) => obj.field(name, b),
        Cell::TimeNs(ns) => obj.field(name, rfc3339(ns)),
        Cell::Hash(h) => obj.field(name, hex::encode(h)),
        Cell::Map | Cell::Null | Cell::Other => obj.field(name, ()),
    }
}

fn checkpoint(c: &CheckpointEvent, out: &mut Vec<u8>) -> Result<(), FormatError> {
    let meta = c.meta();
    let timestamp = c.timestamp.map(|_| rfc3339(meta.time_ns));
    let mut obj = Writer::new(out);
    obj.field("kind", Value::from("checkpoint"))?;
    obj.field("event_id", Value::from(meta.event_id))?;
    obj.field("chain_id", Value::from(c.chain_id.as_str()))?;
    obj.field("origin", Value::from(c.origin.as_str()))?;
    obj.field("size", Value::from(c.size))?;
    obj.field("root", Value::from(c.root_hex.as_str()))?;
    obj.field("timestamp", timestamp.map_or(Value::Null, Value::from))?;
    obj.field("note", Value::from(c.note.as_str()))?;
    obj.finish();
    Ok(())
}

/// Writes one JSON object field by field, in the order given.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn field(&mut self, key: &str, value: impl serde::Serialize) -> Result<(), FormatError> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, key)?;
        self.out.push(b':');
        serde_json::to_writer(&mut *self.out, &value)?;
        Ok(())
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
