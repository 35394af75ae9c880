//! Disk full on a real file system: `calltrail serve` keeps its data dir on a small tmpfs that a
//! ballast file fills, so its writes fail with ENOSPC as they would on a full disk.
//!
//! It proves that a full disk costs availability, never data: requests are refused with
//! retryable answers that name the problem (HTTP 503 + `Retry-After`, gRPC `UNAVAILABLE`, both
//! saying "No space left on device"), nothing is acknowledged that has no room, the process
//! stays up and `/healthz` answers, and the Parquet writer, whose flush of records acknowledged
//! before fails too, keeps them; once the ballast is deleted the same process accepts requests
//! again; after a clean stop DuckDB finds
//! every acknowledged span exactly once and nothing of a refused request; and the write-ahead
//! log it leaves has no damaged tail to cut at the next start.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); without it the test says so and passes vacuously.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use support::Server;
use tonic::transport::Channel;

/// Size of the tmpfs.
const FS_SIZE: &str = "8m";
/// Free space the ballast leaves: a handful of requests fill it.
const LEAVE_FREE: u64 = 256 << 10;
/// Spans per request.
const SPANS: usize = 40;
/// Requests at most, and time at most, to fill the disk; the same to see it accepted again.
const MAX_REQUESTS: usize = 2_000;
const PHASE_DEADLINE: Duration = Duration::from_secs(30);
/// Requests of each protocol that must all succeed once space has returned.
const AFTER_RECOVERY: usize = 10;

const CONFIG: &str = r#"
[store]
# Records acknowledged while the disk fills are still buffered when it is full: their Parquet
# write fails too, and must be retried once space returns.
flush_interval_ms = 2000

[wal]
# The smallest segments, so that the log also rotates (and creates files) on the full disk.
segment_max_bytes = 1048576
"#;

/// What the server logs when a Parquet flush fails (and will be retried).
const PARQUET_FAILED: &str = "Writing Parquet failed";

/// The message ENOSPC renders as (`std::io::Error` of errno 28).
const NO_SPACE: &str = "No space left on device";

/// A tmpfs mounted for the life of the guard; unmounted on drop, panicking or not.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `path`, or says why it cannot.
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("calltrail-disk-full")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = |args: &[&str]| {
            Command::new("umount")
                .args(args)
                .arg(&self.path)
                .status()
                .is_ok_and(|s| s.success())
        };
        // A lazy unmount when something still holds it open (a server that outlived a panic).
        if !ok(&[]) && !ok(&["-l"]) {
            eprintln!("disk_full: could not unmount {}", self.path.display());
        }
    }
}

/// Writes `path` until the file system is full, then gives `leave` bytes back. Returns the
/// ballast's size.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::File::create(path).expect("create ballast");
    let chunk = vec![0xba_u8; 64 << 10];
    // Bounded: the file system is megabytes, a chunk 64 KiB.
    for _ in 0..100_000 {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("writing the ballast: {e}"),
        }
    }
    let full = f.metadata().expect("stat ballast").len();
    assert!(full > leave, "the ballast holds only {full} bytes");
    f.set_len(full - leave).expect("shrink ballast");
    f.sync_all().expect("fsync ballast");
    full - leave
}

/// Grows `path` until the file system is full to the last few KiB.
fn top_up(path: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open ballast");
    let chunk = vec![0xbb_u8; 4 << 10];
    for _ in 0..10_000 {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return,
            Err(e) => panic!("writing the ballast: {e}"),
        }
    }
    panic!("the ballast grew by 40 MiB on an {FS_SIZE} file system");
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A span's identity as stored: (`trace_id`, `span_id`), lowercase hex.
type Key = (String, String);

/// What one request came to.
#[derive(Debug)]
enum Answer {
    Accepted,
    /// Refused because the disk is full: the message says so.
    NoSpace(String),
    /// Refused as busy (429 / `RESOURCE_EXHAUSTED`): retryable too, and nothing kept.
    Busy(#[allow(dead_code)] String),
}

struct Client {
    http: reqwest::Client,
    url: String,
    grpc: TraceServiceClient<Channel>,
    next: u64,
}

impl Client {
    /// A request of `SPANS` fresh SERVER `tools/call` spans, and their keys.
    fn request(
        &mut self,
    ) -> (
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        Vec<Key>,
    ) {
        self.next += 1;
        let mut trace = vec![0xd1_u8; 16];
        trace[8..].copy_from_slice(&self.next.to_be_bytes());
        let mut spans = Vec::with_capacity(SPANS);
        let mut keys = Vec::with_capacity(SPANS);
        for i in 0..SPANS as u64 {
            let span = ((0xd2 << 56) | (self.next << 16) | i)
                .to_be_bytes()
                .to_vec();
            keys.push((hex::encode(&trace), hex::encode(&span)));
            spans.push(support::server_tool_span(
                trace.clone(),
                span,
                "get_balance",
                &i.to_string(),
            ));
        }
        (support::request("disk-full-test", spans), keys)
    }

    /// One request over gRPC when `grpc`, else over OTLP/HTTP.
    async fn send(&mut self, grpc: bool) -> (Answer, Vec<Key>) {
        if grpc {
            self.grpc().await
        } else {
            self.http().await
        }
    }

    async fn http(&mut self) -> (Answer, Vec<Key>) {
        let (req, keys) = self.request();
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .expect("the server must answer over HTTP, not drop the connection");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let body = resp.bytes().await.expect("read the answer");
        let answer = match status {
            200 => {
                let ok = ExportTraceServiceResponse::decode(body.as_ref()).expect("OTLP answer");
                let rejected = ok.partial_success.as_ref().map_or(0, |p| p.rejected_spans);
                assert_eq!(rejected, 0, "spans rejected: {ok:?}");
                Answer::Accepted
            }
            503 | 429 => {
                assert!(
                    retry_after.is_some(),
                    "HTTP {status} without Retry-After: not retryable for an exporter"
                );
                let st = RpcStatus::decode(body.as_ref())
                    .unwrap_or_else(|e| panic!("HTTP {status} body is not a Status ({e})"));
                if status == 503 {
                    assert_eq!(st.code, 14, "HTTP 503 carries UNAVAILABLE: {st:?}");
                    Answer::NoSpace(st.message)
                } else {
                    Answer::Busy(st.message)
                }
            }
            other => panic!(
                "HTTP {other} is not a retryable answer: {}",
                String::from_utf8_lossy(&body)
            ),
        };
        (answer, keys)
    }

    async fn grpc(&mut self) -> (Answer, Vec<Key>) {
        let (req, keys) = self.request();
        let answer = match self.grpc.export(req).await {
            Ok(ok) => {
                let rejected = ok
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans);
                assert_eq!(rejected, 0, "spans rejected over gRPC");
                Answer::Accepted
            }
            Err(st) if st.code() == tonic::Code::Unavailable => {
                assert!(
                    !st.details().is_empty(),
                    "UNAVAILABLE without details (RetryInfo): {st:?}"
                );
                Answer::NoSpace(st.message().to_string())
            }
            Err(st) if st.code() == tonic::Code::ResourceExhausted => {
                Answer::Busy(st.message().to_string())
            }
            Err(st) => panic!("gRPC {st:?} is not a retryable answer"),
        };
        (answer, keys)
    }
}

/// Spans acknowledged and spans refused.
#[derive(Default)]
struct Ledger {
    acked: Vec<Key>,
    refused: Vec<Key>,
}

impl Ledger {
    fn note(&mut self, answer: &Answer, keys: Vec<Key>) {
        match answer {
            Answer::Accepted => self.acked.extend(keys),
            Answer::NoSpace(_) | Answer::Busy(_) => self.refused.extend(keys),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_refuses_retryably_and_recovers_without_loss() {
    let started = Instant::now();
    let mnt = tempfile::Builder::new()
        .prefix("calltrail-disk-full-")
        .tempdir()
        .unwrap();
    // Declared before the server: dropped after it, so the mount is free when it goes.
    let _tmpfs = match Tmpfs::mount(mnt.path(), FS_SIZE) {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "disk_full: SKIPPED, not run: it needs a real small file system and cannot mount \
                 a tmpfs here (needs root or CAP_SYS_ADMIN): {why}"
            );
            return;
        }
    };
    let data_dir = mnt.path().join("data");
    let ballast = mnt.path().join("ballast");
    let mut server = tokio::task::spawn_blocking(move || Server::start_in(&data_dir, CONFIG))
        .await
        .unwrap();
    let mut client = Client {
        http: support::http_client(),
        url: server.traces_url(),
        grpc: TraceServiceClient::connect(server.grpc_url())
            .await
            .unwrap(),
        next: 0,
    };
    let mut ledger = Ledger::default();

    // Space is there: both protocols are accepted.
    for grpc in [false, true] {
        let (a, k) = client.send(grpc).await;
        assert!(
            matches!(a, Answer::Accepted),
            "before the disk filled: {a:?}"
        );
        ledger.note(&a, k);
    }

    // Fill the disk, then send until both protocols have been refused for lack of space.
    let size = fill(&ballast, LEAVE_FREE);
    println!("ballast of {size} bytes, {LEAVE_FREE} left free");
    let deadline = Instant::now() + PHASE_DEADLINE;
    let (mut http_msg, mut grpc_msg) = (None, None);
    let mut sent = 0;
    while (http_msg.is_none() || grpc_msg.is_none())
        && sent < MAX_REQUESTS
        && Instant::now() < deadline
    {
        let grpc = sent % 2 == 1;
        let (a, k) = client.send(grpc).await;
        sent += 1;
        ledger.note(&a, k);
        match a {
            Answer::NoSpace(m) if grpc => grpc_msg = Some(m),
            Answer::NoSpace(m) => http_msg = Some(m),
            Answer::Busy(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Answer::Accepted => {}
        }
    }
    println!(
        "full after {sent} requests ({} spans acknowledged, {} refused)\n  HTTP 503: {http_msg:?}\n  gRPC UNAVAILABLE: {grpc_msg:?}",
        ledger.acked.len(),
        ledger.refused.len()
    );
    for (protocol, msg) in [("HTTP 503", &http_msg), ("gRPC UNAVAILABLE", &grpc_msg)] {
        let Some(msg) = msg else {
            panic!(
                "no {protocol} within {sent} requests on a full disk\nserver stderr:\n{}",
                server.log()
            );
        };
        assert!(
            msg.contains(NO_SPACE),
            "the {protocol} message does not name the problem ({NO_SPACE:?}): {msg:?}"
        );
    }

    // Completely full now: nothing is acknowledged, and the buffered records' Parquet write
    // fails as well.
    top_up(&ballast);
    let deadline = Instant::now() + PHASE_DEADLINE;
    let mut refused = 0;
    while !server.log().contains(PARQUET_FAILED) && refused < MAX_REQUESTS {
        assert!(
            Instant::now() < deadline,
            "no Parquet write failed within {PHASE_DEADLINE:?} on a full disk\nserver stderr:\n{}",
            server.log()
        );
        let (a, k) = client.send(refused % 2 == 1).await;
        assert!(
            !matches!(a, Answer::Accepted),
            "a request was acknowledged on a disk without room for it"
        );
        ledger.note(&a, k);
        refused += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{refused} more requests refused while the Parquet write failed");

    // Still alive and answering probes.
    let health = client
        .http
        .get(format!("http://{}/healthz", server.http_addr()))
        .send()
        .await
        .expect("/healthz answers on a full disk");
    assert_eq!(health.status(), 200, "/healthz on a full disk");
    assert!(server.is_running(), "the server died on a full disk");

    // Space returns: the same process takes requests again.
    std::fs::remove_file(&ballast).expect("delete ballast");
    let deadline = Instant::now() + PHASE_DEADLINE;
    let (mut http_ok, mut grpc_ok) = (false, false);
    let mut sent = 0;
    while !(http_ok && grpc_ok) && sent < MAX_REQUESTS && Instant::now() < deadline {
        let grpc = sent % 2 == 1;
        let (a, k) = client.send(grpc).await;
        sent += 1;
        let accepted = matches!(a, Answer::Accepted);
        ledger.note(&a, k);
        if accepted {
            *(if grpc { &mut grpc_ok } else { &mut http_ok }) = true;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        http_ok && grpc_ok,
        "after the ballast was deleted, {sent} requests got no success (HTTP: {http_ok}, gRPC: \
         {grpc_ok})\nserver stderr:\n{}",
        server.log()
    );
    for i in 0..2 * AFTER_RECOVERY {
        let (a, k) = client.send(i % 2 == 1).await;
        assert!(
            matches!(a, Answer::Accepted),
            "request {i} after space returned: {a:?}"
        );
        ledger.note(&a, k);
    }
    assert!(server.is_running());
    println!(
        "accepted again after {sent} requests; {} spans acknowledged, {} refused in all",
        ledger.acked.len(),
        ledger.refused.len()
    );

    // Clean stop (exit 0 asserted), then DuckDB straight from the Parquet files.
    drop(client);
    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    let rows = support::duckdb_rows(
        server.data_dir(),
        "tool_calls",
        "SELECT trace_id, span_id, count(*) FROM t GROUP BY ALL",
    );
    let stored: HashMap<Key, u64> = rows
        .into_iter()
        .map(|r| {
            let [t, s, n] = <[String; 3]>::try_from(r).expect("three cells per row");
            ((t, s), n.parse().expect("count"))
        })
        .collect();
    let missing = ledger
        .acked
        .iter()
        .filter(|k| !stored.contains_key(*k))
        .count();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    let refused: HashSet<&Key> = ledger.refused.iter().collect();
    let kept_refused = stored.keys().filter(|k| refused.contains(k)).count();
    let acked: HashSet<&Key> = ledger.acked.iter().collect();
    let unknown = stored
        .keys()
        .filter(|k| !acked.contains(k) && !refused.contains(k))
        .count();
    assert_eq!(
        missing,
        0,
        "acknowledged spans missing from Parquet (of {})",
        ledger.acked.len()
    );
    assert!(
        twice.is_empty(),
        "spans stored more than once: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert_eq!(
        kept_refused, 0,
        "spans of refused requests were stored: a refusal must keep nothing"
    );
    assert_eq!(unknown, 0, "stored spans that were never sent");
    assert_eq!(
        stored.len(),
        ledger.acked.len(),
        "rows = acknowledged spans"
    );

    // The log the full disk left behind opens without a damaged tail, and clean.
    let server = tokio::task::spawn_blocking(move || {
        let before = server.log().len();
        server.restart();
        let log = server.log()[before..].to_string();
        server.stop();
        (server, log)
    })
    .await
    .unwrap();
    let (server, log) = server;
    assert!(
        !log.to_lowercase().contains("cut a damaged"),
        "the restart cut a damaged write-ahead-log tail:\n{log}"
    );
    assert!(
        log.contains("Write-ahead log clean."),
        "the restart after a clean stop did not find the log clean:\n{log}"
    );
    let quarantine = server.data_dir().join("wal").join("quarantine");
    let quarantined: Vec<_> = std::fs::read_dir(&quarantine)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        quarantined.is_empty(),
        "bytes in quarantine: {quarantined:?}"
    );
    println!("disk_full: {:?}", started.elapsed());
}
