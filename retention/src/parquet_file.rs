//! One atomic Parquet file write: temporary name, fsync, rename, fsync of the directory.
//!
//! The temporary name ends in `.tmp`, so readers globbing `*.parquet` (DataFusion, DuckDB,
//! pyarrow) never see a file that is still being written, and a crash leaves at most a stray
//! `.tmp` file, never a truncated `.parquet`.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::files::{ensure_dir, sync_dir};
use crate::{Error, Result, io_err};

/// Columns whose values are (nearly) all distinct: dictionary encoding only costs CPU there.
const UNIQUE_COLUMNS: &[&str] = &[
    "event_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "call_id",
    "seq",
    "leaf_hash",
    "chain_hash",
];

/// Writer properties for a table's files: zstd, dictionaries (except on id columns), page
/// statistics (for pruning), sorted by the column at `sort_column`, and Calltrail's metadata in
/// the footer.
pub fn writer_properties(
    zstd_level: i32,
    sort_column: usize,
    metadata: Vec<(String, String)>,
) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(zstd_level)?;
    let mut builder = WriterProperties::builder();
    for c in UNIQUE_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    // Hashes are random: min/max statistics can never prune a page, only cost time.
    for c in ["leaf_hash", "chain_hash"] {
        builder =
            builder.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    Ok(builder
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: sort_column as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(
            metadata
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
        ))
        .build())
}

/// Mode 0444: what sealed files and their manifests get.
pub fn read_only() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(0o444)
}

/// Writes `batch` to `dir/name` atomically, read-only, and returns the file's size in bytes.
pub fn write_atomic(
    dir: &Path,
    name: &str,
    batch: &RecordBatch,
    props: WriterProperties,
) -> Result<u64> {
    ensure_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        let mut writer = ArrowWriter::try_new(file, Arc::clone(batch.schema_ref()), Some(props))?;
        writer.write(batch)?;
        let file = writer.into_inner()?;
        // Sealed files are never written again: only retention deletes them, whole.
        file.set_permissions(read_only())
            .map_err(io_err("chmod", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        let size = file.metadata().map_err(io_err("stat", &tmp))?.len();
        fs::rename(&tmp, &dest).map_err(io_err("rename", &tmp))?;
        if let Err(e) = sync_dir(dir) {
            // The rename may not be durable: take the file back so a retry writes it afresh
            // (its rows carry chain seqs, which must exist once).
            let _ = fs::remove_file(&dest);
            return Err(e);
        }
        Ok::<u64, Error>(size)
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless (never read) but wastes space.
        let _ = fs::remove_file(&tmp);
    }
    result
}
