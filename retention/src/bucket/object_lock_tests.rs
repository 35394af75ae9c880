//! The Object Lock client's requests and answer parsing, without a server (`tests/object_lock.rs`
//! runs them against one).

use chrono::{TimeZone, Utc};
use http::header::AUTHORIZATION;

use super::*;
use crate::bucket::wire::MAX_MESSAGE_CHARS;

fn config(endpoint: &str, path_style: bool) -> BucketConfig {
    BucketConfig {
        endpoint: endpoint.to_owned(),
        region: "us-east-1".to_owned(),
        bucket: "calltrail-worm".to_owned(),
        credentials: Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: None,
        },
        path_style,
    }
}

fn client(endpoint: &str, path_style: bool) -> ObjectLockClient {
    ObjectLockClient::new(
        config(endpoint, path_style),
        &ClientOptions::new().with_allow_http(true),
    )
    .unwrap()
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> &'a str {
    request.headers().get(name).unwrap().to_str().unwrap()
}

#[test]
fn put_retention_request_is_addressed_encoded_and_signed() {
    let c = client("http://127.0.0.1:5000", true);
    let until = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single().unwrap();
    let body = retention_xml(LockMode::Compliance, until);
    let mut headers = HeaderMap::new();
    headers.insert("content-md5", content_md5(body.as_bytes()));
    let now = Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .unwrap();
    let request = c
        .build_request(
            Method::PUT,
            Some("tool_calls/date=2026-11-23/seg 1.parquet"),
            &[("retention", ""), ("versionId", "v/1+2=")],
            headers,
            Bytes::from(body.clone()),
            now,
        )
        .unwrap();
    assert_eq!(
        request.uri().to_string(),
        "http://127.0.0.1:5000/calltrail-worm/tool_calls/date%3D2026-11-23/seg%201.parquet\
         ?retention&versionId=v%2F1%2B2%3D"
    );
    assert_eq!(request.method(), Method::PUT);
    assert_eq!(
        header(&request, X_AMZ_CONTENT_SHA256),
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    assert_eq!(header(&request, "x-amz-date"), "20261123T100000Z");
    let auth = header(&request, AUTHORIZATION.as_str());
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261123/us-east-1/s3/aws4_request,\
             SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date,Signature="
        ),
        "{auth}"
    );
    assert_eq!(request.body().as_bytes().unwrap(), body.as_bytes());
}

#[test]
fn virtual_hosted_and_prefixed_endpoints() {
    let now = Utc::now();
    let c = client("https://s3.eu-west-1.amazonaws.com", false);
    let r = c
        .build_request(
            Method::GET,
            None,
            &[("object-lock", "")],
            HeaderMap::new(),
            Bytes::new(),
            now,
        )
        .unwrap();
    assert_eq!(
        r.uri().to_string(),
        "https://calltrail-worm.s3.eu-west-1.amazonaws.com/?object-lock"
    );
    let c = client("http://gateway:9000/s3/", true);
    let r = c
        .build_request(
            Method::DELETE,
            Some("k"),
            &[("versionId", "7")],
            HeaderMap::new(),
            Bytes::new(),
            now,
        )
        .unwrap();
    assert_eq!(
        r.uri().to_string(),
        "http://gateway:9000/s3/calltrail-worm/k?versionId=7"
    );
    // The bucket itself: a trailing slash after its name.
    let r = c
        .build_request(Method::PUT, None, &[], HeaderMap::new(), Bytes::new(), now)
        .unwrap();
    assert_eq!(
        r.uri().to_string(),
        "http://gateway:9000/s3/calltrail-worm/"
    );
    assert!(matches!(
        c.build_request(
            Method::GET,
            Some(""),
            &[],
            HeaderMap::new(),
            Bytes::new(),
            now
        ),
        Err(BucketError::InvalidRequest(_))
    ));
}

#[test]
fn bad_configurations_are_refused() {
    let options = ClientOptions::new();
    for (endpoint, bucket) in [
        ("ftp://s3.local", "b-1"),
        ("s3.local:9000", "b-1"),
        ("not a url", "b-1"),
        ("http://s3.local", ""),
        ("http://s3.local", "a/b"),
    ] {
        let mut c = config(endpoint, true);
        c.bucket = bucket.to_owned();
        assert!(
            matches!(
                ObjectLockClient::new(c, &options),
                Err(BucketError::Config(_))
            ),
            "{endpoint} {bucket:?} accepted"
        );
    }
}

#[test]
fn retention_body_and_content_md5() {
    let until = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single().unwrap();
    assert_eq!(
        retention_xml(LockMode::Governance, until),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>GOVERNANCE</Mode>\
         <RetainUntilDate>2030-01-02T03:04:05.000Z</RetainUntilDate></Retention>"
    );
    // RFC 1321's test vectors, base64-encoded.
    assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
}

#[test]
fn retention_answers_parse_whatever_the_namespace_form() {
    let until = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single().unwrap();
    // Our own body reads back as what it says.
    assert_eq!(
        parse_retention(retention_xml(LockMode::Compliance, until).as_bytes()).unwrap(),
        Retention {
            mode: LockMode::Compliance,
            retain_until: until
        }
    );
    let prefixed = "<s3:Retention xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  \
                    <s3:Mode>GOVERNANCE</s3:Mode>\n  \
                    <s3:RetainUntilDate> 2030-01-02T04:04:05+01:00 </s3:RetainUntilDate>\n\
                    </s3:Retention>";
    assert_eq!(
        parse_retention(prefixed.as_bytes()).unwrap(),
        Retention {
            mode: LockMode::Governance,
            retain_until: until
        }
    );
    for bad in [
        "<Retention><RetainUntilDate>2030-01-02T03:04:05Z</RetainUntilDate></Retention>",
        "<Retention><Mode>LEGAL_HOLD</Mode><RetainUntilDate>2030-01-02T03:04:05Z</RetainUntilDate></Retention>",
        "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>soon</RetainUntilDate></Retention>",
        "<Retention><Mode>COMPLIANCE</Mode>",
        "<Retention><Mode>COMPLIANCE</Wrong></Retention>",
    ] {
        assert!(
            matches!(
                parse_retention(bad.as_bytes()),
                Err(BucketError::Response(_))
            ),
            "accepted {bad}"
        );
    }
}

#[test]
fn error_answers_carry_code_and_message() {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                <Message>Access Denied because object protected by object lock &amp; &#x263A;\
                </Message><RequestId>1</RequestId></Error>";
    match status_error(StatusCode::FORBIDDEN, body.as_bytes()) {
        BucketError::Status {
            status,
            code,
            message,
        } => {
            assert_eq!(status, 403);
            assert_eq!(code, "AccessDenied");
            assert_eq!(
                message,
                "Access Denied because object protected by object lock & \u{263A}"
            );
        }
        other => panic!("{other:?}"),
    }
    // No error document (a HEAD, a proxy's HTML page): the status names the error.
    let e = status_error(StatusCode::FORBIDDEN, b"<html>nope</html>");
    assert_eq!(e.code(), Some("Forbidden"));
    let e = status_error(StatusCode::SERVICE_UNAVAILABLE, b"");
    assert_eq!(e.code(), Some("ServiceUnavailable"));
    // A flood of a message is cut.
    let long = format!(
        "<Error><Code>X</Code><Message>{}</Message></Error>",
        "m".repeat(5000)
    );
    match status_error(StatusCode::BAD_REQUEST, long.as_bytes()) {
        BucketError::Status { message, .. } => {
            assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lock_modes_round_trip() {
    for mode in [LockMode::Governance, LockMode::Compliance] {
        assert_eq!(mode.as_str().parse::<LockMode>().unwrap(), mode);
    }
    assert!("compliance".parse::<LockMode>().is_err());
}

#[test]
fn head_object_lock_headers() {
    let mut h = HeaderMap::new();
    assert_eq!(retention_from_headers(&h).unwrap(), None);
    h.insert(
        "x-amz-object-lock-mode",
        HeaderValue::from_static("COMPLIANCE"),
    );
    // A mode without its date is not a retention.
    assert!(matches!(
        retention_from_headers(&h),
        Err(BucketError::Response(_))
    ));
    h.insert(
        "x-amz-object-lock-retain-until-date",
        HeaderValue::from_static("2030-01-02T03:04:05.000Z"),
    );
    assert_eq!(
        retention_from_headers(&h).unwrap(),
        Some(Retention {
            mode: LockMode::Compliance,
            retain_until: Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single().unwrap(),
        })
    );
    h.insert(
        "x-amz-object-lock-retain-until-date",
        HeaderValue::from_static("tomorrow"),
    );
    assert!(retention_from_headers(&h).is_err());
}

#[test]
fn xml_answers_are_told_from_objects() {
    let with = |ct: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        is_xml(&h)
    };
    assert!(with("application/xml"));
    assert!(with("Application/XML; charset=utf-8"));
    assert!(with("text/xml"));
    assert!(!with("binary/octet-stream"));
    assert!(!with("application/vnd.apache.parquet"));
    assert!(!is_xml(&HeaderMap::new()));
}
