//! Every Grafana dashboard in `dashboards/grafana/` asks for metrics Calltrail really exports:
//! a real `calltrail serve` (with a forwarding destination, so the per-destination metrics exist)
//! receives a realistic workload, `GET /metrics` is scraped, and every panel target's PromQL is
//! parsed with `promql-parser` (GreptimeDB's port of Prometheus' grammar, not ours); each metric
//! it selects must be in the scrape. Variable queries (`label_values(selector, label)`) are
//! checked the same way, and every panel and target must take its datasource from the
//! `DS_PROMETHEUS` variable, never a fixed one.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use calltrail::workload::Workload;
use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use prost::Message;
use serde_json::Value;
use support::Server;

const WAIT: Duration = Duration::from_secs(30);
const DATASOURCE: &str = "${DS_PROMETHEUS}";

/// Every `*.json` under `dir`, sorted.
fn dashboards(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(dashboards(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The metric names a scrape exposes: each sample's name (so a histogram contributes its
/// `_bucket`, `_sum` and `_count`), and each family's name from `# TYPE`.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap();
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The metric name of a selector: `name{...}` or `{__name__="name"}`.
fn selector_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}

/// Collects the metric names of every selector in an expression.
#[derive(Default)]
struct Selectors {
    names: Vec<String>,
    /// Selectors naming no metric (`{job="x"}`): not allowed on a dashboard.
    anonymous: usize,
}

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        match selector_name(vs) {
            Some(name) => self.names.push(name),
            None => self.anonymous += 1,
        }
        Ok(true)
    }
}

/// `expr` as Grafana sends it to Prometheus: its interval variables replaced by a duration.
/// Other variables (`$instance`, `$team`) only appear inside label matcher strings, where
/// they are valid as they are.
fn as_prometheus_sees_it(expr: &str) -> String {
    [
        "$__rate_interval",
        "${__rate_interval}",
        "$__interval",
        "${__interval}",
        "$__range",
        "${__range}",
    ]
    .iter()
    .fold(expr.to_string(), |e, var| e.replace(var, "5m"))
}

/// Parses `expr` and returns the metric names it selects, or why it is not acceptable.
fn metrics_of(expr: &str) -> Result<Vec<String>, String> {
    let parsed = promql_parser::parser::parse(&as_prometheus_sees_it(expr))
        .map_err(|e| format!("does not parse: {e}"))?;
    let mut selectors = Selectors::default();
    walk_expr(&mut selectors, &parsed).unwrap();
    if selectors.anonymous > 0 {
        return Err("has a selector without a metric name".into());
    }
    if selectors.names.is_empty() {
        return Err("selects no metric".into());
    }
    Ok(selectors.names)
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The problems of one dashboard, each naming the dashboard, the panel and the metric.
fn check_dashboard(file: &str, dashboard: &Value, exported: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let check = |place: String, expr: &str, problems: &mut Vec<String>| match metrics_of(expr) {
        Err(e) => problems.push(format!("{place}: `{expr}` {e}")),
        Ok(names) => {
            for name in names.iter().filter(|n| !exported.contains(*n)) {
                problems.push(format!(
                    "{place}: metric `{name}` is not exported by calltrail (in `{expr}`)"
                ));
            }
        }
    };
    let uses_variable = |ds: &Value| ds["uid"] == DATASOURCE && ds["type"] == "prometheus";
    let mut targets = 0;
    for panel in panels(dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let place = format!(
            "{file}, panel \"{}\" (id {})",
            panel["title"].as_str().unwrap_or("?"),
            panel["id"]
        );
        if !uses_variable(&panel["datasource"]) {
            problems.push(format!("{place}: datasource is not {DATASOURCE}"));
        }
        let list = panel["targets"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            problems.push(format!("{place}: no query"));
        }
        for target in &list {
            let place = format!("{place}, target {}", target["refId"]);
            if !uses_variable(&target["datasource"]) {
                problems.push(format!("{place}: datasource is not {DATASOURCE}"));
            }
            match target["expr"].as_str() {
                Some(expr) => {
                    targets += 1;
                    check(place, expr, &mut problems);
                }
                None => problems.push(format!("{place}: no expr")),
            }
        }
    }
    if targets == 0 {
        problems.push(format!("{file}: no panel queries"));
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let place = format!("{file}, variable ${}", var["name"].as_str().unwrap_or("?"));
        match var["type"].as_str() {
            Some("datasource") if var["query"] != "prometheus" => {
                problems.push(format!("{place}: not a Prometheus datasource variable"));
            }
            Some("query") => {
                if !uses_variable(&var["datasource"]) {
                    problems.push(format!("{place}: datasource is not {DATASOURCE}"));
                }
                let query = var["query"]["query"]
                    .as_str()
                    .or(var["query"].as_str())
                    .unwrap_or("");
                // `label_values(selector, label)`: the selector is PromQL.
                let selector = query
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(')'))
                    .and_then(|q| q.rsplit_once(','))
                    .map(|(selector, _label)| selector.trim());
                match selector {
                    Some(s) => check(place, s, &mut problems),
                    None => problems.push(format!("{place}: `{query}` is not label_values(..)")),
                }
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn the_checker_catches_bad_queries() {
    let exported: BTreeSet<String> = ["calltrail_wal_fsync_duration_seconds_bucket", "up"]
        .map(String::from)
        .into();
    assert_eq!(
        metrics_of(
            "histogram_quantile(0.99, sum by (le) (rate(calltrail_wal_fsync_duration_seconds_bucket{instance=~\"$instance\"}[$__rate_interval])))"
        )
        .unwrap(),
        ["calltrail_wal_fsync_duration_seconds_bucket"]
    );
    assert_eq!(
        metrics_of("a / on(x) group_left b or {__name__=\"c\"} offset 1h").unwrap(),
        ["a", "b", "c"]
    );
    assert!(metrics_of("sum(rate(x[5m])").unwrap_err().contains("parse"));
    assert!(metrics_of("vector(1)").unwrap_err().contains("no metric"));
    assert!(metrics_of("{job=\"x\"}").is_err());
    let bad = serde_json::json!({
        "panels": [{"type": "row", "panels": [{
            "id": 7, "title": "Nested", "type": "timeseries",
            "datasource": {"type": "prometheus", "uid": "abc"},
            "targets": [{"refId": "A", "datasource": {"type": "prometheus", "uid": DATASOURCE},
                         "expr": "rate(calltrail_nope_total[5m])"}]
        }]}],
        "templating": {"list": []}
    });
    let problems = check_dashboard("bad.json", &bad, &exported);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("bad.json, panel \"Nested\" (id 7): datasource"));
    assert!(problems[1].contains("target \"A\": metric `calltrail_nope_total` is not exported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_panel_query_names_an_exported_metric() {
    // A destination that refuses connections: its lag, up and retry series exist all the same.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = format!(
        "[store]\nflush_interval_ms = 200\n\
         [[forward.destinations]]\nname = \"siem\"\nstart = \"earliest\"\n\
         otlp = {{ endpoint = \"http://{closed}/v1/traces\", timeout_ms = 500 }}\n"
    );
    let server = tokio::task::spawn_blocking(move || Server::start_with_config(&config))
        .await
        .unwrap();
    let mut workload = Workload::new(
        5,
        i64::try_from(support::now_ns()).unwrap() - 60_000_000_000,
        10_000_000,
    );
    for _ in 0..2 {
        let r = support::http_client()
            .post(server.traces_url())
            .header("content-type", "application/x-protobuf")
            .body(workload.next_request(200).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // Every family the dashboards use appears once something was ingested and flushed.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = support::http_client()
            .get(format!("http://{}/metrics", server.http_addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let names = exported(&text);
        let ready = [
            "calltrail_tool_calls_total",
            "calltrail_llm_tokens_total",
            "calltrail_wal_fsync_duration_seconds_bucket",
            "calltrail_forward_up",
        ]
        .iter()
        .all(|n| names.contains(*n));
        if ready && text.contains("calltrail_store_rows_written_total ") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics incomplete; last scrape:\n{text}\nserver stderr:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let exported = exported(&text);

    let dir = support::repo_root().join("dashboards/grafana");
    let files = dashboards(&dir);
    assert!(files.len() >= 2, "dashboards: {files:?}");
    let mut problems = Vec::new();
    for path in &files {
        let file = path.strip_prefix(&dir).unwrap().display().to_string();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        assert!(dashboard["uid"].is_string(), "{file}: no uid");
        problems.extend(check_dashboard(&file, &dashboard, &exported));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\n\nexported metrics:\n{}",
        problems.len(),
        problems.join("\n"),
        exported.into_iter().collect::<Vec<_>>().join("\n")
    );
}
