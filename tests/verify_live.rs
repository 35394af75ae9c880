//! `calltrail verify` on a store a real server is still writing: every check it makes must pass
//! while segments are sealed and checkpoints signed around it (it reads checkpoints before
//! listing segments, skips a half-appended checkpoint line, and falls back to the footer when a
//! manifest is not written yet).

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{BIN, Server};
use tamper_support::*;

#[test]
fn verify_passes_on_a_store_being_written() {
    let mut server = Server::start_with_config(CONFIG);
    let mut load = Command::new(BIN)
        .args([
            "demo",
            "--endpoint",
            &server.grpc_url(),
            "--spans",
            "6000",
            "--rate",
            "1500",
        ])
        .args(["--batch", "40"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut runs = 0;
    let mut records = Vec::new();
    // Verify repeatedly while the load runs (bounded: at most 30 s).
    while load.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30) {
        let (ok, report) = verify(server.data_dir(), None);
        assert!(ok, "verify failed on a live store:\n{report:#}");
        records.push(report["records"].as_u64().unwrap());
        runs += 1;
    }
    let status = load.wait().unwrap();
    assert!(status.success(), "the load generator failed");
    assert!(
        runs >= 2,
        "verify ran {runs} times during the load; it must overlap the writes"
    );
    assert!(
        records.windows(2).all(|w| w[0] <= w[1]),
        "the store only grows: {records:?}"
    );
    server.stop();
    let (ok, report) = verify(server.data_dir(), None);
    assert!(ok, "{report:#}");
    assert!(report["records"].as_u64().unwrap() >= 6000, "{report:#}");
}
