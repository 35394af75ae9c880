//! Compliance export end to end, on stores a real server wrote: `calltrail export` writes a
//! bundle that `calltrail verify-export` accepts and DuckDB reads; every edit to a copy of it
//! (a flipped byte, a dropped file, a removed record, a consistently re-hashed manifest, one
//! edited CSV or JSON Lines cell) fails, naming the check, the file and the record; a filter
//! exports exactly what the same SQL predicate selects; an export taken while the server writes
//! holds exactly the records its checkpoint covers; a store with segments retention deleted
//! exports with their receipts.

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Server, kv, request, server_tool_span, span_id, trace_id};
use tamper_support::*;

const FROM: &str = "2000-01-01T00:00:00Z";
const TO: &str = "2100-01-01T00:00:00Z";

/// `calltrail export --data-dir DATA --from FROM --to TO --out OUT EXTRA...`.
fn export(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        os("export"),
        os("--data-dir"),
        data.as_os_str(),
        os("--from"),
        os(FROM),
        os("--to"),
        os(TO),
        os("--out"),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| os(a)));
    calltrail_ok(&args)
}

/// `calltrail verify-export DIR --pubkey KEY [--json]`: (success, stdout, stderr).
fn verify_export(dir: &Path, key: &Path, json: bool) -> (bool, String, String) {
    let mut args = vec![
        os("verify-export"),
        dir.as_os_str(),
        os("--pubkey"),
        key.as_os_str(),
    ];
    if json {
        args.push(os("--json"));
    }
    calltrail(&args)
}

fn pubkey(data: &Path) -> PathBuf {
    data.join("keys/calltrail.pub")
}

/// Rows of a DuckDB query (cells as `str()` of the Python value, tab-separated), run in `dir`.
fn duckdb(dir: &Path, sql: &str) -> Vec<Vec<String>> {
    let script = r#"
import sys, duckdb
for row in duckdb.connect().execute(sys.argv[1]).fetchall():
    print("\t".join(str(c) for c in row))
"#;
    let mut cmd = Command::new(support::python());
    cmd.current_dir(dir).arg("-c").arg(script).arg(sql);
    let out = support::run(cmd, CMD_TIMEOUT);
    assert!(
        out.status.success(),
        "duckdb `{sql}` in {} failed:\n{}",
        dir.display(),
        out.stderr
    );
    out.stdout
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// The `records N` line of a bundle's manifest.
fn manifest_records(bundle: &Path) -> i64 {
    let text = std::fs::read_to_string(bundle.join("manifest.note")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("records "))
        .unwrap()
        .parse()
        .unwrap()
}

/// The event ids a bundle holds, read with DuckDB.
fn bundle_ids(bundle: &Path) -> BTreeSet<String> {
    if !bundle.join("records").exists() {
        return BTreeSet::new();
    }
    duckdb(
        bundle,
        "SELECT event_id FROM read_parquet('records/*.parquet', union_by_name = true)",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// The event ids `calltrail query` gives for `sql` over the store.
fn store_ids(data: &Path, sql: &str) -> BTreeSet<String> {
    support::query_dir(data, sql)
        .unwrap()
        .iter()
        .map(|r| support::text(r, "event_id").unwrap())
        .collect()
}

fn read_batches(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Rewrites the Parquet file at `path` without its row `drop`; returns that row's event id.
fn remove_row(path: &Path, drop: usize) -> String {
    let batches = read_batches(path);
    let schema = batches[0].schema();
    let mut removed = None;
    let mut first = 0;
    let mut kept = Vec::new();
    for b in &batches {
        let rows = first..first + b.num_rows();
        if rows.contains(&drop) {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            removed = Some(ids.value(drop - first).to_owned());
        }
        let mask: BooleanArray = rows.map(|i| Some(i != drop)).collect();
        kept.push(arrow::compute::filter_record_batch(b, &mask).unwrap());
        first += b.num_rows();
    }
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    for k in &kept {
        w.write(k).unwrap();
    }
    w.close().unwrap();
    removed.unwrap()
}

/// Replaces the manifest's line for `file` with its current SHA-256 and size, keeping the old
/// signature: what someone without the key can do.
fn rehash_manifest(bundle: &Path, file: &str) {
    let bytes = std::fs::read(bundle.join(file)).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    let path = bundle.join("manifest.note");
    let text = std::fs::read_to_string(&path).unwrap();
    let suffix = format!(" {file}");
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("file ") && l.ends_with(&suffix) {
                format!("file {sha} {}{suffix}\n", bytes.len())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(edited, text, "the manifest lists {file}");
    std::fs::write(&path, edited).unwrap();
}

/// Asserts that verify-export of `bundle` fails and that its output names each of `needles`.
fn assert_fails_naming(what: &str, bundle: &Path, key: &Path, needles: &[&str]) -> String {
    let (ok, stdout, stderr) = verify_export(bundle, key, false);
    assert!(!ok, "{what}: verify-export passed:\n{stdout}");
    assert!(
        stderr.contains("check(s) failed"),
        "{what}: no failure summary on stderr:\n{stderr}"
    );
    for n in needles {
        assert!(
            stdout.contains(n),
            "{what}: verify-export does not name {n:?}:\n{stdout}"
        );
    }
    stdout
}

#[test]
fn an_export_round_trips_and_every_tamper_is_named() {
    let mut server = Server::start_with_config(CONFIG);
    demo(&server, 600, 7);
    server.stop();
    let data = server.data_dir().to_owned();
    let key = pubkey(&data);
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    let printed = export(&data, &bundle, &[]);
    assert!(printed.contains("Exported"), "{printed}");

    let (ok, stdout, stderr) = verify_export(&bundle, &key, false);
    assert!(ok, "a fresh bundle does not verify:\n{stdout}\n{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
    let (ok, json, _) = verify_export(&bundle, &key, true);
    assert!(ok);
    let report: Value = serde_json::from_str(&json).unwrap();
    let records = manifest_records(&bundle);
    let stored = support::query_dir(
        &data,
        "SELECT (SELECT count(*) FROM tool_calls) + (SELECT count(*) FROM llm_calls) AS n",
    )
    .unwrap();
    assert_eq!(
        Some(records),
        support::int(&stored[0], "n"),
        "every record of the store"
    );
    assert_eq!(report["records"].as_i64(), Some(records));
    assert_eq!(report["proofs_verified"].as_i64(), Some(records));
    let counted = duckdb(
        &bundle,
        "SELECT count(*) FROM read_parquet('records/*.parquet', union_by_name = true)",
    );
    assert_eq!(counted[0][0], records.to_string(), "DuckDB's count");
    let proofs = duckdb(
        &bundle,
        "SELECT count(*), min(len(audit_path)) FROM read_parquet('proofs/*.parquet')",
    );
    assert_eq!(proofs[0][0], records.to_string(), "one proof per record");

    // Refuses to overwrite.
    let (ok, _, stderr) = calltrail(&[
        os("export"),
        os("--data-dir"),
        data.as_os_str(),
        os("--from"),
        os(FROM),
        os("--to"),
        os(TO),
        os("--out"),
        bundle.as_os_str(),
    ]);
    assert!(!ok && stderr.contains("exists"), "{stderr}");

    let fresh = |name: &str| {
        let copy = work.path().join(name);
        copy_dir(&bundle, &copy);
        copy
    };

    // One byte flipped.
    let b = fresh("flipped");
    let file = "records/tool_calls.parquet";
    let mut bytes = std::fs::read(b.join(file)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(b.join(file), bytes).unwrap();
    assert_fails_naming("a flipped byte", &b, &key, &["file_hash", file]);

    // One file dropped: the proofs.
    let b = fresh("dropped");
    let proofs = std::fs::read_dir(b.join("proofs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let file = format!("proofs/{}", proofs.to_string_lossy());
    std::fs::remove_file(b.join(&file)).unwrap();
    assert_fails_naming(
        "a dropped file",
        &b,
        &key,
        &["file_missing", &file, "proof_missing"],
    );

    // One record removed from the Parquet.
    let b = fresh("removed");
    let file = "records/tool_calls.parquet";
    let event = remove_row(&b.join(file), 7);
    let out = assert_fails_naming(
        "a removed record",
        &b,
        &key,
        &["file_hash", file, "record_missing", &event, "record_count"],
    );
    assert!(out.contains("seq "), "the record's seq is named:\n{out}");

    // The same, with the manifest re-hashed to match: its signature gives it away.
    rehash_manifest(&b, file);
    let out = assert_fails_naming(
        "a removed record, manifest re-hashed",
        &b,
        &key,
        &["manifest_signature", "record_missing", &event],
    );
    assert!(!out.contains("file_hash"), "the re-hash matches:\n{out}");

    // A directory without the signed manifest is not a bundle.
    let b = fresh("partial");
    std::fs::remove_file(b.join("manifest.note")).unwrap();
    assert_fails_naming(
        "no manifest",
        &b,
        &key,
        &["manifest", "not a complete export"],
    );
}

#[test]
fn an_export_while_the_server_writes_proves_what_its_checkpoint_covers() {
    let mut server = Server::start_with_config(CONFIG);
    demo(&server, 200, 3);
    let data = server.data_dir().to_owned();
    let work = tempfile::tempdir().unwrap();
    let url = server.grpc_url();
    let writer = std::thread::spawn(move || {
        calltrail_ok(&[
            os("demo"),
            os("--endpoint"),
            os(&url),
            os("--spans"),
            os("3000"),
            os("--rate"),
            os("1500"),
            os("--batch"),
            os("30"),
        ]);
    });
    let mut sizes = Vec::new();
    for i in 0..3 {
        let bundle = work.path().join(format!("b{i}"));
        export(&data, &bundle, &[]);
        let (ok, stdout, stderr) = verify_export(&bundle, &pubkey(&data), true);
        assert!(
            ok,
            "export {i} taken while the server writes:\n{stdout}\n{stderr}"
        );
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let size = report["chains"][0]["tree_size"].as_i64().unwrap();
        assert_eq!(
            report["records"].as_i64(),
            Some(size),
            "every record below the checkpoint"
        );
        sizes.push(size);
        std::thread::sleep(Duration::from_millis(400));
    }
    writer.join().unwrap();
    server.stop();
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    assert!(sizes[0] > 0, "{sizes:?}");
}

/// Sends `n` tool calls of `principal` in `tenant` to the server over OTLP/gRPC.
fn send_calls(server: &Server, test: u8, principal: &str, tenant: &str, n: u8) {
    let spans = (0..n)
        .map(|i| {
            let mut s = server_tool_span(
                trace_id(test, i),
                span_id(test, i, 0),
                "get_balance",
                &i.to_string(),
            );
            s.attributes.extend([
                kv("enduser.id", principal),
                kv("tenant.id", tenant),
                kv("mcp.server.name", "payments-mcp"),
            ]);
            s
        })
        .collect();
    let url = server.grpc_url();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut client = TraceServiceClient::connect(url).await.unwrap();
            let resp = client
                .export(request("ops-gateway", spans))
                .await
                .unwrap()
                .into_inner();
            assert!(resp.partial_success.is_none_or(|p| p.rejected_spans == 0));
        });
}

#[test]
fn a_principal_across_tenants_exports_exactly_what_sql_selects() {
    const SHARED: &str = "ops-shared@acme-bank.example";
    let mut server = Server::start_with_config(CONFIG);
    demo(&server, 600, 11);
    send_calls(&server, 61, SHARED, "acme-bank-eu", 4);
    send_calls(&server, 62, SHARED, "acme-bank-us", 5);
    server.wait_for_count(
        &format!("SELECT count(*) AS n FROM tool_calls WHERE principal = '{SHARED}'"),
        9,
        Duration::from_secs(20),
    );
    server.stop();
    let data = server.data_dir().to_owned();
    let key = pubkey(&data);
    let tenants = support::query_dir(
        &data,
        &format!("SELECT count(DISTINCT tenant) AS n FROM tool_calls WHERE principal = '{SHARED}'"),
    )
    .unwrap();
    assert_eq!(
        support::int(&tenants[0], "n"),
        Some(2),
        "the principal is in two tenants"
    );

    let work = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            "shared",
            vec!["--principal", SHARED],
            format!("principal = '{SHARED}'"),
        ),
        (
            "shared-us",
            vec!["--principal", SHARED, "--tenant", "acme-bank-us"],
            format!("principal = '{SHARED}' AND tenant = 'acme-bank-us'"),
        ),
        (
            "alice",
            vec!["--principal", "alice@acme-bank.example"],
            "principal = 'alice@acme-bank.example'".to_owned(),
        ),
        (
            "alice-eu-or-bob",
            vec![
                "--principal",
                "alice@acme-bank.example",
                "--principal",
                "bob@acme-bank.example",
                "--tenant",
                "acme-bank-eu",
            ],
            "principal IN ('alice@acme-bank.example', 'bob@acme-bank.example') AND tenant = 'acme-bank-eu'"
                .to_owned(),
        ),
    ];
    for (name, flags, predicate) in cases {
        let bundle = work.path().join(name);
        export(&data, &bundle, &flags);
        let (ok, stdout, stderr) = verify_export(&bundle, &key, false);
        assert!(ok, "{name}: {stdout}\n{stderr}");
        let want = store_ids(
            &data,
            &format!(
                "SELECT event_id FROM tool_calls WHERE {predicate} \
                 UNION ALL SELECT event_id FROM llm_calls WHERE {predicate}"
            ),
        );
        assert!(!want.is_empty(), "{name}: the store has such records");
        let got = bundle_ids(&bundle);
        let extra: Vec<_> = got.difference(&want).collect();
        let missing: Vec<_> = want.difference(&got).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{name}: {} extra, {} missing: {extra:?} {missing:?}",
            extra.len(),
            missing.len()
        );
        assert_eq!(manifest_records(&bundle), want.len() as i64, "{name}");
    }
}

#[test]
fn jsonl_and_csv_bundles_verify_and_one_edited_cell_is_caught() {
    let mut server = Server::start_with_config(CONFIG);
    demo(&server, 300, 5);
    server.stop();
    let data = server.data_dir().to_owned();
    let key = pubkey(&data);
    let work = tempfile::tempdir().unwrap();
    for format in ["jsonl", "csv"] {
        let bundle = work.path().join(format);
        export(&data, &bundle, &["--format", format]);
        let (ok, stdout, stderr) = verify_export(&bundle, &key, false);
        assert!(ok, "{format}: {stdout}\n{stderr}");
        let file = format!("records/tool_calls.{format}");
        let text = std::fs::read_to_string(bundle.join(&file)).unwrap();
        let rows = text.lines().count() - usize::from(format == "csv");
        let parquet_rows = duckdb(&bundle, "SELECT count(*) FROM 'records/tool_calls.parquet'");
        assert_eq!(
            parquet_rows[0][0],
            rows.to_string(),
            "{format}: one line per record"
        );

        // The method of the third record edited, and the manifest re-hashed to match.
        let line = 2 + usize::from(format == "csv");
        let original = text.lines().nth(line).unwrap();
        let (event, edited_line) = if format == "csv" {
            let event = original.split(',').nth(1).unwrap().to_owned();
            (event, original.replacen(",tools/call,", ",tools/list,", 1))
        } else {
            let v: Value = serde_json::from_str(original).unwrap();
            let event = v["event_id"].as_str().unwrap().to_owned();
            let edited =
                original.replacen("\"method\":\"tools/call\"", "\"method\":\"tools/list\"", 1);
            (event, edited)
        };
        assert_ne!(edited_line, original, "{format}: the cell is there to edit");
        let b = work.path().join(format!("{format}-edited"));
        copy_dir(&bundle, &b);
        let edited = text.replacen(original, &edited_line, 1);
        std::fs::write(b.join(&file), edited).unwrap();
        rehash_manifest(&b, &file);
        let out = assert_fails_naming(
            &format!("an edited {format} cell"),
            &b,
            &key,
            &["record_text", &file, &event, "method", "manifest_signature"],
        );
        assert!(!out.contains("file_hash"), "{out}");
    }
}

#[test]
fn a_store_with_deleted_segments_exports_their_receipts() {
    use calltrail_retention::chain::keys::read_signing_key;
    use calltrail_retention::enforce::{apply, plan};
    use calltrail_retention::holds::Holds;
    use calltrail_retention::policy::RetentionConfig;

    let mut server = Server::start_with_config(CONFIG);
    demo(&server, 600, 9);
    server.stop();
    let data = server.data_dir().to_owned();
    // 397 days on, reads (kept 396 days) have expired; writes and LLM calls have not.
    let later = chrono::Utc::now().timestamp() + 397 * 86_400;
    let key = read_signing_key(&data.join("keys/calltrail.key")).unwrap();
    let p = plan(
        &data,
        &RetentionConfig::default(),
        &Holds::load(&data).unwrap(),
        later,
    )
    .unwrap();
    assert!(!p.delete.is_empty(), "some segments have expired");
    let applied = apply(&data, &p, &key, later, &|_, _| {}).unwrap();
    assert!(
        applied.deleted > 0 && applied.refused.is_empty(),
        "{:?}",
        applied.refused
    );

    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    export(&data, &bundle, &[]);
    let (ok, stdout, stderr) = verify_export(&bundle, &pubkey(&data), true);
    assert!(ok, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let receipts: u64 = report["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["receipts"].as_u64().unwrap())
        .sum();
    assert_eq!(receipts, applied.deleted, "one receipt per deleted segment");
    let want = store_ids(
        &data,
        "SELECT event_id FROM tool_calls UNION ALL SELECT event_id FROM llm_calls",
    );
    assert_eq!(
        bundle_ids(&bundle),
        want,
        "what is left of the store, nothing more"
    );
}
