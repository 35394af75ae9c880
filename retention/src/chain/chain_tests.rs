//! The chain as the writer builds it: links, segment metadata, checkpoints, recovery of an
//! interrupted seal, and refusal to extend a rolled-back chain.

use arrow::array::{Array, AsArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::watch;

use super::*;
use crate::checkpoint::SignedCheckpoint;
use crate::merkle::Hash;
use crate::test_support::{key, seal, store};

fn rows(path: &Path) -> (Vec<i64>, Vec<Hash>, Vec<Hash>) {
    let file = std::fs::File::open(path).unwrap();
    let mut seqs = Vec::new();
    let mut leaves = Vec::new();
    let mut chained = Vec::new();
    for b in ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
    {
        let b = b.unwrap();
        let s = b
            .column_by_name("seq")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        seqs.extend(s.values().iter().copied());
        let l = b
            .column_by_name("leaf_hash")
            .unwrap()
            .as_fixed_size_binary();
        let c = b
            .column_by_name("chain_hash")
            .unwrap()
            .as_fixed_size_binary();
        for i in 0..l.len() {
            leaves.push(l.value(i).try_into().unwrap());
            chained.push(c.value(i).try_into().unwrap());
        }
    }
    (seqs, leaves, chained)
}

#[test]
fn segments_tile_the_chain_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let (key, files) = store(dir.path(), &[3, 1, 4]);
    let head = Head::read(dir.path()).unwrap().unwrap();
    let state = head.pending.as_ref().map_or(&head.state, |p| &p.after);
    assert_eq!(
        state.next_seq, 8,
        "the last seal's pending entry leads to the whole chain"
    );
    let chain_id = state.chain_id.clone();

    let mut all_leaves = Vec::new();
    let mut prev = link::genesis(&chain_id);
    let mut next = 0i64;
    for f in &files {
        let (seqs, leaves, chained) = rows(f);
        assert_eq!(
            seqs,
            (next..next + seqs.len() as i64).collect::<Vec<_>>(),
            "gap-free seqs"
        );
        assert_eq!(chained, link::chain_hashes(&prev, &leaves));
        let footer = segment::read_footer(f).unwrap().unwrap();
        let manifest: SegmentMeta =
            serde_json::from_slice(&std::fs::read(segment::manifest_path(f)).unwrap()).unwrap();
        assert_eq!(footer, manifest, "footer and manifest agree");
        assert_eq!(footer.prev_hash, prev);
        assert_eq!(footer.segment_root, merkle::root(&leaves));
        all_leaves.extend(leaves);
        assert_eq!(footer.tree_root, merkle::root(&all_leaves));
        assert_eq!(footer.tree_size, all_leaves.len() as u64);
        prev = *chained.last().unwrap();
        next += seqs.len() as i64;
    }
    assert_eq!(state.frontier.root(), merkle::root(&all_leaves));

    // One checkpoint at start (size 0) and one per seal, each signed and growing.
    let notes = checkpoint_log::read_notes(&checkpoint_log::checkpoints_dir(dir.path(), &chain_id))
        .unwrap();
    let sizes: Vec<u64> = notes
        .iter()
        .map(|n| {
            SignedCheckpoint::open(n, &key.verifier())
                .unwrap()
                .checkpoint
                .size
        })
        .collect();
    assert_eq!(sizes, vec![0, 3, 4, 8]);
    let last = SignedCheckpoint::open(notes.last().unwrap(), &key.verifier()).unwrap();
    assert_eq!(last.checkpoint.root, merkle::root(&all_leaves));
    assert_eq!(last.checkpoint.origin, format!("test.calltrail/{chain_id}"));
}

#[test]
fn a_seal_interrupted_after_the_rename_is_completed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (key, files) = store(dir.path(), &[2, 3]);
    let head = Head::read(dir.path()).unwrap().unwrap();
    let done = head.pending.map_or(head.state, |p| p.after);
    // Rewind the head to "sealing the second segment" and lose its manifest: the state a crash
    // right after the Parquet rename leaves.
    let first = segment::read_footer(&files[0]).unwrap().unwrap();
    let before = ChainState {
        chain_id: done.chain_id.clone(),
        next_seq: 2,
        last_hash: first.last_hash,
        frontier: Frontier::from_parts(first.tree_size, first.frontier.clone()).unwrap(),
    };
    let relative = files[1].strip_prefix(dir.path()).unwrap().to_owned();
    Head {
        state: before.clone(),
        pending: Some(Pending {
            file: relative,
            after: done.clone(),
        }),
    }
    .write(dir.path())
    .unwrap();
    std::fs::remove_file(segment::manifest_path(&files[1])).unwrap();

    let (feed, _) = watch::channel(None);
    let chain = Chain::open(dir.path(), &key, "test.calltrail", feed).unwrap();
    assert_eq!(chain.state(), &done, "the segment was adopted");
    assert!(
        segment::manifest_path(&files[1]).exists(),
        "its manifest was rewritten"
    );
    assert_eq!(Head::read(dir.path()).unwrap().unwrap().pending, None);

    // Had the file never been renamed into place, its seqs are given out again.
    let (feed, _) = watch::channel(None);
    drop(chain);
    Head {
        state: done.clone(),
        pending: Some(Pending {
            file: "tool_calls/never.parquet".into(),
            after: before,
        }),
    }
    .write(dir.path())
    .unwrap();
    let chain = Chain::open(dir.path(), &key, "test.calltrail", feed).unwrap();
    assert_eq!(chain.state(), &done);
}

#[test]
fn a_rolled_back_chain_is_not_extended() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = store(dir.path(), &[2]);
    let old = Head::read(dir.path()).unwrap().unwrap();
    let (feed, _) = watch::channel(None);
    let mut chain = Chain::open(dir.path(), &key, "test.calltrail", feed).unwrap();
    seal(&mut chain, dir.path(), 100, 2);
    drop(chain);
    // Restore the old head: the checkpoints now say more than the chain holds.
    old.write(dir.path()).unwrap();
    let (feed, mut rx) = watch::channel(None);
    let chain = Chain::open(dir.path(), &key, "test.calltrail", feed).unwrap();
    assert_ne!(
        chain.state().chain_id,
        old.state.chain_id,
        "a new chain starts"
    );
    assert_eq!(chain.state().next_seq, 0);
    let published = rx.borrow_and_update().clone().unwrap();
    assert_eq!(
        published.checkpoint.size, 0,
        "the start-up checkpoint is published"
    );
}

#[test]
fn the_checkpoint_log_never_signs_inconsistent_heads() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, _) = watch::channel(None);
    let mut log = CheckpointLog::open(dir.path(), "c", "test.calltrail", key(), feed).unwrap();
    log.sign(5, [1; 32]).unwrap();
    assert!(log.sign(4, [1; 32]).is_err(), "smaller");
    assert!(log.sign(5, [2; 32]).is_err(), "same size, other head");
    log.sign(5, [1; 32]).unwrap();
    let hb = log.heartbeat().unwrap().unwrap();
    assert_eq!((hb.checkpoint.size, hb.checkpoint.root), (5, [1; 32]));
    log.sign(9, [3; 32]).unwrap();
}
