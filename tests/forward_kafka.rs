//! SIEM forwarding to a real Kafka-protocol broker (Tansu), read back by a consumer not written
//! by us (PyPI confluent-kafka): exactly the filtered set arrives, every seq of the chain is
//! present, formats parse; a broker outage and a crash of Calltrail while forwarding lose
//! nothing, and lag returns to 0.

#![allow(clippy::unwrap_used)]

mod kafka_support;
mod support;
mod tamper_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_support::{Consumed, Tansu, consume};
use support::{Server, duckdb_rows};
use tamper_support::demo;

fn config(bootstrap: &str) -> String {
    format!(
        r#"
[store]
flush_max_rows = 50
flush_interval_ms = 100

[forward]
poll_ms = 100
max_backoff_ms = 500

[[forward.destinations]]
name = "writes"
format = "json"
start = "earliest"
filter = {{ kinds = ["tool_call"], operation_class = ["write", "delete"] }}
kafka = {{ brokers = "{bootstrap}", topic = "calltrail-writes", properties = {{ "message.timeout.ms" = "5000" }} }}

[[forward.destinations]]
name = "everything"
format = "ocsf"
start = "earliest"
kafka = {{ brokers = "{bootstrap}", topic = "calltrail-all", key = "tenant", properties = {{ "message.timeout.ms" = "5000" }} }}
"#
    )
}

/// Event ids of the stored tool calls matching `filter` (DuckDB over the Parquet files).
fn stored_ids(server: &Server, filter: &str) -> BTreeSet<String> {
    duckdb_rows(
        server.data_dir(),
        "tool_calls",
        &format!("SELECT event_id FROM t WHERE {filter}"),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// Records in the store (both tables) and the chain's size.
fn stored_records(server: &Server) -> u64 {
    ["tool_calls", "llm_calls"]
        .iter()
        .map(|t| {
            duckdb_rows(server.data_dir(), t, "SELECT count(*) FROM t")
                .first()
                .map_or(0, |r| r[0].parse::<u64>().unwrap())
        })
        .sum()
}

/// Waits until the store stops growing (every accepted span sealed).
fn settle(server: &Server) -> u64 {
    let mut last = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let n = stored_records(server);
        if n == last && n > 0 {
            return n;
        }
        assert!(Instant::now() < deadline, "the store did not settle");
        last = n;
    }
}

async fn metric(server: &Server, name: &str, destination: &str) -> Option<f64> {
    let body = reqwest::Client::new()
        .get(format!("http://{}/metrics", server.http_addr()))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let wanted = format!("destination=\"{destination}\"");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(&wanted))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn by_id(messages: &[Consumed]) -> BTreeMap<String, Vec<&Consumed>> {
    let mut m: BTreeMap<String, Vec<&Consumed>> = BTreeMap::new();
    for c in messages {
        m.entry(c.header("calltrail.event_id").unwrap().to_owned())
            .or_default()
            .push(c);
    }
    m
}

#[test]
fn kafka_receives_exactly_the_filtered_set_with_every_seq() {
    let tansu = Tansu::start();
    tansu.create_topic("calltrail-writes", 3);
    tansu.create_topic("calltrail-all", 3);
    let mut server = Server::start_with_config(&config(&tansu.bootstrap()));
    demo(&server, 600, 21);
    let records = settle(&server);
    let writes = stored_ids(&server, "operation_class IN ('write', 'delete')");
    assert!(!writes.is_empty());

    let got = consume(
        &tansu.bootstrap(),
        "calltrail-writes",
        writes.len(),
        Duration::from_secs(60),
    );
    let ids = by_id(&got);
    assert_eq!(
        ids.keys().cloned().collect::<BTreeSet<_>>(),
        writes,
        "the writes topic holds exactly the stored writes and deletes"
    );
    for c in &got {
        let v = c.json();
        assert_eq!(v["kind"], "tool_call");
        assert!(
            matches!(v["operation_class"].as_str(), Some("write" | "delete")),
            "{v}"
        );
        assert_eq!(v["event_id"].as_str(), c.header("calltrail.event_id"));
        assert_eq!(
            v["seq"].as_i64().map(|s| s.to_string()).as_deref(),
            c.header("calltrail.seq")
        );
        assert_eq!(
            c.key.as_deref(),
            v["principal"].as_str(),
            "keyed by principal"
        );
        assert!(
            c.header("calltrail.chain_id")
                .is_some_and(|h| h.len() == 32)
        );
        assert!(c.header("calltrail.hash").is_some_and(|h| h.len() == 64));
    }

    let all = consume(
        &tansu.bootstrap(),
        "calltrail-all",
        records as usize,
        Duration::from_secs(60),
    );
    let seqs: BTreeSet<u64> = all
        .iter()
        .filter(|c| c.header("calltrail.kind") != Some("checkpoint"))
        .map(|c| c.header("calltrail.seq").unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs.len() as u64, records, "one event per stored record");
    assert_eq!(
        seqs,
        (0..records).collect::<BTreeSet<u64>>(),
        "every seq of the chain, no gap"
    );
    assert!(
        all.iter()
            .any(|c| c.header("calltrail.kind") == Some("checkpoint")),
        "signed checkpoints are forwarded as their own events"
    );
    for c in all
        .iter()
        .filter(|c| c.header("calltrail.kind") == Some("tool_call"))
    {
        let v = c.json();
        assert_eq!(v["class_uid"], 6003, "OCSF API Activity: {v}");
    }
    server.stop();
}

#[test]
fn a_broker_outage_and_a_crash_while_forwarding_lose_nothing() {
    let mut tansu = Tansu::start();
    tansu.create_topic("calltrail-writes", 1);
    tansu.create_topic("calltrail-all", 2);
    let mut server = Server::start_with_config(&config(&tansu.bootstrap()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    demo(&server, 300, 31);
    settle(&server);

    // The broker goes away; ingest goes on; the destination falls behind.
    tansu.stop();
    demo(&server, 300, 32);
    settle(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lag = rt.block_on(metric(
            &server,
            "calltrail_forward_lag_records",
            "everything",
        ));
        let up = rt.block_on(metric(&server, "calltrail_forward_up", "everything"));
        if lag.is_some_and(|l| l > 0.0) && up == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no lag or failure reported while the broker is down: lag {lag:?} up {up:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Calltrail crashes while it cannot deliver, and comes back before the broker does.
    server.kill();
    server.restart();
    demo(&server, 150, 33);
    tansu.restart();
    let records = settle(&server);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lag = rt.block_on(metric(
            &server,
            "calltrail_forward_lag_records",
            "everything",
        ));
        if lag == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag did not return to 0: {lag:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let all = consume(
        &tansu.bootstrap(),
        "calltrail-all",
        records as usize,
        Duration::from_secs(60),
    );
    let ids = by_id(&all);
    let stored = stored_ids(&server, "true");
    let got: BTreeSet<String> = ids
        .iter()
        .filter(|(_, v)| v[0].header("calltrail.kind") == Some("tool_call"))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(got, stored, "every stored tool call was delivered");
    for (id, copies) in &ids {
        assert!(
            copies.iter().all(|c| c.value == copies[0].value),
            "duplicates of {id} must be identical"
        );
    }
    let seqs: BTreeSet<u64> = all
        .iter()
        .filter(|c| c.header("calltrail.kind") != Some("checkpoint"))
        .map(|c| c.header("calltrail.seq").unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..records).collect::<BTreeSet<u64>>(),
        "nothing skipped"
    );
    server.stop();

    // `calltrail status` reads the same positions from the files.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calltrail.toml");
    std::fs::write(&file, config(&tansu.bootstrap())).unwrap();
    let out = tamper_support::calltrail_ok(&[
        tamper_support::os("status"),
        tamper_support::os("--json"),
        tamper_support::os("-c"),
        file.as_os_str(),
        tamper_support::os("--data-dir"),
        server.data_dir().as_os_str(),
    ]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let everything = status["forwarding"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "everything")
        .unwrap();
    assert_eq!(everything["lag_records"], 0, "{everything}");
    assert_eq!(everything["dead_letters"], 0, "{everything}");
}

#[test]
fn forward_test_reports_success_or_the_exact_error() {
    let tansu = Tansu::start();
    tansu.create_topic("calltrail-writes", 1);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config(&tansu.bootstrap())).unwrap();
    let out = tamper_support::calltrail_ok(&[
        tamper_support::os("forward"),
        tamper_support::os("test"),
        tamper_support::os("writes"),
        tamper_support::os("-c"),
        good.as_os_str(),
    ]);
    assert!(
        out.contains("delivered test event calltrail-forward-test-"),
        "{out}"
    );
    let got = consume(
        &tansu.bootstrap(),
        "calltrail-writes",
        1,
        Duration::from_secs(30),
    );
    assert!(
        got.iter().any(|c| c
            .header("calltrail.event_id")
            .is_some_and(|id| id.starts_with("calltrail-forward-test-"))),
        "the test event reached the topic"
    );

    // A topic that does not exist, and a broker that is not there, are named as such.
    let missing = dir.path().join("missing.toml");
    std::fs::write(
        &missing,
        config(&tansu.bootstrap()).replace("calltrail-writes", "no-such-topic"),
    )
    .unwrap();
    let (ok, _, err) = tamper_support::calltrail(&[
        tamper_support::os("forward"),
        tamper_support::os("test"),
        tamper_support::os("writes"),
        tamper_support::os("-c"),
        missing.as_os_str(),
    ]);
    assert!(!ok);
    assert!(err.contains("no-such-topic"), "{err}");
    let dead = dir.path().join("dead.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(&dead, config(&format!("127.0.0.1:{port}"))).unwrap();
    let (ok, _, err) = tamper_support::calltrail(&[
        tamper_support::os("forward"),
        tamper_support::os("test"),
        tamper_support::os("writes"),
        tamper_support::os("-c"),
        dead.as_os_str(),
    ]);
    assert!(!ok);
    assert!(err.contains("writes: kafka"), "{err}");
}
