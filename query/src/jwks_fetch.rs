//! The identity provider's JWKS by URL (`[api.auth] jwks_url`), and the verifier the API checks
//! tokens with, swapped in place when that set changes.
//!
//! - At start-up the set is fetched once; `serve` does not start without it.
//! - Every `jwks_refresh_secs` it is fetched again in the background ([`KeySource::keep_fresh`]).
//! - A token naming a key the set lacks triggers one fetch on demand, at most every
//!   [`ON_DEMAND_INTERVAL`], so a key the IdP rotates in is trusted at once, while tokens with
//!   made-up key ids cannot make the server hammer the IdP.
//! - A fetch that fails, or yields no usable key, changes nothing: the last good set stays.
//!
//! Each fetch is one HTTP/1.1 GET (hyper; tokio-rustls with the ring provider for https), bounded
//! by [`FETCH_TIMEOUT`] for the whole exchange and [`MAX_BODY_BYTES`] of body. Redirects are not
//! followed and no proxy is used. https trusts `jwks_ca_file` when set, otherwise the system's CA
//! bundle; plain http is accepted only to a loopback host.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::jwt::{Claims, Expectations, Jwks, TokenError, Verifier};

/// The most body a JWKS response may have (real sets are a few KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The longest a whole fetch may take: connecting, TLS, the request and the body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest time between two fetches triggered by unknown key ids.
pub const ON_DEMAND_INTERVAL: Duration = Duration::from_secs(30);

/// Where the system's CA bundle lives on the common Linux distributions (the list Go's
/// crypto/x509 searches), tried in order when `jwks_ca_file` is unset.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Why a JWKS could not be fetched. Messages name the URL without its query string.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one this fetcher accepts.
    #[error("{0}")]
    Url(String),
    /// The CA certificates to trust could not be loaded.
    #[error("{0}")]
    Trust(String),
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL, without its query.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The whole fetch took longer than its timeout.
    #[error("{url}: no complete answer within {after:?}")]
    Timeout {
        /// The URL, without its query.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The server answered with a status other than 2xx.
    #[error("{url}: HTTP {status}{hint}")]
    Status {
        /// The URL, without its query.
        url: String,
        /// The status code.
        status: u16,
        /// A hint for redirects, which are not followed.
        hint: &'static str,
    },
    /// The body is larger than the cap.
    #[error("{url}: the body is larger than the {limit}-byte cap")]
    TooLarge {
        /// The URL, without its query.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not a JWKS with at least one usable key.
    #[error("{url}: not a usable JWKS: {reason}")]
    Invalid {
        /// The URL, without its query.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed `jwks_url`: https, or http to a loopback host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    tls: bool,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl JwksUrl {
    /// Parses `url`; the error says what is wrong (the caller names the key).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "{url:?}: the scheme must be https (or http to a loopback host)"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err("the URL must not carry credentials (user:password@)".into());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        if !tls && !is_loopback(&host) {
            return Err(format!(
                "plain http is only allowed to a loopback host (127.0.0.1, ::1, localhost), not {host:?}: use https"
            ));
        }
        Ok(Self {
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            host,
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    /// Whether it is https.
    pub fn is_https(&self) -> bool {
        self.tls
    }

    /// The URL as logs and errors show it: without the query, which may carry a secret.
    fn shown(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Fetches a JWKS from one URL, bounded in time and size.
pub struct JwksFetcher {
    url: JwksUrl,
    tls: Option<tokio_rustls::TlsConnector>,
    max_body: usize,
    timeout: Duration,
}

impl std::fmt::Debug for JwksFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksFetcher")
            .field("url", &self.url.shown())
            .finish_non_exhaustive()
    }
}

impl JwksFetcher {
    /// A fetcher of `url`, trusting the CA certificates (PEM) of `ca_file` for https, or the
    /// system's CA bundle when it is `None`.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, FetchError> {
        let url = JwksUrl::parse(url).map_err(FetchError::Url)?;
        let tls = if url.tls {
            let roots = match ca_file {
                Some(path) => roots_from(path, "api.auth.jwks_ca_file", true)?,
                None => system_roots()?,
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| FetchError::Trust(format!("TLS set-up: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            url,
            tls,
            max_body: MAX_BODY_BYTES,
            timeout: FETCH_TIMEOUT,
        })
    }

    /// The same fetcher with other bounds: short ones, for tests.
    #[cfg(test)]
    pub(crate) fn with_limits(mut self, max_body: usize, timeout: Duration) -> Self {
        self.max_body = max_body;
        self.timeout = timeout;
        self
    }

    /// The URL as logs show it (no query string).
    pub fn url(&self) -> String {
        self.url.shown()
    }

    /// Fetches and parses the set.
    pub async fn fetch(&self) -> Result<Jwks, FetchError> {
        let body = tokio::time::timeout(self.timeout, self.get())
            .await
            .map_err(|_| FetchError::Timeout {
                url: self.url.shown(),
                after: self.timeout,
            })??;
        serde_json::from_slice(&body).map_err(|e| FetchError::Invalid {
            url: self.url.shown(),
            reason: format!("not JWKS JSON ({{\"keys\": [...]}}): {e}"),
        })
    }

    fn transport(&self, what: &str, e: impl std::fmt::Display) -> FetchError {
        FetchError::Transport {
            url: self.url.shown(),
            reason: format!("{what}: {e}"),
        }
    }

    async fn get(&self) -> Result<Bytes, FetchError> {
        let tcp = tokio::net::TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| self.transport("connecting", e))?;
        let request = http::Request::get(self.url.path_and_query.as_str())
            .header(http::header::HOST, self.url.authority.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "calltrail")
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.transport("building the request", e))?;
        match &self.tls {
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(self.url.host.clone())
                    .map_err(|e| self.transport("TLS server name", e))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.transport("TLS handshake", e))?;
                self.exchange(stream, request).await
            }
            None => self.exchange(tcp, request).await,
        }
    }

    async fn exchange<S>(
        &self,
        stream: S,
        request: http::Request<Empty<Bytes>>,
    ) -> Result<Bytes, FetchError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.transport("HTTP", e))?;
        // The connection is driven here rather than in a spawned task, so that a timeout drops
        // it with the fetch. Its clean end is left to the response to report.
        let driver = async {
            match conn.await {
                Err(e) => self.transport("HTTP connection", e),
                Ok(()) => std::future::pending().await,
            }
        };
        let work = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| self.transport("HTTP request", e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: self.url.shown(),
                    status: status.as_u16(),
                    hint: if status.is_redirection() {
                        " (redirects are not followed: configure the final URL)"
                    } else {
                        ""
                    },
                });
            }
            let too_large = || FetchError::TooLarge {
                url: self.url.shown(),
                limit: self.max_body,
            };
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body as u64) {
                return Err(too_large());
            }
            match Limited::new(response.into_body(), self.max_body)
                .collect()
                .await
            {
                Ok(body) => Ok(body.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
                Err(e) => Err(self.transport("reading the body", e)),
            }
        };
        tokio::select! {
            out = work => out,
            e = driver => Err(e),
        }
    }
}

/// The certificates of the PEM file `path` as trust anchors; `key` names the setting.
fn roots_from(path: &Path, key: &str, strict: bool) -> Result<rustls::RootCertStore, FetchError> {
    let bad = |why: String| FetchError::Trust(format!("{key}: {}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("invalid PEM: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    if strict {
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                bad(format!(
                    "certificate #{} is not a usable CA certificate: {e}",
                    i + 1
                ))
            })?;
        }
    } else {
        // A system bundle may hold a certificate webpki cannot parse; the others still count.
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<rustls::RootCertStore, FetchError> {
    let path = SYSTEM_CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            FetchError::Trust(format!(
                "no system CA bundle found (looked for {}): set api.auth.jwks_ca_file",
                SYSTEM_CA_BUNDLES.join(", ")
            ))
        })?;
    roots_from(path, "the system CA bundle", false)
}

/// Where keys come from once they are fetched, and how often they are fetched again.
struct Remote {
    fetcher: JwksFetcher,
    expect: Expectations,
    /// When the last on-demand fetch started; held during that fetch, so that requests waiting
    /// on it then verify against its result instead of fetching again.
    last_on_demand: tokio::sync::Mutex<Option<Instant>>,
    on_demand_interval: Duration,
}

/// The token verifier the API uses: fixed (a JWKS file, the local key), or fetched by URL and
/// swapped in place when the identity provider's set changes.
pub struct KeySource {
    current: RwLock<Arc<Verifier>>,
    remote: Option<Remote>,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySource")
            .field("keys", &self.verifier().key_count())
            .field("url", &self.remote.as_ref().map(|r| r.fetcher.url()))
            .finish()
    }
}

impl From<Verifier> for KeySource {
    fn from(verifier: Verifier) -> Self {
        Self::fixed(verifier)
    }
}

impl KeySource {
    /// Keys that never change.
    pub fn fixed(verifier: Verifier) -> Self {
        Self {
            current: RwLock::new(Arc::new(verifier)),
            remote: None,
        }
    }

    /// Keys fetched by `fetcher`, once now: an error here means the server must not start.
    pub async fn fetch_first(
        fetcher: JwksFetcher,
        expect: Expectations,
    ) -> Result<Self, FetchError> {
        let (verifier, skipped) = build(&fetcher, &expect).await?;
        tracing::info!(
            url = %fetcher.url(),
            keys = verifier.key_count(),
            skipped,
            "Fetched the identity provider's JWKS."
        );
        Ok(Self {
            current: RwLock::new(Arc::new(verifier)),
            remote: Some(Remote {
                fetcher,
                expect,
                last_on_demand: tokio::sync::Mutex::new(None),
                on_demand_interval: ON_DEMAND_INTERVAL,
            }),
        })
    }

    /// The same source with another minimum time between on-demand fetches, for tests.
    #[cfg(test)]
    pub(crate) fn with_on_demand_interval(mut self, interval: Duration) -> Self {
        if let Some(r) = &mut self.remote {
            r.on_demand_interval = interval;
        }
        self
    }

    /// The verifier in use now.
    pub fn verifier(&self) -> Arc<Verifier> {
        // A panic elsewhere while swapping cannot leave a half-written Arc: the value is usable.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The claims of `token` at `now` (Unix seconds). A token whose key is not in the set
    /// triggers one on-demand fetch (rate-limited) and is checked again against its result.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let before = self.verifier();
        let result = before.verify(token, now);
        let (Err(TokenError::UnknownKey(_)), Some(remote)) = (&result, &self.remote) else {
            return result;
        };
        self.refresh_on_demand(remote).await;
        let after = self.verifier();
        if Arc::ptr_eq(&before, &after) {
            result
        } else {
            after.verify(token, now)
        }
    }

    async fn refresh_on_demand(&self, remote: &Remote) {
        let mut last = remote.last_on_demand.lock().await;
        if last.is_some_and(|t| t.elapsed() < remote.on_demand_interval) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh().await {
            tracing::warn!(
                error = %e,
                "Fetching the JWKS for a token with an unknown key id failed; the last good keys stay in use."
            );
        }
    }

    /// Fetches the set again and swaps it in when it differs; returns whether it did. On error
    /// the keys in use stay. A fixed source has nothing to fetch.
    pub async fn refresh(&self) -> Result<bool, FetchError> {
        let Some(remote) = &self.remote else {
            return Ok(false);
        };
        let (verifier, skipped) = build(&remote.fetcher, &remote.expect).await?;
        if verifier.same_keys(&self.verifier()) {
            return Ok(false);
        }
        tracing::info!(
            url = %remote.fetcher.url(),
            keys = verifier.key_count(),
            skipped,
            "The identity provider's JWKS changed; the new keys are in use."
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(verifier);
        Ok(true)
    }

    /// Refreshes every `every`, forever, logging failures (the last good keys stay). For a fixed
    /// source it never returns and does nothing. Run it beside the server, e.g. in a `select!`.
    pub async fn keep_fresh(&self, every: Duration) {
        if self.remote.is_none() {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "Refreshing the JWKS failed; the last good keys stay in use.");
            }
        }
    }
}

async fn build(
    fetcher: &JwksFetcher,
    expect: &Expectations,
) -> Result<(Verifier, usize), FetchError> {
    let jwks = fetcher.fetch().await?;
    Verifier::with_usable_keys(&jwks, expect.clone()).map_err(|e| FetchError::Invalid {
        url: fetcher.url(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[path = "jwks_fetch_tests.rs"]
mod tests;
