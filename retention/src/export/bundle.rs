//! Writing an export bundle: records, proofs, checkpoints and receipts into
//! `DIR.partial-<pid>`, each file fsynced; then the README, the signed manifest, and the rename
//! to `DIR`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::{and, cast};
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::error::ArrowError;
use calltrail_schemas::arrow_schema::{LLM_CALLS, TOOL_CALLS, llm_calls_schema, tool_calls_schema};
use calltrail_schemas::canonical::RowEncoder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::SchemaDescriptor;

use super::files::{hash_files, sync_dirs, write_file};
use super::levels::Levels;
use super::manifest::{ChainEntry, Manifest};
use super::select::{self, ChainPlan, Receipt, Segment};
use super::writers::{BATCH_ROWS, Proofs, Tables};
use super::{ChainExport, ExportOptions, ExportSummary, Progress, Selection, readme};
use crate::files::sync_dir;
use crate::note::sign_note;
use crate::{Error, Result, io_err};

/// The signed manifest's file name; written last.
pub(crate) const MANIFEST: &str = "manifest.note";
/// The public key's file name.
pub(crate) const PUBKEY: &str = "pubkey.txt";
/// The README's file name.
pub(crate) const README: &str = "README.txt";

fn fail(message: impl Into<String>) -> Error {
    Error::Integrity(message.into())
}

fn refuse(key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        key: key.into(),
        message: message.into(),
    }
}

/// Exports the records `options` selects from the store at `root` into a new bundle directory
/// `options.out` (see the module documentation). Fails, leaving nothing behind, when the
/// directory exists, when a chain's stored leaves do not give its signed head, or when a
/// selected record does not hash to its stored leaf hash.
pub fn export(
    root: &Path,
    options: &ExportOptions,
    progress: Progress<'_>,
) -> Result<ExportSummary> {
    check_options(options)?;
    let out = &options.out;
    let name = out
        .file_name()
        .ok_or_else(|| refuse("--out", format!("{} names no directory", out.display())))?;
    if out.symlink_metadata().is_ok() {
        return Err(refuse(
            "--out",
            format!(
                "{} exists; an export never overwrites anything",
                out.display()
            ),
        ));
    }
    let partial = out.with_file_name(format!(
        "{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::create_dir(&partial).map_err(io_err("create directory", &partial))?;
    // Retention must not delete a segment between its listing and its reading: a shared lock
    // on its lock file (when the store has one), as `verify` takes, keeps it out meanwhile.
    let _retention = File::open(root.join("chain/retention.lock"))
        .ok()
        .filter(|f| f.lock_shared().is_ok());
    let result = write_bundle(root, options, &partial, progress).and_then(|summary| {
        // Checked again: the directory may have appeared while the export ran, and a rename
        // onto an empty directory would replace it.
        if out.symlink_metadata().is_ok() {
            return Err(refuse(
                "--out",
                format!(
                    "{} appeared during the export; not replacing it",
                    out.display()
                ),
            ));
        }
        std::fs::rename(&partial, out).map_err(io_err("rename", &partial))?;
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
        sync_dir(parent.unwrap_or(Path::new(".")))?;
        Ok(summary)
    });
    if result.is_err() {
        // Best effort: the partial directory has no manifest, so nothing takes it for a bundle.
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

fn check_options(options: &ExportOptions) -> Result<()> {
    let s = &options.selection;
    if s.from_ns >= s.to_ns {
        return Err(refuse("--from", "must be before --to"));
    }
    for (key, value) in s.filters() {
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(refuse(
                &format!("--{key}"),
                format!("{value:?} is empty or holds a control character"),
            ));
        }
    }
    Ok(())
}

/// Writes the whole bundle into `dir`; the rename is the caller's.
fn write_bundle(
    root: &Path,
    options: &ExportOptions,
    dir: &Path,
    progress: Progress<'_>,
) -> Result<ExportSummary> {
    let verifier = options.key.verifier();
    let selection = &options.selection;
    let mut notes = Vec::new();
    let plans = select::plan(root, &verifier, &mut notes)?;
    let candidates = |plan: &'_ ChainPlan| -> Vec<Segment> {
        plan.segments
            .iter()
            .filter(|s| {
                selection.tables().contains(&s.meta.table.as_str())
                    && selection.hour_overlaps(s.hour_ns)
            })
            .cloned()
            .collect()
    };
    let total: u64 = plans
        .iter()
        .flat_map(&candidates)
        .map(|s| s.meta.count)
        .sum();
    let mut done = 0u64;
    progress(done, total);
    let mut tables = Tables::new(dir, options.format);
    let mut chains = Vec::new();
    for plan in &plans {
        let segments = candidates(plan);
        if segments.is_empty() {
            continue;
        }
        let (tree, holes) = select::chain_tree(root, plan)?;
        let mut proofs = Proofs::new(dir, &plan.chain_id)?;
        for seg in &segments {
            export_segment(root, seg, plan, &tree, selection, &mut tables, &mut proofs)?;
            done += seg.meta.count;
            progress(done, total);
        }
        let records = proofs.rows;
        if records == 0 {
            proofs.discard()?;
            continue;
        }
        proofs.finish()?;
        write_file(
            dir,
            &format!("checkpoints/{}.note", plan.chain_id),
            plan.note.as_bytes(),
        )?;
        if !holes.is_empty() {
            write_file(
                dir,
                &format!("receipts/{}.jsonl", plan.chain_id),
                &receipts_jsonl(&holes)?,
            )?;
        }
        chains.push(ChainExport {
            chain_id: plan.chain_id.clone(),
            tree_size: plan.checkpoint.size,
            records,
            receipts: holes.len() as u64,
        });
    }
    let counts = tables.finish()?;
    write_file(dir, PUBKEY, format!("{}\n", verifier.to_text()).as_bytes())?;
    let mut manifest = Manifest {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        from: rfc3339(selection.from_ns),
        to: rfc3339(selection.to_ns),
        filters: selection.filters(),
        format: options.format,
        records: counts.values().sum(),
        tables: counts.iter().map(|(t, n)| (t.clone(), *n)).collect(),
        chains: chains
            .iter()
            .map(|c| ChainEntry {
                chain_id: c.chain_id.clone(),
                tree_size: c.tree_size,
                records: c.records,
            })
            .collect(),
        files: Vec::new(),
    };
    write_file(dir, README, readme::render(&manifest, selection).as_bytes())?;
    manifest.files = hash_files(dir)?;
    let note = sign_note(&manifest.to_text(), &options.key)
        .map_err(|e| fail(format!("signing the manifest: {e}")))?;
    sync_dirs(dir)?;
    // Last, so a bundle with a manifest is a complete one; its entry made durable before the
    // rename publishes the directory.
    write_file(dir, MANIFEST, note.as_bytes())?;
    sync_dir(dir)?;
    Ok(ExportSummary {
        out: options.out.clone(),
        records: manifest.records,
        tables: counts,
        chains,
        files: manifest.files.len() as u64 + 1,
        bytes: manifest.files.iter().map(|f| f.size).sum::<u64>() + note.len() as u64,
        notes,
    })
}

/// RFC 3339 in UTC, to the nanosecond when needed.
fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Exports the selected rows of one segment and their proofs.
fn export_segment(
    root: &Path,
    seg: &Segment,
    plan: &ChainPlan,
    tree: &Levels,
    selection: &Selection,
    tables: &mut Tables,
    proofs: &mut Proofs,
) -> Result<()> {
    let path = root.join(&seg.file);
    let table = seg.meta.table.as_str();
    let schema = match table {
        TOOL_CALLS => tool_calls_schema(),
        LLM_CALLS => llm_calls_schema(),
        other => {
            return Err(fail(format!(
                "{}: table {other} is not exported",
                path.display()
            )));
        }
    };
    let file = File::open(&path).map_err(io_err("open", &path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    // Only the filter's columns are decoded for every row; the others only for the rows it
    // selects, and row groups whose start times all lie outside the range not at all.
    let row_groups =
        overlapping_row_groups(builder.metadata(), builder.parquet_schema(), selection);
    let columns = ProjectionMask::columns(builder.parquet_schema(), selection.columns());
    let (wanted, size) = (selection.clone(), tree.size());
    let predicate = ArrowPredicateFn::new(columns, move |batch: RecordBatch| {
        let keep = wanted
            .mask(&batch)
            .map_err(ArrowError::InvalidArgumentError)?;
        let seqs = batch
            .column_by_name("seq")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| ArrowError::InvalidArgumentError("no seq column".into()))?;
        let below: BooleanArray = seqs
            .iter()
            .map(|s| Some(s.is_some_and(|s| s >= 0 && (s as u64) < size)))
            .collect();
        and(&keep, &below)
    });
    let reader = builder
        .with_row_groups(row_groups)
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let at = |what: String| fail(format!("{}: {what}", path.display()));
    for batch in reader {
        let selected = conform(&batch?, &schema).map_err(&at)?;
        let rows = selected.num_rows();
        if rows == 0 {
            continue;
        }
        let encoder = RowEncoder::new(table, &selected)?;
        let leaves = crate::chain::leaf_hashes(&encoder, rows);
        let col = |name: &str| {
            selected
                .column_by_name(name)
                .ok_or_else(|| at(format!("no {name} column")))
        };
        let seqs = col("seq")?.as_primitive::<Int64Type>().clone();
        let ids = col("event_id")?.as_string::<i32>().clone();
        let stored = col("leaf_hash")?.as_fixed_size_binary().clone();
        for (row, leaf) in leaves.iter().enumerate() {
            let seq = seqs.value(row) as u64;
            let event_id = ids.value(row);
            if stored.value(row) != leaf.as_slice() || tree.leaf(seq) != Some(*leaf) {
                return Err(at(format!(
                    "record {event_id} (chain {}, seq {seq}) does not hash to the leaf its chain's signed tree holds at that seq: \
                     the store was tampered with (run `calltrail verify`)",
                    plan.chain_id
                )));
            }
            let audit_path = tree
                .inclusion(seq)
                .map_err(|e| at(format!("record {event_id} (seq {seq}): {e}")))?;
            proofs.push(seq, table, event_id, leaf, tree.size(), &audit_path)?;
        }
        tables.write(table, &selected)?;
    }
    Ok(())
}

/// The row groups of a Parquet file whose `start_time` statistics overlap the selection's
/// range (all of them when there are no statistics).
fn overlapping_row_groups(
    meta: &ParquetMetaData,
    schema: &SchemaDescriptor,
    selection: &Selection,
) -> Vec<usize> {
    let column = schema
        .columns()
        .iter()
        .position(|c| c.name() == "start_time");
    (0..meta.num_row_groups())
        .filter(|&i| {
            let stats = column.and_then(|c| meta.row_group(i).column(c).statistics());
            match stats {
                Some(Statistics::Int64(s)) => {
                    let below = s.max_opt().is_some_and(|max| *max < selection.from_ns);
                    let above = s.min_opt().is_some_and(|min| *min >= selection.to_ns);
                    !(below || above)
                }
                _ => true,
            }
        })
        .collect()
}

/// `batch` with the columns of `schema`, in its order: a column the file lacks (an older
/// schema version) is all nulls, which leaves every record's canonical bytes, and so its hash,
/// unchanged. A column `schema` does not have is an error, since dropping it would.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    if let Some(extra) = batch
        .schema()
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(format!(
            "column {} is not in this version's schema: export it with the calltrail that wrote it",
            extra.name()
        ));
    }
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast(c, f.data_type()).map_err(|e| format!("column {}: {e}", f.name())),
            None => Ok(new_null_array(f.data_type(), n)),
        })
        .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}

/// The receipts file of a chain: one `{"path": <store path>, "note": <signed note>}` per line.
fn receipts_jsonl(holes: &[&Receipt]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in holes {
        let line = serde_json::json!({ "path": r.path.to_string_lossy(), "note": r.note });
        serde_json::to_writer(&mut out, &line)
            .map_err(|e| fail(format!("encoding a receipt: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}
