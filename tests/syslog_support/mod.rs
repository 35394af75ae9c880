//! A real syslog receiver for the tests: rsyslog (Debian's `rsyslogd` 8.2302 and
//! `rsyslog-gnutls`, installed by `scripts/test`) started with its own configuration on free
//! 127.0.0.1 ports, writing every message it receives, as received, to a file; a CA and
//! certificates for its TLS inputs; and a parser not written by us (PyPI
//! `syslog-rfc5424-parser`) to read the messages back.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
pub const WAIT: Duration = Duration::from_secs(20);

/// A CA, rsyslog's server certificate (`localhost`, 127.0.0.1) and a client certificate.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("calltrail-syslog-pki-")
            .tempdir()
            .unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Calltrail syslog test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = |names: Vec<String>, cn: &str, usage: rcgen::ExtendedKeyUsagePurpose| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(names).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(
            Vec::new(),
            "calltrail-forwarder",
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w("ca.pem", &ca_cert.pem());
        w("server.pem", &server);
        w("server-key.pem", &server_key);
        w("client.pem", &client);
        w("client-key.pem", &client_key);
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The ports of one rsyslog.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub udp: u16,
    pub tcp: u16,
    pub tls: u16,
    pub mtls: u16,
}

impl Ports {
    /// Ports the OS says are free now (bound to port 0, read, closed).
    pub fn free() -> Self {
        let tcp = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let udp = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Ports {
            udp,
            tcp: tcp(),
            tls: tcp(),
            mtls: tcp(),
        }
    }
}

/// One received message: the input it came in on and its raw bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub input: String,
    pub raw: Vec<u8>,
}

/// A running rsyslogd with its own configuration, work directory and output file, stopped by
/// its process id when dropped.
pub struct Rsyslog {
    dir: tempfile::TempDir,
    pub ports: Ports,
    child: Option<Child>,
}

impl Rsyslog {
    /// Starts rsyslog on free ports (new ports when one was taken in between).
    pub fn start(pki: &Pki) -> Self {
        assert!(
            Path::new(RSYSLOGD).exists(),
            "{RSYSLOGD} is missing: apt-get install -y rsyslog rsyslog-gnutls"
        );
        let mut failures = Vec::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("calltrail-rsyslog-")
                .tempdir()
                .unwrap();
            std::fs::create_dir(dir.path().join("work")).unwrap();
            let mut r = Rsyslog {
                dir,
                ports: Ports::free(),
                child: None,
            };
            std::fs::write(r.conf(), r.config_text(pki)).unwrap();
            match r.spawn() {
                Ok(()) => return r,
                Err(e) => failures.push(e),
            }
        }
        panic!("rsyslogd did not start:\n{}", failures.join("\n---\n"));
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("rsyslog.conf")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("received.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("rsyslogd.stderr")
    }

    /// rsyslogd's own output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    fn config_text(&self, pki: &Pki) -> String {
        let d = self.dir.path().display();
        let p = self.ports;
        let (ca, cert, key) = (
            pki.path("ca.pem"),
            pki.path("server.pem"),
            pki.path("server-key.pem"),
        );
        format!(
            r#"# Written by tests/forward_syslog.rs.
global(
  workDirectory="{d}/work"
  maxMessageSize="64k"
  # Keep newlines and other control characters as sent (rawmsg is JSON-escaped below).
  parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imudp")
module(load="imtcp")
input(type="imudp" name="udp" address="127.0.0.1" port="{udp}")
input(type="imtcp" name="tcp" address="127.0.0.1" port="{tcp}")
input(type="imtcp" name="tls" address="127.0.0.1" port="{tls}"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" name="mtls" address="127.0.0.1" port="{mtls}"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
template(name="raw" type="string" string="%inputname%\t%rawmsg:::json%\n")
action(type="omfile" file="{d}/received.log" template="raw")
"#,
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
            udp = p.udp,
            tcp = p.tcp,
            tls = p.tls,
            mtls = p.mtls,
        )
    }

    /// Runs rsyslogd and waits until every input takes messages.
    pub fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "rsyslogd already running");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .unwrap();
        let stdout = stderr.try_clone().unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.conf())
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot run {RSYSLOGD}: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let p = self.ports;
        let mut probes = 0u32;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("rsyslogd exited ({status}):\n{}", self.log()));
            }
            let listening = [p.tcp, p.tls, p.mtls]
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok());
            if listening {
                // UDP has no handshake: send probes until one is recorded.
                probes += 1;
                let probe = format!("<13>1 - probe - - - - probe {probes}");
                if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
                    let _ = s.send_to(probe.as_bytes(), ("127.0.0.1", p.udp));
                }
                std::thread::sleep(Duration::from_millis(100));
                if self.received().iter().any(|r| r.input == "udp") {
                    return Ok(());
                }
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "rsyslogd did not listen on {p:?} within 10 s:\n{}",
                    self.log()
                ));
            }
        }
    }

    /// Stops rsyslogd by its process id: SIGTERM (it writes what it received and exits), then
    /// SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let Ok(text) = std::fs::read_to_string(self.out()) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let (input, json) = line.split_once('\t')?;
                let raw: String = serde_json::from_str(&format!("\"{json}\"")).ok()?;
                Some(Received {
                    input: input.to_owned(),
                    raw: raw.into_bytes(),
                })
            })
            .collect()
    }

    /// Waits until every one of `event_ids` has arrived on `input`; returns those messages
    /// (the first of each id, in `event_ids` order).
    pub fn wait_for(&self, input: &str, event_ids: &[String]) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| r.input == input)
                .collect();
            let found: Vec<Option<&Received>> = event_ids
                .iter()
                .map(|id| {
                    let needle = format!(" event_id=\"{id}\"");
                    got.iter()
                        .find(|r| String::from_utf8_lossy(&r.raw).contains(&needle))
                })
                .collect();
            if found.iter().all(Option::is_some) {
                return found.into_iter().flatten().cloned().collect();
            }
            if Instant::now() > deadline {
                let missing: Vec<&String> = event_ids
                    .iter()
                    .zip(&found)
                    .filter(|(_, f)| f.is_none())
                    .map(|(id, _)| id)
                    .collect();
                panic!(
                    "missing on {input} after {WAIT:?}: {missing:?}\nreceived:\n{}\nrsyslogd:\n{}",
                    std::fs::read_to_string(self.out()).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn address(&self, port: u16) -> String {
        format!("127.0.0.1:{port}")
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parses raw messages with PyPI `syslog-rfc5424-parser`; SD values are unescaped (`\"`, `\\`,
/// `\]`) as RFC 5424 §6.3.3 says, since the parser returns them as written.
pub fn parse_rfc5424(raws: &[&[u8]]) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, re, sys
from syslog_rfc5424_parser import SyslogMessage, ParseError
out = []
for raw in json.load(sys.stdin):
    try:
        m = SyslogMessage.parse(raw)
    except ParseError as e:
        out.append({"error": str(e)})
        continue
    unescape = lambda v: re.sub(r'\\(["\\\]])', r'\1', v)
    out.append({
        "facility": int(m.facility), "severity": int(m.severity), "version": m.version,
        "timestamp": m.timestamp, "hostname": m.hostname, "appname": m.appname,
        "procid": None if m.procid is None else str(m.procid), "msgid": m.msgid,
        "sd": {k: {n: unescape(v) for n, v in p.items()} for k, p in m.sd.items()},
        "msg": m.msg,
    })
print(json.dumps(out))
"#;
    let input: Vec<String> = raws
        .iter()
        .map(|r| String::from_utf8(r.to_vec()).expect("UTF-8 message"))
        .collect();
    let mut child = Command::new(support::python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = serde_json::to_vec(&input).unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "syslog-rfc5424-parser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (p, raw) in parsed.iter().zip(&input) {
        assert!(p.get("error").is_none(), "does not parse: {p}\n{raw:?}");
    }
    parsed
}
