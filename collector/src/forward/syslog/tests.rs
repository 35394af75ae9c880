//! The transport against local servers on 127.0.0.1: framing on the wire, reconnects, errors
//! that name the step, timeouts, TLS with and without a client certificate (against a
//! tokio-rustls server; the end-to-end tests against rsyslog are in `tests/forward_syslog.rs`).

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

use super::*;
use crate::forward::event::{EventKind, EventMeta};
use crate::test_pki::Pki;
use crate::tls::{ClientAuth, TlsConfig};

fn config(protocol: SyslogProtocol, address: String) -> SyslogConfig {
    SyslogConfig {
        address,
        protocol,
        framing: None,
        rfc: SyslogRfc::Rfc5424,
        facility: 13,
        app_name: "calltrail".into(),
        hostname: Some("test-host".into()),
        sd_id: "calltrail@32473".into(),
        max_message_bytes: None,
        tls: None,
        connect_timeout_ms: 2000,
        write_timeout_ms: 2000,
    }
}

fn batch(n: usize, payload: &str) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            payload: format!("{payload} #{i}").into_bytes(),
            meta: EventMeta {
                kind: EventKind::ToolCall,
                event_id: format!("ev-{i}"),
                chain_id: "c".into(),
                seq: i as u64,
                hash: "00".repeat(32),
                time_ns: 1_795_429_230_000_000_000,
                tenant: None,
                principal: Some("alice".into()),
                severity: 6,
            },
        })
        .collect()
}

fn expected(c: &SyslogConfig, batch: &[Message]) -> Vec<Vec<u8>> {
    let b = MessageBuilder::new(c);
    batch.iter().map(|m| b.build(m).unwrap()).collect()
}

/// Reads from `stream` until `n` octet-counted frames have arrived (or 10 s pass).
async fn read_frames<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut data = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        if let Some(frames) = framing::split_octet_counted(&data)
            && frames.len() >= n
        {
            return frames.into_iter().map(<[u8]>::to_vec).collect();
        }
        assert!(Instant::now() < deadline, "{n} frames did not arrive");
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("read timed out")
            .unwrap();
        assert!(read > 0, "end of stream before {n} frames");
        data.extend_from_slice(&buf[..read]);
    }
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    (l, a)
}

#[tokio::test]
async fn octet_counted_batch_arrives_whole_and_in_order() {
    let (l, address) = listener().await;
    let c = config(SyslogProtocol::Tcp, address);
    let msgs = batch(500, "multi\nline\r\npayload é");
    let want = expected(&c, &msgs);
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_frames(&mut s, 500).await
    });
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&msgs).await, Ok(vec![]));
    let got = server.await.unwrap();
    assert_eq!(got, want);
    assert!(got[0].windows(2).any(|w| w == b"\r\n"), "newlines survive");
}

#[tokio::test]
async fn lf_framing_ends_each_message_with_one_lf() {
    let (l, address) = listener().await;
    let mut c = config(SyslogProtocol::Tcp, address);
    c.framing = Some(Framing::Lf);
    let msgs = batch(3, "a\nb");
    let want = expected(&c, &msgs);
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        all
    });
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&msgs).await, Ok(vec![]));
    drop(t);
    let all = server.await.unwrap();
    let lines: Vec<&[u8]> = all.split(|b| *b == b'\n').collect();
    assert_eq!(
        lines.len(),
        4,
        "three messages and nothing after the last LF"
    );
    for (line, want) in lines.iter().zip(&want) {
        assert_eq!(line, want);
        assert!(line.ends_with(b" a b #0") || line.ends_with(b"#1") || line.ends_with(b"#2"));
    }
}

#[tokio::test]
async fn udp_sends_one_datagram_per_message() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = config(
        SyslogProtocol::Udp,
        server.local_addr().unwrap().to_string(),
    );
    let msgs = batch(3, "line\nbreak");
    let want = expected(&c, &msgs);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&msgs).await, Ok(vec![]));
    let mut buf = vec![0u8; 65536];
    for w in want {
        let n = tokio::time::timeout(Duration::from_secs(5), server.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &w[..]);
    }
}

#[tokio::test]
async fn udp_to_a_closed_port_retries_the_whole_batch() {
    let gone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = gone.local_addr().unwrap().to_string();
    drop(gone);
    let c = config(SyslogProtocol::Udp, address);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    let r = t.send(&batch(3, "x")).await.unwrap_err();
    assert_eq!(r.delivered, 0);
    assert!(r.reason.contains("refused"), "{}", r.reason);
}

#[tokio::test]
async fn a_closed_connection_is_noticed_before_the_next_batch() {
    let (l, address) = listener().await;
    let c = config(SyslogProtocol::Tcp, address);
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let first = read_frames(&mut s, 2).await;
        drop(s);
        let (mut s, _) = l.accept().await.unwrap();
        let second = read_frames(&mut s, 2).await;
        (first, second, s)
    });
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    let msgs = batch(2, "x");
    assert_eq!(t.send(&msgs).await, Ok(vec![]));
    // Let the server read and close.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.send(&msgs).await, Ok(vec![]), "reconnected, nothing lost");
    let (first, second, _open) = server.await.unwrap();
    assert_eq!(first, expected(&c, &msgs));
    assert_eq!(second, first);
}

#[tokio::test]
async fn events_too_large_for_their_header_are_rejected_and_the_rest_sent() {
    let (l, address) = listener().await;
    let mut c = config(SyslogProtocol::Tcp, address);
    c.max_message_bytes = Some(480);
    let mut msgs = batch(3, "x");
    msgs[1].meta.principal = Some("p".repeat(500));
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_frames(&mut s, 2).await
    });
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    let rejected = t.send(&msgs).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 1);
    assert!(
        rejected[0].reason.contains("max_message_bytes"),
        "{}",
        rejected[0].reason
    );
    let got = server.await.unwrap();
    assert!(got[0].ends_with(b"x #0") && got[1].ends_with(b"x #2"));
}

#[tokio::test]
async fn connect_errors_name_the_step() {
    let (l, address) = listener().await;
    drop(l);
    let e = SyslogTransport::connect(&config(SyslogProtocol::Tcp, address.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("TCP connect to {address} failed: ")) && e.contains("refused"),
        "{e}"
    );
    let e = SyslogTransport::connect(&config(
        SyslogProtocol::Tcp,
        "no-such-host.invalid:514".into(),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("DNS: "), "{e}");
    // A send while the receiver is down: a retry that says why, not a hang.
    let mut t = SyslogTransport::new(&config(SyslogProtocol::Tcp, address.clone())).unwrap();
    let r = t.send(&batch(1, "x")).await.unwrap_err();
    assert_eq!(r.delivered, 0);
    assert!(
        r.reason
            .starts_with(&format!("syslog {address}: TCP connect to")),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn a_silent_server_times_the_handshake_out() {
    let (l, address) = listener().await;
    let held = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let pki = Pki::new();
    let mut c = pki.config(address);
    c.connect_timeout_ms = 300;
    let started = Instant::now();
    let e = SyslogTransport::connect(&c).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        e.starts_with("TLS handshake with ") && e.contains("timed out after 300 ms"),
        "{e}"
    );
    held.abort();
}

#[tokio::test]
async fn a_receiver_that_stops_reading_times_the_write_out() {
    let (l, address) = listener().await;
    let held = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(s);
    });
    let mut c = config(SyslogProtocol::Tcp, address);
    c.write_timeout_ms = 300;
    c.max_message_bytes = Some(65536);
    let msgs = batch(1000, &"y".repeat(60_000));
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    let started = Instant::now();
    let r = t.send(&msgs).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(r.delivered < msgs.len());
    assert!(r.reason.contains("timed out after 300 ms"), "{}", r.reason);
    assert!(!t.is_connected(), "the connection is dropped");
    held.abort();
}

/// Syslog's uses of the shared test PKI.
trait SyslogPki {
    fn config(&self, address: String) -> SyslogConfig;
    fn acceptor(&self, mtls: bool) -> tokio_rustls::TlsAcceptor;
}

impl SyslogPki for Pki {
    /// A TLS destination config trusting this CA.
    fn config(&self, address: String) -> SyslogConfig {
        let mut c = config(SyslogProtocol::Tls, address);
        c.tls = Some(SyslogTls {
            ca_file: self.path("ca.pem"),
            client_cert: None,
            client_key: None,
            server_name: None,
        });
        c
    }

    /// A tokio-rustls acceptor with the server certificate, requiring client certificates
    /// from this CA when `mtls`.
    fn acceptor(&self, mtls: bool) -> tokio_rustls::TlsAcceptor {
        let tls = TlsConfig {
            cert_file: self.path("server.pem"),
            key_file: self.path("server-key.pem"),
            client_ca_file: mtls.then(|| self.path("ca.pem")),
            client_auth: Some(if mtls {
                ClientAuth::Required
            } else {
                ClientAuth::None
            }),
            handshake_timeout_ms: 5000,
        };
        tokio_rustls::TlsAcceptor::from(tls.load().unwrap().http)
    }
}

/// A tokio-rustls server: accepts connections, and sends back (through the channel) the
/// frames and client certificate subject of each that completes the handshake.
async fn tls_server(
    pki: &Pki,
    mtls: bool,
    frames: usize,
) -> (
    String,
    tokio::sync::mpsc::Receiver<(Option<String>, Vec<Vec<u8>>)>,
) {
    let (l, address) = listener().await;
    let acceptor = pki.acceptor(mtls);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let Ok(mut s) = acceptor.accept(s).await else {
                continue;
            };
            let subject = crate::tls::client_subject(s.get_ref().1).unwrap();
            let got = read_frames(&mut s, frames).await;
            if tx.send((subject, got)).await.is_err() {
                return;
            }
        }
    });
    (address, rx)
}

#[tokio::test]
async fn tls_sends_octet_counted_frames() {
    let pki = Pki::new();
    let (address, mut rx) = tls_server(&pki, false, 50).await;
    let port = address.rsplit_once(':').unwrap().1;
    // By IP address (the certificate has it) and by name.
    for host in ["127.0.0.1", "localhost"] {
        let c = pki.config(format!("{host}:{port}"));
        let msgs = batch(50, "tls é\nnewline");
        let mut t = SyslogTransport::connect(&c).await.unwrap();
        assert_eq!(t.send(&msgs).await, Ok(vec![]));
        let (subject, got) = rx.recv().await.unwrap();
        assert_eq!(subject, None);
        assert_eq!(got, expected(&c, &msgs));
    }
}

#[tokio::test]
async fn tls_presents_the_client_certificate_and_reports_a_refusal() {
    let pki = Pki::new();
    let (address, mut rx) = tls_server(&pki, true, 2).await;
    let mut c = pki.config(address.clone());
    // Without a certificate: the server refuses after the handshake, and connect says so.
    let e = SyslogTransport::connect(&c).await.unwrap_err().to_string();
    assert!(
        e.contains("closed the connection right after the handshake") || e.contains("handshake"),
        "{e}"
    );
    if let Some(tls) = &mut c.tls {
        tls.client_cert = Some(pki.path("client.pem"));
        tls.client_key = Some(pki.path("client-key.pem"));
    }
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    assert_eq!(t.send(&batch(2, "m")).await, Ok(vec![]));
    let (subject, got) = rx.recv().await.unwrap();
    assert_eq!(subject.as_deref(), Some("CN=calltrail-forwarder"));
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn tls_errors_name_the_file_or_the_certificate_problem() {
    let pki = Pki::new();
    let (address, _rx) = tls_server(&pki, false, 1).await;
    let mut c = pki.config(address.clone());
    if let Some(tls) = &mut c.tls {
        tls.ca_file = pki.path("other-ca.pem");
    }
    let e = SyslogTransport::connect(&c).await.unwrap_err().to_string();
    assert!(
        e.starts_with("TLS handshake with 127.0.0.1 (") && e.contains("UnknownIssuer"),
        "{e}"
    );
    let mut c = pki.config(address.clone());
    if let Some(tls) = &mut c.tls {
        tls.server_name = Some("siem.bank.example".into());
    }
    let e = SyslogTransport::connect(&c).await.unwrap_err().to_string();
    assert!(
        e.starts_with("TLS handshake with siem.bank.example (") && e.contains("not valid for name"),
        "{e}"
    );
    let mut c = pki.config(address.clone());
    if let Some(tls) = &mut c.tls {
        tls.ca_file = pki.path("missing.pem");
    }
    let e = SyslogTransport::new(&c).unwrap_err().to_string();
    assert!(e.starts_with("syslog.tls.ca_file: cannot read "), "{e}");
    if let Some(tls) = &mut c.tls {
        tls.ca_file = pki.path("server-key.pem");
    }
    let e = SyslogTransport::new(&c).unwrap_err().to_string();
    assert!(e.contains("no PEM certificate"), "{e}");
    if let Some(tls) = &mut c.tls {
        tls.ca_file = pki.path("ca.pem");
        tls.client_cert = Some(pki.path("client.pem"));
        tls.client_key = Some(pki.path("server-key.pem"));
    }
    let e = SyslogTransport::new(&c).unwrap_err().to_string();
    assert!(
        e.starts_with("syslog.tls.client_key: ") && e.contains("does not belong"),
        "{e}"
    );
    let key_text = std::fs::read_to_string(pki.path("server-key.pem")).unwrap();
    assert!(!e.contains(key_text.lines().nth(1).unwrap()));
}

#[tokio::test]
async fn a_stream_that_reads_nothing_back_is_still_open() {
    let (l, address) = listener().await;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_frames(&mut s, 20).await
    });
    let c = config(SyslogProtocol::Tcp, address);
    let mut t = SyslogTransport::connect(&c).await.unwrap();
    for _ in 0..10 {
        assert_eq!(t.send(&batch(2, "z")).await, Ok(vec![]));
    }
    assert_eq!(
        server.await.unwrap().len(),
        20,
        "one connection carried everything"
    );
}
