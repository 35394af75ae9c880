//! Writing records and proofs: a Parquet file per table (and its JSON Lines or CSV form) and a
//! Parquet file of proofs per chain, each opened on its first row and fsynced when closed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryBuilder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde_json::Value;

use super::Format;
use super::files::create;
use super::text::{Renderer, csv_line};
use crate::merkle::Hash;
use crate::{Error, Result, io_err};

/// Rows per Parquet row group (and per proof batch): bounds what a writer buffers.
const ROW_GROUP_ROWS: usize = 65_536;
/// Rows per batch read from a segment, and per batch of proofs written.
pub(crate) const BATCH_ROWS: usize = 8192;

fn fail(message: impl Into<String>) -> Error {
    Error::Integrity(message.into())
}

fn parquet_properties(table: &str) -> Result<WriterProperties> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            "calltrail.export.table".into(),
            table.to_owned(),
        )]));
    // Hashes and ids are (nearly) all distinct: a dictionary would only cost time.
    for c in [
        "event_id",
        "trace_id",
        "span_id",
        "call_id",
        "seq",
        "leaf_hash",
        "chain_hash",
    ] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    Ok(props.build())
}

/// The record files of each table, opened on the first selected row.
pub(crate) struct Tables {
    dir: PathBuf,
    format: Format,
    open: BTreeMap<String, TableFiles>,
}

struct TableFiles {
    parquet: ArrowWriter<File>,
    text: Option<(BufWriter<File>, PathBuf)>,
    rows: u64,
}

impl Tables {
    pub(crate) fn new(dir: &Path, format: Format) -> Self {
        Self {
            dir: dir.to_owned(),
            format,
            open: BTreeMap::new(),
        }
    }

    pub(crate) fn write(&mut self, table: &str, batch: &RecordBatch) -> Result<()> {
        if !self.open.contains_key(table) {
            let path = self.dir.join(format!("records/{table}.parquet"));
            let parquet = ArrowWriter::try_new(
                create(&path)?,
                batch.schema(),
                Some(parquet_properties(table)?),
            )?;
            let text = match self.format {
                Format::Parquet => None,
                Format::Jsonl | Format::Csv => {
                    let path = self.dir.join(format!("records/{table}.{}", self.format));
                    let mut out = BufWriter::new(create(&path)?);
                    if self.format == Format::Csv {
                        let schema = batch.schema();
                        let names: Vec<Option<&str>> = schema
                            .fields()
                            .iter()
                            .map(|f| Some(f.name().as_str()))
                            .collect();
                        out.write_all(csv_line(&names).as_bytes())
                            .map_err(io_err("write", &path))?;
                    }
                    Some((out, path))
                }
            };
            self.open.insert(
                table.to_owned(),
                TableFiles {
                    parquet,
                    text,
                    rows: 0,
                },
            );
        }
        let Some(files) = self.open.get_mut(table) else {
            return Err(fail(format!("internal: no open files for table {table}")));
        };
        files.parquet.write(batch)?;
        files.rows += batch.num_rows() as u64;
        if let Some((out, path)) = &mut files.text {
            let render = Renderer::new(batch).map_err(fail)?;
            for row in 0..batch.num_rows() {
                let line = match self.format {
                    Format::Csv => csv_line(&render.fields(row)),
                    _ => Value::Object(render.json(row)).to_string() + "\n",
                };
                out.write_all(line.as_bytes())
                    .map_err(io_err("write", path.as_path()))?;
            }
        }
        Ok(())
    }

    /// Closes and fsyncs every file; returns the rows per table.
    pub(crate) fn finish(self) -> Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        for (table, files) in self.open {
            let path = self.dir.join(format!("records/{table}.parquet"));
            let f = files.parquet.into_inner()?;
            f.sync_all().map_err(io_err("fsync", &path))?;
            if let Some((out, path)) = files.text {
                let f = out
                    .into_inner()
                    .map_err(|e| io_err("write", &path)(e.into_error()))?;
                f.sync_all().map_err(io_err("fsync", &path))?;
            }
            counts.insert(table, files.rows);
        }
        Ok(counts)
    }
}

/// The Arrow schema of a proofs file.
pub(crate) fn proof_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("chain_id", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("leaf_hash", DataType::FixedSizeBinary(32), false),
        Field::new("tree_size", DataType::Int64, false),
        Field::new("audit_path", DataType::List(Arc::new(path_item())), false),
    ]))
}

fn path_item() -> Field {
    Field::new("item", DataType::FixedSizeBinary(32), false)
}

/// A chain's proofs file, written a batch at a time.
pub(crate) struct Proofs {
    path: PathBuf,
    chain_id: String,
    writer: ArrowWriter<File>,
    seq: Int64Builder,
    table: StringBuilder,
    event_id: StringBuilder,
    leaf: FixedSizeBinaryBuilder,
    tree_size: Int64Builder,
    audit_path: ListBuilder<FixedSizeBinaryBuilder>,
    buffered: usize,
    /// Proofs written.
    pub(crate) rows: u64,
}

impl Proofs {
    pub(crate) fn new(dir: &Path, chain_id: &str) -> Result<Self> {
        let path = dir.join(format!("proofs/{chain_id}.parquet"));
        // Records near each other share the upper nodes of their audit paths: a dictionary
        // over the path's hashes stores each once per row group.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from("table_name"), true)
            .set_column_dictionary_enabled(ColumnPath::from("chain_id"), true)
            .set_column_dictionary_enabled(
                ColumnPath::new(vec!["audit_path".into(), "list".into(), "item".into()]),
                true,
            )
            .set_column_dictionary_page_size_limit(
                ColumnPath::new(vec!["audit_path".into(), "list".into(), "item".into()]),
                64 << 20,
            )
            .build();
        let writer = ArrowWriter::try_new(create(&path)?, proof_schema(), Some(props))?;
        Ok(Self {
            path,
            chain_id: chain_id.to_owned(),
            writer,
            seq: Int64Builder::new(),
            table: StringBuilder::new(),
            event_id: StringBuilder::new(),
            leaf: FixedSizeBinaryBuilder::new(32),
            tree_size: Int64Builder::new(),
            audit_path: ListBuilder::new(FixedSizeBinaryBuilder::new(32)).with_field(path_item()),
            buffered: 0,
            rows: 0,
        })
    }

    pub(crate) fn push(
        &mut self,
        seq: u64,
        table: &str,
        event_id: &str,
        leaf: &Hash,
        tree_size: u64,
        audit_path: &[Hash],
    ) -> Result<()> {
        self.seq.append_value(seq as i64);
        self.table.append_value(table);
        self.event_id.append_value(event_id);
        self.leaf.append_value(leaf)?;
        self.tree_size.append_value(tree_size as i64);
        for h in audit_path {
            self.audit_path.values().append_value(h)?;
        }
        self.audit_path.append(true);
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let n = self.buffered;
        let mut chain = StringBuilder::new();
        for _ in 0..n {
            chain.append_value(&self.chain_id);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(chain.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.table.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.leaf.finish()),
            Arc::new(self.tree_size.finish()),
            Arc::new(self.audit_path.finish()),
        ];
        let batch = RecordBatch::try_new(proof_schema(), columns)?;
        self.writer.write(&batch)?;
        self.buffered = 0;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.flush()?;
        let f = self.writer.into_inner()?;
        f.sync_all().map_err(io_err("fsync", &self.path))
    }

    /// Removes the file of a chain none of whose records were selected.
    pub(crate) fn discard(self) -> Result<()> {
        drop(self.writer);
        std::fs::remove_file(&self.path).map_err(io_err("remove", &self.path))
    }
}
