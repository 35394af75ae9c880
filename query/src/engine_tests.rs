//! Engine tests over a store written by the real writer from captured payloads.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use calltrail_retention::{Layout, StoreConfig, StoreWriter, WriteBatch};
use calltrail_schemas::{Attributor, IngestContext, map_request};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;

fn sample(name: &str) -> ExportTraceServiceRequest {
    let path = format!(
        "{}/../tests/fixtures/samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    ExportTraceServiceRequest::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
}

/// Writes requests to a fresh store through the real writer, with its duplicate filter off so
/// that retries reach Parquet as they would after the filter's window (the view must fold them).
async fn store_requests(
    requests: impl IntoIterator<Item = ExportTraceServiceRequest>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        dedup_window: 0,
        ..StoreConfig::default()
    };
    let key = calltrail_retention::note::SigningKey::generate("test.calltrail").unwrap();
    let integrity = calltrail_retention::chain::IntegrityConfig::default();
    let w = StoreWriter::spawn(
        config,
        Arc::new(Layout::new(dir.path(), "t")),
        &integrity,
        &key,
        &calltrail_retention::policy::RetentionConfig::default(),
    )
    .unwrap();
    let ctx = IngestContext {
        observed_time_ns: 1_800_000_000_000_000_000,
        protocol: "test",
        peer: None,
        source: None,
    };
    for (seq, req) in (1..).zip(requests) {
        let m = map_request(&req, &ctx, &Attributor::default());
        w.handle()
            .try_submit(WriteBatch {
                wal_seq: seq,
                tool_calls: m.tool_calls,
                llm_calls: m.llm_calls,
            })
            .unwrap();
    }
    w.shutdown().await;
    dir
}

/// Writes the given captures (each twice when `retry`, as an exporter retrying would).
async fn store(files: &[&str], retry: bool) -> tempfile::TempDir {
    let copies = if retry { 2 } else { 1 };
    store_requests(
        files
            .iter()
            .flat_map(|f| std::iter::repeat_n(sample(f), copies)),
    )
    .await
}

fn strings(batches: &[RecordBatch], col: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(col).unwrap().as_string::<i32>().clone();
            (0..a.len())
                .map(move |i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn count(batches: &[RecordBatch]) -> i64 {
    batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

#[tokio::test]
async fn calls_view_counts_each_call_once_even_after_retries() {
    let dir = store(
        &["v2-stdio-auto-traces-001.pb", "v2-stdio-auto-traces-002.pb"],
        true,
    )
    .await;
    let e = Engine::open(dir.path(), QueryLimits::default())
        .await
        .unwrap();
    assert_eq!(
        count(&e.query("SELECT count(*) FROM tool_calls").await.unwrap()),
        36,
        "18 spans, sent twice"
    );
    assert_eq!(
        count(&e.query("SELECT count(*) FROM calls").await.unwrap()),
        9
    );
    let b = e
        .query("SELECT coalesce(target, '-') AS t, outcome, side FROM calls ORDER BY start_time")
        .await
        .unwrap();
    assert_eq!(
        strings(&b, "outcome"),
        [
            "ok",
            "ok",
            "ok",
            "ok",
            "tool_error",
            "protocol_error",
            "tool_error",
            "ok",
            "ok"
        ]
    );
    assert!(strings(&b, "side").iter().all(|s| s == "server"));
    // Partition columns exist and prune.
    let b = e
        .query("SELECT count(*) FROM tool_calls WHERE date = '1999-01-01'")
        .await
        .unwrap();
    assert_eq!(count(&b), 0);
}

#[tokio::test]
async fn calls_view_takes_the_best_identity_of_the_pair() {
    let dir = store(
        &["fastmcp4-http-traces-001.pb", "fastmcp4-http-traces-002.pb"],
        false,
    )
    .await;
    let e = Engine::open(dir.path(), QueryLimits::default())
        .await
        .unwrap();
    let b = e
        .query("SELECT DISTINCT principal, principal_kind, principal_reason FROM calls")
        .await
        .unwrap();
    assert_eq!(strings(&b, "principal"), ["claude-desktop"]);
    assert_eq!(strings(&b, "principal_kind"), ["service_account"]);
    assert_eq!(
        count(&e.query("SELECT count(*) FROM calls").await.unwrap()),
        7
    );
}

#[tokio::test]
async fn writes_and_statements_are_refused() {
    let dir = store(&[], false).await;
    let e = Engine::open(dir.path(), QueryLimits::default())
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW calls",
        "INSERT INTO tool_calls SELECT * FROM tool_calls",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "SET datafusion.execution.batch_size = 1",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
    ] {
        let err = e.query(sql).await.unwrap_err();
        assert!(matches!(err, Error::Plan(_)), "{sql}: {err}");
    }
    assert_eq!(
        count(&e.query("SELECT count(*) FROM calls").await.unwrap()),
        0,
        "an empty store answers"
    );
}

#[tokio::test]
async fn row_cap_is_an_error_not_a_silent_cut() {
    let dir = store(&["v2-stdio-auto-traces-001.pb"], false).await;
    let e = Engine::open(
        dir.path(),
        QueryLimits {
            max_rows: 3,
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    let err = e.query("SELECT * FROM tool_calls").await.unwrap_err();
    assert!(err.to_string().contains("more than 3 rows"), "{err}");
    assert_eq!(
        e.query("SELECT * FROM tool_calls LIMIT 3")
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        3
    );
}

mod synthetic {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn span(id: u8, parent: Option<u8>, kind: SpanKind, attrs: &[(&str, &str)]) -> Span {
        let mut attributes = vec![
            kv("mcp.method.name", "tools/call"),
            kv("gen_ai.tool.name", "get_x"),
        ];
        attributes.extend(attrs.iter().map(|(k, v)| kv(k, v)));
        Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: "tools/call get_x".into(),
            kind: kind as i32,
            start_time_unix_nano: 1_795_000_000_000_000_000 + u64::from(id),
            end_time_unix_nano: 1_795_000_000_000_000_100 + u64::from(id),
            attributes,
            ..Default::default()
        }
    }

    /// An engine over a store holding `spans` (one request).
    async fn engine_over(spans: Vec<Span>) -> (tempfile::TempDir, Engine) {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let dir = store_requests([req]).await;
        let e = Engine::open(dir.path(), QueryLimits::default())
            .await
            .unwrap();
        (dir, e)
    }

    #[tokio::test]
    async fn sibling_servers_are_separate_calls_and_the_gateway_human_wins() {
        // Span 1 is an agent span that is not exported here (not MCP). Spans 2 and 3 are
        // server spans under it: two calls. Span 4 is a gateway client span naming alice; span 5
        // is its server span, which only saw the OAuth client id.
        let spans = vec![
            span(2, Some(1), SpanKind::Server, &[("jsonrpc.request.id", "1")]),
            span(3, Some(1), SpanKind::Server, &[("jsonrpc.request.id", "2")]),
            span(
                4,
                Some(1),
                SpanKind::Client,
                &[("user.id", "alice@example.com"), ("team.id", "payments")],
            ),
            span(
                5,
                Some(4),
                SpanKind::Server,
                &[("enduser.id", "claude-desktop")],
            ),
        ];
        let (_dir, e) = engine_over(spans).await;
        let b = e
            .query("SELECT span_id, side, coalesce(principal, '-') AS principal, principal_kind, coalesce(team, '-') AS team FROM calls ORDER BY span_id")
            .await
            .unwrap();
        assert_eq!(
            strings(&b, "span_id"),
            ["0202020202020202", "0303030303030303", "0505050505050505"]
        );
        assert_eq!(strings(&b, "side"), ["server", "server", "server"]);
        assert_eq!(strings(&b, "principal"), ["-", "-", "alice@example.com"]);
        assert_eq!(
            strings(&b, "principal_kind"),
            ["unattributed", "unattributed", "human"]
        );
        assert_eq!(strings(&b, "team"), ["-", "-", "payments"]);
    }

    /// A team lead's session: through joins, subqueries, CTEs, unions, the `calls` and `sessions`
    /// views and every trick of `tests/fixtures/sql/scope_bypass.txt`, only their team's rows.
    #[tokio::test]
    async fn a_team_scope_cannot_be_escaped() {
        let spans = ["payments", "crm", "risk", "payments", "crm"]
            .iter()
            .enumerate()
            .map(|(i, team)| {
                let id = i as u8 + 1;
                let user = format!("user{id}@bank.example");
                span(
                    id,
                    None,
                    SpanKind::Server,
                    &[("enduser.id", user.as_str()), ("team.id", team)],
                )
            })
            .collect::<Vec<_>>();
        let (_dir, e) = engine_over(spans).await;
        let scope = Scope::Teams(vec!["payments".into()]);
        let all = count(&e.query("SELECT count(*) FROM tool_calls").await.unwrap());
        assert_eq!(all, 5);
        let mine = e
            .query_scoped("SELECT count(*) FROM tool_calls", &scope)
            .await
            .unwrap();
        assert_eq!(count(&mine), 2, "the team lead counts only their rows");
        let corpus = include_str!("../../tests/fixtures/sql/scope_bypass.txt");
        let mut tried = 0;
        for sql in corpus
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            tried += 1;
            let rows = e
                .query_scoped(sql, &scope)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}"));
            for team in strings_or_nulls(&rows, "team").into_iter().flatten() {
                assert_eq!(team, "payments", "{sql} leaked a row of {team}");
            }
        }
        assert!(tried >= 30, "{tried}");
        let none = e
            .query_scoped("SELECT count(*) FROM audit_events", &scope)
            .await
            .unwrap();
        assert_eq!(count(&none), 0, "audit events are not a team's");
        let tenants = Scope::Tenants(Vec::new());
        let none = e
            .query_scoped("SELECT count(*) FROM calls", &tenants)
            .await
            .unwrap();
        assert_eq!(count(&none), 0, "an empty scope sees nothing");
    }
}

fn strings_or_nulls(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(col).unwrap();
            let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap();
            let a = c.as_string::<i32>().clone();
            (0..a.len())
                .map(move |i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The hostile corpus (`tests/fixtures/sql/hostile.txt`): every `refuse` line is refused at
/// planning (a 400, nothing run), every `fail` line ends in an error, every `allow` line runs;
/// no file outside the store is read or written.
#[tokio::test]
async fn the_hostile_corpus_is_refused_or_contained() {
    let dir = store(&["v2-stdio-auto-traces-001.pb"], false).await;
    let e = Engine::open(
        dir.path(),
        QueryLimits {
            max_rows: 10_000,
            timeout_ms: 5_000,
            memory_limit_mib: 64,
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    let corpus = include_str!("../../tests/fixtures/sql/hostile.txt");
    let mut counts = (0, 0, 0);
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (kind, sql) = line.split_once('|').unwrap();
        let result = e.query(sql).await;
        match kind {
            "refuse" => {
                counts.0 += 1;
                assert!(
                    matches!(result, Err(Error::Plan(_))),
                    "not refused at planning: {sql}: {result:?}"
                );
            }
            "fail" => {
                counts.1 += 1;
                assert!(result.is_err(), "not bounded: {sql}");
            }
            "allow" => {
                counts.2 += 1;
                assert!(result.is_ok(), "a plain query failed: {sql}: {result:?}");
            }
            other => panic!("unknown kind {other:?} in the corpus"),
        }
    }
    assert!(counts.0 >= 50, "at least 50 hostile statements: {counts:?}");
    for i in 1..=4 {
        for ext in ["csv", "parquet", "json"] {
            let p = format!("/tmp/calltrail-hostile-{i}.{ext}");
            assert!(!std::path::Path::new(&p).exists(), "{p} was written");
        }
    }

    // Very deep and very long queries are refused, not crashed on.
    let deep = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(e.query(&deep).await.is_err(), "a 5000-deep expression");
    let long = format!("SELECT '{}'", "x".repeat(70_000));
    let err = e.query(&long).await.unwrap_err();
    assert!(err.to_string().contains("query.max_sql_bytes"), "{err}");
}

#[tokio::test]
async fn a_runaway_query_is_cancelled_and_the_engine_goes_on() {
    let dir = store(&["v2-stdio-auto-traces-001.pb"], false).await;
    let e = Engine::open(
        dir.path(),
        QueryLimits {
            timeout_ms: 300,
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let err = e
        .query("SELECT count(*) FROM generate_series(1, 10000000000)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("query.timeout_ms"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(e.query("SELECT count(*) FROM tool_calls").await.is_ok());

    // A query needing more memory than its pool fails alone.
    let small = Engine::open(
        dir.path(),
        QueryLimits {
            memory_limit_mib: 16,
            timeout_ms: 20_000,
            ..QueryLimits::default()
        },
    )
    .await
    .unwrap();
    let err = small
        .query("SELECT count(*) FROM (SELECT value % 2999999 AS k, count(*) AS n FROM generate_series(1, 3000000) GROUP BY 1) WHERE n > 0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    assert!(small.query("SELECT count(*) FROM tool_calls").await.is_ok());
}

#[tokio::test]
async fn sessions_group_calls_by_session_or_trace() {
    let dir = store(
        &["v2-stdio-auto-traces-001.pb", "v2-stdio-auto-traces-002.pb"],
        false,
    )
    .await;
    let e = Engine::open(dir.path(), QueryLimits::default())
        .await
        .unwrap();
    let calls = count(&e.query("SELECT count(*) FROM calls").await.unwrap());
    let summed = e
        .query("SELECT CAST(sum(calls) AS BIGINT) FROM sessions")
        .await
        .unwrap();
    assert_eq!(
        count(&summed),
        calls,
        "every call is in exactly one session"
    );
    let keys = count(
        &e.query(
            "SELECT count(DISTINCT CASE WHEN session_id IS NOT NULL THEN 'session:' || session_id ELSE 'trace:' || trace_id END) FROM calls",
        )
        .await
        .unwrap(),
    );
    let sessions = count(&e.query("SELECT count(*) FROM sessions").await.unwrap());
    assert_eq!(sessions, keys);
}

/// Partition pruning: a filter on `date` (and `hour`) reads only that partition's files.
#[tokio::test]
async fn a_one_day_query_reads_one_day() {
    let dir = store(&["v2-stdio-auto-traces-001.pb"], false).await;
    let table = dir.path().join("tool_calls");
    let mut files = Vec::new();
    let mut stack = vec![table.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    let other = table.join("date=2000-01-01").join("hour=00");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&files[0], other.join("old.parquet")).unwrap();
    let e = Engine::open(dir.path(), QueryLimits::default())
        .await
        .unwrap();
    let plan = e
        .query("EXPLAIN SELECT count(DISTINCT event_id) FROM tool_calls WHERE date = '2000-01-01'")
        .await
        .unwrap();
    let text = strings(&plan, "plan").join("\n");
    assert!(text.contains("date=2000-01-01"), "{text}");
    assert!(
        !text.contains(files[0].file_name().unwrap().to_str().unwrap()),
        "another day's file is in the plan:\n{text}"
    );
    let one_day = count(
        &e.query("SELECT count(*) FROM tool_calls WHERE date = '2000-01-01'")
            .await
            .unwrap(),
    );
    let all = count(&e.query("SELECT count(*) FROM tool_calls").await.unwrap());
    assert!(one_day > 0 && one_day < all, "{one_day} of {all}");
}
