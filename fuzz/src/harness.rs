//! Decode a body the way the receivers do, map it with a realistic attributor, and check what
//! must hold for any input: no panic; a body that does not decode gets an error that says
//! where and why; every span is accounted for exactly once (record, skipped or rejected);
//! records carry well-formed ids, in-range times and a resolved attribution; and they build
//! into the Arrow batches the store writes.
//!
//! Used by the fuzz targets and, through `#[path]`, by `collector/tests/fuzz_regressions.rs`,
//! so it may only name crates both have: the schemas and collector crates, opentelemetry-proto
//! and prost.

use std::sync::OnceLock;

use calltrail_collector::otlp_json;
use calltrail_schemas::arrow_schema::{llm_calls_batch, tool_calls_batch};
use calltrail_schemas::mapping::{MAX_FUTURE_SKEW_NS, MIN_TIME_NS};
use calltrail_schemas::record::{Attribution, Payload};
use calltrail_schemas::sensitive::SensitivePolicy;
use calltrail_schemas::{
    AttributionConfig, Attributor, Directory, IngestContext, PrincipalKind, ToolCatalog,
    map_request, span_count,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// Receive time of every fuzzed request: hours after the captured samples the corpus is seeded
/// from (`tests/fixtures/samples`, 2026-11-23), so their spans are in range and get mapped.
pub const OBSERVED_TIME_NS: i64 = 1_795_500_000_000_000_000;

/// Principals of the captured samples and the kinds of entry the directory can hold.
const DIRECTORY: &str = "principal,team,tenant,cost_center,kind\n\
    alice@example.com,payments,acme-bank-eu,CC-110,\n\
    bob@example.com,risk,acme-bank-eu,CC-120,human\n\
    ci-runner,platform,acme-bank-eu,CC-130,service_account\n\
    claude-desktop,,,,\n";

/// Rules with and without a server glob, over the samples' tool names.
const CATALOG: &str = r#"
[[rule]]
server = "crm*"
tool = "update_*"
class = "write"

[[rule]]
tool = "charge_?ustomer"
class = "write"

[[rule]]
server = "payments-*"
tool = "refund_*"
class = "delete"
"#;

/// The default identity sources and patterns, a directory, a catalog, and the `full` payload
/// policy (which hashes and keeps the content, so both paths run).
fn attributor() -> &'static Attributor {
    static ATTRIBUTOR: OnceLock<Attributor> = OnceLock::new();
    ATTRIBUTOR.get_or_init(|| {
        let mut config = AttributionConfig {
            sensitive: SensitivePolicy::Full,
            ..AttributionConfig::default()
        };
        config.service_account_patterns.push("*-agent-?".into());
        config.validate().expect("fuzz attribution config");
        Attributor::new(
            config,
            Directory::from_csv(DIRECTORY).expect("fuzz directory"),
            ToolCatalog::from_toml(CATALOG).expect("fuzz catalog"),
        )
    })
}

/// `data` as an `application/x-protobuf` body or a gRPC message: both receivers decode it with
/// prost and answer 400 / `INVALID_ARGUMENT` with the error's text when it does not decode.
pub fn protobuf(data: &[u8]) {
    match ExportTraceServiceRequest::decode(data) {
        Ok(req) => check(&req, "otlp_http_protobuf"),
        Err(e) => assert!(!e.to_string().is_empty(), "empty protobuf decode error"),
    }
}

/// `data` as an `application/json` body, through the HTTP receiver's decoder.
pub fn json(data: &[u8]) {
    match otlp_json::decode_traces(data) {
        Ok(req) => check(&req, "otlp_http_json"),
        Err(e) => {
            assert!(!e.message.is_empty(), "empty message for {}", e.path);
            // The document itself, or a path under the only top-level key that is read.
            assert!(
                e.path == "$"
                    || e.path.starts_with("resourceSpans")
                    || e.path.starts_with("resource_spans"),
                "error path {:?} does not name where the problem is",
                e.path
            );
        }
    }
}

/// Maps a decoded request and checks the invariants of the module documentation.
pub fn check(req: &ExportTraceServiceRequest, protocol: &'static str) {
    let ctx = IngestContext {
        observed_time_ns: OBSERVED_TIME_NS,
        protocol,
        peer: Some("192.0.2.7:40112".into()),
        source: Some("fuzz".into()),
    };
    let spans = span_count(req);
    let mapped = map_request(req, &ctx, attributor());

    let skipped = usize::try_from(mapped.skipped_spans).expect("skipped count fits usize");
    assert_eq!(
        mapped.tool_calls.len() + mapped.llm_calls.len() + mapped.rejected.len() + skipped,
        spans,
        "records + rejected + skipped must equal the spans sent ({} tool, {} llm, {} rejected, {skipped} skipped)",
        mapped.tool_calls.len(),
        mapped.llm_calls.len(),
        mapped.rejected.len(),
    );
    for r in &mapped.rejected {
        assert!(
            r.path.starts_with("resourceSpans["),
            "rejection path {:?}",
            r.path
        );
        assert!(
            !r.reason.is_empty(),
            "rejection without a reason at {}",
            r.path
        );
    }
    assert_eq!(
        mapped.rejection_message().is_some(),
        !mapped.rejected.is_empty(),
        "partial_success message iff spans were rejected"
    );

    for c in &mapped.tool_calls {
        let what = format!("tool call {}/{}", c.trace_id, c.span_id);
        ids(
            &what,
            &c.trace_id,
            &c.span_id,
            c.parent_span_id.as_deref(),
            &c.event_id,
        );
        assert!(is_hex(&c.call_id, 16), "{what}: call_id {:?}", c.call_id);
        times(&what, c.start_time_ns, c.end_time_ns, c.observed_time_ns);
        attribution(&what, &c.attribution);
        payload(&what, &c.arguments);
        payload(&what, &c.result);
        assert_eq!(c.source.ingest_protocol, protocol, "{what}: protocol");
    }
    for c in &mapped.llm_calls {
        let what = format!("llm call {}/{}", c.trace_id, c.span_id);
        ids(
            &what,
            &c.trace_id,
            &c.span_id,
            c.parent_span_id.as_deref(),
            &c.event_id,
        );
        times(&what, c.start_time_ns, c.end_time_ns, c.observed_time_ns);
        attribution(&what, &c.attribution);
        assert_eq!(c.source.ingest_protocol, protocol, "{what}: protocol");
    }

    // What the store writer does with them next.
    let rows: Vec<_> = mapped.tool_calls.iter().collect();
    let batch = tool_calls_batch(&rows).unwrap_or_else(|e| panic!("tool_calls batch: {e}"));
    assert_eq!(batch.num_rows(), rows.len(), "tool_calls batch rows");
    let rows: Vec<_> = mapped.llm_calls.iter().collect();
    let batch = llm_calls_batch(&rows).unwrap_or_else(|e| panic!("llm_calls batch: {e}"));
    assert_eq!(batch.num_rows(), rows.len(), "llm_calls batch rows");
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn ids(what: &str, trace: &str, span: &str, parent: Option<&str>, event: &str) {
    assert!(
        is_hex(trace, 32) && trace != "0".repeat(32),
        "{what}: trace_id"
    );
    assert!(
        is_hex(span, 16) && span != "0".repeat(16),
        "{what}: span_id"
    );
    if let Some(p) = parent {
        assert!(
            is_hex(p, 16) && p != "0".repeat(16),
            "{what}: parent_span_id {p:?}"
        );
    }
    // A version-8 UUID: 8-4-4-4-12 lowercase hex.
    let groups: Vec<&str> = event.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    assert!(
        lens == [8, 4, 4, 4, 12]
            && groups.iter().all(|g| is_hex(g, g.len()))
            && groups[2].starts_with('8'),
        "{what}: event_id {event:?}"
    );
}

fn times(what: &str, start: i64, end: i64, observed: i64) {
    assert_eq!(observed, OBSERVED_TIME_NS, "{what}: observed time");
    assert!(
        MIN_TIME_NS <= start && start <= end && end <= OBSERVED_TIME_NS + MAX_FUTURE_SKEW_NS,
        "{what}: times {start}..{end} out of range"
    );
}

fn attribution(what: &str, a: &Attribution) {
    assert!(
        a.principal_kind.is_some(),
        "{what}: principal kind not resolved"
    );
    assert!(
        !a.principal_reason.is_empty(),
        "{what}: no principal reason"
    );
    match &a.principal {
        None => {
            assert_eq!(
                a.kind(),
                PrincipalKind::Unattributed,
                "{what}: kind without principal"
            );
            assert!(
                a.principal_source.is_none(),
                "{what}: source without principal"
            );
        }
        Some(p) => {
            assert!(!p.is_empty() && p.trim() == p, "{what}: principal {p:?}");
            assert_ne!(
                a.kind(),
                PrincipalKind::Unattributed,
                "{what}: principal {p:?} unattributed"
            );
            assert!(
                a.principal_source.is_some(),
                "{what}: principal without source"
            );
        }
    }
}

fn payload(what: &str, p: &Payload) {
    // The `full` policy: hash, size and content together, or nothing.
    match (&p.sha256, p.size, &p.content) {
        (None, None, None) => {}
        (Some(sha), Some(size), Some(content)) => {
            assert!(is_hex(sha, 64), "{what}: payload sha256 {sha:?}");
            assert_eq!(
                usize::try_from(size).ok(),
                Some(content.len()),
                "{what}: payload size"
            );
        }
        other => panic!("{what}: partial payload {other:?}"),
    }
}

/// A scratch log directory of this process, emptied for each input.
fn scratch_wal_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("calltrail-fuzz-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch log directory");
    dir
}

/// Arbitrary bytes as a write-ahead-log segment: recovery must not panic; whatever it cuts it
/// reports, byte for byte; every frame it replays is handed over exactly once, in order; and a
/// second recovery of what it left finds no damage and the same frames.
pub fn wal_recovery(data: &[u8]) {
    use calltrail_collector::wal::{Replayed, recover, segment};
    let dir = scratch_wal_dir();
    let seg = dir.join(segment::name(1));
    std::fs::write(&seg, data).expect("write the segment");
    let mut seqs = Vec::new();
    let report = recover(&dir, |seq, payload| {
        seqs.push(seq);
        Ok(match calltrail_schemas::codec::decode_batch(payload) {
            Ok(_) => Replayed::Done,
            Err(e) => Replayed::Undecodable(e.to_string()),
        })
    })
    .expect("recovery of a readable directory succeeds");
    assert_eq!(report.replayed, seqs.len() as u64);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "replayed out of order: {seqs:?}"
    );
    let cut: u64 = report.cuts.iter().map(|c| c.bytes).sum();
    assert!(report.cuts.len() <= 1, "one segment, at most one cut");
    if report.frames == 0 {
        assert!(!seg.exists(), "a segment without frames is removed");
        assert!(cut <= data.len() as u64);
    } else {
        let left = std::fs::metadata(&seg).expect("the segment stays").len();
        assert_eq!(left + cut, data.len() as u64, "kept + cut = the original");
        for c in &report.cuts {
            let q = std::fs::metadata(&c.quarantined)
                .expect("quarantined")
                .len();
            assert_eq!(q, c.bytes);
        }
    }
    assert_eq!(report.next_seq, seqs.last().map_or(1, |s| s + 1));
    let again = recover(&dir, |_, _| Ok(Replayed::Done)).expect("second recovery");
    assert!(
        again.cuts.is_empty(),
        "damage left behind: {:?}",
        again.cuts
    );
    assert_eq!(again.frames, report.frames);
    let _ = std::fs::remove_dir_all(&dir);
}
