//! The JSON Lines and CSV forms of exported records, rendered from the Parquet copy's Arrow
//! batches: the export writes them with these functions, and `verify-export` renders the
//! Parquet rows again and compares, field by field, what the text files hold.
//!
//! - JSON Lines: one object per record, column name to value; nulls omitted; timestamps as
//!   RFC 3339 UTC with nanoseconds; hashes as hex; maps as objects (a map with a repeated key
//!   keeps its last value there: the Parquet copy keeps every entry).
//! - CSV (RFC 4180): a header of column names, then one line per record; a null is an empty
//!   field, an empty string the quoted `""`; maps as JSON objects; otherwise as in JSON Lines.
//!   Fields holding `,`, `"`, CR or LF are quoted, with `"` doubled.

use std::io::BufRead;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, Float64Array, Int64Array,
    MapArray, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use serde_json::{Map, Value};

/// One column, converted once to the Arrow type its rendering reads.
#[derive(Debug)]
enum Column {
    Bool(BooleanArray),
    Int(Int64Array),
    Float(Float64Array),
    Timestamp(TimestampNanosecondArray),
    Str(StringArray),
    Map(MapArray),
    Hash(FixedSizeBinaryArray),
}

impl Column {
    fn of(name: &str, array: &ArrayRef) -> Result<Self, String> {
        let unsupported = || format!("column {name}: type {} has no text form", array.data_type());
        let to = |t: &DataType| cast(array, t).map_err(|_| unsupported());
        Ok(match array.data_type() {
            DataType::Boolean => Column::Bool(array.as_boolean().clone()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Column::Int(to(&DataType::Int64)?.as_primitive().clone()),
            DataType::Float32 | DataType::Float64 => {
                Column::Float(to(&DataType::Float64)?.as_primitive().clone())
            }
            DataType::Timestamp(_, tz) => {
                let t = DataType::Timestamp(TimeUnit::Nanosecond, tz.clone());
                Column::Timestamp(to(&t)?.as_primitive().clone())
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                Column::Str(to(&DataType::Utf8)?.as_string::<i32>().clone())
            }
            DataType::Map(_, _) => {
                let map = array.as_map().clone();
                let string = |a: &ArrayRef| matches!(a.data_type(), DataType::Utf8);
                if !string(map.keys()) || !string(map.values()) {
                    return Err(unsupported());
                }
                Column::Map(map)
            }
            DataType::FixedSizeBinary(_) => Column::Hash(array.as_fixed_size_binary().clone()),
            _ => return Err(unsupported()),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_null(row),
            Column::Int(a) => a.is_null(row),
            Column::Float(a) => a.is_null(row),
            Column::Timestamp(a) => a.is_null(row),
            Column::Str(a) => a.is_null(row),
            Column::Map(a) => a.is_null(row),
            Column::Hash(a) => a.is_null(row),
        }
    }

    /// The value as JSON; `None` when null.
    fn json(&self, row: usize) -> Option<Value> {
        if self.is_null(row) {
            return None;
        }
        Some(match self {
            Column::Bool(a) => Value::Bool(a.value(row)),
            Column::Int(a) => Value::from(a.value(row)),
            // JSON has no NaN or infinity: those are written as strings.
            Column::Float(a) => serde_json::Number::from_f64(a.value(row))
                .map_or_else(|| Value::String(a.value(row).to_string()), Value::Number),
            Column::Timestamp(a) => Value::String(rfc3339(a.value(row))),
            Column::Str(a) => Value::String(a.value(row).to_owned()),
            Column::Map(a) => Value::Object(map_entries(a, row)),
            Column::Hash(a) => Value::String(hex::encode(a.value(row))),
        })
    }

    /// The value as CSV field text; `None` when null.
    fn text(&self, row: usize) -> Option<String> {
        if self.is_null(row) {
            return None;
        }
        Some(match self {
            Column::Bool(a) => a.value(row).to_string(),
            Column::Int(a) => a.value(row).to_string(),
            // Rust prints the shortest decimal that reads back as the same float.
            Column::Float(a) => a.value(row).to_string(),
            Column::Timestamp(a) => rfc3339(a.value(row)),
            Column::Str(a) => a.value(row).to_owned(),
            Column::Map(a) => Value::Object(map_entries(a, row)).to_string(),
            Column::Hash(a) => hex::encode(a.value(row)),
        })
    }
}

fn map_entries(map: &MapArray, row: usize) -> Map<String, Value> {
    let keys = map.keys().as_string::<i32>();
    let values = map.values().as_string::<i32>();
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    (start..end)
        .map(|i| {
            let v = if values.is_null(i) {
                Value::Null
            } else {
                Value::String(values.value(i).to_owned())
            };
            (keys.value(i).to_owned(), v)
        })
        .collect()
}

/// RFC 3339 in UTC with nanoseconds: `2026-11-23T16:58:23.123456789Z`.
fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Renders the rows of one batch.
#[derive(Debug)]
pub(crate) struct Renderer {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl Renderer {
    /// Prepares to render the rows of `batch`; fails naming a column with no text form.
    pub(crate) fn new(batch: &RecordBatch) -> Result<Self, String> {
        let schema = batch.schema();
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        let columns = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| Column::of(f.name(), a))
            .collect::<Result<_, _>>()?;
        Ok(Self { names, columns })
    }

    /// The column names, in order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Row `row` as a JSON object, nulls left out.
    pub(crate) fn json(&self, row: usize) -> Map<String, Value> {
        self.names
            .iter()
            .zip(&self.columns)
            .filter_map(|(n, c)| c.json(row).map(|v| (n.clone(), v)))
            .collect()
    }

    /// Row `row`'s CSV fields, `None` for a null.
    pub(crate) fn fields(&self, row: usize) -> Vec<Option<String>> {
        self.columns.iter().map(|c| c.text(row)).collect()
    }
}

/// One CSV line (with its line break) of `fields`, `None` being a null.
pub(crate) fn csv_line<S: AsRef<str>>(fields: &[Option<S>]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let Some(field) = field else { continue };
        let field = field.as_ref();
        if field.is_empty() || field.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(field);
        }
    }
    line.push_str("\r\n");
    line
}

/// A CSV record read back: the line it starts on, and its fields (`None` for a null); or what
/// is wrong with it.
pub(crate) type CsvRecord = Result<(u64, Vec<Option<String>>), String>;

/// Reads RFC 4180 CSV records: each a list of fields, `None` for an empty unquoted field (a
/// null, as [`csv_line`] writes it).
#[derive(Debug)]
pub(crate) struct CsvReader<R> {
    input: R,
    /// 1-based line number where the next record starts.
    line: u64,
}

impl<R: BufRead> CsvReader<R> {
    /// A reader of `input`.
    pub(crate) fn new(input: R) -> Self {
        Self { input, line: 1 }
    }

    /// The next record and the line it starts on; `None` at the end. A record that is not
    /// well-formed CSV is an error naming its line.
    pub(crate) fn next_record(&mut self) -> Option<CsvRecord> {
        let start = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut any = false;
        loop {
            let mut buf = String::new();
            match self.input.read_line(&mut buf) {
                Ok(0) => {
                    if in_quotes {
                        return Some(Err(format!("line {start}: a quoted field is not closed")));
                    }
                    if !any {
                        return None;
                    }
                    fields.push(finish(&mut field, &mut quoted));
                    return Some(Ok((start, fields)));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(format!("line {}: {e}", self.line))),
            }
            any = true;
            self.line += 1;
            let mut chars = buf.chars().peekable();
            while let Some(c) = chars.next() {
                if in_quotes {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            field.push('"');
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        field.push(c);
                    }
                    continue;
                }
                match c {
                    '"' if field.is_empty() && !quoted => {
                        quoted = true;
                        in_quotes = true;
                    }
                    '"' => {
                        return Some(Err(format!(
                            "line {start}: a quote inside an unquoted field, or text after a quoted one"
                        )));
                    }
                    ',' => fields.push(finish(&mut field, &mut quoted)),
                    '\r' if chars.peek() == Some(&'\n') => {}
                    '\n' => {
                        fields.push(finish(&mut field, &mut quoted));
                        return Some(Ok((start, fields)));
                    }
                    _ if quoted => {
                        return Some(Err(format!("line {start}: text after a quoted field")));
                    }
                    _ => field.push(c),
                }
            }
        }
    }
}

fn finish(field: &mut String, quoted: &mut bool) -> Option<String> {
    let value = std::mem::take(field);
    let was_quoted = std::mem::replace(quoted, false);
    (was_quoted || !value.is_empty()).then_some(value)
}
