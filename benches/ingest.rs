//! Ingest benchmark: drives a real `calltrail serve` over loopback and measures what reaches Parquet.
//!
//! Run (release build, the bench profile):
//!
//! ```text
//! cargo bench --bench ingest -- [--seconds N] [--concurrency C] [--protocol grpc|http|both] [--batches B]
//!                                 [--fsync always|interval|never] [--rate R] [--server-config FILE]
//! ```
//!
//! Defaults: 10 s per protocol, 32 concurrent requests, both protocols, 400 distinct batches,
//! the server's default configuration except `[wal] fsync` (`--fsync`, default `always`) and
//! `[store] dedup_window = 0`: the batches repeat, and the duplicate filter would rightly drop
//! every repeat. `--server-config` passes a TOML file as `-c` instead (then `--fsync` is not
//! applied); the data directory is always a fresh temporary one. `--rate R` paces the load to
//! about R requests/s in all (each task waits `C / R` seconds between sends), for latency at a
//! given rate rather than at saturation.
//! For each protocol a fresh server is started on `127.0.0.1:0` with a temporary data directory.
//! `B` distinct OTLP requests of ~100 MCP spans each (whole agent tasks from
//! `calltrail::workload::Workload`, timestamps one hour ago) are protobuf-encoded once, before
//! timing. `C` tasks then send them round-robin for the fixed duration: gRPC through a tonic
//! client whose codec writes the pre-encoded bytes as they are, HTTP as `POST /v1/traces`
//! with `application/x-protobuf`. Busy refusals (HTTP 503/429, gRPC UNAVAILABLE or
//! RESOURCE_EXHAUSTED) are counted apart and retried after 5 ms.
//!
//! It prints, per protocol: accepted spans/s (spans of successful requests minus
//! `partial_success.rejected_spans`), p50/p99 latency of accepted requests, the server's CPU
//! seconds (during the load, and in total including the shutdown flush) and peak RSS (VmHWM),
//! the load generator's own CPU seconds, and, after a SIGTERM (the server flushes everything
//! it acknowledged), Parquet bytes and rows under `tool_calls/` and `llm_calls/`, checking that
//! rows written equal accepted spans. The batches repeat, so the Parquet size per span is a
//! lower bound for real traffic (repeated rows compress better than fresh ones).
//!
//! Linux only (reads `/proc`). Every server started is killed when the bench exits or panics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calltrail::workload::Workload;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF: Duration = Duration::from_millis(5);
const GRPC_CHANNELS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Grpc,
    Http,
}

struct Args {
    seconds: f64,
    concurrency: usize,
    protocols: Vec<Protocol>,
    batches: usize,
    server_config: Option<PathBuf>,
    fsync: String,
    rate: Option<f64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 10.0,
        concurrency: 32,
        protocols: vec![Protocol::Grpc, Protocol::Http],
        batches: 400,
        server_config: None,
        fsync: "always".into(),
        rate: None,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let (flag, inline) = match raw[i].split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (raw[i].clone(), None),
        };
        let known = [
            "--seconds",
            "--concurrency",
            "--protocol",
            "--batches",
            "--server-config",
            "--fsync",
            "--rate",
        ]
        .contains(&flag.as_str());
        if !known {
            i += 1; // `--bench` from cargo, or anything else: ignored
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                raw.get(i)
                    .cloned()
                    .unwrap_or_else(|| panic!("{flag} needs a value"))
            }
        };
        match flag.as_str() {
            "--seconds" => a.seconds = number(&flag, &value),
            "--concurrency" => a.concurrency = number(&flag, &value),
            "--batches" => a.batches = number(&flag, &value),
            "--server-config" => a.server_config = Some(PathBuf::from(&value)),
            "--fsync" => {
                assert!(
                    ["always", "interval", "never"].contains(&value.as_str()),
                    "--fsync must be always, interval or never, not `{value}`"
                );
                a.fsync = value;
            }
            "--rate" => a.rate = Some(number(&flag, &value)),
            _ => {
                a.protocols = match value.as_str() {
                    "grpc" => vec![Protocol::Grpc],
                    "http" => vec![Protocol::Http],
                    "both" => vec![Protocol::Grpc, Protocol::Http],
                    _ => panic!("--protocol must be grpc, http or both, not `{value}`"),
                }
            }
        }
        i += 1;
    }
    assert!(
        a.seconds > 0.0 && a.concurrency > 0 && a.batches > 0,
        "--seconds, --concurrency and --batches must be > 0"
    );
    a
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{flag}: invalid value `{value}`"))
}

/// One pre-encoded request.
struct Batch {
    bytes: Bytes,
    spans: u64,
}

fn encode_batches(n: usize) -> Vec<Batch> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_nanos() as i64;
    let mut w = Workload::new(42, now - 3_600_000_000_000, 1_000_000);
    (0..n)
        .map(|_| {
            let req = w.next_request(100);
            let spans = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum();
            Batch {
                bytes: req.encode_to_vec().into(),
                spans,
            }
        })
        .collect()
}

// ---- gRPC codec: pre-encoded bytes out, prost-decoded response in ----

#[derive(Clone, Copy)]
struct RawCodec;
struct RawEncoder;
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let msg = ExportTraceServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| Status::internal(format!("bad response: {e}")))?;
        Ok(Some(msg))
    }
}

// ---- the server under test ----

/// A running `calltrail serve`; killed on drop unless stopped cleanly.
struct Server {
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn server_binary() -> PathBuf {
    let p = match option_env!("CARGO_BIN_EXE_calltrail") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/calltrail"),
    };
    if !p.is_file() {
        eprintln!(
            "error: the calltrail binary is missing at {}; run `cargo build --release` first",
            p.display()
        );
        std::process::exit(2);
    }
    p
}

fn log_tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn start_server(bin: &Path, dir: &Path, config: Option<&Path>) -> Server {
    let data_dir = dir.join("data");
    let ready = dir.join("ready.json");
    let log = dir.join("server.log");
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    let child = cmd
        .arg("--data-dir")
        .arg(&data_dir)
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--ready-file",
        ])
        .arg(&ready)
        .env("CALLTRAIL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("cannot create the server log"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let pid = child.id();
    let mut server = Server {
        child: Some(child),
        pid,
        log,
        grpc: ([0, 0, 0, 0], 0).into(),
        http: ([0, 0, 0, 0], 0).into(),
    };
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(c) = server.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "the server exited before it was ready ({status}):\n{}",
                log_tail(&server.log)
            );
        }
        if let Ok(text) = std::fs::read_to_string(&ready) {
            let v: serde_json::Value = serde_json::from_str(&text).expect("ready file is not JSON");
            let addr = |k: &str| -> SocketAddr {
                v[k].as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("ready file: bad `{k}`: {text}"))
            };
            server.grpc = addr("grpc");
            server.http = addr("http");
            return server;
        }
        assert!(
            Instant::now() < until,
            "the server was not ready within 30 s:\n{}",
            log_tail(&server.log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (state, utime + stime in seconds) from `/proc/<pid>/stat`.
fn proc_stat(pid: &str, tck: f64) -> Option<(char, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = s.get(s.rfind(')')? + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some((state, ticks / tck))
}

/// CPU seconds all processes have spent busy (not idle or waiting for I/O), from `/proc/stat`.
fn machine_busy(tck: f64) -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    (f.iter().take(8).sum::<f64>() - idle) / tck
}

/// VmHWM in bytes from `/proc/<pid>/status` (absent once the process is a zombie).
fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

struct Shutdown {
    total_cpu: Option<f64>,
    peak_rss: u64,
    flush_time: Duration,
}

impl Server {
    /// SIGTERM, then wait for the drain; reads the final CPU time from the zombie before reaping it.
    fn stop(&mut self, tck: f64) -> Shutdown {
        let mut child = self.child.take().expect("server already stopped");
        let mut peak_rss = vm_hwm(self.pid).unwrap_or(0);
        let t0 = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {} failed", self.pid);
        let mut total_cpu = None;
        while t0.elapsed() < Duration::from_secs(60) {
            if let Some(h) = vm_hwm(self.pid) {
                peak_rss = peak_rss.max(h);
            }
            match proc_stat(&self.pid.to_string(), tck) {
                Some(('Z', cpu)) => {
                    total_cpu = Some(cpu);
                    break;
                }
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
                None => break,
            }
        }
        let flush_time = t0.elapsed();
        if total_cpu.is_none() {
            let _ = child.kill();
        }
        let status = child.wait().expect("cannot wait for the server");
        assert!(
            status.success(),
            "the server did not stop cleanly ({status}):\n{}",
            log_tail(&self.log)
        );
        Shutdown {
            total_cpu,
            peak_rss,
            flush_time,
        }
    }
}

// ---- load ----

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    requests_ok: u64,
    spans_accepted: u64,
    spans_rejected: u64,
    refused: u64,
    failed: u64,
    first_error: Option<String>,
}

/// What one request came to.
enum Outcome {
    /// Accepted, with `partial_success.rejected_spans`.
    Accepted(i64),
    /// A retryable refusal (busy).
    Refused,
    Failed(String),
}

/// One load task: sends the batches round-robin from `first` until `deadline`, at most one
/// request per `pace` when given, starting `phase` into the first period (tasks are spread
/// over the period so that paced load arrives evenly, not in bursts of `C`).
async fn load<F, Fut>(
    batches: Arc<Vec<Batch>>,
    first: usize,
    deadline: Instant,
    pace: Option<(Duration, Duration)>,
    mut send: F,
) -> Stats
where
    F: FnMut(Bytes) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut st = Stats::default();
    let mut i = first;
    let mut ticker = pace.map(|(period, phase)| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while Instant::now() < deadline {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let b = &batches[i % batches.len()];
        i += 1;
        let t0 = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, send(b.bytes.clone())).await;
        let failure = match outcome.unwrap_or_else(|_| Outcome::Failed("request timed out".into()))
        {
            Outcome::Accepted(rejected) => {
                st.latencies_us
                    .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                st.requests_ok += 1;
                let rejected = rejected.clamp(0, b.spans as i64) as u64;
                st.spans_accepted += b.spans - rejected;
                st.spans_rejected += rejected;
                continue;
            }
            Outcome::Refused => None,
            Outcome::Failed(e) => Some(e),
        };
        match failure {
            None => st.refused += 1,
            Some(e) => {
                st.failed += 1;
                st.first_error.get_or_insert(e);
            }
        }
        tokio::time::sleep(BACKOFF).await;
    }
    st
}

async fn grpc_send(mut client: tonic::client::Grpc<Channel>, body: Bytes) -> Outcome {
    if let Err(e) = client.ready().await {
        return Outcome::Failed(format!("gRPC channel not ready: {e}"));
    }
    let path = PathAndQuery::from_static(EXPORT_PATH);
    match client
        .unary(tonic::Request::new(body), path, RawCodec)
        .await
    {
        Ok(r) => Outcome::Accepted(
            r.get_ref()
                .partial_success
                .as_ref()
                .map_or(0, |p| p.rejected_spans),
        ),
        Err(s) if matches!(s.code(), Code::Unavailable | Code::ResourceExhausted) => {
            Outcome::Refused
        }
        Err(s) => Outcome::Failed(format!("gRPC {:?}: {}", s.code(), s.message())),
    }
}

async fn http_send(client: reqwest::Client, url: Arc<str>, body: Bytes) -> Outcome {
    let sent = client
        .post(&*url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("HTTP error: {e}")),
    };
    let status = resp.status().as_u16();
    match (status, resp.bytes().await) {
        (200, Ok(b)) => match ExportTraceServiceResponse::decode(b) {
            Ok(r) => Outcome::Accepted(r.partial_success.map_or(0, |p| p.rejected_spans)),
            Err(e) => Outcome::Failed(format!("HTTP 200 with an undecodable body: {e}")),
        },
        (429 | 503, _) => Outcome::Refused,
        (_, Ok(b)) => Outcome::Failed(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&b[..b.len().min(200)])
        )),
        (_, Err(e)) => Outcome::Failed(format!("HTTP {status}, body unreadable: {e}")),
    }
}

async fn drive(
    proto: Protocol,
    server: &Server,
    batches: &Arc<Vec<Batch>>,
    args: &Args,
) -> (Stats, Duration) {
    let stride = batches.len() / args.concurrency + 1;
    let pace = args
        .rate
        .map(|r| Duration::from_secs_f64(args.concurrency as f64 / r));
    // Task t starts t/C into the period, so that paced requests arrive evenly.
    let phase = |t: usize| pace.map(|p| (p, p.mul_f64(t as f64 / args.concurrency as f64)));
    let mut handles = Vec::with_capacity(args.concurrency);
    let start;
    match proto {
        Protocol::Grpc => {
            let endpoint = Endpoint::from_shared(format!("http://{}", server.grpc))
                .expect("bad gRPC endpoint")
                .tcp_nodelay(true)
                .initial_stream_window_size(Some(4 << 20))
                .initial_connection_window_size(Some(16 << 20));
            let mut clients = Vec::new();
            for _ in 0..GRPC_CHANNELS {
                let channel = endpoint
                    .connect()
                    .await
                    .expect("cannot connect to the gRPC receiver");
                clients.push(tonic::client::Grpc::new(channel));
            }
            start = Instant::now();
            let deadline = start + Duration::from_secs_f64(args.seconds);
            for t in 0..args.concurrency {
                let client = clients[t % GRPC_CHANNELS].clone();
                let send = move |body| grpc_send(client.clone(), body);
                handles.push(tokio::spawn(load(
                    batches.clone(),
                    t * stride,
                    deadline,
                    phase(t),
                    send,
                )));
            }
        }
        Protocol::Http => {
            let client = reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(args.concurrency)
                .build()
                .expect("cannot build the HTTP client");
            let url: Arc<str> = format!("http://{}/v1/traces", server.http).into();
            start = Instant::now();
            let deadline = start + Duration::from_secs_f64(args.seconds);
            for t in 0..args.concurrency {
                let (client, url) = (client.clone(), url.clone());
                let send = move |body| http_send(client.clone(), url.clone(), body);
                handles.push(tokio::spawn(load(
                    batches.clone(),
                    t * stride,
                    deadline,
                    phase(t),
                    send,
                )));
            }
        }
    }
    let mut all = Stats::default();
    for h in handles {
        let s = h.await.expect("a load task panicked");
        all.latencies_us.extend(s.latencies_us);
        all.requests_ok += s.requests_ok;
        all.spans_accepted += s.spans_accepted;
        all.spans_rejected += s.spans_rejected;
        all.refused += s.refused;
        all.failed += s.failed;
        all.first_error = all.first_error.or(s.first_error);
    }
    (all, start.elapsed())
}

// ---- Parquet ----

/// (bytes, rows, files) of the `*.parquet` files under `dir`, recursively.
fn parquet_totals(dir: &Path) -> (u64, u64, u64) {
    let mut totals = (0, 0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return totals;
    };
    for e in entries {
        let path = e.expect("cannot list the data directory").path();
        if path.is_dir() {
            let (b, r, f) = parquet_totals(&path);
            totals = (totals.0 + b, totals.1 + r, totals.2 + f);
        } else if path.extension().is_some_and(|x| x == "parquet") {
            let file = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            let size = file.metadata().expect("cannot stat a Parquet file").len();
            let reader = parquet::file::reader::SerializedFileReader::new(file)
                .unwrap_or_else(|e| panic!("{} is not readable Parquet: {e}", path.display()));
            let rows = parquet::file::reader::FileReader::metadata(&reader)
                .file_metadata()
                .num_rows();
            totals = (totals.0 + size, totals.1 + rows as u64, totals.2 + 1);
        }
    }
    totals
}

// ---- report ----

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

const MIB: f64 = 1024.0 * 1024.0;

fn run_protocol(
    rt: &tokio::runtime::Runtime,
    proto: Protocol,
    bin: &Path,
    batches: &Arc<Vec<Batch>>,
    args: &Args,
    tck: f64,
) {
    let dir = tempfile::Builder::new()
        .prefix("calltrail-bench-")
        .tempdir()
        .expect("cannot create a temp dir");
    let config = match &args.server_config {
        Some(c) => c.clone(),
        None => {
            let c = dir.path().join("bench.toml");
            std::fs::write(
                &c,
                format!(
                    "[wal]\nfsync = \"{}\"\n\n[store]\ndedup_window = 0\n",
                    args.fsync
                ),
            )
            .expect("cannot write the bench config");
            c
        }
    };
    let mut server = start_server(bin, dir.path(), Some(&config));
    let pid = server.pid.to_string();
    let (_, srv_cpu0) = proc_stat(&pid, tck).expect("cannot read the server's /proc stat");
    let (_, gen_cpu0) = proc_stat("self", tck).expect("cannot read /proc/self/stat");
    let busy0 = machine_busy(tck);
    let (mut stats, elapsed) = rt.block_on(drive(proto, &server, batches, args));
    let (_, srv_cpu1) = proc_stat(&pid, tck).expect("cannot read the server's /proc stat");
    let (_, gen_cpu1) = proc_stat("self", tck).expect("cannot read /proc/self/stat");
    let busy1 = machine_busy(tck);
    let rss_after_load = vm_hwm(server.pid).unwrap_or(0);
    let down = server.stop(tck);

    let data = dir.path().join("data");
    let (tb, tr, tf) = parquet_totals(&data.join("tool_calls"));
    let (lb, lr, lf) = parquet_totals(&data.join("llm_calls"));
    let (bytes, rows) = (tb + lb, tr + lr);

    stats.latencies_us.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let (srv_load, gen_load) = (srv_cpu1 - srv_cpu0, gen_cpu1 - gen_cpu0);
    let name = if proto == Protocol::Grpc {
        "grpc"
    } else {
        "http"
    };
    let rate = args
        .rate
        .map_or("unpaced".to_string(), |r| format!("{r:.0} req/s"));
    let fsync = if args.server_config.is_some() {
        "from --server-config"
    } else {
        args.fsync.as_str()
    };
    println!(
        "protocol={name} concurrency={} rate={rate} fsync={fsync} duration={secs:.1}s",
        args.concurrency
    );
    println!(
        "  accepted spans/s: {:.0}   (requests/s: {:.0}, accepted spans: {}, rejected spans: {}, refused retryable: {}, failed: {})",
        stats.spans_accepted as f64 / secs,
        stats.requests_ok as f64 / secs,
        stats.spans_accepted,
        stats.spans_rejected,
        stats.refused,
        stats.failed
    );
    if let Some(e) = &stats.first_error {
        println!("  first failure: {e}");
    }
    println!(
        "  request latency: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&stats.latencies_us, 0.50),
        percentile(&stats.latencies_us, 0.99),
        percentile(&stats.latencies_us, 1.0)
    );
    let total = down
        .total_cpu
        .map_or("unknown".to_string(), |c| format!("{c:.1} s"));
    println!(
        "  server: cpu {srv_load:.1} s during load ({:.2} cores), {total} in total incl. startup and a {:.1} s shutdown flush; peak RSS {:.0} MiB ({:.0} MiB at end of load)",
        srv_load / secs,
        down.flush_time.as_secs_f64(),
        down.peak_rss as f64 / MIB,
        rss_after_load as f64 / MIB
    );
    println!(
        "  load generator: cpu {gen_load:.1} s ({:.2} cores); everything else on the machine: {:.2} cores",
        gen_load / secs,
        ((busy1 - busy0) - srv_load - gen_load).max(0.0) / secs
    );
    let per_span = if rows > 0 {
        bytes as f64 / rows as f64
    } else {
        f64::NAN
    };
    let matches = if rows == stats.spans_accepted {
        "yes".to_string()
    } else {
        format!("NO (written {rows}, accepted {})", stats.spans_accepted)
    };
    println!(
        "  parquet: {:.1} MiB for {rows} rows = {per_span:.1} bytes/span (tool_calls {tr} rows in {tf} files, llm_calls {lr} rows in {lf} files); rows written == accepted: {matches}",
        bytes as f64 / MIB
    );
    if rows != stats.spans_accepted {
        println!(
            "  !!! MISMATCH: rows written ({rows}) != accepted spans ({}) !!!",
            stats.spans_accepted
        );
    }
    println!();
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']));
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    format!(
        "nproc={cpus} cpu=\"{model}\" mem={:.1} GiB",
        total.unwrap_or(0.0) / MIB
    )
}

fn main() {
    let args = parse_args();
    let bin = server_binary();
    let tck = clk_tck();
    println!("machine: {}", machine());
    println!("server: {}", bin.display());
    let batches = Arc::new(encode_batches(args.batches));
    let spans: u64 = batches.iter().map(|b| b.spans).sum();
    let bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
    println!(
        "workload: {} pre-encoded requests, {:.1} spans and {:.1} KiB per request on average ({:.0} protobuf bytes/span)\n",
        batches.len(),
        spans as f64 / batches.len() as f64,
        bytes as f64 / batches.len() as f64 / 1024.0,
        bytes as f64 / spans as f64
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start tokio");
    for &p in &args.protocols {
        run_protocol(&rt, p, &bin, &batches, &args, tck);
    }
}
