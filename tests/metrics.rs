//! Self-telemetry end to end: a real `calltrail serve` counts what it receives and writes, shows
//! it at `GET /metrics` (Prometheus text, checked with the Python `prometheus_client` parser, not
//! written by us), and pushes the same metrics over OTLP/HTTP and OTLP/gRPC to receivers the
//! tests run.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use calltrail_collector::auth::token_sha256;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::Server;

const TOKEN: &str = "ctk_metrics_test";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const WAIT: Duration = Duration::from_secs(20);

/// `n` MCP tool-call spans, one span with a bad trace id (rejected) and one plain internal span
/// (skipped): `n + 2` spans received, `n` accepted.
fn body(test: u8, batch: u8, n: u8) -> Vec<u8> {
    let mut spans: Vec<Span> = (0..n)
        .map(|i| {
            support::server_tool_span(
                support::trace_id(test, batch),
                support::span_id(test, batch, i),
                "get_balance",
                &i.to_string(),
            )
        })
        .collect();
    let mut rejected = support::server_tool_span(
        vec![1, 2, 3],
        support::span_id(test, batch, 200),
        "get_balance",
        "x",
    );
    rejected.name = "tools/call bad trace id".into();
    spans.push(rejected);
    let end = support::now_ns();
    spans.push(Span {
        trace_id: support::trace_id(test, batch),
        span_id: support::span_id(test, batch, 201),
        name: "agent turn".into(),
        kind: 1,
        start_time_unix_nano: end - 1_000_000,
        end_time_unix_nano: end,
        ..Default::default()
    });
    support::request("metrics-test", spans).encode_to_vec()
}

async fn post(
    server: &Server,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = support::http_client()
        .post(server.traces_url())
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap()
}

/// A scrape: status, content type and body.
async fn scrape(server: &Server) -> (u16, String, String) {
    let r = support::http_client()
        .get(format!("http://{}/metrics", server.http_addr()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

/// Every sample of a Prometheus text exposition, by series (`name{labels}`), parsed strictly:
/// each line is `# HELP`, `# TYPE` or `series value`, and each series appears once.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line:?}"
        );
        assert!(
            name_end == series.len() || series.ends_with('}'),
            "unterminated labels in {line:?}"
        );
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}")),
        };
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "series twice: {line:?}"
        );
    }
    out
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

/// Scrapes until `series` reaches `at_least`, and returns that scrape's samples.
async fn wait_for(server: &Server, series: &str, at_least: f64) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, _, text) = scrape(server).await;
        let s = samples(&text);
        if s.get(series).is_some_and(|v| *v >= at_least) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{series} did not reach {at_least} within {WAIT:?}; last scrape:\n{text}\nserver stderr:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The exposition as the Python `prometheus_client` parser reads it: `{sample: value}` and
/// `{family: type}`.
fn python_parse(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = {}, {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    types[family.name] = family.type
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items())
        samples[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps({"samples": samples, "types": types}))
"#;
    let mut cmd = std::process::Command::new(support::python());
    cmd.arg("-c").arg(script).arg(&path);
    let out = support::run(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "prometheus_client could not parse the exposition ({}):\n{}\n---\n{text}",
        out.status,
        out.stderr
    );
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let samples = parsed["samples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    let types = parsed["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (samples, types)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_what_was_received_and_written() {
    let config = format!(
        "[store]\nflush_interval_ms = 200\n\
         [auth]\nmode = \"required\"\n\
         [[auth.tokens]]\nsource = \"metrics-test\"\nsha256 = \"{}\"\n",
        token_sha256(TOKEN)
    );
    let server = tokio::task::spawn_blocking(move || Server::start_with_config(&config))
        .await
        .unwrap();

    // Readable without a token, while ingest requires one.
    let (status, ctype, text) = scrape(&server).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ctype, CONTENT_TYPE);
    let before = samples(&text);
    assert_eq!(value(&before, "calltrail_ingest_spans_received_total"), 0.0);
    assert_eq!(value(&before, "calltrail_store_parquet_files_total"), 0.0);
    assert_eq!(
        post(&server, None, "application/x-protobuf", body(61, 0, 1))
            .await
            .status(),
        401
    );

    // The refusal for credentials is counted as such, and as nothing else.
    let now = samples(&scrape(&server).await.2);
    assert_eq!(
        value(
            &now,
            r#"calltrail_ingest_requests_refused_total{reason="unauthenticated"}"#
        ),
        1.0
    );

    // A malformed request is counted as such.
    let malformed = r#"calltrail_ingest_requests_refused_total{reason="malformed"}"#;
    let m0 = value(&now, malformed);
    assert_eq!(m0, 0.0);
    let r = post(&server, Some(TOKEN), "text/plain", b"hello".to_vec()).await;
    assert_eq!(r.status(), 415);
    assert_eq!(
        value(&samples(&scrape(&server).await.2), malformed),
        m0 + 1.0
    );

    // 3 tool calls, 1 rejected, 1 skipped.
    let r = post(
        &server,
        Some(TOKEN),
        "application/x-protobuf",
        body(61, 1, 3),
    )
    .await;
    assert_eq!(r.status(), 200);
    let after1 = wait_for(&server, "calltrail_store_rows_written_total", 3.0).await;
    assert_eq!(value(&after1, "calltrail_ingest_spans_received_total"), 5.0);
    assert_eq!(
        value(
            &after1,
            r#"calltrail_ingest_spans_accepted_total{table="tool_calls"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &after1,
            r#"calltrail_ingest_spans_accepted_total{table="llm_calls"}"#
        ),
        0.0
    );
    assert_eq!(value(&after1, "calltrail_ingest_spans_rejected_total"), 1.0);
    assert_eq!(value(&after1, "calltrail_ingest_spans_skipped_total"), 1.0);
    assert_eq!(value(&after1, "calltrail_store_rows_written_total"), 3.0);
    assert_eq!(value(&after1, "calltrail_store_rows_pending"), 0.0);
    assert_eq!(value(&after1, "calltrail_store_write_errors_total"), 0.0);
    let files1 = value(&after1, "calltrail_store_parquet_files_total");
    assert!(files1 >= 1.0, "{after1:#?}");
    assert!(value(&after1, "calltrail_store_parquet_bytes_total") > 0.0);
    // The counters agree with the store.
    assert_eq!(server.count("SELECT count(*) AS n FROM tool_calls"), 3);

    // A second batch, flushed later: files and bytes grow.
    let r = post(
        &server,
        Some(TOKEN),
        "application/x-protobuf",
        body(61, 2, 2),
    )
    .await;
    assert_eq!(r.status(), 200);
    let after2 = wait_for(&server, "calltrail_store_rows_written_total", 5.0).await;
    assert_eq!(value(&after2, "calltrail_ingest_spans_received_total"), 9.0);
    assert_eq!(value(&after2, "calltrail_store_rows_written_total"), 5.0);
    assert!(value(&after2, "calltrail_store_parquet_files_total") > files1);
    assert!(
        value(&after2, "calltrail_store_parquet_bytes_total")
            > value(&after1, "calltrail_store_parquet_bytes_total")
    );

    // The write-ahead log: two accepted requests, two frames, fsynced; checkpointed once sealed.
    assert_eq!(value(&after2, "calltrail_wal_frames_total"), 2.0);
    assert!(value(&after2, "calltrail_wal_appended_bytes_total") > 0.0);
    assert!(value(&after2, "calltrail_wal_fsyncs_total") >= 1.0);
    assert!(value(&after2, "calltrail_wal_fsync_duration_seconds_count") >= 1.0);
    assert!(value(&after2, "calltrail_wal_disk_bytes") > 0.0);
    assert_eq!(value(&after2, "calltrail_wal_recovery_cuts"), 0.0);
    let lagless = wait_for(&server, "calltrail_wal_frames_total", 2.0).await;
    assert!(value(&lagless, "calltrail_wal_lag_frames") <= 2.0);

    // A parser not written by us reads the same values and types.
    let (_, _, text) = scrape(&server).await;
    let ours = samples(&text);
    let (theirs, types) = python_parse(&text);
    for series in [
        "calltrail_ingest_spans_received_total",
        r#"calltrail_ingest_spans_accepted_total{table="tool_calls"}"#,
        "calltrail_store_rows_written_total",
        "calltrail_store_parquet_files_total",
        "calltrail_store_rows_pending",
    ] {
        assert_eq!(
            theirs.get(series),
            Some(&value(&ours, series)),
            "{series}: {theirs:#?}"
        );
    }
    assert_eq!(theirs.len(), ours.len(), "{theirs:#?}\n{ours:#?}");
    for (family, kind) in [
        ("calltrail_ingest_spans_received", "counter"),
        ("calltrail_store_parquet_bytes", "counter"),
        ("calltrail_store_rows_pending", "gauge"),
        ("calltrail_metrics_scrape_duration_seconds", "histogram"),
        ("calltrail_wal_fsync_duration_seconds", "histogram"),
        ("calltrail_wal_lag_frames", "gauge"),
        ("target_info", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}: {types:#?}"
        );
    }
    assert!(
        value(
            &ours,
            r#"calltrail_metrics_scrape_duration_seconds_bucket{le="+Inf"}"#
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_can_be_turned_off() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start_with_config("[telemetry]\nmetrics_endpoint = false\n")
    })
    .await
    .unwrap();
    let (status, _, _) = scrape(&server).await;
    assert_eq!(status, 404);
    let r = support::http_client()
        .get(format!("http://{}/healthz", server.http_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The value of the (single) sum data point of metric `name`, if the request has it.
fn sum_of(req: &ExportMetricsServiceRequest, name: &str) -> Option<i64> {
    let m = req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == name)?;
    let Some(metric::Data::Sum(sum)) = &m.data else {
        panic!("{name} is not a sum: {m:?}");
    };
    assert!(sum.is_monotonic, "{name}");
    match sum.data_points.first()?.value {
        Some(number_data_point::Value::AsInt(v)) => Some(v),
        other => panic!("{name}: unexpected value {other:?}"),
    }
}

fn service_name(req: &ExportMetricsServiceRequest) -> Option<String> {
    req.resource_metrics
        .first()?
        .resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// A minimal OTLP/HTTP metrics receiver: answers 200 to every request and hands over
/// `(path, content type, decoded body)`.
fn http_receiver() -> (
    SocketAddr,
    mpsc::Receiver<(String, String, ExportMetricsServiceRequest)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_string();
                    let (mut length, mut ctype) = (0usize, String::new());
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (k, v) = line.split_once(':').unwrap();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap(),
                            "content-type" => ctype = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let decoded = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
                    let _ = tx.send((path, ctype, decoded));
                    conn.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    )
                    .unwrap();
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_periodically_over_otlp_http() {
    let (addr, pushes) = http_receiver();
    let config = format!(
        "[store]\nflush_interval_ms = 200\n\
         [telemetry]\notlp_endpoint = \"http://{addr}\"\notlp_protocol = \"http\"\ninterval_ms = 1000\n"
    );
    let server = tokio::task::spawn_blocking(move || Server::start_with_config(&config))
        .await
        .unwrap();
    let r = post(&server, None, "application/x-protobuf", body(62, 1, 4)).await;
    assert_eq!(r.status(), 200);

    // Pushes keep coming while the server runs; one soon shows the batch fully written.
    let last = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            let Ok((path, ctype, req)) = pushes.recv_timeout(Duration::from_millis(500)) else {
                continue;
            };
            assert_eq!(path, "/v1/metrics");
            assert_eq!(ctype, "application/x-protobuf");
            let done = sum_of(&req, "calltrail.store.rows.written") == Some(4);
            last = Some(req);
            if done {
                break;
            }
        }
        last
    })
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("nothing pushed; server stderr:\n{}", server.log()));
    assert_eq!(
        sum_of(&last, "calltrail.store.rows.written"),
        Some(4),
        "{last:?}"
    );
    assert_eq!(sum_of(&last, "calltrail.ingest.spans.received"), Some(6));
    assert_eq!(service_name(&last).as_deref(), Some("calltrail"));
}

/// A minimal OTLP/gRPC metrics receiver.
struct GrpcReceiver(tokio::sync::mpsc::UnboundedSender<ExportMetricsServiceRequest>);

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_counts_are_pushed_over_otlp_grpc_at_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(GrpcReceiver(tx)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    // An hour between pushes: the only one this test can see is the one made at shutdown.
    let config = format!(
        "[telemetry]\notlp_endpoint = \"http://{addr}\"\notlp_protocol = \"grpc\"\ninterval_ms = 3600000\n"
    );
    let mut server = tokio::task::spawn_blocking(move || Server::start_with_config(&config))
        .await
        .unwrap();
    let r = post(&server, None, "application/x-protobuf", body(63, 1, 2)).await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pushes.try_recv().is_err(), "pushed before the interval");

    // SIGTERM: drain, flush, then one last push with the flushed counts.
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    let last = tokio::time::timeout(WAIT, pushes.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing pushed at shutdown; stderr:\n{}", server.log()))
        .unwrap();
    assert_eq!(sum_of(&last, "calltrail.ingest.spans.received"), Some(4));
    assert_eq!(sum_of(&last, "calltrail.store.rows.written"), Some(2));
    assert_eq!(sum_of(&last, "calltrail.store.parquet.files"), Some(1));
    assert_eq!(service_name(&last).as_deref(), Some("calltrail"));
}
