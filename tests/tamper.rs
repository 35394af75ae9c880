//! Tamper evidence end to end: a real `calltrail serve` writes a store (many small segments of
//! both tables, one chain, signed checkpoints), is stopped cleanly, and each of the ten attack
//! classes of `docs/specs/chain.md` §5 is applied to a fresh copy of it, on disk, the way
//! someone with write access to the data directory but not the signing key would:
//! Parquet segments rewritten with pyarrow (`tests/fixtures/tamper/attacks.py`), files cut,
//! deleted, copied in from another deployment or replayed, checkpoints edited or re-signed with
//! another key, and the whole store rolled back to an older copy. `calltrail verify --json` must
//! fail and name exactly that attack's kind, at the file and seq where it happened.
//!
//! The untouched store must verify clean, with and without a trusted checkpoint, and an
//! inclusion proof (`calltrail prove`) must verify and stop verifying when edited or checked
//! against another key.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use calltrail_retention::chain::keys::read_signing_key;
use calltrail_retention::note::sign_note;
use serde_json::Value;
use support::{BIN, Server};

const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Small flushes, so that a few hundred spans make many segments.
const CONFIG: &str = r#"
[store]
flush_max_rows = 20
flush_interval_ms = 100
"#;

/// Runs `calltrail ARGS`; returns (success, stdout, stderr).
fn calltrail(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let out = support::run(cmd, CMD_TIMEOUT);
    (out.status.success(), out.stdout, out.stderr)
}

/// Runs `calltrail ARGS` and panics, with its output, unless it succeeds; returns stdout.
fn calltrail_ok(args: &[&std::ffi::OsStr]) -> String {
    let (ok, stdout, stderr) = calltrail(args);
    assert!(
        ok,
        "calltrail {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Sends `spans` spans of the demo workload with `seed` to `server`.
fn demo(server: &Server, spans: u32, seed: u32) {
    calltrail_ok(&[
        os("demo"),
        os("--endpoint"),
        os(&server.grpc_url()),
        os("--spans"),
        os(&spans.to_string()),
        os("--seed"),
        os(&seed.to_string()),
        os("--batch"),
        os("40"),
    ]);
}

/// Sends a round of 120 demo spans with `seed` and waits until a new tool_calls segment is
/// sealed.
fn sealed_round(server: &Server, seed: u32) {
    let sealed = || {
        segments(server.data_dir())
            .iter()
            .filter(|s| s.table == "tool_calls")
            .count()
    };
    let before = sealed();
    demo(server, 120, seed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sealed() == before {
        assert!(
            Instant::now() < deadline,
            "no tool_calls segment was sealed within 20 s of round {seed}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the attack helper; returns what it printed (a JSON object).
fn attack(args: &[&std::ffi::OsStr]) -> Value {
    let script = support::repo_root().join("tests/fixtures/tamper/attacks.py");
    let mut cmd = Command::new(support::python());
    cmd.arg(&script).args(args);
    let out = support::run(cmd, CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "attacks.py {args:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("attacks.py {args:?} printed {:?}: {e}", out.stdout))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A sealed segment, from its manifest.
#[derive(Debug, Clone)]
struct Segment {
    /// The Parquet file, relative to the store root (as verify reports it).
    file: PathBuf,
    table: String,
    first_seq: u64,
    count: u64,
}

impl Segment {
    fn manifest(&self) -> PathBuf {
        let stem = self.file.file_stem().unwrap().to_string_lossy();
        self.file.with_file_name(format!("_{stem}.manifest.json"))
    }
}

fn collect_manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_manifests(&path, out);
        } else if path.to_string_lossy().ends_with(".manifest.json") {
            out.push(path);
        }
    }
}

/// The segments of the store at `root`, in chain order.
fn segments(root: &Path) -> Vec<Segment> {
    let mut manifests = Vec::new();
    for table in ["tool_calls", "llm_calls"] {
        collect_manifests(&root.join(table), &mut manifests);
    }
    let mut out: Vec<Segment> = manifests
        .iter()
        .map(|path| {
            let m: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let rel = path.strip_prefix(root).unwrap();
            Segment {
                file: rel.with_file_name(m["file"].as_str().unwrap()),
                table: m["table"].as_str().unwrap().to_owned(),
                first_seq: m["first_seq"].as_u64().unwrap(),
                count: m["count"].as_u64().unwrap(),
            }
        })
        .collect();
    out.sort_by_key(|s| s.first_seq);
    out
}

/// The checkpoint log file of the store at `root` (one chain, one day).
fn checkpoint_log(root: &Path) -> PathBuf {
    let mut found = Vec::new();
    for chain in std::fs::read_dir(root.join("checkpoints")).unwrap() {
        for f in std::fs::read_dir(chain.unwrap().path()).unwrap() {
            found.push(f.unwrap().path());
        }
    }
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no checkpoint log in {}", root.display()))
}

/// `calltrail verify DIR --pubkey DIR/keys/calltrail.pub [--trusted-checkpoint T] --json`:
/// whether it exited 0, and its report.
fn verify(dir: &Path, trusted: Option<&Path>) -> (bool, Value) {
    let pubkey = dir.join("keys/calltrail.pub");
    let mut args = vec![
        os("verify"),
        dir.as_os_str(),
        os("--pubkey"),
        pubkey.as_os_str(),
        os("--json"),
    ];
    if let Some(t) = trusted {
        args.extend([os("--trusted-checkpoint"), t.as_os_str()]);
    }
    let (ok, stdout, stderr) = calltrail(&args);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "verify {} printed no JSON report ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            dir.display()
        )
    });
    (ok, report)
}

fn kinds(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// What verify must say about one attack.
struct Expect {
    kind: &'static str,
    /// A finding of `kind` names this file (relative to the store root).
    file: Option<PathBuf>,
    /// A finding of `kind` has a seq in this range.
    seqs: Option<(u64, u64)>,
}

impl Expect {
    fn kind(kind: &'static str) -> Self {
        Self {
            kind,
            file: None,
            seqs: None,
        }
    }

    fn file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    fn seq(mut self, seq: u64) -> Self {
        self.seqs = Some((seq, seq));
        self
    }

    fn seq_in(mut self, lo: u64, hi: u64) -> Self {
        self.seqs = Some((lo, hi));
        self
    }
}

/// Checks a report against `expect`; the error says what differs and shows the report.
fn check(ok: bool, report: &Value, expect: &Expect) -> Result<(), String> {
    let mut problems = Vec::new();
    if ok {
        problems.push("verify exited 0".to_owned());
    }
    if report["ok"] != Value::Bool(false) {
        problems.push(format!("report ok = {}", report["ok"]));
    }
    let found = kinds(report);
    if found != BTreeSet::from([expect.kind.to_owned()]) {
        problems.push(format!(
            "finding kinds {found:?}, expected exactly {{{:?}}}",
            expect.kind
        ));
    }
    let of_kind: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == expect.kind)
        .collect();
    if let Some(file) = &expect.file {
        let want = file.to_string_lossy();
        if !of_kind.iter().any(|f| f["file"].as_str() == Some(&*want)) {
            problems.push(format!("no {} finding names file {want}", expect.kind));
        }
    }
    if let Some((lo, hi)) = expect.seqs
        && !of_kind
            .iter()
            .any(|f| f["seq"].as_u64().is_some_and(|s| (lo..=hi).contains(&s)))
    {
        problems.push(format!(
            "no {} finding has a seq in {lo}..={hi}",
            expect.kind
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nreport:\n{}",
            problems.join("; "),
            serde_json::to_string_pretty(report).unwrap()
        ))
    }
}

fn check_clean(what: &str, ok: bool, report: &Value) -> Result<(), String> {
    if ok && report["ok"] == Value::Bool(true) && kinds(report).is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected a clean verification (exit 0, ok=true), got exit ok={ok}:\n{}",
            serde_json::to_string_pretty(report).unwrap()
        ))
    }
}

/// The stores the attacks start from, all written by real servers.
struct Stores {
    /// Holds everything below.
    _base: tempfile::TempDir,
    /// The store after both rounds of data: never modified, copied for each attack.
    pristine: PathBuf,
    /// A copy of the same store taken after the first round (the server stopped).
    early: PathBuf,
    /// A store of another deployment, whose checkpoints another key signed.
    foreign: PathBuf,
    /// `calltrail keygen` prefix of that other key: `.key` and `.pub`.
    other_key: PathBuf,
    /// `calltrail checkpoint latest` of `pristine` and of `early`.
    newest_checkpoint: PathBuf,
    early_checkpoint: PathBuf,
}

fn latest_checkpoint(store: &Path, out: &Path) {
    let note = calltrail_ok(&[
        os("checkpoint"),
        os("latest"),
        os("--data-dir"),
        store.as_os_str(),
    ]);
    assert!(note.contains("\n\n— "), "not a signed note: {note:?}");
    std::fs::write(out, note).unwrap();
}

fn write_stores() -> Stores {
    let base = tempfile::Builder::new()
        .prefix("calltrail-tamper-")
        .tempdir()
        .unwrap();
    let pristine = base.path().join("store");
    let early = base.path().join("early");
    let foreign = base.path().join("foreign");
    let other_key = base.path().join("other");
    calltrail_ok(&[
        os("keygen"),
        os("--name"),
        os("calltrail.local"),
        os("--out"),
        other_key.as_os_str(),
    ]);

    // Rounds of data, each sealed before the next is sent, so that there are segments to
    // spare whatever the flush timing.
    let mut server = Server::start_in(&pristine, CONFIG);
    for seed in 1..=3 {
        sealed_round(&server, seed);
    }
    server.stop();
    copy_dir(&pristine, &early);
    server.restart();
    for seed in 4..=7 {
        sealed_round(&server, seed);
    }
    server.stop();

    let foreign_config = format!(
        "{CONFIG}\n[integrity]\nsigning_key = {:?}\n",
        other_key.with_extension("key")
    );
    let mut other = Server::start_in(&foreign, &foreign_config);
    demo(&other, 150, 99);
    other.stop();

    let newest_checkpoint = base.path().join("newest.ckpt");
    let early_checkpoint = base.path().join("early.ckpt");
    latest_checkpoint(&pristine, &newest_checkpoint);
    latest_checkpoint(&early, &early_checkpoint);
    Stores {
        _base: base,
        pristine,
        early,
        foreign,
        other_key,
        newest_checkpoint,
        early_checkpoint,
    }
}

/// The text of a signed note (everything before the blank line, with its final newline).
fn note_text(note: &str) -> &str {
    let end = note.find("\n\n").expect("a signed note has a blank line");
    &note[..=end]
}

/// A JSONL line holding `note`, as the checkpoint log stores it.
fn log_line(note: &str) -> String {
    serde_json::to_string(&serde_json::json!({ "note": note })).unwrap() + "\n"
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn remove_segment(root: &Path, s: &Segment) {
    std::fs::remove_file(root.join(&s.file)).unwrap();
    std::fs::remove_file(root.join(s.manifest())).unwrap();
}

/// Copies segment `s` of the store at `from` (Parquet file and manifest) into the directory
/// `dir` (relative to `root`) of the store at `root` as `<stem>.parquet`; returns its path
/// relative to `root`.
fn copy_segment(from: &Path, s: &Segment, root: &Path, dir: &Path, stem: &str) -> PathBuf {
    let file = dir.join(format!("{stem}.parquet"));
    std::fs::copy(from.join(&s.file), root.join(&file)).unwrap();
    std::fs::copy(
        from.join(s.manifest()),
        root.join(dir.join(format!("_{stem}.manifest.json"))),
    )
    .unwrap();
    file
}

fn seq_printed(v: &Value) -> u64 {
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("attacks.py printed no seq: {v}"))
}

type Attack<'a> = Box<dyn Fn(&Path) -> Expect + 'a>;

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

#[test]
fn inclusion_proofs_verify_and_fail_when_edited_or_checked_with_another_key() {
    let mut server = Server::start_with_config(CONFIG);
    demo(&server, 120, 4);
    server.stop();
    let data = server.data_dir().to_owned();
    let rows = support::query_dir(
        &data,
        "SELECT event_id, seq FROM tool_calls ORDER BY seq LIMIT 1 OFFSET 5",
    )
    .unwrap();
    let event = support::text(&rows[0], "event_id").unwrap();
    let seq = support::int(&rows[0], "seq").unwrap();
    let work = tempfile::tempdir().unwrap();
    let proof = work.path().join("proof.json");
    calltrail_ok(&[
        os("prove"),
        os(&event),
        os("--data-dir"),
        data.as_os_str(),
        os("--out"),
        proof.as_os_str(),
    ]);
    let pubkey = data.join("keys/calltrail.pub");
    let verify_proof = |file: &Path, key: &Path| {
        calltrail(&[
            os("verify-proof"),
            file.as_os_str(),
            os("--pubkey"),
            key.as_os_str(),
        ])
    };
    let (ok, stdout, stderr) = verify_proof(&proof, &pubkey);
    assert!(ok, "a fresh proof does not verify:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&event) && stdout.contains(&format!("seq {seq} ")),
        "verify-proof does not name event {event} at seq {seq}: {stdout}"
    );

    for (edit, expected) in [
        (
            "proof-record",
            "audit path does not lead to the signed head",
        ),
        ("proof-path", "audit path does not lead to the signed head"),
    ] {
        let edited = work.path().join(format!("{edit}.json"));
        std::fs::copy(&proof, &edited).unwrap();
        attack(&[os(edit), edited.as_os_str()]);
        let (ok, stdout, stderr) = verify_proof(&edited, &pubkey);
        assert!(!ok, "a proof edited by {edit} still verifies: {stdout}");
        assert!(
            stderr.contains(expected),
            "verify-proof of a proof edited by {edit} failed, but not because {expected:?}:\n{stderr}"
        );
    }

    let other = work.path().join("other");
    calltrail_ok(&[os("keygen"), os("--out"), other.as_os_str()]);
    let (ok, stdout, stderr) = verify_proof(&proof, &other.with_extension("pub"));
    assert!(!ok, "the proof verifies under another key: {stdout}");
    assert!(
        stderr.contains("does not verify"),
        "verify-proof with another key failed without saying so:\n{stderr}"
    );
}
