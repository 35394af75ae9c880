//! The syslog transport end to end, against a real rsyslog (Debian's `rsyslogd` 8.2302, with
//! `rsyslog-gnutls` for TLS) that each test starts with its own configuration on 127.0.0.1
//! ports: UDP, plain TCP, TLS (gtls driver, anonymous client) and mutual TLS (x509/certvalid).
//! rsyslog writes every message's `%rawmsg%` (JSON-escaped, one per line) to a file; each one
//! must be byte for byte the message the transport built, and must parse with PyPI
//! `syslog-rfc5424-parser` into the expected header, structured data and MSG.
//!
//! Needs `/usr/sbin/rsyslogd` and the test venv (`CALLTRAIL_TEST_PYTHON`, see `scripts/test`).

#![allow(clippy::unwrap_used)]

mod support;
mod syslog_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calltrail_collector::forward::event::{EventKind, EventMeta};
use calltrail_collector::forward::syslog::message::{BOM, TRUNCATION_MARKER};
use calltrail_collector::forward::syslog::{
    Framing, MessageBuilder, SyslogConfig, SyslogProtocol, SyslogRfc, SyslogTls, SyslogTransport,
};
use calltrail_collector::forward::transport::Message;
use syslog_support::{Pki, Received, Rsyslog, parse_rfc5424};

const SD_ID: &str = "calltrail@32473";

fn config(protocol: SyslogProtocol, address: String) -> SyslogConfig {
    SyslogConfig {
        address,
        protocol,
        framing: None,
        rfc: SyslogRfc::Rfc5424,
        facility: 13,
        app_name: "calltrail".into(),
        hostname: None,
        sd_id: SD_ID.into(),
        max_message_bytes: None,
        tls: None,
        connect_timeout_ms: 2000,
        write_timeout_ms: 5000,
    }
}

fn tls_config(pki: &Pki, address: String, client_cert: bool) -> SyslogConfig {
    let mut c = config(SyslogProtocol::Tls, address);
    c.tls = Some(SyslogTls {
        ca_file: pki.path("ca.pem"),
        client_cert: client_cert.then(|| pki.path("client.pem")),
        client_key: client_cert.then(|| pki.path("client-key.pem")),
        server_name: Some("localhost".into()),
    });
    c.validate("test").unwrap();
    c
}

/// Tricky structured-data values: quotes, backslashes, closing brackets, non-ASCII.
const TENANT: &str = r#"acme "bank" [eu]\prod"#;
const PRINCIPAL: &str = r#"DOMAIN\alice]"o'neil"\"#;

/// `n` events, ids `<tag>-<i>`, with `payload` (and the index appended).
fn events(tag: &str, n: usize, payload: &str) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            payload: format!("{payload} #{i}").into_bytes(),
            meta: EventMeta {
                kind: if i % 2 == 0 {
                    EventKind::ToolCall
                } else {
                    EventKind::Checkpoint
                },
                event_id: format!("{tag}-{i}"),
                chain_id: "chain-7f3a".into(),
                seq: 1000 + i as u64,
                hash: format!("{:064x}", i + 1),
                time_ns: 1_795_429_230_123_456_789 + i as i64 * 1_000,
                tenant: (i % 2 == 0).then(|| TENANT.to_owned()),
                principal: (i % 2 == 0).then(|| PRINCIPAL.to_owned()),
                severity: if i % 3 == 0 { 4 } else { 6 },
            },
        })
        .collect()
}

fn ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.meta.event_id.clone()).collect()
}

/// A CEF-like payload with a newline inside, and non-ASCII text (so MSG has a BOM).
const PAYLOAD: &str = "CEF:0|Calltrail|Calltrail|0.1|tool_call|crm.delete_contact|5|suser=alice msg=first line\nsecond line: créé € ✓";

/// Checks that each received message is exactly what the transport built and that the parser
/// reads back every field; `payloads` are the MSGs expected (after any cut or LF folding).
fn check_5424(config: &SyslogConfig, sent: &[Message], received: &[Received], payloads: &[String]) {
    let builder = MessageBuilder::new(config);
    for (m, r) in sent.iter().zip(received) {
        let want = builder.build(m).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&r.raw),
            String::from_utf8_lossy(&want),
            "received whole and unchanged"
        );
        // The structured data, escaped here independently of the builder (the parser below
        // accepts an unescaped `]` inside quotes, so it cannot be the only check).
        let meta = &m.meta;
        let mut sd = format!(
            "[{SD_ID} event_id=\"{}\" chain_id=\"{}\" seq=\"{}\" hash=\"{}\" kind=\"{}\"",
            sd_escape(&meta.event_id),
            sd_escape(&meta.chain_id),
            meta.seq,
            sd_escape(&meta.hash),
            meta.kind.as_str()
        );
        if let Some(t) = &meta.tenant {
            sd.push_str(&format!(" tenant=\"{}\"", sd_escape(t)));
        }
        if let Some(p) = &meta.principal {
            sd.push_str(&format!(" principal=\"{}\"", sd_escape(p)));
        }
        sd.push(']');
        let raw = String::from_utf8_lossy(&r.raw);
        assert!(
            raw.contains(&format!(" {} {sd}", meta.kind.as_str())),
            "MSGID then exactly {sd}\nin {raw}"
        );
    }
    let raws: Vec<&[u8]> = received.iter().map(|r| r.raw.as_slice()).collect();
    let parsed = parse_rfc5424(&raws);
    let pid = std::process::id().to_string();
    for ((m, p), payload) in sent.iter().zip(&parsed).zip(payloads) {
        let meta = &m.meta;
        assert_eq!(p["facility"], 13, "{p}");
        assert_eq!(p["severity"], u64::from(meta.severity));
        assert_eq!(p["version"], 1);
        assert_eq!(p["appname"], "calltrail");
        assert_eq!(p["procid"], pid.as_str());
        assert_eq!(p["msgid"], meta.kind.as_str());
        let ts = p["timestamp"].as_str().unwrap();
        assert!(
            ts.starts_with("2026-11-23T10:20:30.") && ts.ends_with('Z'),
            "{ts}"
        );
        let mut want: BTreeMap<&str, String> = BTreeMap::from([
            ("event_id", meta.event_id.clone()),
            ("chain_id", meta.chain_id.clone()),
            ("seq", meta.seq.to_string()),
            ("hash", meta.hash.clone()),
            ("kind", meta.kind.as_str().to_owned()),
        ]);
        if let Some(t) = &meta.tenant {
            want.insert("tenant", t.clone());
        }
        if let Some(pr) = &meta.principal {
            want.insert("principal", pr.clone());
        }
        let sd: BTreeMap<&str, String> = p["sd"][SD_ID]
            .as_object()
            .unwrap_or_else(|| panic!("no {SD_ID} element: {p}"))
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(sd, want, "structured data round-trips exactly");
        let msg = p["msg"].as_str().unwrap();
        let (bom, text) = match msg.strip_prefix('\u{FEFF}') {
            Some(rest) => (true, rest),
            None => (false, msg),
        };
        assert_eq!(text, payload);
        assert_eq!(
            bom,
            !payload.is_ascii(),
            "a BOM exactly when MSG is not ASCII"
        );
    }
}

/// RFC 5424 §6.3.3 PARAM-VALUE escaping: `\`, `"` and `]` preceded by a backslash.
fn sd_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

fn payloads(sent: &[Message]) -> Vec<String> {
    sent.iter()
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect()
}

#[tokio::test]
async fn udp_messages_arrive_whole_and_parse() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let c = config(SyslogProtocol::Udp, rsyslog.address(rsyslog.ports.udp));
    let sent = events("udp", 20, PAYLOAD);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&sent).await, Ok(vec![]));
    let got = rsyslog.wait_for("udp", &ids(&sent));
    check_5424(&c, &sent, &got, &payloads(&sent));
}

#[tokio::test]
async fn tcp_octet_counting_keeps_newlines_and_escapes() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let c = config(SyslogProtocol::Tcp, rsyslog.address(rsyslog.ports.tcp));
    assert_eq!(c.effective_framing(), Some(Framing::OctetCounting));
    let mut sent = events("tcp", 200, PAYLOAD);
    sent[1].payload = b"plain ASCII, no BOM\r\nwith CRLF\n\nand blank lines".to_vec();
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&sent[..100]).await, Ok(vec![]));
    assert_eq!(t.send(&sent[100..]).await, Ok(vec![]), "same connection");
    let got = rsyslog.wait_for("tcp", &ids(&sent));
    assert!(got[0].raw.contains(&b'\n') && got[1].raw.contains(&b'\n'));
    check_5424(&c, &sent, &got, &payloads(&sent));
}

#[tokio::test]
async fn tcp_lf_framing_arrives_whole() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let mut c = config(SyslogProtocol::Tcp, rsyslog.address(rsyslog.ports.tcp));
    c.framing = Some(Framing::Lf);
    let sent = events("lf", 50, PAYLOAD);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&sent).await, Ok(vec![]));
    let got = rsyslog.wait_for("tcp", &ids(&sent));
    let folded: Vec<String> = payloads(&sent)
        .iter()
        .map(|p| p.replace('\n', " "))
        .collect();
    check_5424(&c, &sent, &got, &folded);
}

#[tokio::test]
async fn tls_messages_arrive_whole_and_parse() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let c = tls_config(&pki, rsyslog.address(rsyslog.ports.tls), false);
    let sent = events("tls", 300, PAYLOAD);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&sent).await, Ok(vec![]));
    let got = rsyslog.wait_for("tls", &ids(&sent));
    check_5424(&c, &sent, &got, &payloads(&sent));
}

#[tokio::test]
async fn mtls_presents_the_client_certificate() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let address = rsyslog.address(rsyslog.ports.mtls);
    // Without a client certificate rsyslog closes the connection after the handshake: connect
    // notices and says so instead of losing the first batch.
    let e = SyslogTransport::connect(&tls_config(&pki, address.clone(), false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("closed the connection right after the handshake"),
        "{e}\nrsyslogd:\n{}",
        rsyslog.log()
    );
    let c = tls_config(&pki, address, true);
    let sent = events("mtls", 10, PAYLOAD);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&sent).await, Ok(vec![]));
    let got = rsyslog.wait_for("mtls", &ids(&sent));
    check_5424(&c, &sent, &got, &payloads(&sent));
}

#[tokio::test]
async fn an_outage_is_retried_and_nothing_is_missing_after_restart() {
    let pki = Pki::new();
    let mut rsyslog = Rsyslog::start(&pki);
    let configs = [
        (
            "tcp",
            config(SyslogProtocol::Tcp, rsyslog.address(rsyslog.ports.tcp)),
        ),
        (
            "tls",
            tls_config(&pki, rsyslog.address(rsyslog.ports.tls), false),
        ),
    ];
    let mut transports = Vec::new();
    for (input, c) in &configs {
        let mut t = SyslogTransport::connect(c).await.unwrap();
        let before = events(&format!("{input}-before"), 20, PAYLOAD);
        assert_eq!(t.send(&before).await, Ok(vec![]));
        rsyslog.wait_for(input, &ids(&before));
        transports.push(t);
    }

    rsyslog.stop();
    let during: Vec<Vec<Message>> = configs
        .iter()
        .map(|(input, _)| events(&format!("{input}-during"), 30, PAYLOAD))
        .collect();
    let mut delivered = Vec::new();
    for ((t, (input, c)), batch) in transports.iter_mut().zip(&configs).zip(&during) {
        let started = Instant::now();
        let r = t.send(batch).await.unwrap_err();
        let limit = Duration::from_millis(c.connect_timeout_ms + c.write_timeout_ms);
        assert!(
            started.elapsed() < limit,
            "{input}: {:?}",
            started.elapsed()
        );
        assert!(
            r.reason.starts_with(&format!("syslog {}: ", c.address))
                && ["Connection refused", "closed the connection", "broken"]
                    .iter()
                    .any(|s| r.reason.contains(s)),
            "{input}: {}",
            r.reason
        );
        assert!(r.delivered < batch.len(), "{input}: nothing confirmed");
        // While it stays down: refused at once, nothing confirmed.
        let again = t.send(&batch[r.delivered..]).await.unwrap_err();
        assert_eq!(again.delivered, 0);
        assert!(
            again.reason.contains("Connection refused"),
            "{}",
            again.reason
        );
        delivered.push(r.delivered);
    }

    rsyslog
        .spawn()
        .expect("rsyslogd restarts on the same ports");
    for (((t, (input, _)), batch), done) in transports
        .iter_mut()
        .zip(&configs)
        .zip(&during)
        .zip(&delivered)
    {
        assert_eq!(t.send(&batch[*done..]).await, Ok(vec![]), "{input}");
        let mut all = ids(&events(&format!("{input}-before"), 20, PAYLOAD));
        all.extend(ids(batch));
        rsyslog.wait_for(input, &all);
    }
}

#[tokio::test]
async fn an_oversized_message_is_cut_in_msg_only_and_still_parses() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let big = format!("{}{}", "ü".repeat(10_000), "a".repeat(10_000));
    for (input, protocol, port, max) in [
        ("tcp", SyslogProtocol::Tcp, rsyslog.ports.tcp, 8192),
        ("udp", SyslogProtocol::Udp, rsyslog.ports.udp, 2048),
    ] {
        let c = config(protocol, rsyslog.address(port));
        assert_eq!(c.effective_max_message_bytes(), max);
        let sent = events(&format!("big-{input}"), 2, &big);
        let mut t = SyslogTransport::connect(&c).await.unwrap();
        assert_eq!(t.send(&sent).await, Ok(vec![]));
        let got = rsyslog.wait_for(input, &ids(&sent));
        let mut cut = Vec::new();
        for (m, r) in sent.iter().zip(&got) {
            assert!(
                r.raw.len() <= max && r.raw.len() > max - 4,
                "{}",
                r.raw.len()
            );
            assert!(r.raw.ends_with(TRUNCATION_MARKER.as_bytes()));
            let text = String::from_utf8(r.raw.clone()).expect("cut at a character boundary");
            let (_, msg) = text.split_once(BOM_STR).expect("MSG starts with a BOM");
            let kept = msg.strip_suffix(TRUNCATION_MARKER).unwrap();
            let payload = String::from_utf8(m.payload.clone()).unwrap();
            assert!(payload.starts_with(kept));
            cut.push(msg.to_owned());
        }
        // Header and structured data intact: the parser reads every field back.
        check_5424(&c, &sent, &got, &cut);
    }
}

/// The BOM as a `str`, to find where MSG starts.
const BOM_STR: &str = "\u{FEFF}";

#[tokio::test]
async fn rfc3164_over_tcp_arrives_whole() {
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    let mut c = config(SyslogProtocol::Tcp, rsyslog.address(rsyslog.ports.tcp));
    c.rfc = SyslogRfc::Rfc3164;
    assert_eq!(c.effective_framing(), Some(Framing::Lf));
    let sent = events("bsd", 10, PAYLOAD);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&sent).await, Ok(vec![]));
    let got = rsyslog.wait_for("tcp", &ids(&sent));
    let builder = MessageBuilder::new(&c);
    let pid = std::process::id();
    for (m, r) in sent.iter().zip(&got) {
        assert_eq!(r.raw, builder.build(m).unwrap());
        let text = String::from_utf8(r.raw.clone()).unwrap();
        let pri = 13 * 8 + u32::from(m.meta.severity);
        assert!(
            text.starts_with(&format!("<{pri}>Nov 23 10:20:30 ")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                " calltrail[{pid}]: event_id=\"{}\" ",
                m.meta.event_id
            )),
            "{text}"
        );
        assert!(
            !text.as_bytes().windows(3).any(|w| w == BOM),
            "no BOM: {text}"
        );
        assert!(
            text.ends_with(
                &String::from_utf8(m.payload.clone())
                    .unwrap()
                    .replace('\n', " ")
            )
        );
    }
}
