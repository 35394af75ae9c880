//! Crash recovery under load: `calltrail serve` is killed with SIGKILL at a random moment while
//! the real `opentelemetry-otlp` exporter (gRPC and HTTP/protobuf, several batches in flight,
//! no client-side retries) sends MCP tool-call spans, then restarted on the same data dir, for
//! 20 cycles (`CALLTRAIL_CRASH_CYCLES` for more). The store's flush interval is longer than most
//! cycles, so kills hit acknowledged records that are only in the write-ahead log.
//!
//! It proves that an acknowledgement is a promise kept across crashes: after a final clean stop,
//! DuckDB reads every acknowledged span from Parquet exactly once, never a span twice (whether
//! acknowledged or not), and nothing that was never sent; and that restarts did recover from the
//! log (acknowledged spans missing from Parquet right after a kill came back, and the server
//! said it replayed frames).
//!
//! Then `calltrail verify` must find the store intact: kills also land while segments are sealed
//! and checkpoints signed, and recovery must leave one gap-free chain whose every record, link
//! and checkpoint checks out.
//!
//! The kill moments come from a seeded generator; the seed is printed, and
//! `CALLTRAIL_CRASH_SEED=<seed>` replays the same schedule.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{
    Protocol, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use support::Server;

/// Kill/restart cycles unless `CALLTRAIL_CRASH_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 20;
/// Concurrent senders, half over gRPC and half over HTTP/protobuf.
const SENDERS: usize = 6;
/// Spans per exported batch (one OTLP request, one write-ahead-log frame).
const BATCH_SPANS: usize = 40;
/// Per sender and cycle: the load loop's bound by count (the kill ends it long before).
const MAX_BATCHES: usize = 5_000;
/// The kill comes this many milliseconds after the load starts, uniformly at random.
const KILL_AFTER_MS: (u64, u64) = (30, 1_200);
/// After a kill every sender must have finished within this.
const SENDERS_DEADLINE: Duration = Duration::from_secs(30);
/// One cycle (load, kill, probe, restart and recovery) must fit in this; each step has its own
/// bound too, so a hang fails the test instead of stalling it.
const CYCLE_DEADLINE: Duration = Duration::from_secs(60);
/// After-kill checks of Parquet that look for acknowledged records the crash caught unflushed.
const MAX_PROBES: usize = 4;

const CONFIG: &str = r#"
[store]
# Longer than most cycles: kills hit acknowledged records that are only in the log.
flush_interval_ms = 2000
# But a full buffer flushes at once, so kills also land around sealed files and checkpoints.
flush_max_rows = 3000
# Off, so that the write-time duplicate filter cannot hide a record replayed twice.
dedup_window = 0

[wal]
# The smallest segments: rotation and deletion of sealed segments happen under the kills too.
segment_max_bytes = 1048576
"#;

/// xorshift64: enough randomness for kill moments, reproducible from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("CALLTRAIL_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("CALLTRAIL_CRASH_SEED={s:?}: {e}")),
        Err(_) => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    seed.max(1)
}

fn cycles() -> usize {
    match std::env::var("CALLTRAIL_CRASH_CYCLES") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("CALLTRAIL_CRASH_CYCLES={s:?}: {e}")),
        Err(_) => DEFAULT_CYCLES,
    }
}

/// A span's identity as stored: (`trace_id`, `span_id`), lowercase hex.
type Key = (String, String);

/// Unique ids for every span of the run.
#[derive(Default)]
struct Ids {
    batches: AtomicU64,
    spans: AtomicU64,
}

/// One batch of SERVER `tools/call` spans with fresh ids, and their keys.
fn batch(ids: &Ids) -> (Vec<SpanData>, Vec<Key>) {
    let b = ids.batches.fetch_add(1, Ordering::Relaxed) + 1;
    let mut trace = [0x7c_u8; 16];
    trace[8..].copy_from_slice(&b.to_be_bytes());
    let trace_id = TraceId::from_bytes(trace);
    let end = SystemTime::now();
    let start = end - Duration::from_millis(3);
    let mut spans = Vec::with_capacity(BATCH_SPANS);
    let mut keys = Vec::with_capacity(BATCH_SPANS);
    for i in 0..BATCH_SPANS {
        let n = ids.spans.fetch_add(1, Ordering::Relaxed) + 1;
        let span_id = SpanId::from_bytes((0xc7 << 56 | n).to_be_bytes());
        keys.push((trace_id.to_string(), span_id.to_string()));
        let tool = ["get_balance", "list_accounts", "transfer_funds"][i % 3];
        spans.push(SpanData {
            span_context: SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: format!("tools/call {tool}").into(),
            start_time: start,
            end_time: end,
            attributes: vec![
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.tool.name", tool),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
                KeyValue::new("jsonrpc.request.id", n.to_string()),
                KeyValue::new("mcp.protocol.version", "2025-11-25"),
                KeyValue::new("user.id", "alice@example.com"),
            ],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("calltrail-crash-test").build(),
        });
    }
    (spans, keys)
}

/// The real OTLP exporter, one attempt per batch: with the SDK's retries an acknowledgement
/// could belong to a resend of a batch whose first attempt died with the server.
fn exporter(server: &Server, grpc: bool) -> opentelemetry_otlp::SpanExporter {
    let mut exporter = if grpc {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(server.grpc_url())
            .with_timeout(Duration::from_secs(10))
            .with_retry_policy(RetryPolicy::disabled())
            .build()
            .expect("build gRPC exporter")
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(server.traces_url())
            .with_timeout(Duration::from_secs(10))
            .with_retry_policy(RetryPolicy::disabled())
            .build()
            .expect("build HTTP exporter")
    };
    opentelemetry_sdk::trace::SpanExporter::set_resource(
        &mut exporter,
        &Resource::builder().with_service_name("crash-test").build(),
    );
    exporter
}

/// What one sender saw in one cycle.
#[derive(Default)]
struct Sent {
    acked: Vec<Key>,
    unacked: Vec<Key>,
    /// Errors that came before the kill (overload refusals, say): not failures, but worth
    /// seeing in the output.
    early_errors: Vec<String>,
}

async fn send(
    exporter: Arc<opentelemetry_otlp::SpanExporter>,
    ids: Arc<Ids>,
    killed: Arc<AtomicBool>,
) -> Sent {
    let mut sent = Sent::default();
    for _ in 0..MAX_BATCHES {
        if killed.load(Ordering::SeqCst) {
            break;
        }
        let (spans, keys) = batch(&ids);
        let result = exporter.export(spans).await;
        match result {
            Ok(()) => sent.acked.extend(keys),
            Err(e) => {
                // Raised before the SIGKILL is sent: an error the kill did not cause.
                if !killed.load(Ordering::SeqCst) {
                    sent.early_errors.push(e.to_string());
                }
                sent.unacked.extend(keys);
            }
        }
    }
    sent
}

/// Runs the load against `server` and SIGKILLs it `kill_after` in.
async fn load_and_kill(server: &mut Server, ids: &Arc<Ids>, kill_after: Duration) -> Sent {
    let grpc = Arc::new(exporter(server, true));
    let http = Arc::new(exporter(server, false));
    let killed = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..SENDERS)
        .map(|i| {
            let e = Arc::clone(if i % 2 == 0 { &grpc } else { &http });
            tokio::spawn(send(e, Arc::clone(ids), Arc::clone(&killed)))
        })
        .collect();
    tokio::time::sleep(kill_after).await;
    killed.store(true, Ordering::SeqCst);
    server.kill();
    let mut all = Sent::default();
    let joined = tokio::time::timeout(SENDERS_DEADLINE, async {
        for t in tasks {
            let s = t.await.expect("sender task");
            all.acked.extend(s.acked);
            all.unacked.extend(s.unacked);
            all.early_errors.extend(s.early_errors);
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "senders still busy {SENDERS_DEADLINE:?} after the kill"
    );
    all
}

/// The `replayed_frames` of every "Recovered the write-ahead log" line in `log`.
fn replayed_frames(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("Recovered the write-ahead log"))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("replayed_frames="))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("recovery line without replayed_frames: {l}"))
        })
        .collect()
}

/// How many of `keys` are in Parquet now.
fn stored_now(server: &Server, keys: &[Key]) -> usize {
    let rows = support::duckdb_rows(
        server.data_dir(),
        "tool_calls",
        "SELECT trace_id, span_id FROM t",
    );
    let stored: std::collections::HashSet<Key> = rows
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    keys.iter().filter(|k| stored.contains(*k)).count()
}

#[test]
fn acknowledged_spans_survive_sigkill_exactly_once() {
    let started = Instant::now();
    let seed = seed();
    let cycles = cycles();
    println!("crash_recovery: seed {seed}, {cycles} cycles (replay: CALLTRAIL_CRASH_SEED={seed})");
    let mut rng = XorShift(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ids = Arc::new(Ids::default());
    let mut server = Server::start_with_config(CONFIG);

    let mut acked: Vec<Key> = Vec::new();
    let mut unacked: Vec<Key> = Vec::new();
    let mut replayed: Vec<u64> = Vec::new();
    let (mut probes, mut caught_unflushed, mut cuts) = (0, 0, 0);
    // Restarts that found a seal the kill interrupted: its file on disk (adopted), or not yet.
    let (mut seals_adopted, mut seals_dropped) = (0, 0);
    for cycle in 0..cycles {
        let cycle_started = Instant::now();
        let kill_after = Duration::from_millis(rng.between(KILL_AFTER_MS.0, KILL_AFTER_MS.1));
        let sent = rt.block_on(load_and_kill(&mut server, &ids, kill_after));
        println!(
            "cycle {cycle:>3}: killed after {:>4} ms: {:>6} spans acknowledged, {:>4} not{}",
            kill_after.as_millis(),
            sent.acked.len(),
            sent.unacked.len(),
            match sent.early_errors.first() {
                Some(e) => format!(
                    "; {} errors before the kill, first: {e}",
                    sent.early_errors.len()
                ),
                None => String::new(),
            }
        );
        // Right after a kill, acknowledged spans missing from Parquet were only in the log.
        if caught_unflushed == 0 && probes < MAX_PROBES && !sent.acked.is_empty() {
            probes += 1;
            caught_unflushed = sent.acked.len() - stored_now(&server, &sent.acked);
        }
        acked.extend(sent.acked);
        unacked.extend(sent.unacked);

        let log_before = server.log().len();
        server.restart();
        let log = server.log();
        replayed.extend(replayed_frames(&log[log_before..]));
        cuts += log[log_before..].matches("Cut a damaged").count();
        seals_adopted += log[log_before..]
            .matches("Completed the seal of a segment interrupted")
            .count();
        seals_dropped += log[log_before..].matches("never reached disk").count();
        assert!(
            cycle_started.elapsed() < CYCLE_DEADLINE,
            "cycle {cycle} took {:?} (seed {seed})",
            cycle_started.elapsed()
        );
    }

    // The last restart took everything in; one more batch each way, then a clean stop.
    let last = rt.block_on(async {
        let mut keys = Vec::new();
        for grpc in [true, false] {
            let e = exporter(&server, grpc);
            let (spans, k) = batch(&ids);
            if let Err(err) = e.export(spans).await {
                panic!(
                    "export after the last restart failed (grpc: {grpc}): {err}\nserver stderr:\n{}",
                    server.log()
                );
            }
            keys.extend(k);
        }
        keys
    });
    acked.extend(last);
    server.stop();
    let load_time = started.elapsed();

    println!(
        "{} spans acknowledged, {} not; {} restarts recovered the log, replaying {} frames and \
         cutting {cuts} torn tails; {caught_unflushed} acknowledged spans were not in Parquet \
         right after a kill; {seals_adopted} interrupted seals adopted and {seals_dropped} \
         dropped at restart",
        acked.len(),
        unacked.len(),
        replayed.len(),
        replayed.iter().sum::<u64>()
    );
    assert!(
        caught_unflushed > 0,
        "no kill caught an acknowledged span before it reached Parquet ({probes} probes): \
         the test did not exercise recovery (seed {seed})"
    );
    assert!(
        replayed.iter().any(|&n| n > 0),
        "no restart said it replayed write-ahead-log frames (recoveries: {replayed:?}, seed {seed})"
    );

    // DuckDB, straight from the Parquet files.
    let rows = support::duckdb_rows(
        server.data_dir(),
        "tool_calls",
        "SELECT trace_id, span_id, side, count(*) FROM t GROUP BY ALL",
    );
    let mut stored: HashMap<Key, (Vec<String>, u64)> = HashMap::new();
    for r in rows {
        let [trace, span, side, n] = <[String; 4]>::try_from(r).expect("four cells per row");
        let entry = stored.entry((trace, span)).or_default();
        entry.0.push(side);
        entry.1 += n.parse::<u64>().expect("count");
    }
    let total: u64 = stored.values().map(|(_, n)| n).sum();
    assert!(!acked.is_empty(), "nothing was acknowledged (seed {seed})");

    let missing: Vec<&Key> = acked.iter().filter(|k| !stored.contains_key(*k)).collect();
    let twice: Vec<(&Key, u64)> = stored
        .iter()
        .filter(|(_, (_, n))| *n > 1)
        .map(|(k, (_, n))| (k, *n))
        .collect();
    let not_server: Vec<(&Key, &Vec<String>)> = stored
        .iter()
        .filter(|(_, (sides, _))| sides.iter().any(|s| s != "server"))
        .map(|(k, (sides, _))| (k, sides))
        .collect();
    let sent: std::collections::HashSet<&Key> = acked.iter().chain(&unacked).collect();
    let unknown: Vec<&Key> = stored.keys().filter(|k| !sent.contains(k)).collect();
    let unacked_stored = unacked.iter().filter(|k| stored.contains_key(*k)).count();
    println!(
        "DuckDB: {total} rows, {} distinct spans; {unacked_stored} of {} unacknowledged spans stored; \
         load {load_time:?}, whole test {:?}",
        stored.len(),
        unacked.len(),
        started.elapsed()
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spans are not in Parquet (seed {seed}), e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        twice.is_empty(),
        "{} spans are stored more than once (seed {seed}), e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert!(
        not_server.is_empty(),
        "spans stored with a side other than server (seed {seed}): {:?}",
        &not_server[..not_server.len().min(5)]
    );
    assert!(
        unknown.is_empty(),
        "{} stored spans were never sent (seed {seed}), e.g. {:?}",
        unknown.len(),
        &unknown[..unknown.len().min(5)]
    );
    assert_eq!(
        total,
        (acked.len() + unacked_stored) as u64,
        "rows in Parquet = acknowledged spans + unacknowledged spans that made it (seed {seed})"
    );

    verify_chain(&server, total, seed);
}

/// `calltrail verify` on the data dir after the crashes: no finding, and one chain that holds
/// every stored record exactly once (seqs 0..total), whose newest checkpoint covers all of them
/// and every checkpoint of which was recomputed from the records. Kills during a seal must have
/// been recovered by adopting or re-chaining the pending segment, never by skipping or reusing
/// seqs or by starting a new chain.
fn verify_chain(server: &Server, total: u64, seed: u64) {
    let data = server.data_dir();
    let mut cmd = std::process::Command::new(support::BIN);
    cmd.arg("verify")
        .arg(data)
        .arg("--pubkey")
        .arg(data.join("keys/calltrail.pub"))
        .arg("--json");
    let out = support::run(cmd, Duration::from_secs(120));
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "calltrail verify printed no JSON report ({e}, seed {seed})\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        )
    });
    let shown = serde_json::to_string_pretty(&report).expect("print the report");
    assert!(
        out.status.success() && report["ok"] == true,
        "calltrail verify failed after the crashes ({}, seed {seed}):\n{shown}\nserver stderr:\n{}",
        out.status,
        server.log()
    );
    assert_eq!(
        report["records"].as_u64(),
        Some(total),
        "verify checked another number of records than DuckDB read (seed {seed}):\n{shown}"
    );
    let chains = report["chains"]
        .as_array()
        .unwrap_or_else(|| panic!("the report has no chains (seed {seed}):\n{shown}"));
    assert_eq!(
        chains.len(),
        1,
        "the crashes left more than one chain (seed {seed}):\n{shown}"
    );
    let chain = &chains[0];
    assert_eq!(
        (chain["records"].as_u64(), chain["size"].as_u64()),
        (Some(total), Some(total)),
        "the chain does not hold seqs 0..{total} once each (seed {seed}):\n{shown}"
    );
    assert_eq!(
        chain["newest_checkpoint"][0].as_u64(),
        Some(total),
        "the newest checkpoint does not cover every record (seed {seed}):\n{shown}"
    );
    assert_eq!(
        chain["heads_matched"], chain["checkpoints"],
        "not every checkpoint's head was recomputed from the records (seed {seed}):\n{shown}"
    );
    println!(
        "calltrail verify: ok, {total} records in {} segments, {} checkpoints matched",
        chain["segments"], chain["heads_matched"]
    );
}
