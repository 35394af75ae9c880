//! S3 Object Lock against a real S3-compatible server (moto, `support/moto.rs`) that checks
//! every request's SigV4 signature: `object_store` stores, reads, lists and deletes segments;
//! `calltrail_retention::bucket::object_lock` locks the exact version `object_store` wrote,
//! reads the lock back, and is refused when it deletes that version, while an unlocked version
//! deletes. boto3 (not written by us) creates the buckets and cross-checks what our code did.

#![allow(clippy::unwrap_used)]

#[path = "support/moto.rs"]
mod moto;

use std::sync::Arc;

use bytes::Bytes;
use calltrail_retention::bucket::object_lock::{BucketError, LockMode, Retention};
use chrono::{Duration, DurationRound, Utc};
use moto::{Moto, REGION, lock_client};
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const LOCKED: &str = "calltrail-worm";
const PLAIN: &str = "calltrail-plain";

/// `object_store`'s S3 store on the bucket: path style, plain HTTP, and a SHA-256 checksum on
/// every PUT (Object Lock buckets refuse PUTs without an integrity header).
fn store(moto: &Moto, bucket: &str) -> Arc<dyn ObjectStore> {
    let keys = moto.credentials();
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(REGION)
            .with_bucket_name(bucket)
            .with_access_key_id(keys.access_key_id)
            .with_secret_access_key(keys.secret_access_key)
            .with_checksum_algorithm(Checksum::SHA256)
            .build()
            .unwrap(),
    )
}

/// Every (key, version id) boto3 lists in `bucket`, delete markers left out.
fn versions(moto: &Moto, bucket: &str) -> Vec<(String, String)> {
    let out = moto.boto3(&format!(
        "for v in s3.list_object_versions(Bucket={bucket:?}).get('Versions', []):\n    \
         print(v['Key'] + '\\t' + v['VersionId'])"
    ));
    out.lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_versions_refuse_deletion_and_unlocked_ones_delete() {
    let moto = Moto::start();
    moto.create_locked_bucket(LOCKED);
    moto.create_bucket(PLAIN, false);

    // object_store writes the segments; each PUT reports the version it created.
    let store = store(&moto, LOCKED);
    let locked_path = Path::from("tool_calls/date=2026-11-23/hour=07/seg-0001.parquet");
    let free_path = Path::from("tool_calls/date=2026-11-23/hour=07/seg-0002.parquet");
    let governed_path = Path::from("tool_calls/date=2026-11-23/hour=08/seg-0003.parquet");
    let body = Bytes::from_static(b"PAR1 sealed segment bytes PAR1");
    let mut version = Vec::new();
    for path in [&locked_path, &free_path, &governed_path] {
        let put = store
            .put(path, PutPayload::from(body.clone()))
            .await
            .unwrap();
        eprintln!(
            "object_store PutResult for {path}: version = {:?}, e_tag = {:?}",
            put.version, put.e_tag
        );
        let v = put.version.expect("a versioned bucket reports the version");
        assert!(!v.is_empty());
        version.push(v);
    }
    // The versions are the ones S3 holds (boto3's listing), one per object.
    let mut listed = versions(&moto, LOCKED);
    listed.sort();
    let mut expected: Vec<(String, String)> = [&locked_path, &free_path, &governed_path]
        .iter()
        .zip(&version)
        .map(|(p, v)| (p.to_string(), v.clone()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let got = store
        .get(&locked_path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got, body);
    let mut names: Vec<String> = futures_list(&*store, "tool_calls/date=2026-11-23").await;
    names.sort();
    assert_eq!(
        names,
        [&locked_path, &free_path, &governed_path]
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    );

    let lock = lock_client(&moto, LOCKED, moto.credentials());
    assert!(lock.bucket_lock_enabled().await.unwrap());
    assert!(
        !lock_client(&moto, PLAIN, moto.credentials())
            .bucket_lock_enabled()
            .await
            .unwrap()
    );

    // No retention yet.
    assert_eq!(
        lock.get_retention(locked_path.as_ref(), Some(&version[0]))
            .await
            .unwrap(),
        None
    );

    // COMPLIANCE for a day on the exact version written; read back to the millisecond.
    let until = (Utc::now() + Duration::days(1))
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    lock.put_retention(
        locked_path.as_ref(),
        Some(&version[0]),
        LockMode::Compliance,
        until,
    )
    .await
    .unwrap();
    assert_eq!(
        lock.get_retention(locked_path.as_ref(), Some(&version[0]))
            .await
            .unwrap(),
        Some(Retention {
            mode: LockMode::Compliance,
            retain_until: until
        })
    );
    // boto3 sees the same lock on that version.
    let seen = moto.boto3(&format!(
        "h = s3.head_object(Bucket={LOCKED:?}, Key={:?}, VersionId={:?})\n\
         print(h['ObjectLockMode'], h['ObjectLockRetainUntilDate'].timestamp())",
        locked_path.as_ref(),
        version[0]
    ));
    let (mode, ts) = seen.trim().split_once(' ').unwrap();
    assert_eq!(mode, "COMPLIANCE");
    let ts: f64 = ts.parse().unwrap();
    assert!(
        (ts - until.timestamp_millis() as f64 / 1000.0).abs() < 0.001,
        "{seen}"
    );

    // The locked version cannot be deleted, and is still there.
    match lock.delete_version(locked_path.as_ref(), &version[0]).await {
        Err(BucketError::Locked {
            key, version_id, ..
        }) => {
            assert_eq!(key, locked_path.as_ref());
            assert_eq!(version_id, version[0]);
        }
        other => panic!("deleting a COMPLIANCE-locked version gave {other:?}"),
    }
    assert_eq!(
        store
            .get(&locked_path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        body
    );

    // GOVERNANCE without the bypass header refuses too.
    lock.put_retention(
        governed_path.as_ref(),
        Some(&version[2]),
        LockMode::Governance,
        until,
    )
    .await
    .unwrap();
    assert!(matches!(
        lock.delete_version(governed_path.as_ref(), &version[2])
            .await,
        Err(BucketError::Locked { .. })
    ));

    // The unlocked version deletes for good: no version of that key remains.
    lock.delete_version(free_path.as_ref(), &version[1])
        .await
        .unwrap();
    assert!(matches!(
        store.get(&free_path).await,
        Err(object_store::Error::NotFound { .. })
    ));
    let left = versions(&moto, LOCKED);
    assert!(
        !left.iter().any(|(k, _)| k == free_path.as_ref()),
        "{left:?}"
    );

    // object_store's delete only hides a locked object behind a delete marker: the locked
    // version and its retention stay.
    store.delete(&locked_path).await.unwrap();
    assert!(matches!(
        store.get(&locked_path).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert!(
        versions(&moto, LOCKED).contains(&(locked_path.to_string(), version[0].clone())),
        "the locked version is gone"
    );
    assert_eq!(
        lock.get_retention(locked_path.as_ref(), Some(&version[0]))
            .await
            .unwrap()
            .map(|r| r.mode),
        Some(LockMode::Compliance)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_session_tokens_and_signatures() {
    let moto = Moto::start();

    // Temporary credentials (session token) create a bucket with Object Lock.
    let init = lock_client(&moto, "calltrail-init", moto.session_credentials());
    init.create_bucket_with_lock().await.unwrap();
    assert!(init.bucket_lock_enabled().await.unwrap());
    let boto = moto.boto3(
        "print(s3.get_object_lock_configuration(Bucket='calltrail-init')\
         ['ObjectLockConfiguration']['ObjectLockEnabled'])",
    );
    assert_eq!(boto.trim(), "Enabled");
    // Creating it again: S3 in us-east-1 answers 200 for a bucket the account owns (elsewhere
    // 409 BucketAlreadyOwnedByYou); either way the lock is still on.
    match init.create_bucket_with_lock().await {
        Ok(()) => {}
        Err(e @ BucketError::Status { status: 409, .. }) => {
            assert_eq!(e.code(), Some("BucketAlreadyOwnedByYou"), "{e}");
        }
        other => panic!("creating the locked bucket again gave {other:?}"),
    }
    // An existing bucket without Object Lock is never reported as created with one: success
    // only when the server then holds the bucket locked. (S3 in us-east-1 answers 200 and
    // leaves the bucket as it was, which is `LockNotEnabled`; moto 5.2 turns the lock on.)
    moto.create_bucket(PLAIN, false);
    let result = lock_client(&moto, PLAIN, moto.credentials())
        .create_bucket_with_lock()
        .await;
    let server_says = moto.boto3(&format!(
        "try:\n    print(s3.get_object_lock_configuration(Bucket={PLAIN:?})\
         ['ObjectLockConfiguration']['ObjectLockEnabled'])\n\
         except s3.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])"
    ));
    eprintln!(
        "create_bucket_with_lock on an existing plain bucket: {result:?}, server: {server_says}"
    );
    match result {
        Ok(()) => assert_eq!(server_says.trim(), "Enabled"),
        Err(BucketError::LockNotEnabled { bucket }) => {
            assert_eq!(bucket, PLAIN);
            assert_ne!(server_says.trim(), "Enabled");
        }
        Err(e @ BucketError::Status { status: 409, .. }) => {
            assert_eq!(e.code(), Some("BucketAlreadyOwnedByYou"), "{e}");
        }
        other => panic!("\"creating\" the plain bucket with a lock gave {other:?}"),
    }

    // moto checks signatures: a wrong secret, or a wrong session token, is refused.
    let mut wrong = moto.credentials();
    wrong.secret_access_key.push('x');
    match lock_client(&moto, "calltrail-init", wrong)
        .bucket_lock_enabled()
        .await
    {
        Err(e @ BucketError::Status { status: 403, .. }) => {
            assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e}");
        }
        other => panic!("a wrong secret gave {other:?}"),
    }
    let mut wrong = moto.session_credentials();
    wrong.session_token = Some("not-the-token".to_owned());
    match lock_client(&moto, "calltrail-init", wrong)
        .bucket_lock_enabled()
        .await
    {
        // S3 answers 400 InvalidToken to a session token it did not issue.
        Err(e @ BucketError::Status { status: 400, .. }) => {
            assert_eq!(e.code(), Some("InvalidToken"), "{e}");
        }
        other => panic!("a wrong session token gave {other:?}"),
    }

    // A missing object is an error, not "no retention".
    match init.get_retention("no/such/segment.parquet", None).await {
        Err(e @ BucketError::Status { status: 404, .. }) => eprintln!("missing object: {e}"),
        other => panic!("a missing object gave {other:?}"),
    }
}

/// Every path `object_store` lists under `prefix`.
async fn futures_list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let listing = store
        .list_with_delimiter(Some(&Path::from(prefix)))
        .await
        .unwrap();
    let mut out: Vec<String> = listing
        .objects
        .iter()
        .map(|o| o.location.to_string())
        .collect();
    for dir in listing.common_prefixes {
        out.extend(Box::pin(futures_list(store, dir.as_ref())).await);
    }
    out
}
