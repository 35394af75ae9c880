//! Real signed tokens (ES256 from a generated key, RS256 from a test key in
//! `tests/fixtures/jwt/`), and every way a token must be refused. The helpers also mint the
//! tokens of `jwks_fetch`'s tests.

use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

use super::*;

pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) fn expect() -> Expectations {
    Expectations {
        issuer: "https://idp.example".into(),
        audience: "calltrail".into(),
        leeway_secs: 30,
    }
}

pub(crate) fn claims(extra: serde_json::Value) -> Claims {
    let mut c: Claims = serde_json::from_value(serde_json::json!({
        "iss": "https://idp.example",
        "aud": "calltrail",
        "sub": "alice@bank.example",
        "exp": NOW + 600,
        "nbf": NOW - 10,
        "roles": ["team_lead"],
        "teams": ["payments"],
    }))
    .unwrap();
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            c.insert(k, v);
        }
    }
    c
}

pub(crate) fn local() -> LocalKey {
    LocalKey::from_pkcs8(&LocalKey::generate_pkcs8().unwrap()).unwrap()
}

/// An RS256 token from the test RSA key, and the JWKS holding its public half.
pub(crate) fn rsa_token(c: &Claims) -> (String, Jwks) {
    let der = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/jwt/rsa-test-key.der"
    ))
    .unwrap();
    let pair = RsaKeyPair::from_der(&der).unwrap();
    let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwks = Jwks {
        keys: vec![Jwk {
            kty: "RSA".into(),
            kid: Some("rsa-1".into()),
            n: Some(B64.encode(&parts.n)),
            e: Some(B64.encode(&parts.e)),
            crv: None,
            x: None,
            y: None,
        }],
    };
    let header = B64.encode(r#"{"alg":"RS256","typ":"JWT","kid":"rsa-1"}"#);
    let body = B64.encode(serde_json::to_vec(c).unwrap());
    let signing = format!("{header}.{body}");
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing.as_bytes(),
        &mut sig,
    )
    .unwrap();
    (format!("{signing}.{}", B64.encode(sig)), jwks)
}

#[test]
fn es256_and_rs256_tokens_verify_and_yield_their_claims() {
    let key = local();
    let v = Verifier::new(&key.jwks(), expect()).unwrap();
    let token = key.sign(&claims(serde_json::json!({}))).unwrap();
    let c = v.verify(&token, NOW).unwrap();
    assert_eq!(c["sub"], "alice@bank.example");
    assert_eq!(c["teams"][0], "payments");

    let (token, jwks) = rsa_token(&claims(serde_json::json!({"aud": ["other", "calltrail"]})));
    let v = Verifier::new(&jwks, expect()).unwrap();
    assert_eq!(v.verify(&token, NOW).unwrap()["roles"][0], "team_lead");
}

#[test]
fn every_bad_token_is_refused_for_its_reason() {
    let key = local();
    let v = Verifier::new(&key.jwks(), expect()).unwrap();
    let sign = |extra| key.sign(&claims(extra)).unwrap();

    assert_eq!(
        v.verify(&sign(serde_json::json!({"exp": NOW - 100})), NOW),
        Err(TokenError::Expired)
    );
    assert_eq!(
        v.verify(&sign(serde_json::json!({"exp": null})), NOW),
        Err(TokenError::Expired),
        "a token without exp never expires: refused"
    );
    assert_eq!(
        v.verify(&sign(serde_json::json!({"nbf": NOW + 3600})), NOW),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(
        v.verify(
            &sign(serde_json::json!({"iss": "https://evil.example"})),
            NOW
        ),
        Err(TokenError::Issuer)
    );
    assert_eq!(
        v.verify(&sign(serde_json::json!({"aud": "someone-else"})), NOW),
        Err(TokenError::Audience)
    );
    // Within the leeway, an expiry is tolerated.
    assert!(
        v.verify(&sign(serde_json::json!({"exp": NOW - 20})), NOW)
            .is_ok()
    );

    // Another key's signature.
    let other = local();
    let forged = other.sign(&claims(serde_json::json!({}))).unwrap();
    assert!(matches!(
        v.verify(&forged, NOW),
        Err(TokenError::UnknownKey(_) | TokenError::BadSignature)
    ));

    // A payload edited after signing.
    let token = sign(serde_json::json!({}));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] =
        B64.encode(serde_json::to_vec(&claims(serde_json::json!({"roles": ["auditor"]}))).unwrap());
    assert_eq!(
        v.verify(&parts.join("."), NOW),
        Err(TokenError::BadSignature)
    );

    // alg: none, and HMAC with the public key as secret: refused before any key is tried.
    let body = B64.encode(serde_json::to_vec(&claims(serde_json::json!({}))).unwrap());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
    ] {
        let t = format!("{}.{body}.", B64.encode(header));
        assert!(
            matches!(v.verify(&t, NOW), Err(TokenError::Algorithm(_))),
            "{header}"
        );
    }
    // An RS256 token checked against an EC-only JWKS: no key of that type.
    let (rsa, _) = rsa_token(&claims(serde_json::json!({})));
    assert!(matches!(
        v.verify(&rsa, NOW),
        Err(TokenError::UnknownKey(_))
    ));

    for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
        assert!(
            matches!(v.verify(junk, NOW), Err(TokenError::Malformed(_))),
            "{junk}"
        );
    }
}

#[test]
fn a_fetched_set_skips_keys_it_cannot_use_but_needs_one() {
    let key = local();
    let mut jwks = key.jwks();
    jwks.keys.push(Jwk {
        kty: "OKP".into(),
        kid: Some("ed-1".into()),
        n: None,
        e: None,
        crv: Some("Ed25519".into()),
        x: Some("AAAA".into()),
        y: None,
    });
    assert!(
        Verifier::new(&jwks, expect()).is_err(),
        "a file is checked strictly"
    );
    let (v, skipped) = Verifier::with_usable_keys(&jwks, expect()).unwrap();
    assert_eq!((v.key_count(), skipped), (1, 1));
    let token = key.sign(&claims(serde_json::json!({}))).unwrap();
    assert!(v.verify(&token, NOW).is_ok());
    assert!(v.same_keys(&Verifier::new(&key.jwks(), expect()).unwrap()));
    assert!(!v.same_keys(&Verifier::new(&local().jwks(), expect()).unwrap()));

    jwks.keys.remove(0);
    let e = Verifier::with_usable_keys(&jwks, expect()).unwrap_err();
    assert!(e.to_string().contains("no usable key"), "{e}");
}
