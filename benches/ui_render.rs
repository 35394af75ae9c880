//! Time to first render of the web UI's Overview and Chargeback pages, measured in real headless
//! Chromium against `calltrail serve` on a large store (issue 9's target: ≤ 1.5 s on 10 M calls).
//!
//! ```sh
//! # a 10 M-call, 30-day store (once): the query benchmark's generator
//! CALLTRAIL_BENCH_DIR=/path/store cargo bench -p calltrail-query --bench query_10m -- --dir /path/store
//! CALLTRAIL_BENCH_DIR=/path/store cargo bench --bench ui_render -- --month 2025-06 --runs 3
//! CALLTRAIL_BENCH_DIR=/path/store cargo bench --bench ui_render -- --team team-20   # a team lead
//! ```
//!
//! For each run the page is loaded afresh (a new document, so nothing is cached in the page)
//! and the time is read from the browser's own clock: from navigation start until the page's
//! data is on screen (`calltrail:ready:<page>`, a User Timing mark the UI sets) and until its
//! last chart image has arrived (the latest `responseEnd` of a `POST /api/v1/charts`).
//! The server runs with retention and the detectors off, so that nothing else competes for the
//! cores and nothing in the store is deleted (it adds only its own files: keys, WAL, and the
//! audit events of the benchmark's queries).

#[path = "../tests/support/browser.rs"]
mod browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::Browser;

/// How long one page may take before the run is reported as failed.
const PAGE_TIMEOUT: Duration = Duration::from_secs(180);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct Server {
    child: Child,
    api: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(store: &Path, scratch: &Path) -> Server {
    let config = scratch.join("bench.toml");
    std::fs::write(
        &config,
        "[retention]\napply_every_secs = 0\n\n[detect]\nenabled = false\n",
    )
    .expect("config");
    let ready = scratch.join("ready.json");
    let child = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(store)
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--api-addr", "127.0.0.1:0"])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(scratch.join("serve.log")).expect("log"),
        ))
        .spawn()
        .expect("calltrail serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let api = loop {
        let text = std::fs::read_to_string(&ready).unwrap_or_default();
        if let Some(api) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["api"].as_str().map(str::to_owned))
        {
            break api;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not start: see {}",
            scratch.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    Server { child, api }
}

/// An auditor's token, or a team lead's of `team`.
fn token(store: &Path, team: Option<&str>) -> String {
    let role = match team {
        Some(team) => vec!["--role", "team_lead", "--team", team],
        None => vec!["--role", "auditor"],
    };
    let out = Command::new(env!("CARGO_BIN_EXE_calltrail"))
        .arg("token")
        .args(role)
        .args(["--ttl-secs", "7200", "--data-dir"])
        .arg(store)
        .output()
        .expect("calltrail token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Loads `url` as a new document and returns (data on screen, last chart arrived), in ms since
/// navigation start.
fn measure(b: &Browser, url: &str, page: &str) -> (f64, f64) {
    b.goto("about:blank");
    b.goto(url);
    let mark = format!("calltrail:ready:{page}");
    let ready = b.wait_for(
        &format!("{page} ready"),
        &format!(
            "(() => {{ const m = performance.getEntriesByName('{mark}')[0]; \
               return m ? m.startTime : (document.querySelector('main').dataset.state === 'error' \
               ? 'error: ' + document.querySelector('#error').textContent : null); }})()"
        ),
        PAGE_TIMEOUT,
    );
    let ready = ready
        .as_f64()
        .unwrap_or_else(|| panic!("{page} failed: {ready}"));
    let charts = b.wait_for(
        &format!("{page} charts"),
        "(() => { const imgs = [...document.querySelectorAll('figure[data-chart] img')]; \
           if (!imgs.every((i) => i.complete && i.naturalWidth > 0)) return null; \
           const ends = performance.getEntriesByType('resource') \
             .filter((r) => r.name.endsWith('/api/v1/charts')).map((r) => r.responseEnd); \
           return ends.length ? Math.max(...ends) : -1; })()",
        PAGE_TIMEOUT,
    );
    (ready, charts.as_f64().unwrap_or(-1.0).max(ready))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(store) = std::env::var_os("CALLTRAIL_BENCH_DIR").map(PathBuf::from) else {
        println!(
            "ui_render: set CALLTRAIL_BENCH_DIR to a store (make one with \
             `cargo bench -p calltrail-query --bench query_10m -- --dir DIR`); skipped"
        );
        return;
    };
    let month = arg(&args, "--month").unwrap_or_else(|| "2025-06".into());
    let runs: usize = arg(&args, "--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (from, to) = month_range(&month);
    let scratch = tempfile::tempdir().expect("scratch");
    let server = start_server(&store, scratch.path());
    let team = arg(&args, "--team");
    let token = token(&store, team.as_deref());
    let b = Browser::launch();
    let base = format!("http://{}/ui/", server.api);
    // Log in once: the token moves to the tab's session storage.
    b.goto(&format!("{base}#token={token}"));
    b.wait_for(
        "login",
        "sessionStorage.getItem('calltrail.token') !== null",
        PAGE_TIMEOUT,
    );
    println!(
        "ui_render: store {}, month {month}, {runs} runs, {}; ms from navigation start",
        store.display(),
        team.as_deref()
            .map_or("auditor".to_string(), |t| format!("team lead of {t}"))
    );
    println!(
        "{:<12} {:>4} {:>12} {:>16}",
        "page", "run", "data shown", "last chart shown"
    );
    let pages = [
        ("overview", format!("{base}#/overview?from={from}&to={to}")),
        (
            "chargeback",
            format!("{base}#/chargeback?month={month}&by=team"),
        ),
    ];
    for (page, url) in &pages {
        let mut best = f64::MAX;
        for run in 1..=runs {
            let (ready, charts) = measure(&b, url, page);
            best = best.min(charts);
            println!("{page:<12} {run:>4} {ready:>12.0} {charts:>16.0}");
        }
        println!("{page:<12} best {best:.0} ms (target ≤ 1500 ms)");
    }
}

/// `YYYY-MM` → (first day, first day of the next month), as the UI computes them.
fn month_range(month: &str) -> (String, String) {
    let (y, m) = month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        .unwrap_or_else(|| panic!("--month: {month:?} is not YYYY-MM"));
    let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        format!("{y:04}-{m:02}-01"),
        format!("{:04}-{:02}-01", next.0, next.1),
    )
}
