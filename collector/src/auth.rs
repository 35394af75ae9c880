//! Ingest authentication by bearer token or client certificate.
//!
//! Tokens are configured by their SHA-256 (never in clear), each naming the source it
//! identifies (`gateway-eu-1`), which every record it delivers carries in `ingest_source`.
//! Presented tokens are hashed and compared against every configured hash in constant time.
//! Authentication is on by default as soon as a receiver listens beyond loopback.
//!
//! With client certificates verified during the TLS handshake (`receivers.tls.client_ca_file`),
//! a verified certificate authenticates a request by itself. Its source is the name configured
//! for its subject in `auth.client_certs`, or else the subject DN itself
//! (`CN=gateway-eu-1,O=Bank`). A bearer token presented alongside is still checked (a wrong one
//! is refused), but the certificate names the source.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// When tokens are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Required when any receiver listens beyond loopback (default).
    #[default]
    Auto,
    /// Always required.
    Required,
    /// Never required: only allowed while every receiver listens on loopback.
    Disabled,
}

/// One accepted token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The source this token identifies, recorded on every row it delivers.
    pub source: String,
    /// Hex SHA-256 of the token (`calltrail ingest-token` prints one).
    pub sha256: String,
    /// A revoked token is refused with a message saying so.
    #[serde(default)]
    pub revoked: bool,
}

/// A source name for a client certificate subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertEntry {
    /// The certificate's subject DN in RFC 4514 form, as recorded without a mapping
    /// (`CN=gateway-eu-1,O=Bank`); matched exactly.
    pub subject: String,
    /// The source recorded (in `ingest_source`) for requests with this certificate.
    pub source: String,
}

/// The `[auth]` configuration section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `auto` (default), `required` or `disabled`.
    pub mode: AuthMode,
    /// Accepted tokens.
    pub tokens: Vec<TokenEntry>,
    /// Source names for client certificate subjects; a verified certificate whose subject is
    /// not listed is recorded under its subject DN.
    pub client_certs: Vec<ClientCertEntry>,
}

/// Why a request was not authenticated (HTTP 401, gRPC `UNAUTHENTICATED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    /// The header is not a bearer token.
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    /// No configured token matches.
    #[error("unknown bearer token")]
    Unknown,
    /// The token was revoked.
    #[error("this bearer token has been revoked")]
    Revoked,
}

#[derive(Debug, Clone)]
struct Entry {
    digest: [u8; 32],
    source: String,
    revoked: bool,
}

/// Checks bearer tokens and maps client certificate subjects to sources.
#[derive(Debug, Clone)]
pub struct Authenticator {
    entries: Vec<Entry>,
    /// Subject DN → source name.
    subjects: HashMap<String, String>,
    required: bool,
}

impl Authenticator {
    /// Compiles the configuration for receivers without client certificates.
    /// `beyond_loopback` says whether any receiver listens on a non-loopback address. Errors
    /// name the key.
    pub fn new(config: &AuthConfig, beyond_loopback: bool) -> Result<Self, (String, String)> {
        Self::with_client_certs(config, beyond_loopback, false)
    }

    /// Compiles the configuration. `beyond_loopback` says whether any receiver listens on a
    /// non-loopback address; `client_certs` whether client certificates are verified (and so
    /// can authenticate requests). Errors name the key.
    pub fn with_client_certs(
        config: &AuthConfig,
        beyond_loopback: bool,
        client_certs: bool,
    ) -> Result<Self, (String, String)> {
        let mut entries = Vec::with_capacity(config.tokens.len());
        for (i, t) in config.tokens.iter().enumerate() {
            let digest = hex::decode(t.sha256.trim())
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
                .ok_or_else(|| {
                    (
                        format!("auth.tokens[{i}].sha256"),
                        "must be 64 hex characters (a SHA-256)".to_string(),
                    )
                })?;
            if t.source.trim().is_empty() {
                return Err((
                    format!("auth.tokens[{i}].source"),
                    "must not be empty".into(),
                ));
            }
            entries.push(Entry {
                digest,
                source: t.source.clone(),
                revoked: t.revoked,
            });
        }
        let subjects = compile_subjects(&config.client_certs, client_certs)?;
        let required = match config.mode {
            AuthMode::Required => true,
            AuthMode::Auto => beyond_loopback,
            AuthMode::Disabled if beyond_loopback => {
                return Err((
                    "auth.mode".into(),
                    "`disabled` is only allowed while every receiver listens on loopback".into(),
                ));
            }
            AuthMode::Disabled => false,
        };
        if required && !client_certs && !entries.iter().any(|e| !e.revoked) {
            return Err((
                "auth.tokens".into(),
                "authentication is required (a receiver listens beyond loopback, or auth.mode = \"required\") but no usable token is configured, nor client certificates (receivers.tls.client_ca_file)".into(),
            ));
        }
        Ok(Self {
            entries,
            subjects,
            required,
        })
    }

    /// No authentication (loopback-only default).
    pub fn open() -> Self {
        Self {
            entries: Vec::new(),
            subjects: HashMap::new(),
            required: false,
        }
    }

    /// Authenticates a request by its `Authorization` header value and the subject DN of the
    /// client certificate verified on its connection. A certificate authenticates by itself and
    /// names the source (a token sent alongside must still be valid); without one, this is
    /// [`Authenticator::check`].
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        client_subject: Option<&str>,
    ) -> Result<Option<String>, AuthError> {
        let Some(subject) = client_subject else {
            return self.check(authorization);
        };
        if authorization.is_some() {
            self.check(authorization)?;
        }
        let source = self.subjects.get(subject).map_or(subject, String::as_str);
        Ok(Some(source.to_string()))
    }

    /// Checks an `Authorization` header value. Returns the source name when a token was
    /// presented and accepted, `None` when none is required and none was sent.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Option<String>, AuthError> {
        let Some(value) = authorization else {
            return if self.required {
                Err(AuthError::Missing)
            } else {
                Ok(None)
            };
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        // Compare against every entry, so the time taken does not depend on which matched.
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&digest)) {
                found = Some(e);
            }
        }
        match found {
            None => Err(AuthError::Unknown),
            Some(e) if e.revoked => Err(AuthError::Revoked),
            Some(e) => Ok(Some(e.source.clone())),
        }
    }
}

fn compile_subjects(
    entries: &[ClientCertEntry],
    client_certs: bool,
) -> Result<HashMap<String, String>, (String, String)> {
    if !entries.is_empty() && !client_certs {
        return Err((
            "auth.client_certs".into(),
            "client certificates are not verified: set receivers.tls.client_ca_file".into(),
        ));
    }
    let mut subjects = HashMap::with_capacity(entries.len());
    for (i, c) in entries.iter().enumerate() {
        let subject = c.subject.trim();
        if subject.is_empty() {
            return Err((
                format!("auth.client_certs[{i}].subject"),
                "must not be empty".into(),
            ));
        }
        if c.source.trim().is_empty() {
            return Err((
                format!("auth.client_certs[{i}].source"),
                "must not be empty".into(),
            ));
        }
        if subjects
            .insert(subject.to_string(), c.source.clone())
            .is_some()
        {
            return Err((
                format!("auth.client_certs[{i}].subject"),
                format!("`{subject}` is listed twice"),
            ));
        }
    }
    Ok(subjects)
}

/// Hex SHA-256 of a token, as configured in `auth.tokens[].sha256`.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: AuthMode) -> AuthConfig {
        AuthConfig {
            mode,
            tokens: vec![
                TokenEntry {
                    source: "gateway-eu-1".into(),
                    sha256: token_sha256("s3cret"),
                    revoked: false,
                },
                TokenEntry {
                    source: "old-gw".into(),
                    sha256: token_sha256("old"),
                    revoked: true,
                },
            ],
            client_certs: vec![],
        }
    }

    #[test]
    fn tokens_map_to_sources() {
        let a = Authenticator::new(&config(AuthMode::Required), false).unwrap();
        assert_eq!(
            a.check(Some(b"Bearer s3cret")),
            Ok(Some("gateway-eu-1".into()))
        );
        assert_eq!(a.check(Some(b"Bearer wrong")), Err(AuthError::Unknown));
        assert_eq!(a.check(Some(b"Bearer old")), Err(AuthError::Revoked));
        assert_eq!(a.check(Some(b"Basic czNjcmV0")), Err(AuthError::Malformed));
        assert_eq!(a.check(Some(b"Bearer ")), Err(AuthError::Malformed));
        assert_eq!(a.check(None), Err(AuthError::Missing));
    }

    #[test]
    fn auto_requires_tokens_beyond_loopback_only() {
        let a = Authenticator::new(&config(AuthMode::Auto), false).unwrap();
        assert_eq!(a.check(None), Ok(None));
        assert_eq!(
            a.check(Some(b"Bearer wrong")),
            Err(AuthError::Unknown),
            "a wrong token is never ignored"
        );
        let a = Authenticator::new(&config(AuthMode::Auto), true).unwrap();
        assert_eq!(a.check(None), Err(AuthError::Missing));
        let e = Authenticator::new(&AuthConfig::default(), true).unwrap_err();
        assert_eq!(e.0, "auth.tokens");
        let e = Authenticator::new(
            &AuthConfig {
                mode: AuthMode::Disabled,
                tokens: vec![],
                client_certs: vec![],
            },
            true,
        )
        .unwrap_err();
        assert_eq!(e.0, "auth.mode");
    }

    #[test]
    fn bad_hashes_name_the_key() {
        let mut c = config(AuthMode::Auto);
        c.tokens[1].sha256 = "abc".into();
        assert_eq!(
            Authenticator::new(&c, false).unwrap_err().0,
            "auth.tokens[1].sha256"
        );
    }

    const GW: &str = "CN=gateway-eu-1,O=Bank";

    fn with_certs(mode: AuthMode, tokens: bool) -> AuthConfig {
        let mut c = config(mode);
        if !tokens {
            c.tokens.clear();
        }
        c.client_certs = vec![ClientCertEntry {
            subject: "CN=mapped,O=Bank".into(),
            source: "mapped-gw".into(),
        }];
        c
    }

    #[test]
    fn a_verified_certificate_authenticates_and_names_the_source() {
        let a = Authenticator::with_client_certs(&with_certs(AuthMode::Required, true), true, true)
            .unwrap();
        assert_eq!(a.authenticate(None, Some(GW)), Ok(Some(GW.to_string())));
        assert_eq!(
            a.authenticate(None, Some("CN=mapped,O=Bank")),
            Ok(Some("mapped-gw".into()))
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer s3cret"), Some(GW)),
            Ok(Some(GW.to_string())),
            "the certificate names the source"
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer wrong"), Some(GW)),
            Err(AuthError::Unknown),
            "a wrong token is refused even with a certificate"
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer old"), Some(GW)),
            Err(AuthError::Revoked)
        );
        // Without a certificate, the token rules apply as before.
        assert_eq!(a.authenticate(None, None), Err(AuthError::Missing));
        assert_eq!(
            a.authenticate(Some(b"Bearer s3cret"), None),
            Ok(Some("gateway-eu-1".into()))
        );
    }

    #[test]
    fn client_certificates_can_replace_tokens() {
        // Beyond loopback, auto mode needs some credential: certificates are one.
        let a = Authenticator::with_client_certs(&with_certs(AuthMode::Auto, false), true, true)
            .unwrap();
        assert_eq!(a.authenticate(None, None), Err(AuthError::Missing));
        assert_eq!(a.authenticate(None, Some(GW)), Ok(Some(GW.to_string())));
        let e = Authenticator::new(&config(AuthMode::Auto), true).map(|_| ());
        assert!(e.is_ok(), "tokens alone still do");
        let mut none = with_certs(AuthMode::Auto, false);
        none.client_certs.clear();
        let e = Authenticator::new(&none, true).unwrap_err();
        assert_eq!(e.0, "auth.tokens");
        assert!(e.1.contains("client_ca_file"), "{}", e.1);
    }

    #[test]
    fn bad_certificate_mappings_name_the_key() {
        let e = Authenticator::with_client_certs(&with_certs(AuthMode::Auto, true), false, false)
            .unwrap_err();
        assert_eq!(e.0, "auth.client_certs");
        let mut c = with_certs(AuthMode::Auto, true);
        c.client_certs.push(c.client_certs[0].clone());
        let e = Authenticator::with_client_certs(&c, false, true).unwrap_err();
        assert_eq!(e.0, "auth.client_certs[1].subject");
        let mut c = with_certs(AuthMode::Auto, true);
        c.client_certs[0].source = " ".into();
        let e = Authenticator::with_client_certs(&c, false, true).unwrap_err();
        assert_eq!(e.0, "auth.client_certs[0].source");
        let mut c = with_certs(AuthMode::Auto, true);
        c.client_certs[0].subject = String::new();
        let e = Authenticator::with_client_certs(&c, false, true).unwrap_err();
        assert_eq!(e.0, "auth.client_certs[0].subject");
    }
}
