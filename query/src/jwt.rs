//! Bearer tokens for the query API: JWTs signed with RS256 or ES256, verified against a JWKS
//! (RFC 7517), with `iss`, `aud`, `exp` and `nbf` checked. Nothing but those two algorithms is
//! accepted: `alg: none`, HMAC and anything else are refused before any key is looked at, and a
//! key is only used with the algorithm of its own type (no RSA/EC confusion).
//!
//! Also mints ES256 tokens with a local key, so that the embedded default (`calltrail token`)
//! works without an identity provider.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// Why a token was refused. Messages say what failed, never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or a part is not the JSON it must be.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// An algorithm other than RS256 and ES256 (`none`, HS256...).
    #[error("algorithm {0:?} is not accepted (only RS256 and ES256)")]
    Algorithm(String),
    /// No key of the JWKS fits the token's `kid` and algorithm.
    #[error("no key in the JWKS matches the token (kid {0:?})")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` is past (or missing).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not include the configured audience.
    #[error("wrong audience")]
    Audience,
    /// The JWKS itself is unusable.
    #[error("JWKS: {0}")]
    Jwks(String),
}

/// One JSON Web Key, as much of it as verification needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA` or `EC`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve: only `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A JWKS: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A usable public key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec(Vec<u8>),
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    B64.decode(part)
        .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))
}

impl Jwk {
    fn public_key(&self) -> Result<PublicKey, TokenError> {
        let field = |v: &Option<String>, name: &str| {
            v.as_deref()
                .ok_or_else(|| TokenError::Jwks(format!("a {} key lacks {name}", self.kty)))
                .and_then(|s| {
                    b64(s, name).map_err(|_| TokenError::Jwks(format!("{name} is not base64url")))
                })
        };
        match self.kty.as_str() {
            "RSA" => Ok(PublicKey::Rsa {
                n: field(&self.n, "n")?,
                e: field(&self.e, "e")?,
            }),
            "EC" if self.crv.as_deref() == Some("P-256") => {
                let (x, y) = (field(&self.x, "x")?, field(&self.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(TokenError::Jwks("a P-256 key needs 32-byte x and y".into()));
                }
                let mut point = vec![0x04];
                point.extend(x);
                point.extend(y);
                Ok(PublicKey::Ec(point))
            }
            other => Err(TokenError::Jwks(format!(
                "key type {other:?} (curve {:?}) is not supported: RSA or EC P-256",
                self.crv
            ))),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// What the verifier checks besides the signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Required `iss`.
    pub issuer: String,
    /// Required member of `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// A verified token's claims.
pub type Claims = BTreeMap<String, serde_json::Value>;

/// Verifies tokens against a JWKS.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<(Option<String>, PublicKey)>,
    expect: Expectations,
}

impl Verifier {
    /// A verifier of tokens signed by a key of `jwks`.
    pub fn new(jwks: &Jwks, expect: Expectations) -> Result<Self, TokenError> {
        let keys = jwks
            .keys
            .iter()
            .map(|k| Ok((k.kid.clone(), k.public_key()?)))
            .collect::<Result<Vec<_>, TokenError>>()?;
        if keys.is_empty() {
            return Err(TokenError::Jwks("it holds no key".into()));
        }
        Ok(Self { keys, expect })
    }

    /// A verifier of tokens signed by the usable keys of `jwks`, and how many keys it skipped:
    /// an identity provider's published set may hold keys of other types (OKP, P-384) beside its
    /// signing keys, and one such key must not make the whole set unusable. Fails only when no
    /// key is usable.
    pub fn with_usable_keys(
        jwks: &Jwks,
        expect: Expectations,
    ) -> Result<(Self, usize), TokenError> {
        let keys: Vec<_> = jwks
            .keys
            .iter()
            .filter_map(|k| Some((k.kid.clone(), k.public_key().ok()?)))
            .collect();
        let skipped = jwks.keys.len() - keys.len();
        if keys.is_empty() {
            return Err(TokenError::Jwks(format!(
                "it holds no usable key (RSA or EC P-256) among its {}",
                jwks.keys.len()
            )));
        }
        Ok((Self { keys, expect }, skipped))
    }

    /// How many keys it trusts.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether `other` trusts exactly the same keys, under the same ids.
    pub fn same_keys(&self, other: &Self) -> bool {
        self.keys == other.keys
    }

    /// The claims of `token` at time `now` (Unix seconds), once everything checks.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "not three dot-separated parts".into(),
            ));
        };
        let header: Header = serde_json::from_slice(&b64(h, "the header")?)
            .map_err(|_| TokenError::Malformed("the header is not JSON".into()))?;
        let want_rsa = match header.alg.as_str() {
            "RS256" => true,
            "ES256" => false,
            other => return Err(TokenError::Algorithm(other.to_owned())),
        };
        let sig = b64(s, "the signature")?;
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        let candidates = self.keys.iter().filter(|(kid, key)| {
            header.kid.as_ref().is_none_or(|k| kid.as_ref() == Some(k))
                && matches!(key, PublicKey::Rsa { .. }) == want_rsa
        });
        let mut any = false;
        let mut verified = false;
        for (_, key) in candidates {
            any = true;
            let ok = match key {
                PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &sig)
                    .is_ok(),
                PublicKey::Ec(point) => {
                    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(message, &sig)
                        .is_ok()
                }
            };
            if ok {
                verified = true;
                break;
            }
        }
        if !any {
            return Err(TokenError::UnknownKey(header.kid));
        }
        if !verified {
            return Err(TokenError::BadSignature);
        }
        let claims: Claims = serde_json::from_slice(&b64(p, "the payload")?)
            .map_err(|_| TokenError::Malformed("the payload is not a JSON object".into()))?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), TokenError> {
        let leeway = self.expect.leeway_secs;
        let time = |k: &str| claims.get(k).and_then(serde_json::Value::as_u64);
        match time("exp") {
            Some(exp) if now <= exp.saturating_add(leeway) => {}
            _ => return Err(TokenError::Expired),
        }
        if time("nbf").is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if claims.get("iss").and_then(serde_json::Value::as_str) != Some(&self.expect.issuer) {
            return Err(TokenError::Issuer);
        }
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == self.expect.audience,
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(self.expect.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::Audience);
        }
        Ok(())
    }
}

/// A local ES256 signing key: mints tokens `serve` trusts when no identity provider is set.
pub struct LocalKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// A new key, as PKCS#8 DER (to store with mode 0600).
    pub fn generate_pkcs8() -> Result<Vec<u8>, TokenError> {
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| TokenError::Jwks("cannot generate a P-256 key".into()))
    }

    /// The key in PKCS#8 DER `pkcs8`.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TokenError> {
        let rng = ring::rand::SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|_| TokenError::Jwks("the local key is not a P-256 PKCS#8 key".into()))?;
        let kid = hex::encode(
            &ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref()).as_ref()[..8],
        );
        Ok(Self { pair, kid })
    }

    /// Its public half, as a JWKS.
    pub fn jwks(&self) -> Jwks {
        let point = self.pair.public_key().as_ref();
        Jwks {
            keys: vec![Jwk {
                kty: "EC".into(),
                kid: Some(self.kid.clone()),
                n: None,
                e: None,
                crv: Some("P-256".into()),
                x: Some(B64.encode(&point[1..33])),
                y: Some(B64.encode(&point[33..65])),
            }],
        }
    }

    /// A signed token carrying `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let body = serde_json::to_vec(claims).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let mut token = format!("{}.{}", B64.encode(header.to_string()), B64.encode(body));
        let rng = ring::rand::SystemRandom::new();
        let sig = self
            .pair
            .sign(&rng, token.as_bytes())
            .map_err(|_| TokenError::BadSignature)?;
        token.push('.');
        token.push_str(&B64.encode(sig.as_ref()));
        Ok(token)
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
pub(crate) mod tests;
