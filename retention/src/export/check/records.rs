//! The records: each one's leaf hash recomputed from its values, and the JSON Lines or CSV rows
//! compared, field by field, with the Parquet copy.

use std::fs::File;
use std::io::{BufRead, BufReader};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use calltrail_schemas::canonical::RowEncoder;

use super::{Check, Checker, Record};
use crate::export::Format;
use crate::export::text::{CsvReader, CsvRecord, Renderer};

impl Checker<'_> {
    /// Recomputes every record's leaf hash from its values and remembers the record.
    pub(super) fn records_file(&mut self, table: &str, file: &str, progress: &mut dyn FnMut(u64)) {
        let Some(batches) = self.batches(file) else {
            return;
        };
        let mut rows = 0u64;
        for batch in batches {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    self.find(Check::Unreadable, Some(file), None, e.to_string());
                    break;
                }
            };
            if let Err(e) = self.record_batch(table, file, &batch) {
                self.find(Check::Unreadable, Some(file), None, e);
                break;
            }
            rows += batch.num_rows() as u64;
            progress(batch.num_rows() as u64);
        }
        self.report.records += rows;
        self.report.tables.insert(table.to_owned(), rows);
    }

    fn record_batch(
        &mut self,
        table: &str,
        file: &str,
        batch: &RecordBatch,
    ) -> std::result::Result<(), String> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or(format!("no {name} column"))
        };
        let chains = col("chain_id")?
            .as_string_opt::<i32>()
            .ok_or("chain_id is not text")?;
        let seqs = col("seq")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("seq is not Int64")?;
        let ids = col("event_id")?
            .as_string_opt::<i32>()
            .ok_or("event_id is not text")?;
        let stored = col("leaf_hash")?
            .as_fixed_size_binary_opt()
            .ok_or("leaf_hash is not binary")?;
        let encoder = RowEncoder::new(table, batch).map_err(|e| e.to_string())?;
        let leaves = crate::chain::leaf_hashes(&encoder, batch.num_rows());
        let table_index = self.intern(table);
        for (row, leaf) in leaves.into_iter().enumerate() {
            let (chain, event_id) = (chains.value(row), ids.value(row));
            let Ok(seq) = u64::try_from(seqs.value(row)) else {
                self.find(
                    Check::Unreadable,
                    Some(file),
                    Some((event_id, chain, 0)),
                    "a negative seq",
                );
                continue;
            };
            let record = Some((event_id, chain, seq));
            if stored.is_null(row) || stored.value(row) != leaf.as_slice() {
                self.find(
                    Check::RecordHash,
                    Some(file),
                    record,
                    "the record's values do not hash to its leaf_hash: it was altered",
                );
            }
            let entry = Record {
                table: table_index,
                event_id: event_id.into(),
                leaf,
                proven: false,
            };
            let key = (self.intern(chain), seq);
            if let Some(first) = self.records.insert(key, entry) {
                let detail = format!(
                    "a second record at this seq (the first is {} in records/{}.parquet)",
                    first.event_id,
                    self.name(first.table)
                );
                self.find(Check::RecordDuplicate, Some(file), record, detail);
            }
        }
        Ok(())
    }

    /// The JSON Lines or CSV file of `table` against its Parquet copy, row by row.
    pub(super) fn text_file(&mut self, table: &str, parquet: &str, format: Format) {
        let file = format!("records/{table}.{format}");
        let input = match File::open(self.dir.join(&file)) {
            Ok(f) => BufReader::new(f),
            Err(e) => {
                self.find(Check::Unreadable, Some(&file), None, e.to_string());
                return;
            }
        };
        let Some(batches) = self.batches(parquet) else {
            return;
        };
        let mut text = TextRows::new(input, format);
        let mut header_checked = format != Format::Csv;
        for batch in batches {
            let Ok(batch) = batch else { return };
            let render = match Renderer::new(&batch) {
                Ok(r) => r,
                Err(e) => {
                    self.find(Check::Unreadable, Some(parquet), None, e);
                    return;
                }
            };
            if !header_checked {
                header_checked = true;
                let want: Vec<Option<String>> = render.names().iter().cloned().map(Some).collect();
                match text.next_csv() {
                    Some(Ok((_, got))) if got == want => {}
                    _ => {
                        self.find(
                            Check::RecordText,
                            Some(&file),
                            None,
                            "the header line is not the column names",
                        );
                        return;
                    }
                }
            }
            let chains = batch
                .column_by_name("chain_id")
                .and_then(|c| c.as_string_opt::<i32>().cloned());
            let seqs = batch
                .column_by_name("seq")
                .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
            let ids = batch
                .column_by_name("event_id")
                .and_then(|c| c.as_string_opt::<i32>().cloned());
            for row in 0..batch.num_rows() {
                let chain = chains.as_ref().map_or("", |c| c.value(row));
                let seq = seqs.as_ref().map_or(0, |s| s.value(row) as u64);
                let event_id = ids.as_ref().map_or("", |c| c.value(row));
                let record = Some((event_id, chain, seq));
                let differs = match format {
                    Format::Csv => match text.next_csv() {
                        None => Some("the row is missing from the text file".to_owned()),
                        Some(Err(e)) => Some(e),
                        Some(Ok((line, got))) => {
                            let want = render.fields(row);
                            field_diff(render.names(), &want, &got)
                                .map(|d| format!("line {line}: {d}"))
                        }
                    },
                    _ => match text.next_json() {
                        None => Some("the row is missing from the text file".to_owned()),
                        Some(Err(e)) => Some(e),
                        Some(Ok((line, got))) => {
                            json_diff(&render.json(row), &got).map(|d| format!("line {line}: {d}"))
                        }
                    },
                };
                if let Some(d) = differs {
                    self.find(
                        Check::RecordText,
                        Some(&file),
                        record,
                        format!("{d}, unlike the Parquet copy"),
                    );
                }
            }
        }
        let extra = match format {
            Format::Csv => text.next_csv().map(|r| r.map(|(l, _)| l)),
            _ => text.next_json().map(|r| r.map(|(l, _)| l)),
        };
        if let Some(line) = extra {
            let at = line.map_or_else(|e| e, |l| format!("line {l}"));
            self.find(
                Check::RecordText,
                Some(&file),
                None,
                format!("{at}: a row the Parquet copy does not hold"),
            );
        }
    }
}

/// A JSON Lines record read back: its line and its object; or what is wrong with it.
type JsonRecord = std::result::Result<(u64, serde_json::Map<String, serde_json::Value>), String>;

/// The rows of a text file, one at a time.
enum TextRows<R> {
    Csv(CsvReader<R>),
    Json { input: R, line: u64 },
}

impl<R: BufRead> TextRows<R> {
    fn new(input: R, format: Format) -> Self {
        match format {
            Format::Csv => TextRows::Csv(CsvReader::new(input)),
            _ => TextRows::Json { input, line: 0 },
        }
    }

    fn next_csv(&mut self) -> Option<CsvRecord> {
        match self {
            TextRows::Csv(csv) => csv.next_record(),
            TextRows::Json { .. } => None,
        }
    }

    fn next_json(&mut self) -> Option<JsonRecord> {
        let TextRows::Json { input, line } = self else {
            return None;
        };
        let mut text = String::new();
        *line += 1;
        match input.read_line(&mut text) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(format!("line {line}: {e}"))),
        }
        Some(match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(m)) => Ok((*line, m)),
            _ => Err(format!("line {line}: not a JSON object")),
        })
    }
}

/// The first field where `got` differs from `want`, named.
fn field_diff(names: &[String], want: &[Option<String>], got: &[Option<String>]) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!(
            "{} fields where there are {} columns",
            got.len(),
            want.len()
        ));
    }
    names
        .iter()
        .zip(want.iter().zip(got))
        .find(|(_, (w, g))| w != g)
        .map(|(n, (w, g))| {
            format!(
                "column {n} is {} where the record has {}",
                g.as_deref().map_or("null".to_owned(), |s| format!("{s:?}")),
                w.as_deref().map_or("null".to_owned(), |s| format!("{s:?}"))
            )
        })
}

/// The first field where `got` differs from `want`, named.
fn json_diff(
    want: &serde_json::Map<String, serde_json::Value>,
    got: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    let mut keys: Vec<&String> = want.keys().chain(got.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .find(|k| want.get(*k) != got.get(*k))
        .map(|k| {
            let show =
                |v: Option<&serde_json::Value>| v.map_or("absent".to_owned(), |v| v.to_string());
            format!(
                "field {k} is {} where the record has {}",
                show(got.get(k)),
                show(want.get(k))
            )
        })
}
