//! The cross-check: Calltrail and DuckDB must return the same rows, the same strings and the
//! same numbers (to a relative tolerance, since sums add in different orders).
//!
//! Columns are matched by name, row by row in result order (every bench query orders its
//! result). Timestamps, hashes and maps are skipped: the engines render them differently (and
//! DuckDB keeps microseconds), and they do not vary between plans.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::json::WriterBuilder;
use arrow::json::writer::JsonArray;
use serde_json::{Map, Value};

use super::BenchResult;
use super::duckdb::DuckQuery;

/// Relative tolerance on numbers.
const TOLERANCE: f64 = 1e-6;

/// Result rows as JSON objects.
type Rows = Vec<Map<String, Value>>;

/// Our result as JSON rows, and the names of the columns worth comparing.
fn ours(batches: &[RecordBatch]) -> BenchResult<(Rows, Vec<String>)> {
    let Some(first) = batches.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let comparable = first
        .schema()
        .fields()
        .iter()
        .filter(|f| {
            !matches!(
                f.data_type(),
                DataType::Timestamp(..)
                    | DataType::Binary
                    | DataType::FixedSizeBinary(_)
                    | DataType::Map(..)
                    | DataType::Struct(_)
                    | DataType::List(_)
            )
        })
        .map(|f| f.name().clone())
        .collect();
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let rows: Vec<Map<String, Value>> = serde_json::from_slice(&writer.into_inner())?;
    Ok((rows, comparable))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= TOLERANCE * x.abs().max(y.abs()).max(1e-9)
        }
        _ => a == b,
    }
}

/// Compares one query's results; returns the differences found (at most a few, described).
pub(crate) fn compare(ours_batches: &[RecordBatch], duck: &DuckQuery) -> BenchResult<Vec<String>> {
    let (rows, comparable) = ours(ours_batches)?;
    let mut diffs = Vec::new();
    if rows.len() != duck.rows {
        diffs.push(format!("{} rows here, {} in DuckDB", rows.len(), duck.rows));
        return Ok(diffs);
    }
    let columns: Vec<(usize, &String)> = duck
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| comparable.contains(c))
        .collect();
    if columns.is_empty() && !rows.is_empty() {
        diffs.push("no column in common to compare".into());
    }
    for (i, (mine, theirs)) in rows.iter().zip(&duck.values).enumerate() {
        for &(j, name) in &columns {
            let a = mine.get(name).unwrap_or(&Value::Null);
            let b = theirs.get(j).unwrap_or(&Value::Null);
            if !same(a, b) {
                diffs.push(format!("row {i}, column {name}: {a} here, {b} in DuckDB"));
                if diffs.len() >= 5 {
                    return Ok(diffs);
                }
            }
        }
    }
    Ok(diffs)
}
