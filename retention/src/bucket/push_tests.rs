use std::collections::BTreeMap;

use object_store::memory::InMemory;

use super::*;
use crate::test_support;

/// Every key in `store` with its size (walked with delimiter listings: no stream combinators).
async fn collect_keys(store: &InMemory) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![None];
    while let Some(d) = dirs.pop() {
        let l = store.list_with_delimiter(d.as_ref()).await.unwrap();
        dirs.extend(l.common_prefixes.into_iter().map(Some));
        for o in l.objects {
            out.insert(o.location.to_string(), o.size);
        }
    }
    out
}

/// A store with two sealed segments, a key pair, a receipt and its checkpoint logs.
fn fixture() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let (_key, files) = test_support::store(dir.path(), &[3, 4]);
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("calltrail.key"), "PRIVATE").unwrap();
    std::fs::write(keys.join("calltrail.pub"), "PUBLIC").unwrap();
    let receipts = dir.path().join("receipts").join("w");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::write(receipts.join("00000000000000000000.note"), "receipt").unwrap();
    (dir, files)
}

fn memory() -> (Arc<InMemory>, Destination<'static>) {
    let mem = Arc::new(InMemory::new());
    let dest = Destination {
        store: mem.clone(),
        prefix: "audit/prod".into(),
        lock: None,
    };
    (mem, dest)
}

#[test]
fn lists_sealed_files_and_public_keys_never_the_private_key() {
    let (dir, files) = fixture();
    let items = list(dir.path(), &RetentionConfig::default(), Utc::now()).unwrap();
    let names: Vec<String> = items
        .iter()
        .map(|i| i.file.to_string_lossy().into_owned())
        .collect();
    for f in &files {
        let rel = f.strip_prefix(dir.path()).unwrap();
        assert!(
            items
                .iter()
                .any(|i| i.file == rel && i.kind == Kind::Segment),
            "{names:?}"
        );
        let manifest = crate::chain::segment::manifest_path(rel);
        assert!(
            items
                .iter()
                .any(|i| i.file == manifest && i.kind == Kind::Manifest)
        );
    }
    assert!(
        names.contains(&"keys/calltrail.pub".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with(".key")), "{names:?}");
    assert!(names.contains(&"receipts/w/00000000000000000000.note".to_owned()));
    assert!(
        items.iter().any(|i| i.kind == Kind::Checkpoints),
        "sealing signs checkpoints: {names:?}"
    );
    // Segments come before the checkpoints that sign them.
    let last_segment = items
        .iter()
        .rposition(|i| i.kind == Kind::Manifest)
        .unwrap();
    let first_ckpt = items
        .iter()
        .position(|i| i.kind == Kind::Checkpoints)
        .unwrap();
    assert!(last_segment < first_ckpt);
}

#[test]
fn retain_until_is_the_retention_expiry() {
    let (dir, _) = fixture();
    let policy = RetentionConfig::default();
    let compiled = policy.compile();
    // Far in the past, so every expiry is in the future.
    let now = DateTime::from_timestamp(0, 0).unwrap();
    let items = list(dir.path(), &policy, now).unwrap();
    let segs = discover::segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 2);
    for l in segs {
        let expected = segment_expiry(l.meta.as_ref().unwrap(), hour_start(&l).unwrap(), &compiled);
        let item = items.iter().find(|i| i.file == l.file).unwrap();
        assert_eq!(
            item.retain_until.unwrap().timestamp(),
            expected.expires_at,
            "{}",
            l.file.display()
        );
    }
    // An expiry already past gets no lock (S3 refuses a past date).
    let far = DateTime::from_timestamp(i64::from(i32::MAX) * 4, 0).unwrap();
    let items = list(dir.path(), &policy, far).unwrap();
    assert!(items.iter().all(|i| i.retain_until.is_none()));
}

#[tokio::test]
async fn push_copies_under_the_prefix_and_a_rerun_pushes_nothing() {
    let (dir, _) = fixture();
    let items = list(dir.path(), &RetentionConfig::default(), Utc::now()).unwrap();
    let (mem, dest) = memory();
    let mut seen = 0;
    let first = push(dir.path(), &items, &dest, |_, pushed| {
        assert!(pushed);
        seen += 1;
    })
    .await
    .unwrap();
    assert_eq!(seen, items.len());
    assert_eq!(first.pushed, items.len() as u64);
    assert_eq!(first.skipped, 0);
    assert_eq!(first.locked, 0);
    assert_eq!(first.bytes, items.iter().map(|i| i.bytes).sum::<u64>());
    let stored = collect_keys(&mem).await;
    let expected: BTreeMap<String, u64> = items
        .iter()
        .map(|i| (format!("audit/prod/{}", i.file.to_string_lossy()), i.bytes))
        .collect();
    assert_eq!(stored, expected);
    assert!(!stored.keys().any(|k| k.ends_with("calltrail.key")));

    let again = push(dir.path(), &items, &dest, |_, _| {}).await.unwrap();
    assert_eq!(again.pushed, 0);
    assert_eq!(again.skipped, items.len() as u64);
    assert_eq!(again.bytes, 0);
}

#[tokio::test]
async fn a_grown_checkpoint_log_is_pushed_again_and_a_changed_segment_is_a_conflict() {
    let (dir, files) = fixture();
    let (mem, dest) = memory();
    let items = list(dir.path(), &RetentionConfig::default(), Utc::now()).unwrap();
    push(dir.path(), &items, &dest, |_, _| {}).await.unwrap();

    let log = items.iter().find(|i| i.kind == Kind::Checkpoints).unwrap();
    let path = dir.path().join(&log.file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"note\":\"more\"}\n");
    std::fs::write(&path, &text).unwrap();
    let items = list(dir.path(), &RetentionConfig::default(), Utc::now()).unwrap();
    let s = push(dir.path(), &items, &dest, |_, _| {}).await.unwrap();
    assert_eq!(s.pushed, 1);
    let got = mem
        .get(&ObjectPath::from(format!(
            "audit/prod/{}",
            log.file.to_string_lossy()
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got, text.as_bytes());

    let seg = &files[0];
    let mut bytes = std::fs::read(seg).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(seg, bytes).unwrap();
    let items = list(dir.path(), &RetentionConfig::default(), Utc::now()).unwrap();
    let e = push(dir.path(), &items, &dest, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, PushError::Conflict { .. }), "{e}");
}

#[tokio::test]
async fn big_files_stream_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &body).unwrap();
    let mem = InMemory::new();
    let location = ObjectPath::from("t/big.bin");
    upload_file(&mem, &path, "t/big.bin", body.len() as u64, 1024, 4096)
        .await
        .unwrap();
    let got = mem.get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.len(), body.len());
    assert_eq!(got, body);
}
