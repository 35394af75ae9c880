//! Forwarding benchmark: builds a store of chained records, then times a destination catching
//! up with all of it from a standing start (what it does after an outage), to a real Tansu
//! broker (Kafka protocol) and to a real rsyslog over TCP.
//!
//! Run (release build, the bench profile):
//!
//! ```text
//! cargo bench --bench forward -- [--records N] [--format json|ocsf|cef|ecs|leef] [--batch B] [--only kafka|syslog]
//! ```
//!
//! Defaults: 1 000 000 records, JSON, batches of 5000 (`[forward] batch_size`). Needs `CALLTRAIL_TANSU` (or `tansu` on the PATH; scripts/test
//! installs it) and `rsyslogd`. Both are started on 127.0.0.1 high ports, Tansu with in-memory
//! storage; rsyslog writes what it receives to a file, whose lines are counted.
//!
//! It prints, per transport, events/s from the first to the last confirmed event (formatting,
//! batching, the transport's confirmations and the cursor's fsyncs included).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calltrail_collector::forward::{ForwardConfig, Forwarders};

mod support;
use support::{arg, build_store};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu() -> PathBuf {
    std::env::var_os("CALLTRAIL_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tansu"))
}

/// Runs forwarding with `toml` over `root` until `done()` says every event arrived.
fn time_forwarding(root: &Path, toml: &str, records: usize, done: &dyn Fn() -> usize) -> f64 {
    let config: ForwardConfig = toml::from_str(toml).expect("forward config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_feed, checkpoints) = tokio::sync::watch::channel(None);
    let started = Instant::now();
    let forwarders = rt
        .block_on(async { Forwarders::start(&config, root, &checkpoints) })
        .expect("forwarders");
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let arrived = done();
        if arrived >= records {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {arrived} of {records} arrived in 900 s"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let delivered: u64 = forwarders
        .stats()
        .iter()
        .map(|s| s.delivered.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    rt.block_on(forwarders.shutdown());
    println!("  delivered (confirmed) {delivered}");
    secs
}

/// Reads and encodes every record once, sending nothing: the ceiling the delivery loop's first
/// stage puts on any transport.
fn encode_only(root: &Path, format: &str) {
    use calltrail_collector::forward::event::{Columns, Event, RecordRow};
    use calltrail_collector::forward::format::{FormatKind, FormatOptions, Formatter};
    use calltrail_collector::forward::source::StoreSource;
    let kind: FormatKind = toml::Value::String(format.to_owned())
        .try_into()
        .expect("a format name");
    let formatter = Formatter::new(kind, FormatOptions::default());
    let mut source = StoreSource::new(root);
    let backlog = source
        .pending(&calltrail_collector::forward::cursor::Cursor::default())
        .expect("backlog");
    let started = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut read_secs = 0.0;
    for segs in backlog.segments.values() {
        for seg in segs {
            let t = Instant::now();
            let batches = source.read(seg).expect("read");
            read_secs += t.elapsed().as_secs_f64();
            for batch in &batches {
                let columns = Columns::new(&seg.meta.table, batch);
                let mut out = Vec::with_capacity(2048);
                for row in 0..batch.num_rows() {
                    out.clear();
                    let event = Event::Record(RecordRow::new(batch, &columns, row));
                    formatter.encode(&event, &mut out).expect("encode");
                    let _ = event.meta();
                    n += 1;
                    bytes += out.len() as u64;
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "encode only ({format}): {n} events in {secs:.2} s = {:.0} events/s on one thread (of which Parquet reading {read_secs:.2} s); {} bytes/event",
        n as f64 / secs,
        bytes / n.max(1)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = arg(&args, "--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let format = arg(&args, "--format").unwrap_or_else(|| "json".into());
    let batch: usize = arg(&args, "--batch")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let only = arg(&args, "--only");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("store");
    build_store(&root, records);

    encode_only(&root, &format);

    if only.as_deref() != Some("syslog") {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let broker = Killed(
            Command::new(tansu())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                    "--storage-engine",
                    "memory://tansu/",
                ])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tansu (set CALLTRAIL_TANSU)"),
        );
        wait_listening(port, "tansu");
        let status = Command::new(tansu())
            .args([
                "topic",
                "create",
                "bench",
                "--partitions",
                "3",
                "--broker",
                &url,
            ])
            .status()
            .expect("tansu topic create");
        assert!(status.success());
        let toml = format!(
            r#"
batch_size = {batch}
[[destinations]]
name = "kafka-bench"
format = "{format}"
start = "earliest"
kafka = {{ brokers = "127.0.0.1:{port}", topic = "bench" }}
"#
        );
        let cursor_root = root.clone();
        let secs = time_forwarding(&root, &toml, records, &|| {
            calltrail_collector::forward::cursor::Cursor::load(&cursor_root, "kafka-bench")
                .ok()
                .flatten()
                .map_or(0, |c| c.next_seq.values().sum::<u64>() as usize)
        });
        println!(
            "kafka ({format}): {records} events in {secs:.2} s = {:.0} events/s (catch-up from a standing start)",
            records as f64 / secs
        );
        drop(broker);
    }

    if only.as_deref() != Some("kafka") {
        let port = free_port();
        let dir = tmp.path().join("rsyslog");
        std::fs::create_dir_all(&dir).expect("rsyslog dir");
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="bench")
ruleset(name="bench") {{ action(type="omfile" file="{out}" template="raw" asyncWriting="on" ioBufferSize="1m" flushOnTXEnd="off") }}
"#,
                work = dir.display(),
                out = out.display()
            ),
        )
        .expect("rsyslog conf");
        let rsyslog = Killed(
            Command::new("rsyslogd")
                .args(["-n", "-f"])
                .arg(&conf)
                .arg("-i")
                .arg(dir.join("pid"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start rsyslogd"),
        );
        wait_listening(port, "rsyslog");
        let toml = format!(
            r#"
batch_size = {batch}
[[destinations]]
name = "syslog-bench"
format = "{format}"
start = "earliest"
syslog = {{ address = "127.0.0.1:{port}", protocol = "tcp" }}
"#
        );
        let secs = time_forwarding(&root, &toml, records, &|| {
            std::fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        });
        println!(
            "syslog tcp ({format}): {records} events in {secs:.2} s = {:.0} events/s",
            records as f64 / secs
        );
        drop(rsyslog);
    }
}
