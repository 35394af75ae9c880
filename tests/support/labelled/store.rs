//! Full records from the compact ones, written through the real store writer; then the chain
//! gaps cut out of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calltrail_retention::{Layout, StoreConfig, StoreWriter, WriteBatch};
use calltrail_schemas::record::{Payload, Source};
use calltrail_schemas::{LlmCall, Outcome, Side, ToolCall};

use super::normal::{Event, Inference};
use super::org::{Org, mix};
use super::{DAY, Dataset, HOUR, Incident, MIN, SEC};

fn span_id(trace: u64, n: u32, salt: u64) -> String {
    format!("{:016x}", mix(trace ^ mix(u64::from(n) ^ salt)))
}

/// Shared by every record: who sent them.
struct Common {
    source: Arc<Source>,
    resource_attributes: Arc<Vec<(String, String)>>,
}

impl Common {
    fn new() -> Self {
        Self {
            source: Arc::new(Source {
                service: Some("mcp-gateway".into()),
                ingest_protocol: "otlp_grpc",
                ..Source::default()
            }),
            resource_attributes: Arc::new(Vec::new()),
        }
    }
}

fn tool_call(org: &Org, common: &Common, e: &Event) -> ToolCall {
    let target = &org.targets[e.target as usize];
    let p = &org.principals[e.who as usize];
    let (trace_id, span) = (format!("{:032x}", e.trace), span_id(e.trace, e.n, 1));
    let method = if target.resource {
        "resources/read"
    } else {
        "tools/call"
    };
    let failed = e.outcome != Outcome::Ok;
    ToolCall {
        event_id: format!("{trace_id}-{span}-server"),
        trace_id,
        span_id: span.clone(),
        parent_span_id: Some(span_id(e.trace, 0, 2)),
        call_id: span,
        is_request: true,
        side: Side::Server,
        span_name: format!("{method} {}", target.name),
        start_time_ns: e.t,
        end_time_ns: e.t + i64::from(e.duration_ms) * 1_000_000,
        observed_time_ns: e.t + 2 * SEC,
        method: method.into(),
        tool_name: (!target.resource).then(|| target.name.clone()),
        prompt_name: None,
        resource_uri: target.resource.then(|| target.name.clone()),
        operation_class: target.class,
        outcome: e.outcome,
        error_type: failed.then(|| e.outcome.as_str().into()),
        jsonrpc_code: (e.outcome == Outcome::ProtocolError).then_some(-32603),
        error_message: None,
        request_id: Some(e.n.to_string()),
        protocol_version: Some("2025-06-18".into()),
        session_id: None,
        server_name: Some(target.server.clone()),
        client_name: Some(p.client.into()),
        attribution: p.attribution.clone(),
        network_transport: None,
        client_address: None,
        client_port: None,
        server_address: None,
        server_port: None,
        source: Arc::clone(&common.source),
        arguments: Payload::default(),
        result: Payload::default(),
        attributes: Vec::new(),
        resource_attributes: Arc::clone(&common.resource_attributes),
    }
}

fn llm_call(org: &Org, common: &Common, l: &Inference) -> LlmCall {
    let (trace_id, span) = (format!("{:032x}", l.trace), span_id(l.trace, l.n, 3));
    let model = ["claude-sonnet-4-20250514", "gpt-4o", "gpt-4o-mini"][l.who as usize % 3];
    LlmCall {
        event_id: format!("{trace_id}-{span}-llm"),
        trace_id,
        span_id: span,
        parent_span_id: Some(span_id(l.trace, 0, 2)),
        span_name: format!("chat {model}"),
        start_time_ns: l.t,
        end_time_ns: l.t + 800_000_000,
        observed_time_ns: l.t + 2 * SEC,
        operation: Some("chat".into()),
        provider: Some("fixture".into()),
        request_model: Some(model.into()),
        response_model: Some(model.into()),
        input_tokens: Some(i64::from(l.input_tokens)),
        output_tokens: Some(i64::from(l.output_tokens)),
        cache_read_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        is_error: false,
        error_type: None,
        attribution: org.principals[l.who as usize].attribution.clone(),
        source: Arc::clone(&common.source),
        attributes: Vec::new(),
    }
}

/// A written labelled store.
pub struct Store {
    pub dir: PathBuf,
    /// The chain every record is in (the entity of the D9 incidents).
    pub chain_id: String,
    /// Every incident, chain gaps included.
    pub incidents: Vec<Incident>,
    pub approved_servers: Vec<String>,
    pub principals: Vec<String>,
    /// `[from, to)` of the data.
    pub range: (i64, i64),
    /// Records written, before the gaps were cut.
    pub tool_calls: usize,
    pub llm_calls: usize,
    /// Tool calls and LLM calls deleted with the gap segments.
    pub deleted: (u64, u64),
    /// Time to generate and write.
    pub elapsed: Duration,
    /// CPU time the process spent meanwhile (all threads; the machine may be shared).
    pub cpu: Duration,
}

/// Generates [`Dataset::generate`]`(days)` and writes it into `dir`.
pub async fn write_store(dir: &Path, days: u32) -> Store {
    let (started, cpu) = (Instant::now(), cpu_time());
    let data = Dataset::generate(days);
    let mut store = write(dir, &data).await;
    store.elapsed = started.elapsed();
    store.cpu = cpu_time().saturating_sub(cpu);
    store
}

/// CPU time (user and system) this process has used, from `/proc/self/stat`; zero elsewhere.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name start at the 3rd; utime and stime are the 14th and 15th,
    // in clock ticks (1/100 s on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Writes `data` into `dir` through the real writer, then cuts the chain gaps.
pub async fn write(dir: &Path, data: &Dataset) -> Store {
    // The key `serve` would use, so that `verify` and the detectors find it where they look.
    let key = calltrail_retention::chain::keys::load_or_create(None, dir, "calltrail.local")
        .expect("create the store's signing key");
    let (from, to) = data.range();
    let mut cuts = vec![from];
    for g in &data.gaps {
        cuts.extend([*g, g + 20 * MIN, g + 40 * MIN]);
    }
    cuts.push(to);
    let (common, mut wal_seq, mut chain_id) = (Common::new(), 0, String::new());
    let mut doomed = Vec::new();
    for (phase, span) in cuts.windows(2).enumerate() {
        let writer = format!("gen{phase:03}");
        if data.gaps.contains(&(span[0] - 20 * MIN)) {
            doomed.push((span[0] - 20 * MIN, writer.clone()));
        }
        let range = (span[0], span[1]);
        chain_id = write_phase(dir, data, &common, &key, range, &writer, &mut wal_seq).await;
    }
    let mut incidents = data.incidents.clone();
    let mut deleted = (0, 0);
    for (hour, writer) in doomed {
        let (tool_calls, llm_calls) = cut_gap(dir, hour, &writer);
        deleted = (deleted.0 + tool_calls, deleted.1 + llm_calls);
        incidents.push(Incident {
            detectors: vec!["D9"],
            entity_kind: "chain",
            entity: chain_id.clone(),
            start_ns: hour,
            end_ns: hour + HOUR,
            what: "chain gap: the sealed segments of minutes 20-40 of this hour deleted",
        });
    }
    Store {
        dir: dir.to_owned(),
        chain_id,
        incidents,
        approved_servers: data.org.approved_servers.clone(),
        principals: data.principals(),
        range: (from, to),
        tool_calls: data.calls.len(),
        llm_calls: data.llm.len(),
        deleted,
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
    }
}

/// Writes the records of `[from, to)` with a writer of its own, a day per batch; returns the
/// chain id.
async fn write_phase(
    dir: &Path,
    data: &Dataset,
    common: &Common,
    key: &calltrail_retention::note::SigningKey,
    (from, to): (i64, i64),
    writer: &str,
    wal_seq: &mut u64,
) -> String {
    // Few, large flushes and one retention class: every hour then has one segment per table
    // (about 2 200 files instead of 3 600). DataFusion's planning time grows with the number of
    // files, and in a debug build it dominates every query of the detectors over 60 days.
    let config = StoreConfig {
        dedup_window: 0,
        flush_max_rows: 100_000,
        flush_interval_ms: 3_600_000,
        ..StoreConfig::default()
    };
    let retention = calltrail_retention::policy::RetentionConfig {
        rules: Vec::new(),
        default: calltrail_retention::policy::DefaultRule {
            name: "everything".into(),
            keep_days: 2557,
        },
        ..Default::default()
    };
    let w = StoreWriter::spawn(
        config,
        Arc::new(Layout::new(dir, writer)),
        &calltrail_retention::chain::IntegrityConfig::default(),
        key,
        &retention,
    )
    .expect("start the store writer");
    let mut t = from;
    while t < to {
        let end = (t - t.rem_euclid(DAY) + DAY).min(to);
        let calls = slice(&data.calls, t, end, |e| e.t);
        let llm = slice(&data.llm, t, end, |l| l.t);
        *wal_seq += 1;
        let batch = WriteBatch {
            wal_seq: *wal_seq,
            tool_calls: calls
                .iter()
                .map(|e| tool_call(&data.org, common, e))
                .collect(),
            llm_calls: llm.iter().map(|l| llm_call(&data.org, common, l)).collect(),
        };
        let handle = w.handle();
        // The writer's queue is bounded: wait for room rather than fail.
        tokio::task::spawn_blocking(move || handle.submit_blocking(batch))
            .await
            .expect("submit task")
            .expect("the store writer takes the batch");
        t = end;
    }
    let chain_id = w.chain_id().to_owned();
    w.shutdown().await;
    chain_id
}

/// The items of a time-sorted slice with `from <= time < to`.
fn slice<T>(items: &[T], from: i64, to: i64, time: impl Fn(&T) -> i64) -> &[T] {
    let a = items.partition_point(|x| time(x) < from);
    let b = items.partition_point(|x| time(x) < to);
    &items[a..b]
}

/// A sealed segment, from its manifest.
#[derive(Debug, Clone)]
pub struct Segment {
    pub manifest: PathBuf,
    pub table: String,
    pub class: String,
    pub first_seq: u64,
    pub count: u64,
}

impl Segment {
    /// The Parquet file beside the manifest.
    pub fn file(&self) -> PathBuf {
        let name = self
            .manifest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = name
            .trim_start_matches('_')
            .trim_end_matches(".manifest.json");
        self.manifest.with_file_name(format!("{stem}.parquet"))
    }

    /// The `date=.../hour=...` directory.
    pub fn partition(&self) -> PathBuf {
        self.manifest
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    }
}

/// Every segment of the store, in chain order.
pub fn segments(dir: &Path) -> Vec<Segment> {
    let mut out = Vec::new();
    for table in ["tool_calls", "llm_calls"] {
        collect_segments(&dir.join(table), &mut out);
    }
    out.sort_by_key(|s| s.first_seq);
    out
}

fn collect_segments(dir: &Path, out: &mut Vec<Segment>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("read a store directory").path();
        if path.is_dir() {
            collect_segments(&path, out);
        } else if path.to_string_lossy().ends_with(".manifest.json") {
            let text = std::fs::read(&path).expect("read a manifest");
            let m: serde_json::Value = serde_json::from_slice(&text).expect("a manifest is JSON");
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            out.push(Segment {
                table: text("table"),
                class: text("retention_class"),
                first_seq: m["first_seq"].as_u64().expect("first_seq"),
                count: m["count"].as_u64().expect("count"),
                manifest: path,
            });
        }
    }
}

/// Deletes every segment `writer` sealed (files and manifests), after checking that they are
/// contiguous in the chain and that the segments on both sides are of the hour starting at
/// `hour_ns`; returns the tool calls and LLM calls deleted.
fn cut_gap(dir: &Path, hour_ns: i64, writer: &str) -> (u64, u64) {
    let partition = calltrail_retention::Partition::of(hour_ns).path();
    let all = segments(dir);
    let tag = format!("-{writer}-");
    let doomed: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].file().to_string_lossy().contains(&tag))
        .collect();
    let (Some(&first), Some(&last)) = (doomed.first(), doomed.last()) else {
        panic!("writer {writer} sealed no segment in {partition}");
    };
    assert_eq!(
        last - first + 1,
        doomed.len(),
        "the segments of {writer} are not contiguous"
    );
    assert!(
        first > 0 && last + 1 < all.len(),
        "the gap in {partition} is at an end of the chain"
    );
    for n in [first - 1, first, last, last + 1] {
        assert!(
            all[n].partition().ends_with(&partition),
            "segment {} beside the gap is not of {partition}",
            all[n].manifest.display()
        );
    }
    let mut rows = (0, 0);
    for s in &all[first..=last] {
        std::fs::remove_file(s.file()).expect("delete a gap segment");
        std::fs::remove_file(&s.manifest).expect("delete a gap segment's manifest");
        match s.table.as_str() {
            "tool_calls" => rows.0 += s.count,
            _ => rows.1 += s.count,
        }
    }
    rows
}
