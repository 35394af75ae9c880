//! Ingest authentication by bearer token.
//!
//! Tokens are configured by their SHA-256 (never in clear), each naming the source it
//! identifies (`gateway-eu-1`), which every record it delivers carries in `ingest_source`.
//! Presented tokens are hashed and compared against every configured hash in constant time.
//! Authentication is on by default as soon as a receiver listens beyond loopback.

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

/// The `[auth]` configuration section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `auto` (default), `required` or `disabled`.
    pub mode: AuthMode,
    /// Accepted tokens.
    pub tokens: Vec<TokenEntry>,
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

/// Checks bearer tokens.
#[derive(Debug, Clone)]
pub struct Authenticator {
    entries: Vec<Entry>,
    required: bool,
}

impl Authenticator {
    /// Compiles the configuration. `beyond_loopback` says whether any receiver listens on a
    /// non-loopback address. Errors name the key.
    pub fn new(config: &AuthConfig, beyond_loopback: bool) -> Result<Self, (String, String)> {
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
        if required && !entries.iter().any(|e| !e.revoked) {
            return Err((
                "auth.tokens".into(),
                "authentication is required (a receiver listens beyond loopback, or auth.mode = \"required\") but no usable token is configured".into(),
            ));
        }
        Ok(Self { entries, required })
    }

    /// No authentication (loopback-only default).
    pub fn open() -> Self {
        Self {
            entries: Vec::new(),
            required: false,
        }
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
}
