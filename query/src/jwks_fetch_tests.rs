//! The URL rules, and fetches from real servers on 127.0.0.1: an identity provider (axum) whose
//! JWKS the test changes between requests, raw servers for chunked, slow and TLS answers.

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::jwt::tests::{NOW, claims, expect, local, rsa_token};

#[test]
fn urls_are_https_or_loopback_http() {
    let u = JwksUrl::parse("https://idp.example/.well-known/jwks.json?tenant=s3cret").unwrap();
    assert_eq!((u.tls, u.port, u.host.as_str()), (true, 443, "idp.example"));
    assert_eq!(u.path_and_query, "/.well-known/jwks.json?tenant=s3cret");
    assert_eq!(u.shown(), "https://idp.example/.well-known/jwks.json");
    let u = JwksUrl::parse("http://127.0.0.1:8080/jwks").unwrap();
    assert_eq!((u.tls, u.port), (false, 8080));
    assert_eq!(JwksUrl::parse("http://[::1]/k").unwrap().host, "::1");
    assert_eq!(JwksUrl::parse("http://LocalHost/k").unwrap().port, 80);
    assert!(JwksUrl::parse("http://127.8.9.10/k").is_ok());

    for (bad, why) in [
        ("http://idp.example/jwks", "loopback"),
        ("http://10.0.0.1/jwks", "loopback"),
        ("http://localhost.evil.example/jwks", "loopback"),
        ("ftp://idp.example/jwks", "scheme"),
        ("/jwks", "scheme"),
        ("https://user:pw@idp.example/jwks", "credentials"),
        ("not a url", "not a URL"),
    ] {
        let e = JwksUrl::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
        assert!(!e.contains("pw@"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_fixed_source_verifies_and_never_fetches() {
    let key = local();
    let source = KeySource::from(Verifier::new(&key.jwks(), expect()).unwrap());
    let token = key.sign(&claims(serde_json::json!({}))).unwrap();
    assert!(source.verify(&token, NOW).await.is_ok());
    let other = local().sign(&claims(serde_json::json!({}))).unwrap();
    assert!(matches!(
        source.verify(&other, NOW).await,
        Err(TokenError::UnknownKey(_))
    ));
    assert!(!source.refresh().await.unwrap());
}

/// What the test identity provider serves at `/jwks`, and how often it was asked.
struct Served {
    status: StatusCode,
    body: Vec<u8>,
    hits: usize,
}

type Idp = Arc<Mutex<Served>>;

async fn jwks(State(idp): State<Idp>) -> (StatusCode, Vec<u8>) {
    let mut s = idp.lock().unwrap();
    s.hits += 1;
    (s.status, s.body.clone())
}

/// An identity provider on 127.0.0.1 serving `set`; its URL.
async fn idp(set: &Jwks) -> (Idp, String) {
    let idp: Idp = Arc::new(Mutex::new(Served {
        status: StatusCode::OK,
        body: serde_json::to_vec(set).unwrap(),
        hits: 0,
    }));
    let app = axum::Router::new()
        .route("/jwks", axum::routing::get(jwks))
        .with_state(idp.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (idp, format!("http://{addr}/jwks?client=x"))
}

fn serve(idp: &Idp, status: StatusCode, body: Vec<u8>) {
    let mut s = idp.lock().unwrap();
    s.status = status;
    s.body = body;
}

fn hits(idp: &Idp) -> usize {
    idp.lock().unwrap().hits
}

#[tokio::test]
async fn keys_are_fetched_rotated_in_on_demand_and_kept_when_a_fetch_fails() {
    let old = local();
    let (idp, url) = idp(&old.jwks()).await;
    let source = KeySource::fetch_first(JwksFetcher::new(&url, None).unwrap(), expect())
        .await
        .unwrap();
    assert_eq!(hits(&idp), 1);
    let old_token = old.sign(&claims(serde_json::json!({}))).unwrap();
    assert_eq!(
        source.verify(&old_token, NOW).await.unwrap()["sub"],
        "alice@bank.example"
    );

    // The IdP rotates an RSA key in: a token naming it verifies after one on-demand fetch.
    let (rsa, rsa_set) = rsa_token(&claims(serde_json::json!({})));
    let mut both = old.jwks();
    both.keys.extend(rsa_set.keys);
    serve(&idp, StatusCode::OK, serde_json::to_vec(&both).unwrap());
    assert!(source.verify(&rsa, NOW).await.is_ok());
    assert_eq!(hits(&idp), 2);
    assert_eq!(source.verifier().key_count(), 2);

    // Another unknown kid within 30 s: no fetch, refused.
    let newer = local();
    let mut three = both.clone();
    three.keys.extend(newer.jwks().keys);
    serve(&idp, StatusCode::OK, serde_json::to_vec(&three).unwrap());
    let newer_token = newer.sign(&claims(serde_json::json!({}))).unwrap();
    assert!(matches!(
        source.verify(&newer_token, NOW).await,
        Err(TokenError::UnknownKey(_))
    ));
    assert_eq!(hits(&idp), 2, "on-demand fetches are rate-limited");
    // The periodic refresh picks it up.
    assert!(source.refresh().await.unwrap());
    assert!(source.verify(&newer_token, NOW).await.is_ok());
    assert!(
        !source.refresh().await.unwrap(),
        "unchanged: nothing swapped"
    );

    // Failed refreshes (an error status, junk, a set with no usable key) keep the keys.
    serve(&idp, StatusCode::SERVICE_UNAVAILABLE, b"down".to_vec());
    let e = source.refresh().await.unwrap_err();
    assert!(matches!(e, FetchError::Status { status: 503, .. }), "{e}");
    assert!(!e.to_string().contains("client=x"), "no query string: {e}");
    serve(&idp, StatusCode::OK, b"<html>".to_vec());
    assert!(matches!(
        source.refresh().await,
        Err(FetchError::Invalid { .. })
    ));
    serve(&idp, StatusCode::OK, br#"{"keys": []}"#.to_vec());
    assert!(matches!(
        source.refresh().await,
        Err(FetchError::Invalid { .. })
    ));
    for t in [&old_token, &rsa, &newer_token] {
        assert!(source.verify(t, NOW).await.is_ok());
    }

    // An oversized body is refused, and the keys stay.
    serve(&idp, StatusCode::OK, vec![b' '; MAX_BODY_BYTES + 1]);
    let e = source.refresh().await.unwrap_err();
    assert!(
        matches!(
            e,
            FetchError::TooLarge {
                limit: MAX_BODY_BYTES,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("larger than the 1048576-byte cap"),
        "{e}"
    );
    assert!(source.verify(&old_token, NOW).await.is_ok());
}

#[tokio::test]
async fn on_demand_fetches_resume_after_the_interval() {
    let old = local();
    let (idp, url) = idp(&old.jwks()).await;
    let source = KeySource::fetch_first(JwksFetcher::new(&url, None).unwrap(), expect())
        .await
        .unwrap()
        .with_on_demand_interval(Duration::from_millis(50));
    let stranger = local().sign(&claims(serde_json::json!({}))).unwrap();
    assert!(source.verify(&stranger, NOW).await.is_err());
    assert!(source.verify(&stranger, NOW).await.is_err());
    assert_eq!(hits(&idp), 2, "start-up, then one on-demand fetch");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(source.verify(&stranger, NOW).await.is_err());
    assert_eq!(hits(&idp), 3);
}

#[tokio::test]
async fn keep_fresh_swaps_in_a_new_set() {
    let old = local();
    let (idp, url) = idp(&old.jwks()).await;
    let source = KeySource::fetch_first(JwksFetcher::new(&url, None).unwrap(), expect())
        .await
        .unwrap();
    let new = local();
    serve(
        &idp,
        StatusCode::OK,
        serde_json::to_vec(&new.jwks()).unwrap(),
    );
    let token = new.sign(&claims(serde_json::json!({}))).unwrap();
    let refreshed = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            () = source.keep_fresh(Duration::from_millis(20)) => unreachable!(),
            () = async {
                while source.verifier().verify(&token, NOW).is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } => {}
        }
    })
    .await;
    assert!(refreshed.is_ok(), "the background refresh swapped the keys");
}

#[tokio::test]
async fn a_first_fetch_that_fails_says_why() {
    let (idp, url) = idp(&local().jwks()).await;
    serve(&idp, StatusCode::FOUND, Vec::new());
    let e = KeySource::fetch_first(JwksFetcher::new(&url, None).unwrap(), expect())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("HTTP 302 (redirects are not followed"),
        "{e}"
    );

    // Nothing listens there any more.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = JwksFetcher::new(&format!("http://{addr}/jwks"), None)
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Transport { .. }), "{e}");
}

/// A raw HTTP server on 127.0.0.1 answering each connection with `answer` (after reading the
/// request head), or never answering when it is `None`.
async fn raw_server(answer: Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                read_head(&mut s).await;
                match answer {
                    Some(a) => {
                        let _ = s.write_all(&a).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    addr
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_and_a_silent_server_are_refused() {
    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"40\r\n");
        chunked.extend_from_slice(&[b' '; 64]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let addr = raw_server(Some(chunked)).await;
    let fetcher = JwksFetcher::new(&format!("http://{addr}/jwks"), None)
        .unwrap()
        .with_limits(200, Duration::from_secs(5));
    let e = fetcher.fetch().await.unwrap_err();
    assert!(matches!(e, FetchError::TooLarge { limit: 200, .. }), "{e}");

    let addr = raw_server(None).await;
    let fetcher = JwksFetcher::new(&format!("http://{addr}/jwks"), None)
        .unwrap()
        .with_limits(MAX_BODY_BYTES, Duration::from_millis(200));
    let e = fetcher.fetch().await.unwrap_err();
    assert!(matches!(e, FetchError::Timeout { .. }), "{e}");
    assert!(
        e.to_string().ends_with("no complete answer within 200ms"),
        "{e}"
    );
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, as PEM files.
fn pki(dir: &Path) -> rustls::ServerConfig {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    std::fs::write(dir.join("empty.pem"), "no certificate here").unwrap();
    let key_der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .unwrap()
}

#[tokio::test]
async fn https_trusts_the_configured_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki(dir.path())));
    let key = local();
    let body = serde_json::to_vec(&key.jwks()).unwrap();
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                read_head(&mut tls).await;
                let _ = tls.write_all(&answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let url = format!("https://127.0.0.1:{}/jwks", addr.port());

    let fetcher = JwksFetcher::new(&url, Some(&dir.path().join("ca.pem"))).unwrap();
    let jwks = fetcher.fetch().await.unwrap();
    assert_eq!(jwks.keys[0].kid, key.jwks().keys[0].kid);

    let fetcher = JwksFetcher::new(&url, Some(&dir.path().join("other-ca.pem"))).unwrap();
    let e = fetcher.fetch().await.unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");

    let e = JwksFetcher::new(&url, Some(&dir.path().join("empty.pem"))).unwrap_err();
    assert!(e.to_string().starts_with("api.auth.jwks_ca_file: "), "{e}");
    let e = JwksFetcher::new(&url, Some(&dir.path().join("missing.pem"))).unwrap_err();
    assert!(e.to_string().starts_with("api.auth.jwks_ca_file: "), "{e}");
}
