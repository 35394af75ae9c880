//! The canonical record encoding (version 1) that record hashes cover: deterministic bytes for
//! one row of a `tool_calls` or `llm_calls` batch, independent of the Parquet encoding, the file
//! path and the column order. Format and test vectors: `docs/specs/chain.md` §1.
//!
//! The encoder reads Arrow columns directly, so the writer (which hashes the batch it is about to
//! write) and the verifier (which hashes the batch it read back) share one implementation, and
//! neither builds intermediate records.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, MapArray, RecordBatch,
    StringArray, TimestampNanosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use sha2::{Digest, Sha256};

/// The magic and version that start every encoding.
pub const MAGIC: &[u8; 4] = b"CTR1";

/// Columns that carry the chain itself and are therefore not part of a record's encoding.
pub const CHAIN_COLUMNS: [&str; 4] = ["chain_id", "seq", "leaf_hash", "chain_hash"];

const TAG_NULL: u8 = 0x00;
const TAG_BOOL: u8 = 0x01;
const TAG_INT: u8 = 0x02;
const TAG_FLOAT: u8 = 0x03;
const TAG_TIMESTAMP: u8 = 0x04;
const TAG_STRING: u8 = 0x05;
const TAG_MAP: u8 = 0x06;

/// Why a batch cannot be encoded or bytes cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A column has a type the encoding does not cover.
    #[error("column {column}: type {data_type} has no canonical encoding")]
    UnsupportedType {
        /// The column's name.
        column: String,
        /// Its Arrow type.
        data_type: String,
    },
    /// The bytes are not a valid version 1 encoding.
    #[error("invalid canonical record at byte {offset}: {message}")]
    Invalid {
        /// Where decoding stopped.
        offset: usize,
        /// What is wrong.
        message: &'static str,
    },
}

/// One column, converted once to the Arrow type its encoding reads.
#[derive(Debug)]
enum Column {
    Bool(BooleanArray),
    Int(Int64Array),
    Float(Float64Array),
    Timestamp(TimestampNanosecondArray),
    Str(StringArray),
    Map(MapArray),
}

impl Column {
    fn of(name: &str, array: &ArrayRef) -> Result<Self, CanonicalError> {
        let unsupported = || CanonicalError::UnsupportedType {
            column: name.to_owned(),
            data_type: array.data_type().to_string(),
        };
        let to = |t: &DataType| cast(array, t).map_err(|_| unsupported());
        Ok(match array.data_type() {
            DataType::Boolean => Column::Bool(array.as_boolean().clone()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Column::Int(to(&DataType::Int64)?.as_primitive().clone()),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                Column::Float(to(&DataType::Float64)?.as_primitive().clone())
            }
            DataType::Timestamp(_, tz) => {
                let t = DataType::Timestamp(TimeUnit::Nanosecond, tz.clone());
                Column::Timestamp(to(&t)?.as_primitive().clone())
            }
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Dictionary(..) => {
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
        }
    }

    /// The type tag every value of this column starts with.
    fn tag(&self) -> u8 {
        match self {
            Column::Bool(_) => TAG_BOOL,
            Column::Int(_) => TAG_INT,
            Column::Float(_) => TAG_FLOAT,
            Column::Timestamp(_) => TAG_TIMESTAMP,
            Column::Str(_) => TAG_STRING,
            Column::Map(_) => TAG_MAP,
        }
    }

    /// The value after its tag.
    fn encode_value(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            Column::Bool(a) => out.push(u8::from(a.value(row))),
            Column::Int(a) => out.extend(a.value(row).to_be_bytes()),
            Column::Float(a) => out.extend(canonical_f64(a.value(row)).to_be_bytes()),
            Column::Timestamp(a) => out.extend(a.value(row).to_be_bytes()),
            Column::Str(a) => put_str(out, a.value(row)),
            Column::Map(a) => encode_map(a, row, out),
        }
    }
}

/// `-0.0` becomes `0.0` and every NaN the one quiet NaN, so equal values encode equally.
fn canonical_f64(v: f64) -> u64 {
    if v.is_nan() {
        0x7FF8_0000_0000_0000
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Arrow (i32 offsets) and the record limits keep every length far below 4 GiB.
    out.extend(u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn encode_map(map: &MapArray, row: usize, out: &mut Vec<u8>) {
    let keys = map.keys().as_string::<i32>();
    let values = map.values().as_string::<i32>();
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let mut entries: Vec<(&str, Option<&str>)> = (start..end)
        .map(|i| (keys.value(i), (!values.is_null(i)).then(|| values.value(i))))
        .collect();
    // Ascending by key, then value, a null value first (`None < Some`). Equal entries are
    // identical, so an unstable sort gives the same bytes.
    if !entries.is_sorted() {
        entries.sort_unstable();
    }
    put_len(out, entries.len());
    for (k, v) in entries {
        put_str(out, k);
        match v {
            None => out.push(TAG_NULL),
            Some(v) => {
                out.push(TAG_STRING);
                put_str(out, v);
            }
        }
    }
}

/// Encodes the rows of one batch. Built once per batch; [`RowEncoder::encode`] per row.
#[derive(Debug)]
pub struct RowEncoder {
    /// `MAGIC` and the table name, encoded once.
    head: Vec<u8>,
    /// Content columns, ascending by name (bytewise), each with its encoded name and type tag:
    /// one copy per field instead of two.
    columns: Vec<(Vec<u8>, Column)>,
}

impl RowEncoder {
    /// Prepares to encode rows of `batch`, a batch of `table`. Chain columns are skipped; any
    /// other column must have a type the encoding covers.
    pub fn new(table: &str, batch: &RecordBatch) -> Result<Self, CanonicalError> {
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            if CHAIN_COLUMNS.contains(&field.name().as_str()) {
                continue;
            }
            columns.push((field.name().clone(), Column::of(field.name(), array)?));
        }
        columns.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let encoded = |s: &str| {
            let mut out = Vec::with_capacity(4 + s.len());
            put_str(&mut out, s);
            out
        };
        let mut head = MAGIC.to_vec();
        head.extend(encoded(table));
        Ok(Self {
            head,
            columns: columns
                .into_iter()
                .map(|(n, c)| {
                    let mut prefix = encoded(&n);
                    prefix.push(c.tag());
                    (prefix, c)
                })
                .collect(),
        })
    }

    /// Appends the canonical bytes of `row` to `out`.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        let count_at = out.len();
        out.extend([0; 4]);
        let mut count = 0u32;
        for (prefix, column) in &self.columns {
            if column.is_null(row) {
                continue;
            }
            out.extend_from_slice(prefix);
            column.encode_value(row, out);
            count += 1;
        }
        out[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
    }

    /// The leaf hash of `row`: `SHA-256(0x00 || canonical bytes)`. `scratch` is reused between
    /// calls to avoid an allocation per row.
    pub fn leaf_hash(&self, row: usize, scratch: &mut Vec<u8>) -> [u8; 32] {
        scratch.clear();
        self.encode(row, scratch);
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(&scratch[..]);
        h.finalize().into()
    }

    /// The leaf hashes of every row, in order.
    pub fn leaf_hashes(&self, rows: usize) -> Vec<[u8; 32]> {
        let mut scratch = Vec::with_capacity(1024);
        (0..rows).map(|r| self.leaf_hash(r, &mut scratch)).collect()
    }
}

/// A value of a decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A binary64 float.
    Float(f64),
    /// Nanoseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A string.
    Str(String),
    /// Map entries in canonical order.
    Map(Vec<(String, Option<String>)>),
}

/// A record decoded from its canonical bytes: what a proof shows a person.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalRecord {
    /// `tool_calls` or `llm_calls`.
    pub table: String,
    /// Non-null fields, ascending by name.
    pub fields: Vec<(String, Value)>,
}

impl CanonicalRecord {
    /// The record as a JSON object (`table` and `fields`); timestamps are nanoseconds.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value as J};
        let fields: Map<String, J> = self
            .fields
            .iter()
            .map(|(name, v)| {
                let j = match v {
                    Value::Bool(b) => J::from(*b),
                    Value::Int(i) | Value::Timestamp(i) => J::from(*i),
                    Value::Float(f) => J::from(*f),
                    Value::Str(s) => J::from(s.as_str()),
                    Value::Map(entries) => J::Object(
                        entries
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_deref().map_or(J::Null, J::from)))
                            .collect(),
                    ),
                };
                (name.clone(), j)
            })
            .collect();
        serde_json::json!({ "table": self.table, "fields": fields })
    }

    /// The value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, message: &'static str) -> Result<T, CanonicalError> {
        Err(CanonicalError::Invalid {
            offset: self.at,
            message,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CanonicalError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(s) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(s)
            }
            _ => self.fail("truncated"),
        }
    }

    fn u8(&mut self) -> Result<u8, CanonicalError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CanonicalError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, CanonicalError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }

    fn str(&mut self) -> Result<String, CanonicalError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => self.fail("string is not UTF-8"),
        }
    }
}

/// Decodes canonical bytes, rejecting anything [`RowEncoder`] could not have produced.
pub fn decode(bytes: &[u8]) -> Result<CanonicalRecord, CanonicalError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return r.fail("not a version 1 canonical record (magic CTR1)");
    }
    let table = r.str()?;
    let n = r.u32()?;
    let mut fields: Vec<(String, Value)> = Vec::new();
    for _ in 0..n {
        let name = r.str()?;
        if let Some((prev, _)) = fields.last()
            && prev.as_bytes() >= name.as_bytes()
        {
            return r.fail("fields out of order or repeated");
        }
        let value = match r.u8()? {
            TAG_BOOL => match r.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return r.fail("boolean is neither 0 nor 1"),
            },
            TAG_INT => Value::Int(r.i64()?),
            TAG_FLOAT => {
                let bits = r.i64()? as u64;
                let v = f64::from_bits(bits);
                if canonical_f64(v) != bits {
                    return r.fail("float is not in canonical form");
                }
                Value::Float(v)
            }
            TAG_TIMESTAMP => Value::Timestamp(r.i64()?),
            TAG_STRING => Value::Str(r.str()?),
            TAG_MAP => Value::Map(decode_map(&mut r)?),
            _ => return r.fail("unknown type tag"),
        };
        fields.push((name, value));
    }
    if r.at != bytes.len() {
        return r.fail("trailing bytes");
    }
    Ok(CanonicalRecord { table, fields })
}

fn decode_map(r: &mut Reader<'_>) -> Result<Vec<(String, Option<String>)>, CanonicalError> {
    let m = r.u32()? as usize;
    // Each entry takes at least 5 bytes: a hostile count cannot make us allocate much.
    let mut entries: Vec<(String, Option<String>)> =
        Vec::with_capacity(m.min(r.bytes.len().saturating_sub(r.at) / 5));
    for _ in 0..m {
        let key = r.str()?;
        let value = match r.u8()? {
            TAG_NULL => None,
            TAG_STRING => Some(r.str()?),
            _ => return r.fail("map value is neither null nor a string"),
        };
        let entry = (key, value);
        if entries.last().is_some_and(|prev| *prev > entry) {
            return r.fail("map entries out of order");
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The leaf hash of canonical bytes: `SHA-256(0x00 || bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
