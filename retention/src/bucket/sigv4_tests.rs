//! SigV4 against the values AWS publishes (the signing-key derivation examples, the four S3
//! header-authentication examples with `AKIAIOSFODNN7EXAMPLE`, and one request of AWS's SigV4
//! test suite), then properties whose breakage those fixed vectors could miss.

use chrono::{DateTime, TimeZone, Utc};
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http::{Method, Uri};

use super::*;

/// The secret of AWS's S3 signature examples.
const S3_EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The secret of AWS's general SigV4 examples and test suite (note `+`, not `/`).
const GENERAL_EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn s3_example_signer() -> Signer {
    Signer::new(
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: S3_EXAMPLE_SECRET.into(),
            session_token: None,
        },
        "us-east-1",
    )
}

/// 2013-05-24T00:00:00Z, the time of the S3 examples.
fn may_24_2013() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).single().unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn authorization(headers: &HeaderMap) -> &str {
    headers.get(AUTHORIZATION).unwrap().to_str().unwrap()
}

#[test]
fn signing_keys_match_the_published_derivations() {
    // "Sample signing key" for the IAM request of 2011-09-09 in us-east-1.
    assert_eq!(
        hex::encode(signing_key(
            GENERAL_EXAMPLE_SECRET,
            "20110909",
            "us-east-1",
            "iam"
        )),
        "98f1d889fec4f4421adc522bab0ce1f82e6929c262ed15e5a94c90efd1e3b0e7"
    );
    // "Examples of how to derive a signing key": 2012-02-15, us-east-1, iam.
    assert_eq!(
        hex::encode(signing_key(
            GENERAL_EXAMPLE_SECRET,
            "20120215",
            "us-east-1",
            "iam"
        )),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn s3_get_object_example() {
    let uri: Uri = "https://examplebucket.s3.amazonaws.com/test.txt"
        .parse()
        .unwrap();
    let mut h = headers(&[
        ("range", "bytes=0-9"),
        (X_AMZ_CONTENT_SHA256, EMPTY_PAYLOAD_SHA256),
    ]);
    let sig = s3_example_signer()
        .sign(
            &Method::GET,
            &uri,
            &mut h,
            EMPTY_PAYLOAD_SHA256,
            may_24_2013(),
        )
        .unwrap();
    assert_eq!(
        sig.canonical_request,
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
         x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
         x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sig.string_to_sign,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
    assert_eq!(
        authorization(&h),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
         Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    assert_eq!(h.get(X_AMZ_DATE).unwrap(), "20130524T000000Z");
}

#[test]
fn s3_put_object_example() {
    // The key `test$file.text`: `$` is encoded in the canonical URI.
    let uri: Uri = "https://examplebucket.s3.amazonaws.com/test$file.text"
        .parse()
        .unwrap();
    let payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(
        hex::encode(Sha256::digest(b"Welcome to Amazon S3.")),
        payload
    );
    let mut h = headers(&[
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (X_AMZ_CONTENT_SHA256, payload),
    ]);
    let sig = s3_example_signer()
        .sign(&Method::PUT, &uri, &mut h, payload, may_24_2013())
        .unwrap();
    assert!(
        sig.canonical_request
            .starts_with("PUT\n/test%24file.text\n\n"),
        "{}",
        sig.canonical_request
    );
    assert!(
        sig.string_to_sign
            .ends_with("\n9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d")
    );
    assert_eq!(
        authorization(&h),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,\
         Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    );
}

#[test]
fn s3_get_bucket_lifecycle_example() {
    // A subresource without a value (`?lifecycle`), like `?retention` and `?object-lock`.
    let uri: Uri = "https://examplebucket.s3.amazonaws.com/?lifecycle"
        .parse()
        .unwrap();
    let mut h = headers(&[(X_AMZ_CONTENT_SHA256, EMPTY_PAYLOAD_SHA256)]);
    let sig = s3_example_signer()
        .sign(
            &Method::GET,
            &uri,
            &mut h,
            EMPTY_PAYLOAD_SHA256,
            may_24_2013(),
        )
        .unwrap();
    assert!(
        sig.canonical_request
            .starts_with("GET\n/\nlifecycle=\nhost:")
    );
    assert!(
        sig.string_to_sign
            .ends_with("\n9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca")
    );
    assert!(authorization(&h).ends_with(
        ",SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
         Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    ));
}

#[test]
fn s3_list_objects_example() {
    let uri: Uri = "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J"
        .parse()
        .unwrap();
    let mut h = headers(&[(X_AMZ_CONTENT_SHA256, EMPTY_PAYLOAD_SHA256)]);
    let sig = s3_example_signer()
        .sign(
            &Method::GET,
            &uri,
            &mut h,
            EMPTY_PAYLOAD_SHA256,
            may_24_2013(),
        )
        .unwrap();
    assert_eq!(
        sig.signature,
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    );
}

#[test]
fn test_suite_get_vanilla_query_order_key_case() {
    // AWS's SigV4 test suite, `get-vanilla-query-order-key-case`: the parameters arrive out of
    // order and must be signed sorted.
    let signer = Signer::new(
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: GENERAL_EXAMPLE_SECRET.into(),
            session_token: None,
        },
        "us-east-1",
    )
    .with_service("service");
    let uri: Uri = "https://example.amazonaws.com/?Param2=value2&Param1=value1"
        .parse()
        .unwrap();
    let mut h = HeaderMap::new();
    let when = Utc
        .with_ymd_and_hms(2015, 8, 30, 12, 36, 0)
        .single()
        .unwrap();
    let sig = signer
        .sign(&Method::GET, &uri, &mut h, EMPTY_PAYLOAD_SHA256, when)
        .unwrap();
    assert!(
        sig.canonical_request
            .starts_with("GET\n/\nParam1=value1&Param2=value2\n")
    );
    assert_eq!(
        authorization(&h),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request,\
         SignedHeaders=host;x-amz-date,\
         Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    );
}

/// The signature of the GET Object example after `change` altered its inputs.
fn get_object_signature(change: impl FnOnce(&mut Signer, &mut HeaderMap)) -> String {
    let uri: Uri = "https://examplebucket.s3.amazonaws.com/test.txt"
        .parse()
        .unwrap();
    let mut signer = s3_example_signer();
    let mut h = headers(&[
        ("range", "bytes=0-9"),
        (X_AMZ_CONTENT_SHA256, EMPTY_PAYLOAD_SHA256),
    ]);
    change(&mut signer, &mut h);
    signer
        .sign(
            &Method::GET,
            &uri,
            &mut h,
            EMPTY_PAYLOAD_SHA256,
            may_24_2013(),
        )
        .unwrap()
        .signature
}

#[test]
fn every_signed_input_changes_the_signature() {
    let base = get_object_signature(|_, _| {});
    assert_eq!(
        base,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    let changed = [
        get_object_signature(|_, h| {
            h.insert("range", HeaderValue::from_static("bytes=0-10"));
        }),
        get_object_signature(|_, h| {
            h.insert("x-amz-meta-hold", HeaderValue::from_static("yes"));
        }),
        get_object_signature(|s, _| s.region = "eu-west-1".into()),
        get_object_signature(|s, _| s.credentials.secret_access_key.push('x')),
        get_object_signature(|s, _| s.credentials.session_token = Some("token".into())),
    ];
    for (i, sig) in changed.iter().enumerate() {
        assert_ne!(sig, &base, "change #{i} left the signature unchanged");
    }
    // Headers a proxy or HTTP stack may set are not signed: adding one changes nothing.
    let with_agent = get_object_signature(|_, h| {
        h.insert("user-agent", HeaderValue::from_static("calltrail"));
    });
    assert_eq!(with_agent, base);
}

#[test]
fn every_x_amz_header_and_the_session_token_are_signed() {
    let signer = Signer::new(
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("session/token==".into()),
        },
        "us-east-1",
    );
    let uri: Uri = "http://127.0.0.1:9000/bucket/key?retention"
        .parse()
        .unwrap();
    let mut h = headers(&[
        ("x-amz-bypass-governance-retention", "true"),
        ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        (X_AMZ_CONTENT_SHA256, EMPTY_PAYLOAD_SHA256),
        ("user-agent", "calltrail"),
    ]);
    let sig = signer
        .sign(
            &Method::PUT,
            &uri,
            &mut h,
            EMPTY_PAYLOAD_SHA256,
            may_24_2013(),
        )
        .unwrap();
    assert_eq!(
        sig.signed_headers,
        "content-md5;host;x-amz-bypass-governance-retention;x-amz-content-sha256;x-amz-date;\
         x-amz-security-token"
    );
    assert_eq!(h.get(X_AMZ_SECURITY_TOKEN).unwrap(), "session/token==");
    // A non-default port is part of the signed host, as the HTTP client sends it.
    assert!(sig.canonical_request.contains("\nhost:127.0.0.1:9000\n"));
    assert!(
        sig.canonical_request
            .starts_with("PUT\n/bucket/key\nretention=\n")
    );

    // Signing again without a token removes the stale token header and replaces Authorization.
    let plain = Signer::new(
        Credentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        },
        "us-east-1",
    );
    let again = plain
        .sign(
            &Method::PUT,
            &uri,
            &mut h,
            EMPTY_PAYLOAD_SHA256,
            may_24_2013(),
        )
        .unwrap();
    assert!(h.get(X_AMZ_SECURITY_TOKEN).is_none());
    assert!(!again.signed_headers.contains("x-amz-security-token"));
    assert!(!again.signed_headers.contains("authorization"));
    assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
    assert!(authorization(&h).starts_with("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/"));
}

#[test]
fn query_parameters_are_encoded_then_sorted() {
    assert_eq!(canonical_query("b=2&a=1"), canonical_query("a=1&b=2"));
    assert_eq!(canonical_query("b=2&a=1"), "a=1&b=2");
    // Same name: sorted by value.
    assert_eq!(canonical_query("k=b&k=a"), "k=a&k=b");
    // Encoded the same whether the caller encoded them or not; `/`, `+`, `=` and space escaped.
    assert_eq!(
        canonical_query("versionId=a/b+c%3D d"),
        "versionId=a%2Fb%2Bc%3D%20d"
    );
    assert_eq!(
        canonical_query("versionId=a%2Fb%2Bc%3D%20d"),
        "versionId=a%2Fb%2Bc%3D%20d"
    );
    // Sorting is by encoded name: upper case before lower case, as bytes.
    assert_eq!(canonical_query("a=1&B=2"), "B=2&a=1");
    assert_eq!(
        canonical_query("retention&versionId=v1"),
        "retention=&versionId=v1"
    );
    assert_eq!(canonical_query(""), "");
}

#[test]
fn paths_are_encoded_once_with_slashes_kept() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/test$file.text"), "/test%24file.text");
    assert_eq!(canonical_uri("/test%24file.text"), "/test%24file.text");
    assert_eq!(
        canonical_uri("/b/date=2026-11-23/hour=07/seg%20ü.parquet"),
        "/b/date%3D2026-11-23/hour%3D07/seg%20%C3%BC.parquet"
    );
    // No normalisation: S3 keys may hold `..` and `//`.
    assert_eq!(canonical_uri("/b/a/../c//d"), "/b/a/../c//d");
    assert_eq!(uri_encode("a/b ~".as_bytes(), true), "a%2Fb%20~");
    assert_eq!(uri_encode("a/b ~".as_bytes(), false), "a/b%20~");
}

#[test]
fn header_values_are_trimmed_folded_and_joined() {
    let uri: Uri = "https://example.com/".parse().unwrap();
    let h = headers(&[
        ("x-amz-meta-a", "  one   two\tthree  "),
        ("x-amz-meta-b", "first"),
        ("x-amz-meta-b", "second"),
    ]);
    let (canonical, signed) =
        canonical_request(&Method::GET, &uri, &h, EMPTY_PAYLOAD_SHA256).unwrap();
    assert!(
        canonical.contains("\nx-amz-meta-a:one two three\n"),
        "{canonical}"
    );
    assert!(
        canonical.contains("\nx-amz-meta-b:first,second\n"),
        "{canonical}"
    );
    assert_eq!(signed, "host;x-amz-meta-a;x-amz-meta-b");
}

#[test]
fn unsignable_requests_are_refused() {
    let uri: Uri = "https://example.com/".parse().unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "x-amz-meta-name",
        HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
    );
    assert!(matches!(
        canonical_request(&Method::GET, &uri, &h, EMPTY_PAYLOAD_SHA256),
        Err(SignError::HeaderValue { name }) if name == "x-amz-meta-name"
    ));
    let relative: Uri = "/bucket/key".parse().unwrap();
    assert!(matches!(
        canonical_request(
            &Method::GET,
            &relative,
            &HeaderMap::new(),
            EMPTY_PAYLOAD_SHA256
        ),
        Err(SignError::NoHost)
    ));
}

#[test]
fn hosts_carry_only_non_default_ports() {
    let host = |u: &str| host_of(&u.parse::<Uri>().unwrap()).unwrap();
    assert_eq!(host("http://127.0.0.1:5000/b"), "127.0.0.1:5000");
    assert_eq!(host("http://s3.local:80/b"), "s3.local");
    assert_eq!(host("https://s3.local:443/b"), "s3.local");
    assert_eq!(host("https://s3.local:80/b"), "s3.local:80");
    assert_eq!(host("https://s3.local/b"), "s3.local");
}

#[test]
fn credentials_debug_hides_the_secret_and_token() {
    let c = Credentials {
        access_key_id: "AKIAEXAMPLE".into(),
        secret_access_key: "very-secret".into(),
        session_token: Some("very-token".into()),
    };
    let shown = format!("{c:?}");
    assert!(shown.contains("AKIAEXAMPLE"));
    assert!(!shown.contains("very-secret"));
    assert!(!shown.contains("very-token"));
}
