//! The findings pass in the real delivery loop ([`Forwarders`]), to syslog receivers on
//! loopback TCP that keep every byte: what arrives, what a `kinds` filter keeps out, what an
//! unreadable file holds up (its partition only), and what a restart sends again (nothing).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calltrail_schemas::finding::Finding;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::forward::cursor::FindingsCursor;
use crate::forward::findings::tests::{finding, write_file};
use crate::forward::{ForwardConfig, Forwarders};

/// A TCP syslog receiver keeping every byte received, on every connection.
struct Receiver {
    port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Self { port, bytes }
    }

    /// How many times the finding `f` arrived (its id in a native JSON event).
    fn count(&self, f: &Finding) -> usize {
        let text = String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned();
        text.matches(&format!("\"finding_id\":\"{}\"", f.finding_id))
            .count()
    }

    /// Waits until every finding of `fs` arrived.
    async fn wait_for(&self, fs: &[&Finding]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while fs.iter().any(|f| self.count(f) == 0) {
            assert!(Instant::now() < deadline, "findings did not arrive");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(all: u16, calls_only: u16) -> ForwardConfig {
    let c: ForwardConfig = toml::from_str(&format!(
        r#"
poll_ms = 50
max_backoff_ms = 200

[[destinations]]
name = "all"
format = "json"
start = "earliest"
syslog = {{ address = "127.0.0.1:{all}", protocol = "tcp" }}

[[destinations]]
name = "calls-only"
format = "json"
start = "earliest"
filter = {{ kinds = ["tool_call"] }}
syslog = {{ address = "127.0.0.1:{calls_only}", protocol = "tcp" }}
"#
    ))
    .unwrap();
    c.validate().unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_arrive_once_filtered_and_an_unreadable_file_holds_up_only_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (a1, a1b, a3, b1) = (
        finding("D1", "alice", 1_000),
        finding("D1", "bob", 1_000),
        finding("D2", "carol", 3_000),
        finding("D4", "dave", 2_000),
    );
    write_file(
        root,
        "2026-11-23",
        "01-a.parquet",
        &[a1.clone(), a1b.clone()],
    );
    let bad = root.join("anomalies/date=2026-11-23/02-bad.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    write_file(
        root,
        "2026-11-23",
        "03-c.parquet",
        std::slice::from_ref(&a3),
    );
    write_file(
        root,
        "2026-11-22",
        "01-d.parquet",
        std::slice::from_ref(&b1),
    );

    let (all, calls_only) = (Receiver::start().await, Receiver::start().await);
    let config = config(all.port, calls_only.port);
    let (_tx, checkpoints) = watch::channel(None);
    let forwarders = Forwarders::start(&config, root, &checkpoints).unwrap();
    all.wait_for(&[&a1, &a1b, &b1]).await;
    // The other partition went on; this one waits behind its unreadable file.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(all.count(&a3), 0, "nothing passes an unreadable file");
    let cursor = FindingsCursor::load(root, "all").unwrap().unwrap();
    assert_eq!(cursor.delivered["2026-11-23"], "01-a.parquet");
    assert_eq!(cursor.delivered["2026-11-22"], "01-d.parquet");

    // Once the file is gone (retention, or an operator), the partition goes on.
    std::fs::remove_file(&bad).unwrap();
    all.wait_for(&[&a3]).await;
    forwarders.shutdown().await;

    // A restart sends nothing again; a new file is sent.
    let e1 = finding("D5", "erin", 4_000);
    write_file(
        root,
        "2026-11-23",
        "04-e.parquet",
        std::slice::from_ref(&e1),
    );
    let forwarders = Forwarders::start(&config, root, &checkpoints).unwrap();
    all.wait_for(&[&e1]).await;
    // The filtered destination's cursor moves past every file without reading one.
    let deadline = Instant::now() + Duration::from_secs(20);
    while FindingsCursor::load(root, "calls-only")
        .unwrap()
        .unwrap()
        .delivered["2026-11-23"]
        != "04-e.parquet"
    {
        assert!(
            Instant::now() < deadline,
            "the filtered cursor did not move"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    forwarders.shutdown().await;
    for f in [&a1, &a1b, &a3, &b1, &e1] {
        assert_eq!(all.count(f), 1, "{} arrived once", f.entity);
        assert_eq!(calls_only.count(f), 0, "a kinds filter keeps findings out");
    }
}
