//! Findings in the delivery loop. Each pass lists the `anomalies` table, and sends every file
//! past the destination's findings cursor, oldest date first, one file at a time: its findings
//! are read and encoded on a blocking thread, sent in batches until all are confirmed (or
//! dead-lettered), and only then is the file marked delivered and the cursor saved. A crash or
//! shutdown in the middle of a file sends the whole file again at the next start (at least
//! once; the finding id is the dedup key). A destination whose `kinds` filter leaves findings
//! out has its cursor moved past them without reading them, as it is for records. A file that
//! cannot be read holds up the rest of its date partition (the cursor cannot move past it),
//! not the other partitions, and the pass is retried.

use std::collections::BTreeSet;

use calltrail_schemas::finding::ANOMALIES;
use tokio::sync::watch;

use super::{Destination, PassError, Shared, Stop, dead_letter_one, send_all};
use crate::forward::cursor::FindingsCursor;
use crate::forward::event::{Columns, Event, EventKind, FindingRow};
use crate::forward::findings::{FindingsFile, FindingsListing, read_findings};
use crate::forward::prepare::Encoder;
use crate::forward::source::SourceError;
use crate::forward::transport::Message;

/// A findings file encoded for one destination.
#[derive(Debug, Default)]
struct Encoded {
    /// The messages of the findings that pass the filter, in stored order.
    messages: Vec<Message>,
    /// Findings that could not be encoded, with the reason, for the dead-letter file.
    dead: Vec<(Message, String)>,
}

/// Delivers every findings file the destination has not had.
pub(super) async fn deliver_findings(
    dest: &mut Destination,
    cursor: &mut FindingsCursor,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PassError> {
    let listing =
        FindingsListing::list(&shared.data_dir).map_err(|e| PassError::Store(e.to_string()))?;
    let mut changed = cursor.retain_dates(&listing.dates());
    let pending = listing.pending(cursor);
    if !dest.encoder.wants_kind(EventKind::Finding) {
        for file in &pending {
            cursor.mark(&file.date, &file.name);
        }
        changed |= !pending.is_empty();
        if changed {
            save(cursor, shared, dest);
        }
        return Ok(());
    }
    if changed {
        save(cursor, shared, dest);
    }
    // A file that cannot be read holds up the rest of its partition (the cursor cannot move
    // past it), not the other partitions; the pass reports the first such failure.
    let mut blocked = BTreeSet::new();
    let mut failure = None;
    for file in pending {
        if *shutdown.borrow() {
            return Err(PassError::Stop(Stop::Shutdown));
        }
        if blocked.contains(&file.date) {
            continue;
        }
        match deliver_file(dest, shared, &file, shutdown).await {
            Ok(()) => {
                cursor.mark(&file.date, &file.name);
                save(cursor, shared, dest);
            }
            Err(PassError::Store(e)) => {
                blocked.insert(file.date.clone());
                failure.get_or_insert(PassError::Store(e));
            }
            Err(stop) => return Err(stop),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Sends the findings of one file until each is confirmed or dead-lettered.
async fn deliver_file(
    dest: &mut Destination,
    shared: &Shared,
    file: &FindingsFile,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PassError> {
    let (encoder, root, f) = (dest.encoder.clone(), shared.data_dir.clone(), file.clone());
    let encoded = tokio::task::spawn_blocking(move || encode_file(&encoder, &root, &f))
        .await
        .map_err(|e| PassError::Store(format!("the preparing task failed: {e}")))?;
    let Encoded { mut messages, dead } = match encoded {
        Ok(e) => e,
        Err(SourceError::Vanished { path }) => {
            // Retention removed it first: nothing left to send, as for records it deleted.
            tracing::warn!(destination = %dest.config.name, file = %path.display(),
                "A findings file was removed from the store before this destination received it; skipping it.");
            return Ok(());
        }
        Err(e) => return Err(PassError::Store(e.to_string())),
    };
    for (message, reason) in &dead {
        dead_letter_one(dest, shared, message, reason);
    }
    while !messages.is_empty() {
        let rest = messages.split_off(messages.len().min(shared.batch_size));
        let batch = std::mem::replace(&mut messages, rest);
        send_all(dest, shared, batch, shutdown, |_| {})
            .await
            .map_err(PassError::Stop)?;
    }
    Ok(())
}

/// Reads the findings file `file` of the store at `root` and encodes each finding that passes
/// the destination's filter.
fn encode_file(
    encoder: &Encoder,
    root: &std::path::Path,
    file: &FindingsFile,
) -> Result<Encoded, SourceError> {
    let mut out = Encoded::default();
    for batch in &read_findings(root, file)? {
        let columns = Columns::new(ANOMALIES, batch);
        for row in 0..batch.num_rows() {
            let event = Event::Finding(FindingRow::new(batch, &columns, row));
            if !encoder.passes(&event) {
                continue;
            }
            match encoder.encode(&event) {
                Ok(m) => out.messages.push(m),
                Err(reason) => {
                    let message = Message {
                        payload: Vec::new(),
                        meta: event.meta(),
                    };
                    out.dead.push((message, reason));
                }
            }
        }
    }
    Ok(out)
}

/// Saves the findings cursor; a failure is logged, not fatal: delivery goes on, and a crash
/// would re-send from the last saved point.
fn save(cursor: &FindingsCursor, shared: &Shared, dest: &Destination) {
    if let Err(e) = cursor.save(&shared.data_dir, &dest.config.name) {
        tracing::error!(destination = %dest.config.name, error = %e,
            "Saving the findings cursor failed.");
    }
}

#[cfg(test)]
#[path = "deliver_findings_tests.rs"]
mod tests;
