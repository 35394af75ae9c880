//! A real Kafka-protocol broker for the tests (Tansu, installed by `scripts/test` into a cache
//! outside the clone; `CALLTRAIL_TANSU` names the binary), and a consumer not written by us
//! (PyPI `confluent-kafka`, librdkafka 2.x) to read back what Calltrail produced.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

/// The Tansu binary: `CALLTRAIL_TANSU`, else `tansu` on the PATH.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CALLTRAIL_TANSU") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("the Tansu broker is not installed: run scripts/test (it installs it), or set CALLTRAIL_TANSU")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Tansu broker on 127.0.0.1 with SQLite storage in a temporary directory, so a restart keeps
/// its topics and messages.
pub struct Tansu {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Tansu {
    pub fn start() -> Tansu {
        let dir = tempfile::Builder::new()
            .prefix("calltrail-tansu-")
            .tempdir()
            .unwrap();
        let mut t = Tansu {
            child: None,
            port: free_port(),
            dir,
        };
        t.spawn();
        t
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .unwrap();
        let child = Command::new(binary())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &self.url(),
                "--advertised-listener-url",
                &self.url(),
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Tansu did not listen on {} within 30 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Stops the broker (SIGKILL: its SQLite storage is transactional).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = support::run(
            {
                let mut c = Command::new(binary());
                c.current_dir(self.dir.path()).args([
                    "topic",
                    "create",
                    name,
                    "--partitions",
                    &partitions.to_string(),
                    "--broker",
                    &self.url(),
                ]);
                c
            },
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}\n{}",
            out.stderr,
            self.log()
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Option<String>,
    pub value: String,
    pub headers: serde_json::Map<String, Value>,
    pub partition: i64,
    pub offset: i64,
}

impl Consumed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.value)
            .unwrap_or_else(|e| panic!("not JSON: {e}: {}", self.value))
    }
}

/// Reads `topic` from the start with confluent-kafka until `at_least` messages arrived and
/// no more came for two seconds, or `timeout` passed.
pub fn consume(bootstrap: &str, topic: &str, at_least: usize, timeout: Duration) -> Vec<Consumed> {
    let script = r#"
import json, sys, time, uuid
from confluent_kafka import Consumer
bootstrap, topic, at_least, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "calltrail-test-" + uuid.uuid4().hex,
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([topic])
out, deadline, quiet_since = [], time.time() + timeout, time.time()
while time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        if len(out) >= at_least and time.time() - quiet_since > 2.0:
            break
        continue
    if m.error():
        continue
    quiet_since = time.time()
    out.append({"key": m.key().decode() if m.key() is not None else None,
                "value": m.value().decode("utf-8"),
                "headers": {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])},
                "partition": m.partition(), "offset": m.offset()})
c.close()
for o in out:
    print(json.dumps(o))
"#;
    let mut cmd = Command::new(support::python());
    cmd.arg("-c").arg(script).args([
        bootstrap,
        topic,
        &at_least.to_string(),
        &timeout.as_secs_f64().to_string(),
    ]);
    let out = support::run(cmd, timeout + Duration::from_secs(30));
    assert!(
        out.status.success(),
        "the confluent-kafka consumer failed: {}",
        out.stderr
    );
    out.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Consumed {
                key: v["key"].as_str().map(str::to_owned),
                value: v["value"].as_str().unwrap().to_owned(),
                headers: v["headers"].as_object().cloned().unwrap_or_default(),
                partition: v["partition"].as_i64().unwrap(),
                offset: v["offset"].as_i64().unwrap(),
            }
        })
        .collect()
}
