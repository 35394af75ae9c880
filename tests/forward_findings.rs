//! Anomaly findings forwarded through a whole server, end to end: findings files written into
//! the store's `anomalies` table as a detector writes them (Parquet from
//! `calltrail_schemas::finding::findings_batch`, a temporary name, then a rename) reach
//!
//! - a real Kafka-protocol broker (Tansu) as OCSF Detection Findings (`class_uid` 2004), read
//!   back by a consumer not written by us (PyPI confluent-kafka) and validated against the OCSF
//!   1.3.0 schema (`tests/forward_checks/ocsf_check.py`); a file added later to an older date
//!   partition, a broker outage and a crash of Calltrail lose none; a destination whose filter
//!   leaves findings out gets none;
//! - a real rsyslog over TCP as CEF, parsed by PyPI `syslog-rfc5424-parser` and `pycef`, the
//!   explanation (full of characters CEF must escape) intact.
//!
//! Needs the Tansu broker (`CALLTRAIL_TANSU`), `/usr/sbin/rsyslogd` and the test venv
//! (`CALLTRAIL_TEST_PYTHON`), as `scripts/test` sets them up.

#![allow(clippy::unwrap_used)]

mod kafka_support;
mod support;
mod syslog_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use calltrail_schemas::finding::{Finding, Severity, finding_id, findings_batch};
use kafka_support::{Consumed, Tansu, consume};
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};
use support::Server;
use syslog_support::{Pki, Rsyslog, parse_rfc5424};

/// 2026-11-23T10:00:00Z in ns.
const T0: i64 = 1_795_428_000_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

/// A finding of `detector` about the user `who`, over the hour before `end_ns`.
fn finding(detector: &str, who: &str, severity: Severity, end_ns: i64) -> Finding {
    let start = end_ns - HOUR;
    Finding {
        finding_id: finding_id(detector, "user", who, start),
        detector: detector.into(),
        rule: "volume_spike".into(),
        severity,
        entity_kind: "user".into(),
        entity: who.into(),
        principal: Some(who.into()),
        team: Some("payments".into()),
        tenant: Some("acme-bank-eu".into()),
        server_name: Some("crm".into()),
        tool_name: Some("crm.delete_contact".into()),
        window_start_ns: start,
        window_end_ns: end_ns,
        observed: 412.0,
        expected: Some(12.5),
        score: 11.5,
        explanation: format!("{who} made 412 calls to crm in the hour, 33 times the baseline"),
        detected_at_ns: end_ns + 60_000_000_000,
    }
}

/// Writes `rows` into partition `date` as one detector run does: Parquet under a hidden
/// temporary name, then renamed to `<detected_at_ns, 20 digits>-<run>.parquet`.
fn write_findings(data_dir: &Path, date: &str, run: &str, rows: &[Finding]) {
    let dir = data_dir.join("anomalies").join(format!("date={date}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{:020}-{run}.parquet", rows[0].detected_at_ns);
    let tmp = dir.join(format!(".{name}.tmp"));
    let batch = findings_batch(rows).unwrap();
    let file = std::fs::File::create(&tmp).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn kafka_config(bootstrap: &str) -> String {
    format!(
        r#"
[forward]
poll_ms = 100
max_backoff_ms = 500

[[forward.destinations]]
name = "soc"
format = "ocsf"
start = "earliest"
kafka = {{ brokers = "{bootstrap}", topic = "calltrail-soc", key = "event_id", properties = {{ "message.timeout.ms" = "5000" }} }}

[[forward.destinations]]
name = "calls-only"
format = "json"
start = "earliest"
filter = {{ kinds = ["tool_call"] }}
kafka = {{ brokers = "{bootstrap}", topic = "calltrail-calls", properties = {{ "message.timeout.ms" = "5000" }} }}
"#
    )
}

/// The finding messages of `topic`, read until every id of `ids` is there (60 s at most).
fn wait_for_findings(tansu: &Tansu, topic: &str, ids: &BTreeSet<String>) -> Vec<Consumed> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<Consumed> = consume(
            &tansu.bootstrap(),
            topic,
            ids.len(),
            Duration::from_secs(20),
        )
        .into_iter()
        .filter(|c| c.header("calltrail.kind") == Some("finding"))
        .collect();
        let seen: BTreeSet<String> = got
            .iter()
            .filter_map(|c| c.header("calltrail.event_id").map(str::to_owned))
            .collect();
        if ids.is_subset(&seen) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "findings missing from {topic}: {:?}\nbroker:\n{}",
            ids.difference(&seen).collect::<Vec<_>>(),
            tansu.log()
        );
    }
}

/// Checks one OCSF message against the finding it carries.
fn check_ocsf(c: &Consumed, f: &Finding) {
    let v = c.json();
    assert_eq!(v["class_uid"], 2004, "OCSF Detection Finding: {v}");
    assert_eq!(v["category_uid"], 2);
    assert_eq!(v["type_uid"], 200401);
    assert_eq!(v["finding_info"]["uid"], f.finding_id.as_str());
    assert_eq!(v["finding_info"]["types"], json!([f.detector]));
    assert_eq!(v["message"], f.explanation.as_str());
    assert_eq!(v["time"], f.detected_at_ns / 1_000_000);
    assert_eq!(v["actor"]["user"]["name"], f.principal.as_deref().unwrap());
    let severity_id = match f.severity {
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    };
    assert_eq!(v["severity_id"], severity_id);
    assert_eq!(c.header("calltrail.event_id"), Some(f.finding_id.as_str()));
    assert_eq!(
        c.key.as_deref(),
        Some(f.finding_id.as_str()),
        "keyed by event id"
    );
}

/// Runs a checker script from `tests/forward_checks` with the venv's Python.
fn run_check(script: &str, args: &[&Path]) -> String {
    let mut cmd = Command::new(support::python());
    cmd.arg(
        support::repo_root()
            .join("tests/forward_checks")
            .join(script),
    )
    .args(args);
    let out = support::run(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

#[test]
fn findings_reach_kafka_as_ocsf_detection_findings_through_an_outage_and_a_crash() {
    let mut tansu = Tansu::start();
    tansu.create_topic("calltrail-soc", 2);
    tansu.create_topic("calltrail-calls", 1);
    let data = tempfile::tempdir().unwrap();
    let mut all: Vec<Finding> = vec![
        finding("D1", "alice@bank.example", Severity::High, T0),
        finding("D5", "bob@bank.example", Severity::Critical, T0),
    ];
    // Findings already in the store when Calltrail starts.
    write_findings(data.path(), "2026-11-23", "run1", &all);
    let mut server = Server::start_in(data.path(), &kafka_config(&tansu.bootstrap()));
    let ids = |fs: &[Finding]| {
        fs.iter()
            .map(|f| f.finding_id.clone())
            .collect::<BTreeSet<_>>()
    };
    wait_for_findings(&tansu, "calltrail-soc", &ids(&all));

    // A later run adds a file to an older partition (a late window) while forwarding runs.
    let late = finding("D2", "carol@bank.example", Severity::Low, T0 - 24 * HOUR);
    write_findings(
        data.path(),
        "2026-11-22",
        "run2",
        std::slice::from_ref(&late),
    );
    all.push(late);
    wait_for_findings(&tansu, "calltrail-soc", &ids(&all));

    // The broker goes away, a run writes a file, Calltrail crashes and comes back before the
    // broker does.
    tansu.stop();
    let during = finding("D3", "dave@bank.example", Severity::Medium, T0 + HOUR);
    write_findings(
        data.path(),
        "2026-11-23",
        "run3",
        std::slice::from_ref(&during),
    );
    all.push(during);
    std::thread::sleep(Duration::from_secs(2));
    server.kill();
    server.restart();
    tansu.restart();
    let got = wait_for_findings(&tansu, "calltrail-soc", &ids(&all));

    let by_id: BTreeMap<&str, &Finding> = all.iter().map(|f| (f.finding_id.as_str(), f)).collect();
    let mut copies: BTreeMap<&str, Vec<&Consumed>> = BTreeMap::new();
    for c in &got {
        let id = c.header("calltrail.event_id").unwrap();
        check_ocsf(
            c,
            by_id
                .get(id)
                .unwrap_or_else(|| panic!("unknown finding {id}")),
        );
        copies.entry(id).or_default().push(c);
    }
    for (id, cs) in &copies {
        assert!(
            cs.iter().all(|c| c.value == cs[0].value),
            "redeliveries of {id} must be identical"
        );
    }

    // Every document is valid OCSF 1.3.0, by the schema PyPI pydantic-ocsf ships.
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("findings.jsonl");
    let text: String = got.iter().map(|c| format!("{}\n", c.value)).collect();
    std::fs::write(&events, text).unwrap();
    let out = run_check("ocsf_check.py", &[&events]);
    assert!(
        out.contains(&format!("{} events valid", got.len())),
        "{out}"
    );

    // The destination filtered to tool calls had none of them.
    let calls = consume(
        &tansu.bootstrap(),
        "calltrail-calls",
        0,
        Duration::from_secs(5),
    );
    assert!(
        calls
            .iter()
            .all(|c| c.header("calltrail.kind") != Some("finding")),
        "a kinds filter without finding leaves findings out"
    );

    // The findings cursor names the newest file delivered in each partition.
    let cursor: Value = serde_json::from_slice(
        &std::fs::read(data.path().join("forward/soc/findings-cursor.json")).unwrap(),
    )
    .unwrap();
    let delivered = cursor["delivered"].as_object().unwrap();
    assert_eq!(
        delivered.keys().map(String::as_str).collect::<Vec<_>>(),
        ["2026-11-22", "2026-11-23"]
    );
    assert!(
        delivered["2026-11-23"]
            .as_str()
            .unwrap()
            .ends_with("-run3.parquet"),
        "{cursor}"
    );
    server.stop();
}

#[test]
fn findings_reach_rsyslog_as_cef_with_the_explanation_intact() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let data = tempfile::tempdir().unwrap();
    let mut f = finding("D1", "alice@bank.example", Severity::Critical, T0);
    f.explanation =
        r"alice ran drop=all | on crm\prod 412 times; x cs1=forged suser=mallory, ünïcödé".into();
    f.entity = r"alice\=eu|prod".into();
    write_findings(data.path(), "2026-11-23", "run1", std::slice::from_ref(&f));
    let config = format!(
        r#"
[forward]
poll_ms = 100
max_backoff_ms = 500

[[forward.destinations]]
name = "arcsight"
format = "cef"
start = "earliest"
filter = {{ kinds = ["finding"] }}
syslog = {{ address = "{}", protocol = "tcp" }}
"#,
        rsyslog.address(rsyslog.ports.tcp)
    );
    let mut server = Server::start_in(data.path(), &config);
    let got = rsyslog.wait_for("tcp", std::slice::from_ref(&f.finding_id));
    let parsed = parse_rfc5424(&got.iter().map(|r| r.raw.as_slice()).collect::<Vec<_>>());
    let m = &parsed[0];
    assert_eq!(m["msgid"], "finding");
    assert_eq!(m["severity"], 2, "critical: syslog severity 2");
    let sd = m["sd"].as_object().unwrap().values().next().unwrap();
    assert_eq!(sd["kind"], "finding");
    assert_eq!(sd["event_id"], f.finding_id.as_str());
    assert_eq!(sd["principal"], "alice@bank.example");
    let msg = m["msg"].as_str().unwrap().trim_start_matches('\u{feff}');
    assert!(
        msg.starts_with("CEF:0|Calltrail|Calltrail|")
            && msg.contains("|finding.D1.volume_spike|Finding D1 volume spike|9|"),
        "{msg}"
    );

    // pycef reads every value back exactly.
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.cef");
    let expected = dir.path().join("expected.json");
    std::fs::write(&events, format!("{msg}\n")).unwrap();
    let want = json!([{
        "DeviceEventClassID": "finding.D1.volume_spike",
        "externalId": f.finding_id,
        "msg": f.explanation,
        "suser": "alice@bank.example",
        "detector": "D1",
        "rule": "volume_spike",
        "entity": f.entity,
        "entityKind": "user",
        "target": "crm.delete_contact",
        "mcpServer": "crm",
    }]);
    std::fs::write(&expected, serde_json::to_vec(&want).unwrap()).unwrap();
    let out = run_check("cef_check.py", &[&events, &expected]);
    assert!(out.contains("1 lines parsed"), "{out}");
    server.stop();
}
