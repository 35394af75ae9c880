//! The store in an S3 bucket with Object Lock, end to end against a real S3-compatible server
//! that checks every signature (moto, `support/moto.rs`): `calltrail serve` records a demo
//! workload, `calltrail bucket init` creates a COMPLIANCE bucket and `calltrail bucket push`
//! copies the sealed store into it (with temporary credentials and their session token). Then:
//! a second push uploads nothing; `calltrail query --from-bucket` counts what the local query
//! counts; pyarrow's own S3 client reads the same rows as Hive-partitioned Parquet; a pushed
//! segment's version is locked in COMPLIANCE mode until the segment's retention expiry and
//! refuses deletion; the private key never reaches the bucket.

#![allow(clippy::unwrap_used)]

#[path = "support/moto.rs"]
mod moto;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Timelike;

use calltrail_retention::bucket::config::{BucketSettings, ObjectLockSetting};
use calltrail_retention::bucket::object_lock::{BucketError, LockMode, Retention};
use calltrail_retention::bucket::push::upload_file;
use calltrail_retention::bucket::sigv4::Credentials;
use calltrail_retention::discover;
use calltrail_retention::enforce::{hour_start, segment_expiry};
use calltrail_retention::policy::RetentionConfig;
use moto::{Keys, Moto, REGION};

use object_store::ObjectStoreExt;
use support::{BIN, Output, Row, Server, as_i64, query_dir, run};

const BUCKET: &str = "calltrail-archive";
const PREFIX: &str = "stores/prod";
const TIMEOUT: Duration = Duration::from_secs(120);

/// `calltrail ARGS` with the bucket credentials in the environment (and no other AWS setting).
fn calltrail(args: &[&str], keys: &Keys) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", &keys.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(token) = &keys.session_token {
        cmd.env("AWS_SESSION_TOKEN", token);
    }
    run(cmd, TIMEOUT)
}

fn calltrail_ok(args: &[&str], keys: &Keys) -> String {
    let out = calltrail(args, keys);
    assert!(
        out.status.success(),
        "calltrail {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// The `n` of a one-row `SELECT count(*) AS n` result.
fn count(rows: &[Row]) -> i64 {
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].get("n").and_then(as_i64).unwrap()
}

/// The numbers in `Pushed P files (B bytes) to …, skipped S already there, locked L …`.
fn summary(stdout: &str) -> (u64, u64, u64) {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let after = |w: &str| -> u64 {
        let i = words.iter().position(|x| *x == w).unwrap();
        words[i + 1].parse().unwrap()
    };
    (after("Pushed"), after("skipped"), after("locked"))
}

fn bucket_query(config: &Path, sql: &str, keys: &Keys) -> i64 {
    let stdout = calltrail_ok(
        &[
            "query",
            "--config",
            config.to_str().unwrap(),
            "--from-bucket",
            "--format",
            "json",
            sql,
        ],
        keys,
    );
    let rows: Vec<Row> = serde_json::from_str(stdout.trim()).unwrap();
    count(&rows)
}

/// Rows of the bucket's `table` as pyarrow's S3 filesystem and dataset API read them.
fn pyarrow_s3_count(moto: &Moto, table: &str, keys: &Keys) -> i64 {
    let script = r#"
import sys
import pyarrow.dataset as ds
from pyarrow import fs
endpoint, key, secret, token, path = sys.argv[1:6]
s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                     access_key=key, secret_key=secret, session_token=token)
d = ds.dataset(path, filesystem=s3, format="parquet", partitioning="hive")
print(d.count_rows())
"#;
    let endpoint = moto.endpoint();
    let host = endpoint.strip_prefix("http://").unwrap();
    let path = format!("{BUCKET}/{PREFIX}/{table}");
    let mut cmd = Command::new(support::python());
    cmd.arg("-c")
        .arg(script)
        .args([
            host,
            &keys.access_key_id,
            &keys.secret_access_key,
            keys.session_token.as_deref().unwrap(),
            &path,
        ])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = run(cmd, TIMEOUT);
    assert!(
        out.status.success(),
        "pyarrow failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout.trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_store_is_locked_queryable_and_readable_by_pyarrow() {
    let moto = Moto::start();
    let keys = moto.session_credentials();

    // A store with sealed segments: a demo workload, then SIGTERM (drain, flush, seal).
    let mut server = Server::start();
    calltrail_ok(
        &[
            "demo",
            "--endpoint",
            &server.grpc_url(),
            "--spans",
            "1500",
            "--rate",
            "3000",
        ],
        &keys,
    );
    server.stop();
    let data = server.data_dir().to_owned();
    let local_calls = count(&query_dir(&data, "SELECT count(*) AS n FROM tool_calls").unwrap());
    let local_paired = count(&query_dir(&data, "SELECT count(*) AS n FROM calls").unwrap());
    assert!(local_calls > 0 && local_paired > 0);

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("calltrail.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n\n[bucket]\nendpoint = {:?}\nbucket = {BUCKET:?}\nprefix = {PREFIX:?}\n\
             allow_http = true\nobject_lock = \"compliance\"\n",
            data.to_str().unwrap(),
            moto.endpoint()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();

    let init = calltrail_ok(&["bucket", "init", "--config", cfg], &keys);
    assert!(init.contains("Created bucket"), "{init}");
    let init = calltrail_ok(&["bucket", "init", "--config", cfg], &keys);
    assert!(init.contains("already exists with Object Lock"), "{init}");
    // boto3 (not our code) sees the bucket's Object Lock.
    let lock_conf = moto.boto3(&format!(
        "print(s3.get_object_lock_configuration(Bucket={BUCKET:?})['ObjectLockConfiguration']['ObjectLockEnabled'])"
    ));
    assert_eq!(lock_conf.trim(), "Enabled");

    let first = calltrail_ok(&["bucket", "push", "--config", cfg], &keys);
    let (pushed, skipped, locked) = summary(&first);
    let segments = discover::segments(&data).unwrap();
    assert!(!segments.is_empty());
    assert!(pushed > segments.len() as u64, "{first}");
    assert_eq!(skipped, 0, "{first}");
    // Each segment and its manifest.
    assert_eq!(locked, 2 * segments.len() as u64, "{first}");

    let again = calltrail_ok(&["bucket", "push", "--config", cfg], &keys);
    assert_eq!(summary(&again), (0, pushed, 0), "{again}");

    // Queries over the bucket count what the local store holds.
    let sql = "SELECT count(*) AS n FROM tool_calls";
    assert_eq!(bucket_query(&config, sql, &keys), local_calls);
    let paired = "SELECT count(*) AS n FROM calls";
    assert_eq!(bucket_query(&config, paired, &keys), local_paired);

    // Another engine, with its own S3 client, reads the same rows.
    assert_eq!(pyarrow_s3_count(&moto, "tool_calls", &keys), local_calls);

    // Every object of the bucket: the public key is there, the private key is not.
    let listed = moto.boto3(&format!(
        "for page in s3.get_paginator('list_objects_v2').paginate(Bucket={BUCKET:?}):\n    \
         for o in page.get('Contents', []):\n        print(o['Key'])"
    ));
    let keys_listed: Vec<&str> = listed.lines().collect();
    assert!(
        keys_listed.contains(&format!("{PREFIX}/keys/calltrail.pub").as_str()),
        "{listed}"
    );
    assert!(
        !keys_listed
            .iter()
            .any(|k| k.ends_with(".key") || k.ends_with(".pk8")),
        "{listed}"
    );
    assert!(data.join("keys/calltrail.key").is_file());

    // A pushed segment's version: COMPLIANCE until the segment's retention expiry, and S3
    // refuses to delete it.
    let policy = RetentionConfig::default().compile();
    let segment = &segments[0];
    let expiry = segment_expiry(
        segment.meta.as_ref().unwrap(),
        hour_start(segment).unwrap(),
        &policy,
    );
    let key = format!(
        "{PREFIX}/{}",
        segment.file.to_str().unwrap().replace('\\', "/")
    );
    let version = moto.boto3(&format!(
        "print(s3.list_object_versions(Bucket={BUCKET:?}, Prefix={key:?})['Versions'][0]['VersionId'])"
    ));
    let version = version.trim();
    assert!(!version.is_empty());
    let lock = moto::lock_client(&moto, BUCKET, keys.clone());
    let retention = lock.get_retention(&key, Some(version)).await.unwrap();
    assert_eq!(
        retention,
        Some(Retention {
            mode: LockMode::Compliance,
            retain_until: chrono::DateTime::from_timestamp(expiry.expires_at, 0).unwrap(),
        })
    );
    match lock.delete_version(&key, version).await {
        Err(BucketError::Locked { .. }) => {}
        other => panic!("deleting a locked segment version gave {other:?}"),
    }
    let still = moto.boto3(&format!(
        "print(len(s3.list_object_versions(Bucket={BUCKET:?}, Prefix={key:?}).get('Versions', [])))"
    ));
    assert_eq!(still.trim(), "1");
}

#[test]
fn push_refuses_a_bucket_without_object_lock_and_missing_credentials() {
    let moto = Moto::start();
    moto.create_bucket("calltrail-plain", false);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("calltrail.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \".\"\n[bucket]\nendpoint = {:?}\nbucket = \"calltrail-plain\"\n\
             allow_http = true\nobject_lock = \"governance\"\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let keys = moto.credentials();
    let out = calltrail(&["bucket", "push", "--config", cfg], &keys);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("does not have Object Lock enabled"),
        "{}",
        out.stderr
    );
    let out = calltrail(&["bucket", "init", "--config", cfg], &keys);
    assert!(!out.status.success());
    assert!(out.stderr.contains("without Object Lock"), "{}", out.stderr);
    // init left the existing bucket as it was.
    let lock = moto.boto3(
        "try:\n    s3.get_object_lock_configuration(Bucket='calltrail-plain')\n    print('locked')\n\
         except s3.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])",
    );
    assert_eq!(lock.trim(), "ObjectLockConfigurationNotFoundError");

    let mut cmd = Command::new(BIN);
    cmd.args(["bucket", "push", "--config", cfg])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run(cmd, TIMEOUT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", out.stderr);
    assert!(!out.stderr.contains(&keys.secret_access_key));
}

/// A file bigger than one PUT streams through a multipart upload (with the SHA-256 checksum an
/// Object Lock bucket wants on every part), and its version can be locked like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_files_upload_in_parts_and_their_version_locks() {
    let moto = Moto::start();
    moto.create_locked_bucket("calltrail-big");
    let keys = moto.session_credentials();
    let settings = BucketSettings {
        endpoint: moto.endpoint(),
        region: REGION.to_owned(),
        bucket: "calltrail-big".to_owned(),
        prefix: "p".to_owned(),
        path_style: true,
        allow_http: true,
        object_lock: ObjectLockSetting::Compliance,
    };
    let bucket = settings
        .connect(Credentials {
            access_key_id: keys.access_key_id,
            secret_access_key: keys.secret_access_key,
            session_token: keys.session_token,
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let body: Vec<u8> = (0..11u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &body).unwrap();
    let key = "p/tool_calls/date=2026-11-24/hour=10/big.parquet";
    let put = upload_file(
        bucket.store.as_ref(),
        &path,
        key,
        body.len() as u64,
        1 << 20,
        5 << 20,
    )
    .await
    .unwrap();
    let version = put.version.expect("a versioned bucket reports the version");
    let got = bucket
        .store
        .get(&object_store::path::Path::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "the object's bytes differ from the file's");
    let parts = moto.boto3(&format!(
        "print(s3.head_object(Bucket='calltrail-big', Key={key:?}, PartNumber=1).get('PartsCount', 1))"
    ));
    assert_eq!(parts.trim(), "3", "11 MiB in 5 MiB parts");
    let until = chrono::Utc::now()
        .checked_add_signed(chrono::Duration::days(2))
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    bucket
        .lock
        .put_retention(key, Some(&version), LockMode::Compliance, until)
        .await
        .unwrap();
    assert!(matches!(
        bucket.lock.delete_version(key, &version).await,
        Err(BucketError::Locked { .. })
    ));
}
