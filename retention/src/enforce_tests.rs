//! Retention with a fake clock: exactly the expired, unheld segments go, each with a receipt;
//! holds keep theirs until released; `verify` passes across every lawful gap and still reports
//! a deletion without a receipt, or with a forged one, as an attack.

use std::path::Path;
use std::sync::Arc;

use calltrail_schemas::{OperationClass, ToolCall};

use super::*;
use crate::StoreConfig;
use crate::chain::IntegrityConfig;
use crate::holds::{HoldScope, new_id, placed_event, released_event};
use crate::layout::Layout;
use crate::test_support::{T0, call, key};
use crate::verify::{FindingKind, VerifyOptions, verify};
use crate::writer::{StoreWriter, WriteBatch};

const DAY_NS: i64 = 86_400_000_000_000;
const NOW: i64 = T0 / 1_000_000_000;

fn options(key: &SigningKey) -> VerifyOptions {
    VerifyOptions {
        pubkey: key.verifier(),
        trusted: None,
        from_ns: None,
        to_ns: None,
        threads: 2,
    }
}

fn writer(root: &Path, key: &SigningKey) -> StoreWriter {
    let layout = Arc::new(Layout::new(root, format!("w{}", rand_suffix())));
    StoreWriter::spawn(
        StoreConfig::default(),
        layout,
        &IntegrityConfig::default(),
        key,
        &RetentionConfig::default(),
    )
    .unwrap()
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// Ten records from `id`, all `class`, started `days_ago` before the fake now.
fn records(id: i64, days_ago: i64, class: OperationClass, tenant: Option<&str>) -> Vec<ToolCall> {
    (id..id + 10)
        .map(|i| {
            let mut c = call(i, T0 - days_ago * DAY_NS + i * 1000);
            c.operation_class = class;
            c.attribution.tenant = tenant.map(str::to_owned);
            c
        })
        .collect()
}

fn files_of(plan: &[SegmentRetention]) -> Vec<(String, u64)> {
    plan.iter().map(|s| (s.class.clone(), s.seqs.0)).collect()
}

fn hold(root: &Path, key: &SigningKey, event: calltrail_schemas::audit::AuditEvent) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let w = writer(root, key);
        w.audit().append(event).await.unwrap();
        w.shutdown().await;
    });
}

#[test]
fn expired_unheld_segments_go_with_receipts_and_verify_crosses_the_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let w = writer(root, &key);
        let mut tool_calls = records(0, 500, OperationClass::Read, None);
        tool_calls.extend(records(10, 500, OperationClass::Write, None));
        tool_calls.extend(records(20, 400, OperationClass::Read, Some("acme")));
        tool_calls.extend(records(30, 10, OperationClass::Read, None));
        tool_calls.extend(records(40, 390, OperationClass::Read, None));
        w.handle()
            .try_submit(WriteBatch {
                wal_seq: 1,
                tool_calls,
                llm_calls: Vec::new(),
            })
            .unwrap();
        w.shutdown().await;
    });
    let scope = HoldScope {
        tenant: Some("acme".into()),
        ..HoldScope::default()
    };
    let id = new_id().unwrap();
    hold(
        root,
        &key,
        placed_event(&id, &scope, "SEC inquiry 42", "carol", T0).unwrap(),
    );

    // Reads keep 396 days: the 500- and 400-day-old reads have expired, the acme ones are held.
    let holds = Holds::load(root).unwrap();
    assert_eq!(holds.active().count(), 1);
    let p = plan(root, &RetentionConfig::default(), &holds, NOW).unwrap();
    let deleted: Vec<_> = p.delete.iter().map(|s| s.records).collect();
    assert_eq!(
        deleted,
        vec![10],
        "only the unheld 500-day-old reads: {:?}",
        files_of(&p.delete)
    );
    assert_eq!(p.delete[0].class, "reads");
    assert_eq!(p.held.len(), 1);
    assert_eq!(p.held[0].held_by, vec![id.clone()]);
    let first_deleted = p.delete[0].seqs.0;
    let report = apply(root, &p, &key, NOW, &|_, _| {}).unwrap();
    assert_eq!((report.deleted, report.records), (1, 10));
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert!(root.join(&report.receipts[0]).exists());
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    assert!(v.ok, "{:?}", v.findings);
    assert_eq!(v.chains[0].receipts, 1);
    assert_eq!(v.chains[0].deleted_records, 10);
    assert!(v.chains[0].heads_matched > 0);

    // A second run at the same time deletes nothing more.
    let again = plan(
        root,
        &RetentionConfig::default(),
        &Holds::load(root).unwrap(),
        NOW,
    )
    .unwrap();
    assert!(again.delete.is_empty(), "{:?}", files_of(&again.delete));

    // The clock passes the 390-day-old reads' expiry: they go, the held ones stay.
    let later = NOW + 7 * 86_400;
    let p = plan(
        root,
        &RetentionConfig::default(),
        &Holds::load(root).unwrap(),
        later,
    )
    .unwrap();
    assert_eq!(files_of(&p.delete).len(), 1);
    assert_eq!(p.held.len(), 1, "still held");
    apply(root, &p, &key, later, &|_, _| {}).unwrap();

    // Released: the next run deletes what the hold kept.
    let holds = Holds::load(root).unwrap();
    let h = holds.get(&id).unwrap().clone();
    hold(
        root,
        &key,
        released_event(&h, "inquiry closed", "carol", T0 + DAY_NS).unwrap(),
    );
    let holds = Holds::load(root).unwrap();
    assert_eq!(holds.active().count(), 0);
    assert_eq!(
        holds.get(&id).unwrap().released.as_ref().unwrap().by,
        "carol"
    );
    let p = plan(root, &RetentionConfig::default(), &holds, later).unwrap();
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.delete[0].records, 10);
    apply(root, &p, &key, later, &|_, _| {}).unwrap();
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    assert!(v.ok, "{:?}", v.findings);
    assert_eq!(v.chains[0].receipts, 3);

    // Seven years on, everything has expired, audit events included (no hold is in force).
    let far = NOW + 2600 * 86_400;
    let p = plan(
        root,
        &RetentionConfig::default(),
        &Holds::load(root).unwrap(),
        far,
    )
    .unwrap();
    assert!(p.held.is_empty());
    assert!(p.delete.iter().any(|s| s.class == "audit"));
    assert!(p.delete.iter().any(|s| s.class == "writes-deletes"));
    apply(root, &p, &key, far, &|_, _| {}).unwrap();
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    assert!(
        v.ok,
        "an empty store with only receipts verifies: {:?}",
        v.findings
    );
    assert_eq!(v.records, 0);

    // A receipt edited after signing is a forgery.
    let receipt = root.join(receipt::receipt_path(
        root,
        &v.chains[0].chain_id,
        first_deleted,
    ));
    let text = std::fs::read_to_string(&receipt).unwrap();
    std::fs::write(
        &receipt,
        text.replace("\"keep_days\":396", "\"keep_days\":395"),
    )
    .unwrap();
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    let kinds: Vec<_> = v.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::ReceiptForged), "{kinds:?}");
}

#[test]
fn a_deletion_without_a_receipt_is_an_attack_beside_lawful_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let w = writer(root, &key);
        let mut tool_calls = records(0, 500, OperationClass::Read, None);
        tool_calls.extend(records(10, 5, OperationClass::Read, None));
        tool_calls.extend(records(20, 4, OperationClass::Read, None));
        tool_calls.extend(records(30, 3, OperationClass::Read, None));
        w.handle()
            .try_submit(WriteBatch {
                wal_seq: 1,
                tool_calls,
                llm_calls: Vec::new(),
            })
            .unwrap();
        w.shutdown().await;
    });
    let p = plan(root, &RetentionConfig::default(), &Holds::default(), NOW).unwrap();
    assert_eq!(p.delete.len(), 1);
    apply(root, &p, &key, NOW, &|_, _| {}).unwrap();
    // The attacker removes a segment that has not expired (a plan a year on finds its file).
    let victim = plan(
        root,
        &RetentionConfig::default(),
        &Holds::default(),
        NOW + 400 * 86_400,
    )
    .unwrap()
    .delete
    .into_iter()
    .find(|s| s.records == 10)
    .unwrap();
    std::fs::remove_file(root.join(&victim.file)).unwrap();
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
    assert_eq!(v.findings[0].kind, FindingKind::SegmentDeleted);
    assert_eq!(v.findings[0].seq, Some(victim.seqs.0));
    assert_eq!(v.chains[0].receipts, 1, "the lawful deletion is crossed");

    // A receipt signed by another key does not excuse it.
    let other = SigningKey::generate("attacker").unwrap();
    let meta = DeletionReceipt {
        chain_id: victim.chain_id.clone(),
        table: victim.table.clone(),
        file: victim.file.to_string_lossy().into_owned(),
        first_seq: victim.seqs.0,
        last_seq: victim.seqs.1,
        count: victim.records,
        prev_hash: [0; 32],
        last_hash: [0; 32],
        segment_root: [0; 32],
        tree_size: victim.seqs.1 + 1,
        tree_root: [0; 32],
        frontier: Vec::new(),
        range: Vec::new(),
        retention_class: "reads".into(),
        keep_days: 396,
        rule: "reads".into(),
        reason: "forged".into(),
        partition_start: 0,
        expired_at: 0,
        deleted_at: NOW,
    };
    receipt::write(root, &meta, &meta.sign(&other).unwrap()).unwrap();
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    let kinds: Vec<_> = v.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::SegmentDeleted), "{kinds:?}");
    assert!(kinds.contains(&FindingKind::ReceiptForged), "{kinds:?}");
}

#[test]
fn a_segment_that_fails_its_check_is_kept_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let w = writer(root, &key);
        w.handle()
            .try_submit(WriteBatch {
                wal_seq: 1,
                tool_calls: records(0, 500, OperationClass::Read, None),
                llm_calls: Vec::new(),
            })
            .unwrap();
        w.shutdown().await;
    });
    let p = plan(root, &RetentionConfig::default(), &Holds::default(), NOW).unwrap();
    let file = root.join(&p.delete[0].file);
    // Swap in another segment's bytes: its footer no longer matches the plan's metadata chain.
    let other = tempfile::tempdir().unwrap();
    let (_, files) = crate::test_support::store(other.path(), &[3]);
    std::fs::remove_file(&file).unwrap();
    std::fs::copy(&files[0], &file).unwrap();
    let report = apply(root, &p, &key, NOW, &|_, _| {}).unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(file.exists());
}

#[test]
fn a_segment_deleted_before_the_head_commits_it_is_adopted_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let submit = |w: &StoreWriter, id: i64, days_ago: i64| {
        w.handle()
            .try_submit(WriteBatch {
                wal_seq: 1,
                tool_calls: records(id, days_ago, OperationClass::Read, None),
                llm_calls: Vec::new(),
            })
            .unwrap();
    };
    rt.block_on(async {
        let w = writer(root, &key);
        submit(&w, 0, 500);
        w.shutdown().await;
    });
    // The only segment is still "being sealed" in the chain head; retention deletes it.
    let head = crate::chain::head::Head::read(root).unwrap().unwrap();
    assert!(head.pending.is_some());
    let p = plan(root, &RetentionConfig::default(), &Holds::default(), NOW).unwrap();
    assert_eq!(p.delete.len(), 1);
    apply(root, &p, &key, NOW, &|_, _| {}).unwrap();
    rt.block_on(async {
        let w = writer(root, &key);
        submit(&w, 10, 1);
        w.shutdown().await;
    });
    let v = verify(root, &options(&key), &|_, _| {}).unwrap();
    assert!(v.ok, "{:?}", v.findings);
    assert_eq!(
        v.chains.len(),
        1,
        "the chain goes on: no rollback, no new chain"
    );
    assert_eq!(v.chains[0].size, 20);
    assert_eq!((v.chains[0].receipts, v.records), (1, 10));
}
