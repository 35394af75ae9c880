use std::collections::HashMap;

use super::*;

fn parse(text: &str) -> std::result::Result<BucketSettings, String> {
    toml::from_str::<BucketSettings>(text).map_err(|e| e.to_string())
}

fn key_of(e: Error) -> String {
    match e {
        Error::Config { key, .. } => key,
        other => panic!("not a config error: {other}"),
    }
}

const MINIMAL: &str =
    "endpoint = \"https://s3.eu-west-1.amazonaws.com\"\nbucket = \"calltrail-audit\"\n";

#[test]
fn defaults_apply() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.region, "us-east-1");
    assert_eq!(s.prefix, "");
    assert!(s.path_style);
    assert!(!s.allow_http);
    assert_eq!(s.object_lock, ObjectLockSetting::Off);
    assert_eq!(s.object_lock.mode(), None);
    s.validate().unwrap();
    assert_eq!(s.url(), "s3://calltrail-audit/");
    assert_eq!(s.key("tool_calls/a.parquet"), "tool_calls/a.parquet");
}

#[test]
fn object_lock_modes_parse() {
    let s = parse(&format!("{MINIMAL}object_lock = \"compliance\"\n")).unwrap();
    assert_eq!(s.object_lock.mode(), Some(LockMode::Compliance));
    let s = parse(&format!("{MINIMAL}object_lock = \"governance\"\n")).unwrap();
    assert_eq!(s.object_lock.mode(), Some(LockMode::Governance));
    assert!(parse(&format!("{MINIMAL}object_lock = \"strict\"\n")).is_err());
}

#[test]
fn unknown_keys_and_credentials_in_the_file_are_refused() {
    let e = parse(&format!("{MINIMAL}secret_access_key = \"x\"\n")).unwrap_err();
    assert!(e.contains("secret_access_key"), "{e}");
    assert!(
        parse("bucket = \"calltrail-audit\"\n").is_err(),
        "endpoint is required"
    );
}

#[test]
fn plain_http_needs_allow_http() {
    let text = "endpoint = \"http://127.0.0.1:9000\"\nbucket = \"calltrail-audit\"\n";
    let s = parse(text).unwrap();
    let e = s.validate().unwrap_err();
    assert!(e.to_string().contains("allow_http"), "{e}");
    assert_eq!(key_of(e), "bucket.endpoint");
    parse(&format!("{text}allow_http = true\n"))
        .unwrap()
        .validate()
        .unwrap();
}

/// The key named by the error of the minimal settings changed by `change`.
fn error_key(change: impl FnOnce(&mut BucketSettings)) -> String {
    let mut s = parse(MINIMAL).unwrap();
    change(&mut s);
    key_of(s.validate().unwrap_err())
}

#[test]
fn errors_name_the_key() {
    assert_eq!(
        error_key(|s| s.endpoint = "s3.amazonaws.com".into()),
        "bucket.endpoint"
    );
    assert_eq!(
        error_key(|s| s.endpoint = "https://".into()),
        "bucket.endpoint"
    );
    assert_eq!(error_key(|s| s.region = String::new()), "bucket.region");
    assert_eq!(
        error_key(|s| s.bucket = "Calltrail".into()),
        "bucket.bucket"
    );
    assert_eq!(error_key(|s| s.bucket = "a/b".into()), "bucket.bucket");
    assert_eq!(error_key(|s| s.prefix = "/prod".into()), "bucket.prefix");
    assert_eq!(error_key(|s| s.prefix = "prod/".into()), "bucket.prefix");
    assert_eq!(error_key(|s| s.prefix = "a/../b".into()), "bucket.prefix");
}

#[test]
fn prefix_is_the_root_of_keys_and_url() {
    let mut s = parse(MINIMAL).unwrap();
    s.prefix = "calltrail/prod".into();
    s.validate().unwrap();
    assert_eq!(s.url(), "s3://calltrail-audit/calltrail/prod/");
    assert_eq!(
        s.key("keys/calltrail.pub"),
        "calltrail/prod/keys/calltrail.pub"
    );
}

#[test]
fn credentials_come_from_the_environment_and_name_what_is_missing() {
    let env = |pairs: &[(&str, &str)]| {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    };
    let c = credentials_from(env(&[
        (ENV_ACCESS_KEY_ID, "AKIA1"),
        (ENV_SECRET_ACCESS_KEY, "s3cr3t"),
    ]))
    .unwrap();
    assert_eq!(c.access_key_id, "AKIA1");
    assert_eq!(c.secret_access_key, "s3cr3t");
    assert_eq!(c.session_token, None);
    assert!(!format!("{c:?}").contains("s3cr3t"));

    let c = credentials_from(env(&[
        (ENV_ACCESS_KEY_ID, "ASIA1"),
        (ENV_SECRET_ACCESS_KEY, "s"),
        (ENV_SESSION_TOKEN, "tok"),
    ]))
    .unwrap();
    assert_eq!(c.session_token.as_deref(), Some("tok"));

    let e = credentials_from(env(&[(ENV_SECRET_ACCESS_KEY, "s")])).unwrap_err();
    assert_eq!(key_of(e), ENV_ACCESS_KEY_ID);
    let e = credentials_from(env(&[
        (ENV_ACCESS_KEY_ID, "a"),
        (ENV_SECRET_ACCESS_KEY, ""),
    ]))
    .unwrap_err();
    assert_eq!(key_of(e), ENV_SECRET_ACCESS_KEY);
}

#[test]
fn connect_builds_the_store_and_lock_client() {
    let mut s = parse(MINIMAL).unwrap();
    s.object_lock = ObjectLockSetting::Compliance;
    let creds = Credentials {
        access_key_id: "a".into(),
        secret_access_key: "b".into(),
        session_token: Some("t".into()),
    };
    let b = s.connect(creds.clone()).unwrap();
    assert_eq!(b.lock.bucket(), "calltrail-audit");
    s.endpoint = "http://127.0.0.1:9000".into();
    assert_eq!(key_of(s.connect(creds).unwrap_err()), "bucket.endpoint");
}
