//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for requests to S3-compatible stores, written
//! from AWS's description of the algorithm.
//!
//! Signing a request takes four steps:
//!
//! 1. The **canonical request**: the method, the canonical URI (the path, each byte outside
//!    `A-Z a-z 0-9 - . _ ~` and `/` written `%XX` in upper-case hex, once: S3 does not normalise
//!    or double-encode paths), the canonical query string (every name and value encoded the same
//!    way, `/` included, sorted by name then value, a parameter without a value written `name=`),
//!    the canonical headers (lower-case names, sorted, values trimmed with inner runs of spaces
//!    folded to one, repeated headers joined by `,`, each line ending in a newline), the signed
//!    header names joined by `;`, and the hex SHA-256 of the payload. Lines are joined by `\n`.
//! 2. The **string to sign**: `AWS4-HMAC-SHA256`, the request time (`YYYYMMDDTHHMMSSZ`), the
//!    credential scope `YYYYMMDD/<region>/<service>/aws4_request`, and the hex SHA-256 of the
//!    canonical request, joined by `\n`.
//! 3. The **signing key**: HMAC-SHA256 chained from `"AWS4" + secret` over the date, the region,
//!    the service and `aws4_request`.
//! 4. The **signature**: hex HMAC-SHA256 of the string to sign under the signing key, sent as
//!    `Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<scope>,SignedHeaders=<names>,
//!    Signature=<hex>` (no spaces after the commas, as in AWS's S3 examples).
//!
//! [`Signer::sign`] signs every header the request carries when it is signed (the `x-amz-*`
//! ones, `content-md5`, `content-type`, `host`, …) except the few that proxies and HTTP stacks
//! add or rewrite on the way ([`UNSIGNED_HEADERS`]); it adds `x-amz-date` and, with a session
//! token, `x-amz-security-token` first so that both are signed. The payload hash is the caller's:
//! S3 wants it in `x-amz-content-sha256` as well, which the caller sets.

use std::fmt;

use chrono::{DateTime, Utc};
use http::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use ring::hmac;
use sha2::{Digest, Sha256};

/// The algorithm name that opens the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The header carrying the request time, `YYYYMMDDTHHMMSSZ`.
pub const X_AMZ_DATE: &str = "x-amz-date";

/// The header carrying a temporary credential's session token.
pub const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// The header carrying the payload's hex SHA-256 (S3 requires it on every request).
pub const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Headers left out of the signature: hop-by-hop headers and those an HTTP stack or proxy may
/// add or rewrite after signing, which would break the signature for no gain.
pub const UNSIGNED_HEADERS: [&str; 6] = [
    "authorization",
    "connection",
    "expect",
    "transfer-encoding",
    "user-agent",
    "x-amzn-trace-id",
];

/// The hex SHA-256 of an empty payload.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A header value holds bytes other than visible ASCII, space and tab, which SigV4 cannot
    /// canonicalise unambiguously.
    #[error("header {name} has a value that is not visible ASCII")]
    HeaderValue {
        /// The header's (lower-case) name.
        name: String,
    },
    /// The request has neither a `host` header nor a host in its URI.
    #[error("the request has no host to sign")]
    NoHost,
    /// A value the signer adds (the access key id, the session token, the region) cannot be a
    /// header value.
    #[error("{what} cannot be sent in an HTTP header")]
    NotAHeader {
        /// Which value.
        what: &'static str,
    },
}

/// AWS credentials: an access key id, its secret, and the session token that comes with
/// temporary credentials. `Debug` shows the key id only.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (`AKIA…`, `ASIA…`), sent in the clear in the credential scope.
    pub access_key_id: String,
    /// The secret access key; never sent, never logged.
    pub secret_access_key: String,
    /// The session token of temporary credentials, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Signs requests for one service in one region with one set of credentials.
#[derive(Debug, Clone)]
pub struct Signer {
    credentials: Credentials,
    region: String,
    service: String,
}

/// What [`Signer::sign`] computed, for diagnostics (a store's `SignatureDoesNotMatch` answer
/// carries the canonical request and string to sign it expected, to compare with these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The canonical request (step 1).
    pub canonical_request: String,
    /// The string to sign (step 2).
    pub string_to_sign: String,
    /// The signed header names, `;`-separated.
    pub signed_headers: String,
    /// The hex signature (step 4).
    pub signature: String,
}

impl Signer {
    /// A signer for S3 (`service` = `s3`) in `region`.
    pub fn new(credentials: Credentials, region: impl Into<String>) -> Self {
        Self {
            credentials,
            region: region.into(),
            service: "s3".to_owned(),
        }
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The same signer for another service name (the credential scope's third part).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Signs a request made at `now` whose payload hashes to `payload_sha256_hex`: sets
    /// `x-amz-date`, `x-amz-security-token` (with a session token) and `Authorization` in
    /// `headers`, replacing any earlier values, and returns the intermediate strings.
    pub fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        payload_sha256_hex: &str,
        now: DateTime<Utc>,
    ) -> Result<Signature, SignError> {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let date = now.format("%Y%m%d").to_string();
        headers.insert(X_AMZ_DATE, header_value(&amz_date, "the request time")?);
        headers.remove(X_AMZ_SECURITY_TOKEN);
        if let Some(token) = &self.credentials.session_token {
            headers.insert(
                X_AMZ_SECURITY_TOKEN,
                header_value(token, "the session token")?,
            );
        }
        headers.remove(AUTHORIZATION);

        let (canonical_request, signed_headers) =
            canonical_request(method, uri, headers, payload_sha256_hex)?;
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = string_to_sign(&amz_date, &scope, &canonical_request);
        let key = signing_key(
            &self.credentials.secret_access_key,
            &date,
            &self.region,
            &self.service,
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
        let signature = hex::encode(hmac::sign(&key, string_to_sign.as_bytes()));
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
            self.credentials.access_key_id
        );
        headers.insert(
            AUTHORIZATION,
            header_value(&authorization, "the access key id or region")?,
        );
        Ok(Signature {
            canonical_request,
            string_to_sign,
            signed_headers,
            signature,
        })
    }
}

fn header_value(text: &str, what: &'static str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(text).map_err(|_| SignError::NotAHeader { what })
}

/// The signing key for `date` (`YYYYMMDD`), `region` and `service`: HMAC-SHA256 chained from
/// `"AWS4" + secret` over the date, the region, the service and `aws4_request`. As good as the
/// secret for that day, region and service: never log it.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes());
        key = tag.as_ref().to_vec();
    }
    key
}

/// The string to sign: the algorithm, the request time, the credential scope and the hex
/// SHA-256 of the canonical request, one per line.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// The canonical request of a request and the `;`-joined names of the headers it signs: every
/// header in `headers` but [`UNSIGNED_HEADERS`], plus `host` (taken from the URI when `headers`
/// has none).
pub fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    payload_sha256_hex: &str,
) -> Result<(String, String), SignError> {
    let mut signed: Vec<(String, String)> = Vec::new();
    if !headers.contains_key(HOST) {
        signed.push(("host".to_owned(), host_of(uri)?));
    }
    let mut names: Vec<&HeaderName> = headers
        .keys()
        .filter(|name| !UNSIGNED_HEADERS.contains(&name.as_str()))
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    for name in names {
        let mut values = Vec::new();
        for value in headers.get_all(name) {
            let text = value.to_str().map_err(|_| SignError::HeaderValue {
                name: name.as_str().to_owned(),
            })?;
            values.push(canonical_header_value(text));
        }
        signed.push((name.as_str().to_owned(), values.join(",")));
    }
    signed.sort_by(|a, b| a.0.cmp(&b.0));

    let mut text = String::new();
    text.push_str(method.as_str());
    text.push('\n');
    text.push_str(&canonical_uri(uri.path()));
    text.push('\n');
    text.push_str(&canonical_query(uri.query().unwrap_or("")));
    text.push('\n');
    for (name, value) in &signed {
        text.push_str(name);
        text.push(':');
        text.push_str(value);
        text.push('\n');
    }
    text.push('\n');
    let signed_headers = signed
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    text.push_str(&signed_headers);
    text.push('\n');
    text.push_str(payload_sha256_hex);
    Ok((text, signed_headers))
}

/// The `Host` header an HTTP client sends for `uri`: the host, with the port when the URI names
/// one that is not the scheme's default.
pub fn host_of(uri: &Uri) -> Result<String, SignError> {
    let host = uri.host().ok_or(SignError::NoHost)?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Ok(match uri.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

/// A header value as SigV4 signs it: leading and trailing spaces and tabs removed, inner runs
/// of them folded to one space.
fn canonical_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical URI of a path as sent (percent-encoded or not): decoded, then encoded with
/// [`uri_encode`], `/` kept. An empty path is `/`.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    uri_encode(&percent_decode(path), false)
}

/// The canonical query string of a query as sent: each `name[=value]` decoded and re-encoded
/// with [`uri_encode`] (`/` included), sorted by name then value, joined by `&`; a parameter
/// without a value is written `name=`.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SigV4's URI encoding of `bytes`: `A-Z a-z 0-9 - . _ ~` as they are, `/` as it is unless
/// `encode_slash`, every other byte `%XX` with upper-case hex.
pub fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash);
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is. `+` stays `+`
/// (S3 reads query strings as RFC 3986, not as HTML forms).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|c| hex_digit(*c)),
                bytes.get(i + 2).and_then(|c| hex_digit(*c)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
