//! The business metrics end to end: a real `calltrail serve` receives OTLP tool-call and LLM
//! spans and `GET /metrics` shows `calltrail_tool_calls_total{team,server,outcome}` and
//! `calltrail_llm_tokens_total{team,token_type}` agreeing with the store's `calls` view and
//! `llm_calls` table; a call whose client and server spans arrive in different requests, or
//! twice, counts once; label sets beyond `telemetry.business_series_limit` go to the overflow
//! series.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calltrail::workload::Workload;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, span};
use prost::Message;
use support::{Server, kv, kv_int};

const WAIT: Duration = Duration::from_secs(30);
const CALLS: &str = "calltrail_tool_calls_total";
const TOKENS: &str = "calltrail_llm_tokens_total";

/// A series' labels, sorted by name.
type Labels = BTreeMap<String, String>;

/// The samples of `family` in a Prometheus text exposition, by label set.
fn family(text: &str, family: &str) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
            None => (series, Labels::new()),
        };
        if name == family {
            let value: f64 = value.parse().unwrap();
            assert!(out.insert(labels, value).is_none(), "series twice: {line}");
        }
    }
    out
}

/// `a="x",b="y\"z"` as a map, undoing the text format's escapes.
fn parse_labels(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{text}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {text}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(name, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn scrape(server: &Server) -> String {
    let r = support::http_client()
        .get(format!("http://{}/metrics", server.http_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn post(server: &Server, request: &ExportTraceServiceRequest) {
    let r = support::http_client()
        .post(server.traces_url())
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Scrapes until the sum of `family`'s series reaches `total`.
async fn wait_for_total(server: &Server, name: &str, total: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(server).await;
        if family(&text, name).values().sum::<f64>() >= total {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not reach {total}; last scrape:\n{text}\nserver stderr:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(config: &'static str) -> Server {
    tokio::task::spawn_blocking(move || Server::start_with_config(config))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_metrics_agree_with_the_calls_view_and_llm_calls() {
    let server = start("[store]\nflush_interval_ms = 200\n").await;
    // No series (and so no family) until something is counted.
    let empty = scrape(&server).await;
    assert!(!empty.contains(CALLS) && !empty.contains(TOKENS), "{empty}");

    // A realistic workload: gateway (client) and server spans of each call in one request,
    // gateway denials seen by the client only, tool and JSON-RPC errors, LLM spans.
    let mut workload = Workload::new(
        91,
        i64::try_from(support::now_ns()).unwrap() - 60_000_000_000,
        10_000_000,
    );
    for _ in 0..4 {
        post(&server, &workload.next_request(300)).await;
    }
    // Acknowledged means durable; wait until the store holds every accepted record.
    let text = scrape(&server).await;
    let accepted = family(&text, "calltrail_ingest_spans_accepted_total");
    let accepted = |table: &str| accepted[&labels(&[("table", table)])] as i64;
    let (tools, llms) = (accepted("tool_calls"), accepted("llm_calls"));
    assert!(tools > 600 && llms > 100, "{text}");
    let (server, rows) = tokio::task::spawn_blocking(move || {
        server.wait_for_count("SELECT count(*) AS n FROM tool_calls", tools, WAIT);
        server.wait_for_count("SELECT count(*) AS n FROM llm_calls", llms, WAIT);
        let rows = server
            .query("SELECT team, server_name, outcome, count(*) AS n FROM calls GROUP BY 1, 2, 3");
        (server, rows)
    })
    .await
    .unwrap();
    let expected: BTreeMap<Labels, f64> = rows
        .iter()
        .map(|r| {
            let mut l = Labels::new();
            for (label, column) in [("team", "team"), ("server", "server_name")] {
                if let Some(v) = support::text(r, column) {
                    l.insert(label.into(), v);
                }
            }
            l.insert("outcome".into(), support::text(r, "outcome").unwrap());
            (l, support::int(r, "n").unwrap() as f64)
        })
        .collect();
    let total: f64 = expected.values().sum();
    let text = wait_for_total(&server, CALLS, total).await;
    let calls = family(&text, CALLS);
    assert_eq!(calls, expected, "scrape:\n{text}");
    // The workload has every outcome, several teams and servers, and unattributed callers.
    for outcome in ["ok", "tool_error", "protocol_error", "denied"] {
        assert!(calls.keys().any(|l| l["outcome"] == outcome), "{outcome}");
    }
    assert!(calls.keys().any(|l| !l.contains_key("team")));
    assert!(
        calls
            .keys()
            .all(|l| !l.contains_key("otel_metric_overflow"))
    );

    let tokens = support::query_dir(
        server.data_dir(),
        "SELECT team, sum(input_tokens) AS i, sum(output_tokens) AS o FROM llm_calls GROUP BY 1",
    )
    .unwrap();
    let mut expected = BTreeMap::new();
    for r in &tokens {
        for (token_type, column) in [("input", "i"), ("output", "o")] {
            let mut l = labels(&[("token_type", token_type)]);
            if let Some(team) = support::text(r, "team") {
                l.insert("team".into(), team);
            }
            expected.insert(l, support::int(r, column).unwrap() as f64);
        }
    }
    let text = wait_for_total(&server, TOKENS, expected.values().sum()).await;
    assert_eq!(family(&text, TOKENS), expected, "scrape:\n{text}");
}

/// A `tools/call` span of `team` (and `server`, when given) of side `kind`.
fn tool_span(
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    kind: span::SpanKind,
    team: &str,
    server: Option<&str>,
) -> Span {
    let mut s = support::server_tool_span(trace, id, "get_balance", "7");
    s.kind = kind as i32;
    s.parent_span_id = parent;
    s.attributes.push(kv("team.id", team));
    s.attributes.push(kv("user.id", "alice@bank.example"));
    if let Some(server) = server {
        s.attributes.push(kv("mcp.server.name", server));
    }
    s
}

fn llm_span(trace: Vec<u8>, id: Vec<u8>, team: &str, input: i64, output: i64) -> Span {
    let end = support::now_ns();
    Span {
        trace_id: trace,
        span_id: id,
        name: "chat claude".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: end - 1_000_000,
        end_time_unix_nano: end,
        attributes: vec![
            kv("gen_ai.operation.name", "chat"),
            kv_int("gen_ai.usage.input_tokens", input),
            kv_int("gen_ai.usage.output_tokens", output),
            kv("team.id", team),
            kv("user.id", "bob@bank.example"),
        ],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_pairs_and_retries_count_once_and_the_cap_folds_the_rest() {
    use span::SpanKind::{Client, Server as ServerKind};
    let server = start("[telemetry]\nbusiness_series_limit = 2\n").await;
    let (t, s) = (support::trace_id, support::span_id);

    // The gateway's client span, then the server's span of the same call in another request,
    // then that request again (an exporter retry): one call, labelled by the first record.
    post(
        &server,
        &support::request(
            "gateway",
            vec![tool_span(
                t(71, 1),
                s(71, 1, 1),
                vec![],
                Client,
                "payments",
                None,
            )],
        ),
    )
    .await;
    let server_side = support::request(
        "ledger-mcp",
        vec![tool_span(
            t(71, 1),
            s(71, 1, 2),
            s(71, 1, 1),
            ServerKind,
            "payments",
            Some("ledger"),
        )],
    );
    post(&server, &server_side).await;
    post(&server, &server_side).await;
    // Two calls of a second label set: the cap (2) is reached.
    post(
        &server,
        &support::request(
            "crm-mcp",
            vec![
                tool_span(
                    t(71, 2),
                    s(71, 2, 1),
                    vec![],
                    ServerKind,
                    "risk",
                    Some("crm"),
                ),
                tool_span(
                    t(71, 2),
                    s(71, 2, 2),
                    vec![],
                    ServerKind,
                    "risk",
                    Some("crm"),
                ),
            ],
        ),
    )
    .await;
    let text = wait_for_total(&server, CALLS, 3.0).await;
    let payments = labels(&[("outcome", "ok"), ("team", "payments")]);
    let risk = labels(&[("outcome", "ok"), ("server", "crm"), ("team", "risk")]);
    assert_eq!(
        family(&text, CALLS),
        BTreeMap::from([(payments.clone(), 1.0), (risk.clone(), 2.0)]),
        "{text}"
    );

    // New label sets fold into the overflow series; tracked ones keep counting.
    post(
        &server,
        &support::request(
            "mixed",
            vec![
                tool_span(
                    t(71, 3),
                    s(71, 3, 1),
                    vec![],
                    ServerKind,
                    "data",
                    Some("crm"),
                ),
                tool_span(
                    t(71, 3),
                    s(71, 3, 2),
                    vec![],
                    ServerKind,
                    "treasury",
                    Some("erp"),
                ),
                tool_span(
                    t(71, 3),
                    s(71, 3, 3),
                    vec![],
                    ServerKind,
                    "data",
                    Some("github"),
                ),
                tool_span(
                    t(71, 3),
                    s(71, 3, 4),
                    vec![],
                    ServerKind,
                    "risk",
                    Some("crm"),
                ),
                llm_span(t(71, 4), s(71, 4, 1), "payments", 1000, 200),
                llm_span(t(71, 4), s(71, 4, 2), "risk", 30, 5),
            ],
        ),
    )
    .await;
    let text = wait_for_total(&server, CALLS, 7.0).await;
    let overflow = labels(&[("otel_metric_overflow", "true")]);
    assert_eq!(
        family(&text, CALLS),
        BTreeMap::from([(payments, 1.0), (risk, 3.0), (overflow.clone(), 3.0)]),
        "{text}"
    );
    // Tokens: payments input and output are the two tracked sets; risk's overflow.
    let text = wait_for_total(&server, TOKENS, 1235.0).await;
    assert_eq!(
        family(&text, TOKENS),
        BTreeMap::from([
            (
                labels(&[("team", "payments"), ("token_type", "input")]),
                1000.0
            ),
            (
                labels(&[("team", "payments"), ("token_type", "output")]),
                200.0
            ),
            (overflow, 35.0),
        ]),
        "{text}"
    );
    assert!(text.contains(&format!("# TYPE {TOKENS} counter")), "{text}");
}
