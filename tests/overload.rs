//! Overload: far more concurrent OTLP/HTTP requests than the server can take. The excess must be
//! refused at once with retryable answers (429 + `Retry-After`), the server's peak resident
//! memory must stay within the budget its configuration implies, and every request it accepted
//! must be in Parquet exactly once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use support::{Server, duckdb_count, http_client, request, server_tool_span};

/// Concurrent senders (connections): many times what the configuration below takes.
const SENDERS: usize = 256;
/// Spans per request.
const SPANS: usize = 100;
/// Padding per span, so that requests are large enough to press on the memory budget.
const PAD: usize = 2000;

const CONFIG: &str = r#"
[receivers]
max_body_bytes = 1048576
memory_budget_mib = 8

[wal]
queue_capacity = 8

[store]
flush_max_rows = 1024
queue_capacity = 4
"#;

/// The memory budget of this configuration under this load, from measurements of the debug
/// build (`scripts/test` runs it): 44 MiB idle; about 180 MiB busy with 16 connections (the
/// request budget, queues and writer buffers above, the Parquet encoder's working set and the
/// allocator's retained pages at ~2.5 KiB records); about 0.4 MiB more per open connection
/// (HTTP read buffers), so about 280 MiB with 256. Unbounded queues would grow past this within
/// seconds at this offered load; bounded ones stay flat however long it runs.
const BUDGET_MIB: u64 = 384;

fn peak_rss_mib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb / 1024
}

fn body(sender: usize, n: usize) -> Vec<u8> {
    let spans = (0..SPANS)
        .map(|i| {
            let mut trace = vec![0x0f; 16];
            trace[..8].copy_from_slice(&(((sender as u64) << 32) | n as u64).to_be_bytes());
            let mut span = server_tool_span(
                trace,
                ((i as u64 + 1) << 8 | 0x42).to_be_bytes().to_vec(),
                "get_account",
                "1",
            );
            span.attributes
                .push(support::kv("padding", &"p".repeat(PAD)));
            span
        })
        .collect();
    request("overload-test", spans).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_retryably_within_the_memory_budget_and_loses_nothing() {
    let mut server = Server::start_with_config(CONFIG);
    let url: Arc<str> = server.traces_url().into();
    let client = http_client();
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let (client, url) = (client.clone(), Arc::clone(&url));
        let (accepted, refused) = (Arc::clone(&accepted), Arc::clone(&refused));
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            // Bounded by time and by count.
            while Instant::now() < deadline && n < 200 {
                let resp = client
                    .post(&*url)
                    .header("content-type", "application/x-protobuf")
                    .body(body(sender, n))
                    .send()
                    .await
                    .expect("the server must answer, not drop the connection");
                n += 1;
                match resp.status().as_u16() {
                    200 => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    429 | 503 => {
                        let retry = resp.headers().get("retry-after").cloned();
                        assert!(retry.is_some(), "a refusal without Retry-After");
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!(
                        "unexpected status {other}: {}",
                        resp.text().await.unwrap_or_default()
                    ),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = peak_rss_mib(server.pid());
    let (accepted, refused) = (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    println!(
        "accepted {accepted} requests, refused {refused}, peak RSS {peak} MiB (budget {BUDGET_MIB} MiB)"
    );
    assert!(accepted > 0, "nothing accepted");
    assert!(
        refused > accepted,
        "the load was not an overload: {refused} refused, {accepted} accepted"
    );
    assert!(
        peak <= BUDGET_MIB,
        "peak RSS {peak} MiB over the {BUDGET_MIB} MiB budget"
    );
    server.stop();
    assert_eq!(
        duckdb_count(server.data_dir(), "tool_calls", "true"),
        (accepted as usize * SPANS) as i64,
        "every accepted span stored exactly once"
    );
}
