//! Replay after a restart: recovered frames → records not yet in Parquet → the store writer.

use std::path::Path;

use calltrail_retention::{Partition, SealedIndex, WriteBatch, WriterHandle};
use calltrail_schemas::arrow_schema::{LLM_CALLS, TOOL_CALLS};
use calltrail_schemas::codec;

use super::WalError;
use super::recovery::{RecoveryReport, Replayed, recover};

/// Recovers the log in `wal_dir` and hands every record past the checkpoint that is not already
/// in a sealed file under `data_dir` to `writer`, in frame order. Blocking: run it off the
/// async runtime, before the receivers start.
pub fn recover_into(
    wal_dir: &Path,
    data_dir: &Path,
    writer: &WriterHandle,
) -> Result<(RecoveryReport, u64), WalError> {
    let mut sealed: Option<SealedIndex> = None;
    let mut skipped = 0u64;
    let report = recover(wal_dir, |seq, payload| {
        let (mut tool_calls, mut llm_calls) = match codec::decode_batch(payload) {
            Ok(records) => records,
            Err(e) => return Ok(Replayed::Undecodable(e.to_string())),
        };
        // Frame ranges are disjoint, so older files cannot claim a replayed frame: indexing
        // every file is correct, only slower than starting at the checkpoint.
        let index = sealed.get_or_insert_with(|| SealedIndex::new(data_dir, 0));
        let before = tool_calls.len() + llm_calls.len();
        let mut err = None;
        let mut keep = |table: &str, start_ns: i64, event_id: &str| match index.contains(
            table,
            Partition::of(start_ns),
            seq,
            event_id,
        ) {
            Ok(stored) => !stored,
            Err(e) => {
                err.get_or_insert(e);
                true
            }
        };
        tool_calls.retain(|r| keep(TOOL_CALLS, r.start_time_ns, &r.event_id));
        llm_calls.retain(|r| keep(LLM_CALLS, r.start_time_ns, &r.event_id));
        if let Some(e) = err {
            return Err(format!("cannot list sealed files: {e}"));
        }
        skipped += (before - tool_calls.len() - llm_calls.len()) as u64;
        writer
            .submit_blocking(WriteBatch {
                wal_seq: seq,
                tool_calls,
                llm_calls,
            })
            .map_err(|e| e.to_string())?;
        Ok(Replayed::Done)
    })?;
    Ok((report, skipped))
}
