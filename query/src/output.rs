//! Query results as a text table, CSV or JSON (an array of row objects).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::{Error, Result};

/// Output format of `calltrail query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// RFC 4180 CSV with a header row; nested values rendered as text.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
    /// An Arrow IPC stream: the batches as they are, for Arrow-native clients.
    ArrowIpc,
}

fn out_err(e: impl std::fmt::Display) -> Error {
    Error::Output(e.to_string())
}

/// Renders batches in `format`.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)
            .map_err(out_err)?
            .to_string()
            .into_bytes()),
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(out_err)?;
            w.finish().map_err(out_err)?;
            let mut out = w.into_inner();
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
            Ok(out)
        }
        Format::ArrowIpc => {
            let schema = batches
                .first()
                .map(RecordBatch::schema)
                .unwrap_or_else(|| Arc::new(Schema::empty()));
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema).map_err(out_err)?;
            for b in batches {
                w.write(b).map_err(out_err)?;
            }
            w.finish().map_err(out_err)?;
            w.into_inner().map_err(out_err)
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            for b in batches {
                w.write(&flatten_nested(b)?).map_err(out_err)?;
            }
            Ok(w.into_inner())
        }
    }
}

/// CSV holds only scalars: maps and lists become their text form.
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())
                .map_err(out_err)?;
            let mut b = StringBuilder::new();
            for i in 0..col.len() {
                if col.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(fmt.value(i).to_string());
                }
            }
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(b.finish()));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(Arc::clone(col));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(out_err)
}
