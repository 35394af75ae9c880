//! TLS and mTLS on both receivers, end to end: a real `calltrail serve` with certificates this
//! test makes (rcgen), real clients (reqwest over rustls, tonic over TLS).
//!
//! - TLS with bearer tokens: HTTPS and gRPC-over-TLS with the right token are stored under the
//!   token's source; plaintext to a TLS port fails.
//! - mTLS `optional`: a client certificate from the client CA authenticates by itself and is
//!   recorded under its subject (or its mapped source); one from another CA is refused even
//!   though it names the same subject; without a certificate, bearer tokens rule.
//! - mTLS `required`: no certificate, no connection.
//!
//! Every test ends by listing the stored rows, so anything a refused request stored shows.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use calltrail_collector::auth::token_sha256;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const TOKEN: &str = "ctk_test_tls_gateway";
const SUBJECT: &str = "CN=gateway-eu-1,O=Bank";
const MAPPED_SUBJECT: &str = "CN=gateway-us-1,O=Bank";

/// A PEM certificate and its PEM private key.
struct Pem {
    cert: String,
    key: String,
}

/// The certificates of one test, written into a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    /// CA of the server certificate (what clients trust).
    server_ca: String,
    /// Issued by the client CA: `CN=gateway-eu-1,O=Bank`.
    client: Pem,
    /// Issued by the client CA: `CN=gateway-us-1,O=Bank` (mapped to a source in one config).
    mapped_client: Pem,
    /// Same subject as `client`, issued by a CA the server does not trust.
    rogue_client: Pem,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    names: &[&str],
    subject: &[(DnType, &str)],
    usage: ExtendedKeyUsagePurpose,
) -> Pem {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn gateway(issuer: &CertifiedIssuer<'_, KeyPair>, cn: &str) -> Pem {
    // Organization first: RFC 4514 reverses the order, giving `CN=...,O=Bank`.
    leaf(
        issuer,
        &[],
        &[(DnType::OrganizationName, "Bank"), (DnType::CommonName, cn)],
        ExtendedKeyUsagePurpose::ClientAuth,
    )
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = ca("Calltrail Test Server CA");
        let client_ca = ca("Calltrail Test Client CA");
        let rogue_ca = ca("Calltrail Test Client CA");
        let server = leaf(
            &server_ca,
            &["localhost", "127.0.0.1"],
            &[(DnType::CommonName, "calltrail.test")],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let pki = Pki {
            dir,
            server_ca: server_ca.pem(),
            client: gateway(&client_ca, "gateway-eu-1"),
            mapped_client: gateway(&client_ca, "gateway-us-1"),
            rogue_client: gateway(&rogue_ca, "gateway-eu-1"),
        };
        pki.write("server.pem", &server.cert);
        pki.write("server-key.pem", &server.key);
        pki.write("client-ca.pem", &client_ca.pem());
        pki
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `[receivers.tls]` with the server certificate, plus `extra` lines.
    fn tls_section(&self, extra: &str) -> String {
        let p = |n: &str| toml_path(&self.path(n));
        format!(
            "[receivers.tls]\ncert_file = {}\nkey_file = {}\n{extra}",
            p("server.pem"),
            p("server-key.pem")
        )
    }

    fn client_ca_line(&self) -> String {
        format!(
            "client_ca_file = {}\n",
            toml_path(&self.path("client-ca.pem"))
        )
    }
}

/// A path as a TOML string (a JSON string is a valid TOML basic string).
fn toml_path(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap()
}

fn tokens_section(mode: &str) -> String {
    format!(
        "[auth]\nmode = \"{mode}\"\n[[auth.tokens]]\nsource = \"gateway-token\"\nsha256 = \"{}\"\n",
        token_sha256(TOKEN)
    )
}

/// One request body whose trace id is unique to `(test, n)`.
fn body(test: u8, n: u8) -> Vec<u8> {
    let span = support::server_tool_span(
        support::trace_id(test, n),
        support::span_id(test, n, 1),
        "get_x",
        "1",
    );
    support::request("gw", vec![span]).encode_to_vec()
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS client: rustls trusting the test server CA, presenting `identity` when given,
/// offering `alpn`; hyper speaks HTTP/1.1 or HTTP/2 as the handshake chose.
struct Https {
    tls: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
}

fn https(server: &support::Server, pki: &Pki, identity: Option<&Pem>, alpn: &[&str]) -> Https {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.server_ca.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Https {
        tls: Arc::new(tls),
        addr: server.http_addr(),
    }
}

/// HTTP/1.1 only, the default of most OTLP/HTTP exporters.
const H1: &[&str] = &["http/1.1"];
/// HTTP/2 preferred.
const H2: &[&str] = &["h2", "http/1.1"];

impl Https {
    /// POSTs one protobuf request on a new connection: the status and the HTTP version, or the
    /// failure (TLS or HTTP) as text.
    async fn post(
        &self,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, http::Version), String> {
        tokio::time::timeout(Duration::from_secs(30), self.try_post(token, body))
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// Like [`Https::post`], the status alone.
    async fn status(&self, token: Option<&str>, body: Vec<u8>) -> Result<u16, String> {
        self.post(token, body).await.map(|(s, _)| s)
    }

    async fn try_post(
        &self,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, http::Version), String> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        let io = hyper_util::rt::TokioIo::new(stream);
        let mut req =
            http::Request::post(format!("https://localhost:{}/v1/traces", self.addr.port()))
                .header("content-type", "application/x-protobuf");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(req).await
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(req).await
        };
        let resp = resp.map_err(|e| format!("request: {e:?}"))?;
        Ok((resp.status().as_u16(), resp.version()))
    }
}

/// POSTs over plaintext HTTP.
async fn post_plain(url: &str, token: &str, body: Vec<u8>) -> Result<u16, String> {
    support::http_client()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// Exports one request over gRPC with TLS; `Ok` on success, the error text otherwise.
async fn grpc_export(
    server: &support::Server,
    pki: &Pki,
    identity: Option<&Pem>,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<(), (Option<tonic::Code>, String)> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.server_ca))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    let url = format!("https://127.0.0.1:{}", server.grpc_addr().port());
    let channel = Channel::from_shared(url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| (None, format!("{e:?}")))?;
    let mut client = TraceServiceClient::new(channel);
    let mut req = tonic::Request::new(prost::Message::decode(body.as_slice()).unwrap());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    client
        .export(req)
        .await
        .map(|_| ())
        .map_err(|s| (Some(s.code()), s.message().to_string()))
}

/// Waits for `expected.len()` rows, then asserts exactly these `(trace_id, ingest_source)`
/// rows (ordered by trace id) and that every row carries a loopback peer address; finally stops
/// the server and asserts a clean exit.
async fn assert_stored(mut server: support::Server, expected: Vec<(Vec<u8>, &'static str)>) {
    tokio::task::spawn_blocking(move || {
        server.wait_for_count(
            "SELECT count(*) AS n FROM tool_calls",
            expected.len() as i64,
            Duration::from_secs(30),
        );
        let rows = server
            .query("SELECT trace_id, ingest_source, ingest_peer FROM tool_calls ORDER BY trace_id");
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    support::text(r, "trace_id"),
                    support::text(r, "ingest_source"),
                )
            })
            .collect();
        let want: Vec<_> = expected
            .iter()
            .map(|(t, s)| (Some(hex::encode(t)), Some(s.to_string())))
            .collect();
        assert_eq!(got, want);
        for r in &rows {
            let peer = support::text(r, "ingest_peer").unwrap_or_default();
            assert!(peer.starts_with("127.0.0.1:"), "ingest_peer {peer:?}");
        }
        server.stop();
    })
    .await
    .unwrap();
}

async fn start(config: String) -> support::Server {
    tokio::task::spawn_blocking(move || support::Server::start_with_config(&config))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_bearer_tokens_on_both_receivers() {
    const T: u8 = 50;
    let pki = Pki::new();
    let server = start(format!(
        "{}{}",
        pki.tls_section(""),
        tokens_section("required")
    ))
    .await;

    // Both HTTP versions, as ALPN negotiates them.
    let h1 = https(&server, &pki, None, H1);
    assert_eq!(
        h1.post(Some(TOKEN), body(T, 1)).await,
        Ok((200, http::Version::HTTP_11))
    );
    let h2 = https(&server, &pki, None, H2);
    assert_eq!(
        h2.post(Some(TOKEN), body(T, 2)).await,
        Ok((200, http::Version::HTTP_2))
    );
    assert_eq!(h1.status(None, body(T, 3)).await, Ok(401));
    assert_eq!(h1.status(Some("not-the-token"), body(T, 4)).await, Ok(401));
    grpc_export(&server, &pki, None, Some(TOKEN), body(T, 5))
        .await
        .unwrap();
    let e = grpc_export(&server, &pki, None, None, body(T, 6))
        .await
        .unwrap_err();
    assert_eq!(e.0, Some(tonic::Code::Unauthenticated), "{e:?}");

    // Plaintext to the TLS ports: no answer but a closed connection.
    let plain = post_plain(&server.traces_url(), TOKEN, body(T, 7)).await;
    assert!(plain.is_err(), "plaintext HTTP to the TLS port: {plain:?}");
    let plain_grpc = async {
        let mut c = TraceServiceClient::connect(server.grpc_url()).await?;
        let mut req = tonic::Request::new(prost::Message::decode(body(T, 8).as_slice())?);
        req.metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse()?);
        c.export(req).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    assert!(
        plain_grpc.is_err(),
        "plaintext gRPC to the TLS port succeeded"
    );

    assert_stored(
        server,
        vec![
            (support::trace_id(T, 1), "gateway-token"),
            (support::trace_id(T, 2), "gateway-token"),
            (support::trace_id(T, 5), "gateway-token"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_client_certificates_authenticate_by_themselves() {
    const T: u8 = 51;
    let pki = Pki::new();
    let config = format!(
        "{}{}client_auth = \"optional\"\n{}[[auth.client_certs]]\nsubject = \"{MAPPED_SUBJECT}\"\nsource = \"gateway-us\"\n",
        pki.tls_section(""),
        pki.client_ca_line(),
        tokens_section("required"),
    );
    let server = start(config).await;

    let with_cert = https(&server, &pki, Some(&pki.client), H1);
    assert_eq!(with_cert.status(None, body(T, 1)).await, Ok(200));
    assert_eq!(
        with_cert.status(Some("not-the-token"), body(T, 2)).await,
        Ok(401),
        "a wrong token is refused even with a certificate"
    );
    grpc_export(&server, &pki, Some(&pki.client), None, body(T, 3))
        .await
        .unwrap();
    let mapped = https(&server, &pki, Some(&pki.mapped_client), H2);
    assert_eq!(mapped.status(None, body(T, 4)).await, Ok(200));

    // No certificate: bearer tokens rule, as without mTLS.
    let no_cert = https(&server, &pki, None, H1);
    assert_eq!(no_cert.status(None, body(T, 5)).await, Ok(401));
    assert_eq!(no_cert.status(Some(TOKEN), body(T, 6)).await, Ok(200));
    let e = grpc_export(&server, &pki, None, None, body(T, 7))
        .await
        .unwrap_err();
    assert_eq!(e.0, Some(tonic::Code::Unauthenticated), "{e:?}");

    // A certificate with the same subject from another CA: refused, even with a token.
    let rogue = https(&server, &pki, Some(&pki.rogue_client), H1);
    let r = rogue.status(None, body(T, 8)).await;
    assert!(r.is_err(), "rogue certificate over HTTP: {r:?}");
    let r = rogue.status(Some(TOKEN), body(T, 9)).await;
    assert!(
        r.is_err(),
        "rogue certificate with a token over HTTP: {r:?}"
    );
    let r = grpc_export(&server, &pki, Some(&pki.rogue_client), None, body(T, 10)).await;
    assert!(r.is_err(), "rogue certificate over gRPC: {r:?}");

    assert_stored(
        server,
        vec![
            (support::trace_id(T, 1), SUBJECT),
            (support::trace_id(T, 3), SUBJECT),
            (support::trace_id(T, 4), "gateway-us"),
            (support::trace_id(T, 6), "gateway-token"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn required_client_certificates_refuse_clients_without_one() {
    const T: u8 = 52;
    let pki = Pki::new();
    // No token at all: certificates are the only credential, and that is enough to start.
    let config = format!(
        "{}{}[auth]\nmode = \"required\"\n",
        pki.tls_section(""),
        pki.client_ca_line()
    );
    let server = start(config).await;

    let r = https(&server, &pki, None, H1)
        .status(None, body(T, 1))
        .await;
    assert!(r.is_err(), "no client certificate over HTTP: {r:?}");
    let r = grpc_export(&server, &pki, None, None, body(T, 2)).await;
    assert!(r.is_err(), "no client certificate over gRPC: {r:?}");
    let r = https(&server, &pki, Some(&pki.rogue_client), H1)
        .status(None, body(T, 3))
        .await;
    assert!(r.is_err(), "rogue certificate over HTTP: {r:?}");
    let r = grpc_export(&server, &pki, Some(&pki.rogue_client), None, body(T, 4)).await;
    assert!(r.is_err(), "rogue certificate over gRPC: {r:?}");

    let with_cert = https(&server, &pki, Some(&pki.client), H2);
    assert_eq!(with_cert.status(None, body(T, 5)).await, Ok(200));
    grpc_export(&server, &pki, Some(&pki.client), None, body(T, 6))
        .await
        .unwrap();

    assert_stored(
        server,
        vec![
            (support::trace_id(T, 5), SUBJECT),
            (support::trace_id(T, 6), SUBJECT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_does_not_hold_up_the_handshakes_of_others() {
    const T: u8 = 53;
    let pki = Pki::new();
    let server = start(format!(
        "{}{}",
        pki.tls_section("handshake_timeout_ms = 60000\n"),
        tokens_section("required")
    ))
    .await;
    // Connections that never send a ClientHello, on both ports.
    let mut silent = Vec::new();
    for addr in [server.http_addr(), server.grpc_addr()] {
        for _ in 0..4 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
    }
    let client = https(&server, &pki, None, H1);
    let sent = tokio::time::timeout(Duration::from_secs(20), async {
        let http = client.status(Some(TOKEN), body(T, 1)).await;
        let grpc = grpc_export(&server, &pki, None, Some(TOKEN), body(T, 2)).await;
        (http, grpc)
    })
    .await
    .expect("requests behind silent clients did not finish within 20 s");
    assert_eq!(sent.0, Ok(200));
    assert_eq!(sent.1, Ok(()));
    // Handshakes still pending do not hold up a graceful stop either.
    assert_stored(
        server,
        vec![
            (support::trace_id(T, 1), "gateway-token"),
            (support::trace_id(T, 2), "gateway-token"),
        ],
    )
    .await;
    drop(silent);
}

#[test]
fn serve_refuses_to_start_on_unusable_tls_files_naming_the_key() {
    let pki = Pki::new();
    pki.write("not-a-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n");
    let cases = [
        (
            format!(
                "[receivers.tls]\ncert_file = {}\nkey_file = {}\n",
                toml_path(&pki.path("missing.pem")),
                toml_path(&pki.path("server-key.pem"))
            ),
            "receivers.tls.cert_file: cannot read ",
        ),
        (
            format!(
                "[receivers.tls]\ncert_file = {}\nkey_file = {}\n",
                toml_path(&pki.path("server.pem")),
                toml_path(&pki.path("not-a-key.pem"))
            ),
            "receivers.tls.key_file: ",
        ),
        (
            pki.tls_section("client_auth = \"optional\"\n"),
            "receivers.tls.client_ca_file: must be set",
        ),
    ];
    for (i, (config, expected)) in cases.iter().enumerate() {
        let path = pki.path(&format!("calltrail-{i}.toml"));
        std::fs::write(&path, config).unwrap();
        let data = pki.path(&format!("data-{i}"));
        let mut cmd = std::process::Command::new(support::BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(&data)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]);
        let out = support::run(cmd, Duration::from_secs(30));
        assert!(!out.status.success(), "serve started with {config}");
        assert!(
            out.stderr.contains(expected),
            "expected {expected:?} in:\n{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("No such file").count(),
            usize::from(i == 0),
            "the cause is told once: {}",
            out.stderr
        );
    }
}
