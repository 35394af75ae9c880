//! Helpers of the tamper-evidence tests (`tests/tamper.rs`, `tests/inclusion_proof.rs`): running
//! the binary, writing stores with real servers, applying attacks with the pyarrow helper
//! (`tests/fixtures/tamper/attacks.py`), and reading `verify`'s JSON report.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, BIN, Server};

pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Small flushes, so that a few hundred spans make many segments.
pub const CONFIG: &str = r#"
[store]
flush_max_rows = 20
flush_interval_ms = 100
"#;

/// Runs `calltrail ARGS`; returns (success, stdout, stderr).
pub fn calltrail(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let out = support::run(cmd, CMD_TIMEOUT);
    (out.status.success(), out.stdout, out.stderr)
}

/// Runs `calltrail ARGS` and panics, with its output, unless it succeeds; returns stdout.
pub fn calltrail_ok(args: &[&std::ffi::OsStr]) -> String {
    let (ok, stdout, stderr) = calltrail(args);
    assert!(
        ok,
        "calltrail {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

pub fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Sends `spans` spans of the demo workload with `seed` to `server`.
pub fn demo(server: &Server, spans: u32, seed: u32) {
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
pub fn sealed_round(server: &Server, seed: u32) {
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
pub fn attack(args: &[&std::ffi::OsStr]) -> Value {
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

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            // Files only: a server's control socket is not data.
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A sealed segment, from its manifest.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The Parquet file, relative to the store root (as verify reports it).
    pub file: PathBuf,
    pub table: String,
    pub first_seq: u64,
    pub count: u64,
}

impl Segment {
    pub fn manifest(&self) -> PathBuf {
        let stem = self.file.file_stem().unwrap().to_string_lossy();
        self.file.with_file_name(format!("_{stem}.manifest.json"))
    }
}

pub fn collect_manifests(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub fn segments(root: &Path) -> Vec<Segment> {
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
pub fn checkpoint_log(root: &Path) -> PathBuf {
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
pub fn verify(dir: &Path, trusted: Option<&Path>) -> (bool, Value) {
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

pub fn kinds(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// What verify must say about one attack.
pub struct Expect {
    pub kind: &'static str,
    /// A finding of `kind` names this file (relative to the store root).
    pub file: Option<PathBuf>,
    /// A finding of `kind` has a seq in this range.
    pub seqs: Option<(u64, u64)>,
}

impl Expect {
    pub fn kind(kind: &'static str) -> Self {
        Self {
            kind,
            file: None,
            seqs: None,
        }
    }

    pub fn file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn seq(mut self, seq: u64) -> Self {
        self.seqs = Some((seq, seq));
        self
    }

    pub fn seq_in(mut self, lo: u64, hi: u64) -> Self {
        self.seqs = Some((lo, hi));
        self
    }
}

/// Checks a report against `expect`; the error says what differs and shows the report.
pub fn check(ok: bool, report: &Value, expect: &Expect) -> Result<(), String> {
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

pub fn check_clean(what: &str, ok: bool, report: &Value) -> Result<(), String> {
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
pub struct Stores {
    /// Holds everything below.
    pub _base: tempfile::TempDir,
    /// The store after both rounds of data: never modified, copied for each attack.
    pub pristine: PathBuf,
    /// A copy of the same store taken after the first round (the server stopped).
    pub early: PathBuf,
    /// A store of another deployment, whose checkpoints another key signed.
    pub foreign: PathBuf,
    /// `calltrail keygen` prefix of that other key: `.key` and `.pub`.
    pub other_key: PathBuf,
    /// `calltrail checkpoint latest` of `pristine` and of `early`.
    pub newest_checkpoint: PathBuf,
    pub early_checkpoint: PathBuf,
}

pub fn latest_checkpoint(store: &Path, out: &Path) {
    let note = calltrail_ok(&[
        os("checkpoint"),
        os("latest"),
        os("--data-dir"),
        store.as_os_str(),
    ]);
    assert!(note.contains("\n\n— "), "not a signed note: {note:?}");
    std::fs::write(out, note).unwrap();
}

pub fn write_stores() -> Stores {
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
pub fn note_text(note: &str) -> &str {
    let end = note.find("\n\n").expect("a signed note has a blank line");
    &note[..=end]
}

/// A JSONL line holding `note`, as the checkpoint log stores it.
pub fn log_line(note: &str) -> String {
    serde_json::to_string(&serde_json::json!({ "note": note })).unwrap() + "\n"
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub fn remove_segment(root: &Path, s: &Segment) {
    std::fs::remove_file(root.join(&s.file)).unwrap();
    std::fs::remove_file(root.join(s.manifest())).unwrap();
}

/// Copies segment `s` of the store at `from` (Parquet file and manifest) into the directory
/// `dir` (relative to `root`) of the store at `root` as `<stem>.parquet`; returns its path
/// relative to `root`.
pub fn copy_segment(from: &Path, s: &Segment, root: &Path, dir: &Path, stem: &str) -> PathBuf {
    let file = dir.join(format!("{stem}.parquet"));
    std::fs::copy(from.join(&s.file), root.join(&file)).unwrap();
    std::fs::copy(
        from.join(s.manifest()),
        root.join(dir.join(format!("_{stem}.manifest.json"))),
    )
    .unwrap();
    file
}

pub fn seq_printed(v: &Value) -> u64 {
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("attacks.py printed no seq: {v}"))
}

/// One attack: applied to a fresh copy of the store, it says what verify must report.
pub type Attack<'a> = Box<dyn Fn(&Path) -> Expect + 'a>;
