//! The delivery loop: one task per destination reads the store past its cursor, filters and
//! formats each event, hands batches to its transport, and advances its durable cursor only as
//! far as the transport confirms. A failing destination retries with capped exponential backoff
//! and falls behind; the others go on. Events a destination refuses for good go to its
//! dead-letter file. Every new signed checkpoint is sent too, and every new anomaly finding
//! (`deliver_findings.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use calltrail_retention::checkpoint::SignedCheckpoint;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::config::{DestinationConfig, ForwardConfig, StartPosition};
use super::cursor::{Cursor, CursorError, FindingsCursor};
use super::dead_letter;
use super::event::{CheckpointEvent, Event};
use super::findings::FindingsListing;
use super::kafka::KafkaTransport;
use super::otlp::OtlpTransport;
use super::prepare::{Encoder, Step, prepare, sealed_unix};
use super::source::{Backlog, Pending, SourceError, StoreSource};
use super::syslog::SyslogTransport;
use super::transport::{Message, Rejection, Retry, SendResult};
use deliver_findings::deliver_findings;

/// What a destination has done, for `/metrics` and status.
#[derive(Debug, Default)]
pub struct DestinationStats {
    /// The destination's name.
    pub name: String,
    /// Events confirmed delivered.
    pub delivered: AtomicU64,
    /// Events refused for good and written to the dead-letter file.
    pub dead_letters: AtomicU64,
    /// Failed send attempts (each retried).
    pub retries: AtomicU64,
    /// Per chain, the seq after the newest sealed record, and the next seq to deliver: their
    /// difference is the lag in records. Ends follow each new checkpoint even while a send is
    /// failing, so the lag grows during an outage.
    positions: Mutex<Positions>,
    /// When the oldest undelivered segment was sealed (Unix seconds); 0 when caught up.
    pub oldest_unsent: AtomicU64,
    /// Records skipped because the store no longer held them (retention deleted them first).
    pub skipped: AtomicU64,
    /// False while sends fail.
    pub up: AtomicBool,
    /// The last error, if the last attempt failed.
    pub last_error: Mutex<Option<String>>,
}

/// Where the store ends and where a destination stands, per chain.
#[derive(Debug, Default)]
struct Positions {
    ends: BTreeMap<String, u64>,
    next: BTreeMap<String, u64>,
}

impl DestinationStats {
    /// Sealed records not delivered yet (past the cursor, before filtering).
    pub fn lag_records(&self) -> u64 {
        self.positions.lock().map_or(0, |p| {
            p.ends
                .iter()
                .map(|(chain, end)| end.saturating_sub(p.next.get(chain).copied().unwrap_or(0)))
                .sum()
        })
    }

    fn positions(&self, f: impl FnOnce(&mut Positions)) {
        if let Ok(mut p) = self.positions.lock() {
            f(&mut p);
        }
    }

    /// The chain `chain` holds records up to `end` (exclusive).
    fn saw_end(&self, chain: &str, end: u64) {
        self.positions(|p| {
            let e = p.ends.entry(chain.to_owned()).or_default();
            *e = (*e).max(end);
        });
    }

    fn delivered_to(&self, chain: &str, next: u64) {
        self.positions(|p| {
            p.next.insert(chain.to_owned(), next);
        });
    }

    /// Seconds since the oldest undelivered segment was sealed; 0 when caught up.
    pub fn lag_seconds(&self) -> u64 {
        match self.oldest_unsent.load(Ordering::Relaxed) {
            0 => 0,
            t => unix_now().saturating_sub(t),
        }
    }

    fn failed(&self, reason: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(reason.to_owned());
        }
    }

    fn succeeded(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
    }
}

/// Why forwarding could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The configuration is invalid (the message names the key).
    #[error("{0}")]
    Config(String),
    /// A destination's cursor could not be read.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The store could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// A destination's transport.
pub enum Transport {
    /// Kafka.
    Kafka(KafkaTransport),
    /// Syslog (it connects on first use and reconnects after a failure).
    Syslog(Box<SyslogTransport>),
    /// OTLP/HTTP.
    Otlp(OtlpTransport),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kafka(_) => "Kafka",
            Self::Syslog(_) => "Syslog",
            Self::Otlp(_) => "Otlp",
        })
    }
}

impl Transport {
    /// The transport `config` names (connections are made on first use).
    pub fn new(config: &DestinationConfig) -> Result<Self, String> {
        if let Some(k) = &config.kafka {
            return KafkaTransport::new(k)
                .map(Self::Kafka)
                .map_err(|e| e.to_string());
        }
        if let Some(s) = &config.syslog {
            // Reads the TLS files now, so a missing one fails at start-up, not at every retry.
            return SyslogTransport::new(s)
                .map(|t| Self::Syslog(Box::new(t)))
                .map_err(|e| format!("destination {}: {e}", config.name));
        }
        if let Some(o) = &config.otlp {
            return OtlpTransport::new(o)
                .map(Self::Otlp)
                .map_err(|e| e.to_string());
        }
        Err(format!("destination {}: no transport", config.name))
    }

    /// Sends a batch (see [`SendResult`]).
    pub async fn send(&mut self, batch: &[Message]) -> SendResult {
        match self {
            Self::Kafka(k) => k.send(batch).await,
            Self::Otlp(o) => o.send(batch).await,
            Self::Syslog(s) => s.send(batch).await,
        }
    }
}

/// One destination, ready to run.
struct Destination {
    config: DestinationConfig,
    encoder: Encoder,
    transport: Transport,
    stats: Arc<DestinationStats>,
}

/// The running forwarders.
#[derive(Debug)]
pub struct Forwarders {
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    stats: Vec<Arc<DestinationStats>>,
}

/// What every destination task shares.
#[derive(Clone)]
struct Shared {
    data_dir: PathBuf,
    batch_size: usize,
    max_backoff: Duration,
    poll: Duration,
}

impl Forwarders {
    /// Starts one task per destination of `config` over the store in `data_dir`. Each new
    /// checkpoint on `checkpoints` wakes them (new segments are sealed before it is signed) and
    /// is itself forwarded.
    pub fn start(
        config: &ForwardConfig,
        data_dir: &Path,
        checkpoints: &watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    ) -> Result<Self, ForwardError> {
        config.validate().map_err(ForwardError::Config)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Shared {
            data_dir: data_dir.to_owned(),
            batch_size: config.batch_size,
            max_backoff: Duration::from_millis(config.max_backoff_ms),
            poll: Duration::from_millis(config.poll_ms),
        };
        let mut tasks = Vec::new();
        let mut stats = Vec::new();
        for d in &config.destinations {
            let dest = Destination {
                encoder: Encoder::new(d),
                transport: Transport::new(d).map_err(ForwardError::Config)?,
                stats: Arc::new(DestinationStats {
                    name: d.name.clone(),
                    up: AtomicBool::new(true),
                    ..DestinationStats::default()
                }),
                config: d.clone(),
            };
            let cursor = match Cursor::load(data_dir, &d.name)? {
                Some(c) => c,
                None => initial_cursor(data_dir, d.start)?,
            };
            cursor.save(data_dir, &d.name)?;
            let findings = match FindingsCursor::load(data_dir, &d.name)? {
                Some(c) => c,
                None => initial_findings_cursor(data_dir, d.start)?,
            };
            findings.save(data_dir, &d.name)?;
            stats.push(Arc::clone(&dest.stats));
            tracing::info!(destination = %d.name, transport = ?dest.transport, format = ?d.format,
                "Forwarding to a destination.");
            tasks.push(tokio::spawn(run(
                dest,
                Cursors { cursor, findings },
                shared.clone(),
                checkpoints.clone(),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(follow_ends(
            checkpoints.clone(),
            stats.clone(),
            shutdown_rx,
        )));
        Ok(Self {
            tasks,
            shutdown,
            stats,
        })
    }

    /// Each destination's counters.
    pub fn stats(&self) -> &[Arc<DestinationStats>] {
        &self.stats
    }

    /// Stops every destination after its current batch (whose cursor is saved if confirmed).
    /// A destination still waiting on its transport after 5 s is abandoned: its unconfirmed
    /// batch is sent again at the next start.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for mut t in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), &mut t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "A forwarding task failed."),
                Err(_) => {
                    t.abort();
                    tracing::warn!(
                        "A forwarding destination was still waiting on its transport at shutdown; it resumes from its cursor at the next start."
                    );
                }
            }
        }
    }
}

/// Sends `event` to the destination `config` once, without touching its cursor, and says
/// exactly what failed (name resolution, connection, TLS, authentication, topic...): for
/// `calltrail forward test`.
pub async fn send_test(config: &DestinationConfig, event: &Event<'_>) -> Result<(), String> {
    config.validate(&format!("forward.destinations[{}]", config.name))?;
    let mut transport = Transport::new(config)?;
    if let Transport::Kafka(k) = &transport {
        k.check(event.meta().tenant.as_deref(), Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
    }
    let message = Encoder::new(config).encode(event)?;
    match tokio::time::timeout(
        Duration::from_secs(30),
        transport.send(std::slice::from_ref(&message)),
    )
    .await
    {
        Err(_) => Err("no confirmation within 30 s".into()),
        Ok(Ok(rejected)) => match rejected.first() {
            Some(r) => Err(format!("the destination refused the event: {}", r.reason)),
            None => Ok(()),
        },
        Ok(Err(retry)) => Err(retry.reason),
    }
}

/// Keeps every destination's view of where each chain ends current from the checkpoints, so
/// lag is right even while a destination is stuck retrying.
async fn follow_ends(
    mut checkpoints: watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    stats: Vec<Arc<DestinationStats>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = checkpoints.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let Some(cp) = checkpoints.borrow_and_update().clone() else {
            continue;
        };
        let c = &cp.checkpoint;
        let chain = c.origin.rsplit('/').next().unwrap_or(&c.origin);
        for s in &stats {
            s.saw_end(chain, c.size);
        }
    }
}

/// The cursor of a destination's first run: empty (earliest), or past every sealed record.
fn initial_cursor(data_dir: &Path, start: StartPosition) -> Result<Cursor, ForwardError> {
    let mut cursor = Cursor::default();
    if start == StartPosition::Now {
        cursor.next_seq = StoreSource::new(data_dir).pending(&cursor)?.ends;
    }
    Ok(cursor)
}

/// The findings cursor of a destination's first run (or its first run since findings were
/// forwarded): empty (earliest), or past every findings file already written.
fn initial_findings_cursor(
    data_dir: &Path,
    start: StartPosition,
) -> Result<FindingsCursor, ForwardError> {
    Ok(match start {
        StartPosition::Now => FindingsListing::list(data_dir)?.end(),
        StartPosition::Earliest => FindingsCursor::default(),
    })
}

/// A destination's positions: in the chains, and in the findings.
struct Cursors {
    cursor: Cursor,
    findings: FindingsCursor,
}

/// Sleeps `d`, or less when shutting down; true when shutting down.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Why a delivery pass ended early.
enum Stop {
    Shutdown,
}

async fn run(
    mut dest: Destination,
    cursors: Cursors,
    shared: Shared,
    mut checkpoints: watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Cursors {
        mut cursor,
        findings: mut findings_cursor,
    } = cursors;
    let mut source = StoreSource::new(&shared.data_dir);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let latest = checkpoints.borrow_and_update().clone();
        if let Some(cp) = latest
            && forward_checkpoint(&mut dest, &mut cursor, &shared, &cp, &mut shutdown)
                .await
                .is_err()
        {
            break;
        }
        // Findings first: there are few of them, and they should not wait behind a backlog of
        // records a destination is catching up on. A findings file that cannot be read does
        // not hold the records up: both run, and the pass is retried if either failed.
        let findings =
            deliver_findings(&mut dest, &mut findings_cursor, &shared, &mut shutdown).await;
        if matches!(findings, Err(PassError::Stop(Stop::Shutdown))) {
            break;
        }
        let records =
            deliver_pending(&mut dest, &mut cursor, &shared, &mut source, &mut shutdown).await;
        match records.and(findings) {
            Ok(()) => {}
            Err(PassError::Stop(Stop::Shutdown)) => break,
            Err(PassError::Store(e)) => {
                tracing::error!(destination = %dest.config.name, error = %e,
                    "Reading the store for forwarding failed; retrying.");
                if pause(
                    shared.max_backoff.min(Duration::from_secs(5)),
                    &mut shutdown,
                )
                .await
                {
                    break;
                }
                continue;
            }
        }
        tokio::select! {
            _ = checkpoints.changed() => {}
            _ = tokio::time::sleep(shared.poll) => {}
            _ = shutdown.changed() => break,
        }
    }
    if let Transport::Kafka(k) = &dest.transport {
        k.flush(Duration::from_secs(5));
    }
}

enum PassError {
    Stop(Stop),
    Store(String),
}

/// Forwards `cp` unless this destination already had it (by chain, size and time).
async fn forward_checkpoint(
    dest: &mut Destination,
    cursor: &mut Cursor,
    shared: &Shared,
    cp: &SignedCheckpoint,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let c = &cp.checkpoint;
    let chain = c.origin.rsplit('/').next().unwrap_or(&c.origin).to_owned();
    let stamp = c.timestamp.unwrap_or_default();
    let seen_size = cursor.checkpoint_size.get(&chain).copied();
    let seen_time = cursor.checkpoint_time.get(&chain).copied();
    if seen_size == Some(c.size) && seen_time >= Some(stamp) {
        return Ok(());
    }
    let event = CheckpointEvent {
        chain_id: chain.clone(),
        origin: c.origin.clone(),
        size: c.size,
        root_hex: hex::encode(c.root),
        timestamp: c.timestamp,
        note: cp.note.clone(),
    };
    let ev = Event::Checkpoint(&event);
    if dest.encoder.passes(&ev) {
        match dest.encoder.encode(&ev) {
            Ok(m) => send_all(dest, shared, vec![m], shutdown, |_| {}).await?,
            Err(reason) => dead_letter_one(
                dest,
                shared,
                &Message {
                    payload: Vec::new(),
                    meta: ev.meta(),
                },
                &reason,
            ),
        }
    }
    cursor.checkpoint_size.insert(chain.clone(), c.size);
    cursor.checkpoint_time.insert(chain, stamp);
    save(cursor, shared, dest);
    Ok(())
}

/// Saves the cursor; a failure is logged, not fatal: delivery goes on, and a crash would re-send
/// from the last saved point.
fn save(cursor: &Cursor, shared: &Shared, dest: &Destination) {
    if let Err(e) = cursor.save(&shared.data_dir, &dest.config.name) {
        tracing::error!(destination = %dest.config.name, error = %e, "Saving the forwarding cursor failed.");
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Delivers every record sealed past the cursor, chain by chain, segment by segment: a blocking
/// thread reads and encodes ([`prepare`]) while this task sends and advances the cursor.
async fn deliver_pending(
    dest: &mut Destination,
    cursor: &mut Cursor,
    shared: &Shared,
    source: &mut StoreSource,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PassError> {
    let Backlog {
        segments: pending,
        ends,
    } = source
        .pending(cursor)
        .map_err(|e| PassError::Store(e.to_string()))?;
    update_lag(dest, cursor, &ends, &pending);
    if pending.is_empty() {
        dest.stats.oldest_unsent.store(0, Ordering::Relaxed);
        return Ok(());
    }
    let (tx, mut rx) = mpsc::channel::<Step>(2);
    let (encoder, root, start, size) = (
        dest.encoder.clone(),
        shared.data_dir.clone(),
        cursor.clone(),
        shared.batch_size,
    );
    let worker = tokio::task::spawn_blocking(move || {
        prepare(&encoder, &root, pending, &start, size, &tx);
    });
    while let Some(step) = rx.recv().await {
        match step {
            Step::Segment {
                chain,
                first_seq,
                sealed,
            } => {
                let next = cursor.next(&chain);
                if first_seq > next {
                    let gone = first_seq - next;
                    dest.stats.skipped.fetch_add(gone, Ordering::Relaxed);
                    tracing::warn!(destination = %dest.config.name, chain_id = %chain, first = next, records = gone,
                        "Records were deleted from the store before this destination received them (retention); skipping them.");
                    cursor.next_seq.insert(chain, first_seq);
                }
                // This segment is now the oldest not delivered.
                dest.stats.oldest_unsent.store(sealed, Ordering::Relaxed);
            }
            Step::Batch {
                chain,
                messages,
                seqs,
                end,
            } => flush_batch(dest, cursor, shared, &chain, messages, seqs, end, shutdown).await?,
            Step::DeadLetter { message, reason } => {
                dead_letter_one(dest, shared, &message, &reason);
            }
            Step::SegmentDone { chain, next } => {
                cursor.next_seq.insert(chain, next);
                save(cursor, shared, dest);
                update_lag(dest, cursor, &ends, &BTreeMap::new());
            }
            Step::Failed(e) => return Err(PassError::Store(e)),
        }
    }
    if let Err(e) = worker.await {
        return Err(PassError::Store(format!("the preparing task failed: {e}")));
    }
    dest.stats.oldest_unsent.store(0, Ordering::Relaxed);
    Ok(())
}

fn update_lag(
    dest: &Destination,
    cursor: &Cursor,
    ends: &BTreeMap<String, u64>,
    pending: &BTreeMap<String, Vec<Pending>>,
) {
    for (chain, end) in ends {
        dest.stats.saw_end(chain, *end);
    }
    for (chain, next) in &cursor.next_seq {
        dest.stats.delivered_to(chain, *next);
    }
    if let Some(oldest) = pending
        .values()
        .filter_map(|s| s.first())
        .map(sealed_unix)
        .min()
    {
        dest.stats.oldest_unsent.store(oldest, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)] // the loop's state, threaded through explicitly
async fn flush_batch(
    dest: &mut Destination,
    cursor: &mut Cursor,
    shared: &Shared,
    chain: &str,
    batch: Vec<Message>,
    batch_seqs: Vec<u64>,
    end: u64,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PassError> {
    let name = dest.config.name.clone();
    // After a partial confirmation the cursor moves to the first unconfirmed message, so a
    // crash during a long outage re-sends only what was not confirmed.
    let stats = Arc::clone(&dest.stats);
    let advance = |cursor: &mut Cursor, seq: u64| {
        cursor.next_seq.insert(chain.to_owned(), seq);
        stats.delivered_to(chain, seq);
        if let Err(e) = cursor.save(&shared.data_dir, &name) {
            tracing::error!(destination = %name, error = %e, "Saving the forwarding cursor failed.");
        }
    };
    send_all(dest, shared, batch, shutdown, |done| {
        if let Some(&seq) = batch_seqs.get(done) {
            advance(cursor, seq);
        }
    })
    .await
    .map_err(PassError::Stop)?;
    advance(cursor, end);
    Ok(())
}

fn dead_letter_one(dest: &Destination, shared: &Shared, m: &Message, reason: &str) {
    dest.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(destination = %dest.config.name, event_id = %m.meta.event_id, seq = m.meta.seq, reason,
        "A destination refused an event for good; it is kept in the dead-letter file.");
    if let Err(e) = dead_letter::append(&shared.data_dir, &dest.config.name, m, reason) {
        tracing::error!(destination = %dest.config.name, error = %e, "Writing the dead-letter file failed.");
    }
}

/// Sends `batch` until every message is confirmed or dead-lettered, retrying with capped
/// exponential backoff. `progress` hears how many are settled after each attempt.
async fn send_all(
    dest: &mut Destination,
    shared: &Shared,
    batch: Vec<Message>,
    shutdown: &mut watch::Receiver<bool>,
    mut progress: impl FnMut(usize),
) -> Result<(), Stop> {
    let mut done = 0usize;
    let mut backoff = Duration::from_millis(100);
    while done < batch.len() {
        let rest = &batch[done..];
        let (settled, rejected, failure): (usize, Vec<Rejection>, Option<String>) =
            match dest.transport.send(rest).await {
                Ok(rejected) => (rest.len(), rejected, None),
                Err(Retry {
                    delivered,
                    rejected,
                    reason,
                }) => (delivered.min(rest.len()), rejected, Some(reason)),
            };
        for r in &rejected {
            if let Some(m) = rest.get(r.index) {
                dead_letter_one(dest, shared, m, &r.reason);
            }
        }
        dest.stats
            .succeeded((settled.saturating_sub(rejected.len())) as u64);
        done += settled;
        progress(done);
        if let Some(reason) = failure {
            dest.stats.failed(&reason);
            tracing::warn!(destination = %dest.config.name, error = %reason, retry_in_ms = backoff.as_millis() as u64,
                "Forwarding failed; retrying (the destination falls behind and catches up from the store).");
            if pause(backoff, shutdown).await {
                return Err(Stop::Shutdown);
            }
            backoff = (backoff * 2).min(shared.max_backoff);
        } else {
            backoff = Duration::from_millis(100);
        }
    }
    Ok(())
}

#[path = "deliver_findings.rs"]
mod deliver_findings;
