//! Tamper evidence end to end: a real `calltrail serve` writes a store (many small segments of
//! both tables, one chain, signed checkpoints), is stopped cleanly, and each of the ten attack
//! classes of `docs/specs/chain.md` §5 is applied to a fresh copy of it, on disk, the way
//! someone with write access to the data directory but not the signing key would:
//! Parquet segments rewritten with pyarrow (`tests/fixtures/tamper/attacks.py`), files cut,
//! deleted, copied in from another deployment or replayed, checkpoints edited or re-signed with
//! another key, and the whole store rolled back to an older copy. `calltrail verify --json` must
//! fail and name exactly that attack's kind, at the file and seq where it happened.
//!
//! The untouched store must verify clean, with and without a trusted checkpoint.

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use std::path::Path;
use std::time::Instant;

use calltrail_retention::chain::keys::read_signing_key;
use calltrail_retention::note::sign_note;
use tamper_support::*;

#[test]
fn verify_names_every_attack_by_its_kind() {
    let started = Instant::now();
    let stores = write_stores();
    let written = started.elapsed();
    let store = &stores.pristine;
    let all = segments(store);
    let tools: Vec<&Segment> = all.iter().filter(|s| s.table == "tool_calls").collect();
    assert!(
        tools.len() >= 6,
        "the server wrote {} tool_calls segments, the test needs at least 6: {all:#?}",
        tools.len()
    );
    // Segments for row attacks: tool_calls, neither the first nor the newest, with rows to
    // spare.
    let roomy: Vec<&Segment> = tools[1..tools.len() - 1]
        .iter()
        .copied()
        .filter(|s| s.count >= 10)
        .collect();
    assert!(
        roomy.len() >= 2,
        "too few tool_calls segments of 10 rows or more: {all:#?}"
    );
    let (a, b) = (roomy[0], roomy[roomy.len() - 1]);
    let py = |s: &Segment, root: &Path| root.join(&s.file).into_os_string();
    let log = checkpoint_log(store);
    let log_rel = log.strip_prefix(store).unwrap().to_owned();
    let log_lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        log_lines >= 3,
        "only {log_lines} checkpoints in {}",
        log.display()
    );
    let newest_note = std::fs::read_to_string(&stores.newest_checkpoint).unwrap();
    let foreign_segs = segments(&stores.foreign);
    let foreign_tool = foreign_segs
        .iter()
        .find(|s| s.table == "tool_calls")
        .expect("the other deployment wrote a tool_calls segment");
    let newest_two: Vec<&Segment> = all.iter().rev().take(2).collect();
    let dir_of = |s: &Segment| s.file.parent().unwrap().to_owned();

    let attacks: Vec<(&str, Attack)> = vec![
        (
            "1. one cell rewritten (tool_name), footer metadata kept",
            Box::new(|root| {
                let out = attack(&[os("modify"), &py(a, root), os("5"), os("tool_name")]);
                Expect::kind("record_modified")
                    .file(&a.file)
                    .seq(seq_printed(&out))
            }),
        ),
        (
            "1. one cell rewritten (principal), footer metadata dropped",
            Box::new(|root| {
                let out = attack(&[
                    os("modify"),
                    &py(b, root),
                    os("2"),
                    os("principal"),
                    os("--drop-footer"),
                ]);
                Expect::kind("record_modified")
                    .file(&b.file)
                    .seq(seq_printed(&out))
            }),
        ),
        (
            "2. a row deleted from the middle of a segment",
            Box::new(|root| {
                let row = (a.count / 2).to_string();
                let out = attack(&[os("delete-row"), &py(a, root), os(&row)]);
                Expect::kind("record_deleted")
                    .file(&a.file)
                    .seq(seq_printed(&out))
            }),
        ),
        (
            "3. a row stored twice",
            Box::new(|root| {
                let out = attack(&[os("duplicate-row"), &py(a, root), os("4")]);
                Expect::kind("record_inserted")
                    .file(&a.file)
                    .seq(seq_printed(&out))
            }),
        ),
        (
            "3. a fabricated row (a copy, another tool name) stored before the genuine one",
            Box::new(|root| {
                let out = attack(&[os("fabricate-row"), &py(b, root), os("3")]);
                Expect::kind("record_inserted")
                    .file(&b.file)
                    .seq(seq_printed(&out))
            }),
        ),
        (
            "4. two rows swapped",
            Box::new(|root| {
                let out = attack(&[os("swap"), &py(a, root), os("2"), os("6")]);
                let seqs = out["seqs"].as_array().unwrap();
                let (lo, hi) = (seqs[0].as_u64().unwrap(), seqs[1].as_u64().unwrap());
                Expect::kind("records_reordered")
                    .file(&a.file)
                    .seq_in(lo, hi)
            }),
        ),
        (
            "5. a whole segment (and its manifest) deleted, not the newest",
            Box::new(|root| {
                remove_segment(root, a);
                Expect::kind("segment_deleted").seq(a.first_seq)
            }),
        ),
        (
            "6. a segment's bytes cut in half",
            Box::new(|root| {
                attack(&[os("truncate"), &py(b, root)]);
                Expect::kind("segment_truncated")
                    .file(&b.file)
                    .seq(b.first_seq)
            }),
        ),
        (
            "6. a segment's last rows removed",
            Box::new(|root| {
                let out = attack(&[os("drop-last"), &py(a, root), os("3")]);
                Expect::kind("segment_truncated")
                    .file(&a.file)
                    .seq(seq_printed(&out))
            }),
        ),
        (
            "7. the two newest segments deleted",
            Box::new(|root| {
                for s in &newest_two {
                    remove_segment(root, s);
                }
                Expect::kind("tail_truncated").seq(newest_two[1].first_seq)
            }),
        ),
        (
            "9. a checkpoint's size line edited",
            Box::new(|root| {
                attack(&[
                    os("edit-checkpoint"),
                    root.join(&log_rel).as_os_str(),
                    os(&(log_lines / 2).to_string()),
                    os("size"),
                ]);
                Expect::kind("checkpoint_forged").file(&log_rel)
            }),
        ),
        (
            "9. the newest checkpoint's root line edited",
            Box::new(|root| {
                attack(&[
                    os("edit-checkpoint"),
                    root.join(&log_rel).as_os_str(),
                    os(&log_lines.to_string()),
                    os("root"),
                ]);
                Expect::kind("checkpoint_forged").file(&log_rel)
            }),
        ),
        (
            "9. a checkpoint of this chain, 100 records larger, signed by another key",
            Box::new(|root| {
                let key = read_signing_key(&stores.other_key.with_extension("key")).unwrap();
                let text = note_text(&newest_note);
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines[1] = (lines[1].parse::<u64>().unwrap() + 100).to_string();
                let forged = sign_note(&(lines.join("\n") + "\n"), &key).unwrap();
                append(&root.join(&log_rel), &log_line(&forged));
                Expect::kind("checkpoint_forged").file(&log_rel)
            }),
        ),
        (
            "9. another deployment's checkpoint appended to this chain's log",
            Box::new(|root| {
                let theirs = std::fs::read_to_string(checkpoint_log(&stores.foreign)).unwrap();
                append(&root.join(&log_rel), theirs.lines().last().unwrap());
                append(&root.join(&log_rel), "\n");
                Expect::kind("checkpoint_forged").file(&log_rel)
            }),
        ),
        (
            "10. a segment of another deployment copied into a partition",
            Box::new(|root| {
                let file = copy_segment(
                    &stores.foreign,
                    foreign_tool,
                    root,
                    &dir_of(a),
                    foreign_tool.file.file_stem().unwrap().to_str().unwrap(),
                );
                Expect::kind("segment_foreign").file(file)
            }),
        ),
        (
            "10. one of our segments replayed under a name that sorts before it",
            Box::new(|root| {
                let file = copy_segment(store, a, root, &dir_of(a), "0000000000000-replay");
                Expect::kind("segment_foreign").file(file).seq(a.first_seq)
            }),
        ),
        (
            "10. one of our segments replayed under a name that sorts after it",
            Box::new(|root| {
                let file = copy_segment(store, b, root, &dir_of(b), "9999999999999-replay");
                Expect::kind("segment_foreign").file(file).seq(b.first_seq)
            }),
        ),
    ];

    let work = tempfile::Builder::new()
        .prefix("calltrail-tamper-work-")
        .tempdir()
        .unwrap();
    let mut failures = Vec::new();
    for (i, (name, apply)) in attacks.iter().enumerate() {
        let copy = work.path().join(format!("attack-{i}"));
        copy_dir(store, &copy);
        let expect = apply(&copy);
        let (ok, report) = verify(&copy, None);
        match check(ok, &report, &expect) {
            Ok(()) => println!("ok   {name}: {}", expect.kind),
            Err(e) => {
                println!("FAIL {name}");
                failures.push(format!("attack \"{name}\": {e}"));
            }
        }
        std::fs::remove_dir_all(&copy).unwrap();
    }

    // 8. Rollback: the early copy is self-consistent; only a checkpoint kept elsewhere shows
    // that the store has moved past it.
    let (ok, report) = verify(&stores.early, Some(&stores.newest_checkpoint));
    let size = segments(&stores.early)
        .last()
        .map(|s| s.first_seq + s.count)
        .unwrap();
    match check(ok, &report, &Expect::kind("rollback").seq(size)) {
        Ok(()) => println!("ok   8. the store replaced by an older copy: rollback"),
        Err(e) => failures.push(format!("attack \"8. rollback\": {e}")),
    }
    // A trusted checkpoint signed by another key is not trusted.
    let forged_trusted = work.path().join("forged.ckpt");
    let key = read_signing_key(&stores.other_key.with_extension("key")).unwrap();
    std::fs::write(
        &forged_trusted,
        sign_note(note_text(&newest_note), &key).unwrap(),
    )
    .unwrap();
    let (ok, report) = verify(store, Some(&forged_trusted));
    match check(ok, &report, &Expect::kind("checkpoint_forged")) {
        Ok(()) => println!("ok   9. a trusted checkpoint signed by another key: checkpoint_forged"),
        Err(e) => failures.push(format!("attack \"9. forged trusted checkpoint\": {e}")),
    }

    // The untouched stores verify clean.
    let clean: [(&str, &Path, Option<&Path>); 4] = [
        ("the store", store, None),
        (
            "the store against its own newest checkpoint",
            store,
            Some(&stores.newest_checkpoint),
        ),
        (
            "the store against the checkpoint of its early copy",
            store,
            Some(&stores.early_checkpoint),
        ),
        (
            "the early copy, without a trusted checkpoint (a rollback is invisible then)",
            &stores.early,
            None,
        ),
    ];
    let mut records = None;
    for (what, dir, trusted) in clean {
        let (ok, report) = verify(dir, trusted);
        if dir == store.as_path() {
            records = report["records"].as_u64();
        }
        match check_clean(what, ok, &report) {
            Ok(()) => println!("ok   clean: {what}"),
            Err(e) => failures.push(e),
        }
        if trusted == Some(stores.early_checkpoint.as_path()) {
            let proved = report["notes"].as_array().unwrap().iter().any(|n| {
                n.as_str()
                    .is_some_and(|n| n.contains("consistency proof from the trusted checkpoint"))
            });
            if !proved {
                failures.push(format!(
                    "{what}: no consistency proof was checked: {}",
                    report["notes"]
                ));
            }
        }
    }
    let records = records.unwrap_or_default();
    assert_eq!(
        records,
        all.iter().map(|s| s.count).sum::<u64>(),
        "verify checked another number of records than the manifests hold"
    );

    println!(
        "{} segments ({} tool_calls), {records} records; stores written in {written:?}, whole test {:?}",
        all.len(),
        tools.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n\n{}",
        failures.len(),
        attacks.len() + 6,
        failures.join("\n\n")
    );
}
