//! Inclusion proofs end to end: `calltrail prove` on a record a real server stored gives a proof
//! that `calltrail verify-proof` accepts with the store's public key, and rejects once the record
//! or its audit path is edited, or under another key.

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use std::path::Path;

use support::Server;
use tamper_support::*;

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
