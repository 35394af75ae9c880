//! Audit events in the chain: each is sealed at once as its own one-record segment of the
//! `audit_events` table (they are rare, and whoever placed a hold must know it is on record
//! before being told so), and read back from those segments.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, MapArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampNanosecondType};
use calltrail_schemas::audit::{AUDIT_EVENTS, AuditEvent, audit_events_batch};
use calltrail_schemas::canonical::RowEncoder;
use calltrail_schemas::{SCHEMA_VERSION, arrow_schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::chain::segment::SegmentMeta;
use crate::chain::{Chain, leaf_hashes};
use crate::flush::FlushContext;
use crate::layout::{Layout, Partition};
use crate::parquet_file::writer_properties;
use crate::policy::RetentionClass;
use crate::{Error, Result, io_err};

/// Seals `event` as a one-record segment of `audit_events`, extending `chain`.
pub(crate) fn seal_event(
    chain: &mut Chain,
    layout: &Layout,
    zstd_level: i32,
    event: &AuditEvent,
    class: &RetentionClass,
) -> Result<SegmentMeta> {
    let batch = audit_events_batch(&[event])?;
    let leaves = leaf_hashes(&RowEncoder::new(AUDIT_EVENTS, &batch)?, 1);
    let dir = layout.partition_dir(AUDIT_EVENTS, Partition::of(event.time_ns));
    let name = layout.next_audit_file_name(chrono::Utc::now().timestamp_millis());
    let props = |footer: Vec<(String, String)>| {
        let mut kv = vec![
            (
                arrow_schema::SCHEMA_VERSION_KEY.to_owned(),
                SCHEMA_VERSION.to_string(),
            ),
            (arrow_schema::TABLE_KEY.to_owned(), AUDIT_EVENTS.to_owned()),
        ];
        kv.extend(footer);
        let sort = batch.schema().index_of("time").unwrap_or(0);
        writer_properties(zstd_level, sort, kv)
    };
    let (_, meta) = chain.seal_hashed(
        AUDIT_EVENTS,
        &dir,
        &name,
        &batch,
        &leaves,
        Some(class),
        props,
    )?;
    Ok(meta)
}

/// Appends audit events to a running store writer's chain.
#[derive(Clone)]
pub struct AuditSink {
    pub(crate) ctx: Arc<FlushContext>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}

impl AuditSink {
    /// Seals `event` into the chain and returns its seq once the segment is durable.
    pub async fn append(&self, event: AuditEvent) -> Result<u64> {
        let ctx = Arc::clone(&self.ctx);
        tokio::task::spawn_blocking(move || {
            let mut chain = ctx
                .chain
                .lock()
                .map_err(|_| Error::Integrity("the chain lock is poisoned".into()))?;
            let class = ctx.policy.audit_class();
            let meta = seal_event(
                &mut chain,
                &ctx.layout,
                ctx.config.zstd_level,
                &event,
                &class,
            )?;
            Ok(meta.first_seq)
        })
        .await
        .map_err(|e| Error::Integrity(format!("the audit task failed: {e}")))?
    }
}

/// An audit event as stored, with where it is.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The event.
    pub event: AuditEvent,
    /// Its chain.
    pub chain_id: String,
    /// Its seq in that chain.
    pub seq: u64,
    /// Its file, relative to the data directory.
    pub file: PathBuf,
}

/// Every audit event under `root`, in chain and seq order. A file that cannot be read is an
/// error: holds must never be overlooked because their record is unreadable.
pub fn read_events(root: &Path) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    collect_parquet(&root.join(AUDIT_EVENTS), &mut files)?;
    for path in files {
        let file = std::fs::File::open(&path).map_err(io_err("open", &path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        for batch in reader {
            read_batch(&batch?, &path, root, &mut out)?;
        }
    }
    out.sort_by(|a, b| (&a.chain_id, a.seq).cmp(&(&b.chain_id, b.seq)));
    Ok(out)
}

fn collect_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err("list", dir))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_parquet(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_batch(
    batch: &RecordBatch,
    path: &Path,
    root: &Path,
    out: &mut Vec<StoredEvent>,
) -> Result<()> {
    let bad = |what: &str| Error::Integrity(format!("{}: {what}", path.display()));
    let string = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| bad(&format!("no text column {name}")))
    };
    let (event_id, action, actor, subject, reason, chain_id) = (
        string("event_id")?,
        string("action")?,
        string("actor")?,
        string("subject")?,
        string("reason")?,
        string("chain_id")?,
    );
    let time = batch
        .column_by_name("time")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| bad("no time column"))?;
    let seq = batch
        .column_by_name("seq")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| bad("no seq column"))?;
    let details = batch
        .column_by_name("details")
        .and_then(|c| c.as_any().downcast_ref::<MapArray>())
        .ok_or_else(|| bad("no details column"))?;
    for i in 0..batch.num_rows() {
        let mut kv = Vec::new();
        if details.is_valid(i) {
            let entry = details.value(i);
            let (keys, values) = (
                entry.column(0).as_string_opt::<i32>(),
                entry.column(1).as_string_opt::<i32>(),
            );
            if let (Some(keys), Some(values)) = (keys, values) {
                for j in 0..entry.len() {
                    kv.push((keys.value(j).to_owned(), values.value(j).to_owned()));
                }
            }
        }
        out.push(StoredEvent {
            event: AuditEvent {
                event_id: event_id.value(i).to_owned(),
                time_ns: time.value(i),
                action: action.value(i).to_owned(),
                actor: actor.value(i).to_owned(),
                subject: subject.value(i).to_owned(),
                reason: reason.is_valid(i).then(|| reason.value(i).to_owned()),
                details: kv,
            },
            chain_id: chain_id.value(i).to_owned(),
            seq: u64::try_from(seq.value(i)).map_err(|_| bad("negative seq"))?,
            file: path.strip_prefix(root).unwrap_or(path).to_owned(),
        });
    }
    Ok(())
}
