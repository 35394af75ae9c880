//! Shared harness for the `calltrail` binary's integration tests.
//!
//! [`Server`] runs `calltrail serve` on loopback ports chosen by the OS, in a fresh temporary
//! data directory (or one the test names: [`Server::start_in`]), and reads its results back
//! with `calltrail query`. It can crash the server ([`Server::kill`]) and start it again on the
//! same data ([`Server::restart`]). Its stderr goes to
//! `<data dir>/server.stderr.log` and is printed when a test fails.
//!
//! The Python helpers use the venv that `scripts/test` creates (`CALLTRAIL_TEST_PYTHON`).

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::{Map, Value};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_calltrail");

/// One row of `calltrail query --format json`.
pub type Row = Map<String, Value>;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `calltrail serve`.
pub struct Server {
    child: Option<Child>,
    /// Holds the config, the ready file and the server's stderr, and is the data dir unless
    /// [`Server::start_in`] named another one.
    dir: tempfile::TempDir,
    /// The data dir when it is not `dir` ([`Server::start_in`]).
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    grpc: SocketAddr,
    http: SocketAddr,
    /// The query API's address, when it is enabled.
    api: Option<SocketAddr>,
}

impl Server {
    /// Starts a server with no config file (defaults).
    pub fn start() -> Server {
        Self::launch(None, None)
    }

    /// Starts a server with `toml` as its config file (written into the data dir).
    pub fn start_with_config(toml: &str) -> Server {
        Self::launch(Some(toml), None)
    }

    /// Starts a server with `toml` as its config file and `data_dir` as its data directory
    /// (created by the server when missing; not removed afterwards). The config file, the ready
    /// file and the server's stderr stay in a temporary directory of their own, so that they
    /// work even when `data_dir` is on a full file system.
    pub fn start_in(data_dir: &Path, toml: &str) -> Server {
        Self::launch(Some(toml), Some(data_dir.to_owned()))
    }

    fn launch(toml: Option<&str>, data: Option<PathBuf>) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("calltrail-test-")
            .tempdir()
            .expect("create temp data dir");
        let config = toml.map(|t| {
            let path = dir.path().join("calltrail.toml");
            std::fs::write(&path, t).expect("write config");
            path
        });
        let mut server = Server {
            child: None,
            dir,
            data,
            config,
            grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            api: None,
        };
        server.spawn();
        server
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready.json")
    }

    /// Where the server's stderr goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.stderr.log")
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        self.spawn_on("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0");
    }

    /// Starts the server again on the addresses it had, so that clients configured with them
    /// (another server forwarding to this one) reconnect; stops it first when it runs.
    pub fn restart_on_same_ports(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let (grpc, http) = (self.grpc.to_string(), self.http.to_string());
        let api = self
            .api
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        self.spawn_on(&grpc, &http, &api);
    }

    fn spawn_on(&mut self, grpc: &str, http: &str, api: &str) {
        assert!(self.child.is_none(), "server already running");
        let _ = std::fs::remove_file(self.ready_file());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--grpc-addr", grpc, "--http-addr", http, "--api-addr", api])
            .arg("--ready-file")
            .arg(self.ready_file());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(self.ready_file()) {
                // Written atomically, but tolerate a partial read anyway: retry until it parses.
                if let Ok(ready) = serde_json::from_str::<Value>(&text) {
                    self.grpc = parse_addr(&ready, "grpc");
                    self.http = parse_addr(&ready, "http");
                    self.api = ready
                        .get("api")
                        .and_then(Value::as_str)
                        .and_then(|a| a.parse().ok());
                    assert_eq!(
                        ready
                            .get("data_dir")
                            .and_then(Value::as_str)
                            .map(PathBuf::from)
                            .map(|p| p.canonicalize().unwrap_or(p)),
                        Some(self.data_dir().canonicalize().unwrap()),
                        "ready file names another data dir: {text}"
                    );
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                panic!(
                    "calltrail serve exited before it was ready ({status}); stderr:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "calltrail serve wrote no ready file within {READY_TIMEOUT:?}; stderr:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.as_deref().unwrap_or(self.dir.path())
    }

    /// The bound OTLP/gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// The bound OTLP/HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.http)
    }

    /// `http://127.0.0.1:PORT/api/v1/sql` of the query API.
    pub fn sql_url(&self) -> String {
        format!(
            "http://{}/api/v1/sql",
            self.api.expect("the query API is enabled")
        )
    }

    /// `http://127.0.0.1:PORT` of the gRPC receiver.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    /// Runs `calltrail query --format json` on the data dir; panics with stderr on failure.
    pub fn query(&self, sql: &str) -> Vec<Row> {
        match self.try_query(sql) {
            Ok(rows) => rows,
            Err(e) => panic!("{e}\nserver stderr:\n{}", self.log()),
        }
    }

    /// Like [`Server::query`], but returns the failure instead of panicking.
    pub fn try_query(&self, sql: &str) -> Result<Vec<Row>, String> {
        query_dir(self.data_dir(), sql)
    }

    /// The single integer column `n` of the single row `sql` returns.
    pub fn count(&self, sql: &str) -> i64 {
        count_of(&self.query(sql), sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls `sql` (a `SELECT count(*) AS n ...`) until it returns `expected`; panics with the
    /// last value (or error) and the server's stderr after `timeout`.
    pub fn wait_for_count(&self, sql: &str, expected: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            last = self.try_query(sql).and_then(|rows| count_of(&rows, sql));
            if last == Ok(expected) {
                return;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "waited {timeout:?} for `{sql}` to return {expected}; last result: {last:?}\nserver stderr:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM and asserts a clean exit (status 0) within 20 s.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("server not running");
        let pid = child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "calltrail serve did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_exit_ok(status, &self.log());
    }

    /// Kills the server with SIGKILL (a crash: no draining, no flushing) and reaps it. Its
    /// data dir stays for [`Server::restart`].
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("server not running");
        // `Child::kill` sends SIGKILL on Unix.
        child.kill().expect("SIGKILL calltrail serve");
        let status = child.wait().expect("wait for the killed server");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "calltrail serve ended with {status} before the SIGKILL reached it; stderr:\n{}",
            self.log()
        );
    }

    /// Starts the server again on the same data dir and config, stopping it (cleanly) first
    /// when it runs.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }
}

fn assert_exit_ok(status: ExitStatus, log: &str) {
    assert!(
        status.success(),
        "calltrail serve exited with {status} after SIGTERM (expected 0); stderr:\n{log}"
    );
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- calltrail serve stderr ({}) ----\n{}\n---- end of server stderr ----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

fn parse_addr(ready: &Value, key: &str) -> SocketAddr {
    let text = ready
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("ready file lacks \"{key}\": {ready}"));
    let addr: SocketAddr = text
        .parse()
        .unwrap_or_else(|e| panic!("ready file \"{key}\" = {text:?}: {e}"));
    assert!(
        addr.ip().is_loopback(),
        "{key} listener is not on loopback: {addr}"
    );
    assert_ne!(addr.port(), 0, "{key} listener port is 0 in the ready file");
    addr
}

/// Runs `calltrail query --data-dir DIR --format json SQL`.
pub fn query_dir(dir: &Path, sql: &str) -> Result<Vec<Row>, String> {
    let mut cmd = Command::new(BIN);
    cmd.arg("query")
        .arg("--data-dir")
        .arg(dir)
        .args(["--format", "json", sql]);
    let out = run(cmd, QUERY_TIMEOUT);
    if !out.status.success() {
        return Err(format!(
            "calltrail query failed ({}) for `{sql}`\nstderr:\n{}\nstdout:\n{}",
            out.status, out.stderr, out.stdout
        ));
    }
    let text = out.stdout.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("calltrail query output is not JSON ({e}) for `{sql}`:\n{text}"))?;
    let Value::Array(items) = value else {
        return Err(format!(
            "calltrail query output is not a JSON array for `{sql}`:\n{text}"
        ));
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => Ok(m),
            other => Err(format!("row is not a JSON object: {other}")),
        })
        .collect()
}

fn count_of(rows: &[Row], sql: &str) -> Result<i64, String> {
    match rows {
        [row] => row
            .get("n")
            .and_then(as_i64)
            .ok_or_else(|| format!("`{sql}` returned no integer column n: {row:?}")),
        _ => Err(format!(
            "`{sql}` returned {} rows, expected 1: {rows:?}",
            rows.len()
        )),
    }
}

/// An integer cell (a JSON number, or a string holding one).
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A text cell; `None` when null or absent (the JSON writer may omit nulls).
pub fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// An integer cell; `None` when null or absent.
pub fn int(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(as_i64)
}

/// A boolean cell; `None` when null or absent.
pub fn boolean(row: &Row, column: &str) -> Option<bool> {
    match row.get(column) {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// Captured output of a child process.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion with piped output; kills it and panics after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{shown} did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The test venv's interpreter (`CALLTRAIL_TEST_PYTHON`, set by `scripts/test`).
pub fn python() -> PathBuf {
    let Some(path) = std::env::var_os("CALLTRAIL_TEST_PYTHON") else {
        panic!(
            "CALLTRAIL_TEST_PYTHON is not set: run the tests with scripts/test, which creates the Python venv"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "CALLTRAIL_TEST_PYTHON={} does not exist: run the tests with scripts/test, which creates the Python venv",
        path.display()
    );
    path
}

/// The repository root (the root package's manifest dir).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/samples`.
pub fn samples_dir() -> PathBuf {
    repo_root().join("tests/fixtures/samples")
}

/// Rows of `table` read by pyarrow's dataset API with Hive partitioning, and the set of
/// distinct `(date, hour)` partitions it saw, as "date/hour" strings.
pub fn pyarrow_scan(data_dir: &Path, table: &str) -> (i64, Vec<String>) {
    let script = r#"
import sys, pyarrow.dataset as ds
d = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
t = d.to_table(columns=["event_id", "date", "hour"])
# pyarrow infers hour=07 as the integer 7: pad it back.
parts = sorted({f"{a}/{str(b).zfill(2)}" for a, b in zip(t.column("date").to_pylist(), t.column("hour").to_pylist())})
print(t.num_rows)
print(",".join(parts))
"#;
    let dir = data_dir.join(table);
    let stdout = run_python(
        script,
        &[dir.as_os_str()],
        &format!("pyarrow scan of {}", dir.display()),
    );
    let mut lines = stdout.lines();
    let rows = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("pyarrow printed {stdout:?}"));
    let parts = lines
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    (rows, parts)
}

/// Counts rows with DuckDB (not written by us) straight from the Parquet files:
/// `SELECT count(*) FROM read_parquet('<data_dir>/<table>/**/*.parquet', hive_partitioning=true) WHERE <filter>`.
pub fn duckdb_count(data_dir: &Path, table: &str, filter: &str) -> i64 {
    let glob = data_dir.join(table).join("**").join("*.parquet");
    let script = r#"
import sys, duckdb
glob, where = sys.argv[1], sys.argv[2]
sql = "SELECT count(*) FROM read_parquet(?, hive_partitioning=true) WHERE " + where
print(duckdb.connect().execute(sql, [glob]).fetchone()[0])
"#;
    let what = format!("duckdb count over {} WHERE {filter}", glob.display());
    let stdout = run_python(script, &[glob.as_os_str(), filter.as_ref()], &what);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("duckdb printed {stdout:?}: {e}"))
}

/// Rows of a DuckDB query over the Parquet files of `table`, which `sql` reads as the view `t`
/// (`read_parquet('<data_dir>/<table>/**/*.parquet', hive_partitioning=true)`); each row's
/// cells as text (`str()` of the Python value). No rows when the table has no file yet (DuckDB
/// refuses an empty glob).
pub fn duckdb_rows(data_dir: &Path, table: &str, sql: &str) -> Vec<Vec<String>> {
    let glob = data_dir.join(table).join("**").join("*.parquet");
    let script = r#"
import sys, glob, duckdb
pattern, sql = sys.argv[1], sys.argv[2]
if glob.glob(pattern, recursive=True):
    con = duckdb.connect()
    quoted = "'" + pattern.replace("'", "''") + "'"
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({quoted}, hive_partitioning=true)")
    for row in con.execute(sql).fetchall():
        print("\t".join(str(c) for c in row))
"#;
    let what = format!("duckdb `{sql}` over {}", glob.display());
    let stdout = run_python(script, &[glob.as_os_str(), sql.as_ref()], &what);
    stdout
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// Runs a Python snippet with the test venv and returns its stdout; fails with its stderr.
fn run_python(script: &str, args: &[&std::ffi::OsStr], what: &str) -> String {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    let out = run(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    out.stdout
}

// ----- OTLP protobuf builders, for requests the tests craft themselves -----

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A 16-byte trace id unique to `(test, n)`.
pub fn trace_id(test: u8, n: u8) -> Vec<u8> {
    let mut id = vec![0x5a; 16];
    id[0] = test;
    id[15] = n;
    id
}

/// An 8-byte span id unique to `(test, n, i)`.
pub fn span_id(test: u8, n: u8, i: u8) -> Vec<u8> {
    vec![0xc0, test, 0, 0, 0, n, i, 1]
}

/// A SERVER `tools/call <tool>` span as the MCP semantic conventions describe it, 5 ms long,
/// ending now.
pub fn server_tool_span(trace: Vec<u8>, span: Vec<u8>, tool: &str, request_id: &str) -> Span {
    let end = now_ns();
    Span {
        trace_id: trace,
        span_id: span,
        name: format!("tools/call {tool}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: end - 5_000_000,
        end_time_unix_nano: end,
        attributes: vec![
            kv("mcp.method.name", "tools/call"),
            kv("gen_ai.tool.name", tool),
            kv("gen_ai.operation.name", "execute_tool"),
            kv("jsonrpc.request.id", request_id),
            kv("mcp.protocol.version", "2025-11-25"),
        ],
        status: Some(Status {
            code: status::StatusCode::Unset as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One resource (`service.name` = `service`) with one scope holding `spans`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "calltrail-tests".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A reqwest client for loopback (no proxy).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}
