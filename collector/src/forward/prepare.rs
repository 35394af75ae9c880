//! The first stage of delivery, on a blocking thread: reads a destination's backlog from the
//! store, filters and encodes each event, and hands batches to the sending stage through a
//! bounded channel. Formatting (CPU) then overlaps with the transport's waits, and memory stays
//! bounded by the channel (two batches ahead).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::config::DestinationConfig;
use super::cursor::Cursor;
use super::event::{Columns, Event, EventKind, RecordRow};
use super::filter::Filter;
use super::format::Formatter;
use super::otlp;
use super::source::{Pending, read_segment};
use super::transport::Message;

/// How a destination turns events into messages.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    formatter: Formatter,
    filter: Filter,
    /// OTLP destinations send spans, not formatted text.
    otlp: bool,
}

impl Encoder {
    /// The encoder of `config`'s destination.
    pub(crate) fn new(config: &DestinationConfig) -> Self {
        Self {
            formatter: Formatter::new(config.format, config.format_options.clone()),
            filter: config.filter.compile(),
            otlp: config.otlp.is_some(),
        }
    }

    /// True when events of `kind` may reach the destination at all.
    pub(crate) fn wants_kind(&self, kind: EventKind) -> bool {
        self.filter.wants_kind(kind)
    }

    /// True when the destination is sent `event`.
    pub(crate) fn passes(&self, event: &Event<'_>) -> bool {
        self.filter.passes(event)
    }

    /// The event as this destination's message; an error (a poison event) says why not.
    pub(crate) fn encode(&self, event: &Event<'_>) -> Result<Message, String> {
        let mut payload = Vec::with_capacity(512);
        if self.otlp {
            otlp::encode(event, &mut payload);
        } else {
            self.formatter
                .encode(event, &mut payload)
                .map_err(|e| format!("the event could not be formatted: {e}"))?;
        }
        Ok(Message {
            payload,
            meta: event.meta(),
        })
    }
}

/// What the preparing stage hands the sending stage, in order.
#[derive(Debug)]
pub(crate) enum Step {
    /// Delivery of a segment starts: its first seq and when it was sealed (Unix seconds).
    Segment {
        chain: String,
        first_seq: u64,
        sealed: u64,
    },
    /// Messages to send; once confirmed, the cursor moves to `end`. `seqs` holds each
    /// message's seq, for partial confirmations.
    Batch {
        chain: String,
        messages: Vec<Message>,
        seqs: Vec<u64>,
        end: u64,
    },
    /// An event that cannot be encoded, for the dead-letter file.
    DeadLetter { message: Message, reason: String },
    /// The segment is done: the cursor moves past it.
    SegmentDone { chain: String, next: u64 },
    /// Reading the store failed; the pass stops and is retried.
    Failed(String),
}

/// When `p` was sealed, in Unix seconds (at least 1, so 0 can mean "nothing pending").
pub(crate) fn sealed_unix(p: &Pending) -> u64 {
    p.sealed_at
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(1, |d| d.as_secs().max(1))
}

/// Prepares every segment of `backlog` for delivery, from `start`, sending the steps on `tx`.
/// Stops early when the receiver is gone (the sending stage stopped).
pub(crate) fn prepare(
    encoder: &Encoder,
    root: &Path,
    backlog: BTreeMap<String, Vec<Pending>>,
    start: &Cursor,
    batch_size: usize,
    tx: &mpsc::Sender<Step>,
) {
    let send = |step: Step| tx.blocking_send(step).is_ok();
    for (chain, segments) in backlog {
        for seg in segments {
            let segment = Step::Segment {
                chain: chain.clone(),
                first_seq: seg.meta.first_seq,
                sealed: sealed_unix(&seg),
            };
            if !send(segment) {
                return;
            }
            let wanted =
                EventKind::of_table(&seg.meta.table).is_some_and(|k| encoder.wants_kind(k));
            if wanted && !prepare_segment(encoder, root, &chain, &seg, start, batch_size, &send) {
                return;
            }
            let done = Step::SegmentDone {
                chain: chain.clone(),
                next: seg.meta.last_seq + 1,
            };
            if !send(done) {
                return;
            }
        }
    }
}

/// Encodes the rows of one segment at or past `start`; false when the pass must stop.
fn prepare_segment(
    encoder: &Encoder,
    root: &Path,
    chain: &str,
    seg: &Pending,
    start: &Cursor,
    batch_size: usize,
    send: &dyn Fn(Step) -> bool,
) -> bool {
    let batches = match read_segment(root, seg) {
        Ok(b) => b,
        Err(e) => {
            // The pass stops either way; the sending stage reports the failure.
            send(Step::Failed(e.to_string()));
            return false;
        }
    };
    let from = start.next(chain);
    let mut seq = seg.meta.first_seq;
    let mut messages = Vec::with_capacity(batch_size);
    let mut seqs = Vec::with_capacity(batch_size);
    for batch in &batches {
        let columns = Columns::new(&seg.meta.table, batch);
        for row in 0..batch.num_rows() {
            let this = seq;
            seq += 1;
            if this < from {
                continue;
            }
            let event = Event::Record(RecordRow::new(batch, &columns, row));
            if !encoder.passes(&event) {
                continue;
            }
            match encoder.encode(&event) {
                Ok(m) => {
                    messages.push(m);
                    seqs.push(this);
                }
                Err(reason) => {
                    let message = Message {
                        payload: Vec::new(),
                        meta: event.meta(),
                    };
                    if !send(Step::DeadLetter { message, reason }) {
                        return false;
                    }
                }
            }
            if messages.len() >= batch_size {
                let full = Step::Batch {
                    chain: chain.to_owned(),
                    messages: std::mem::replace(&mut messages, Vec::with_capacity(batch_size)),
                    seqs: std::mem::replace(&mut seqs, Vec::with_capacity(batch_size)),
                    end: this + 1,
                };
                if !send(full) {
                    return false;
                }
            }
        }
    }
    if seq != seg.meta.last_seq + 1 {
        let why = format!(
            "{}: holds {} rows, its metadata says {}",
            seg.file.display(),
            seq - seg.meta.first_seq,
            seg.meta.count
        );
        send(Step::Failed(why));
        return false;
    }
    messages.is_empty()
        || send(Step::Batch {
            chain: chain.to_owned(),
            messages,
            seqs,
            end: seq,
        })
}
