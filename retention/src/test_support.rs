//! Shared test fixtures: records, keys, and small chained stores built without the async
//! writer.

use std::path::Path;
use std::sync::Arc;

use calltrail_schemas::arrow_schema::{self, TOOL_CALLS};
use calltrail_schemas::record::{Attribution, Payload, Source};
use calltrail_schemas::{OperationClass, Outcome, Side, ToolCall};

use crate::chain::Chain;
use crate::layout::{Layout, Partition};
use crate::note::SigningKey;
use crate::parquet_file::writer_properties;

pub(crate) const T0: i64 = 1_795_453_103_000_000_000; // 2026-11-23T16:58:23Z

pub(crate) fn call(i: i64, start: i64) -> ToolCall {
    ToolCall {
        event_id: format!("e{i}"),
        trace_id: format!("{i:032x}"),
        span_id: format!("{i:016x}"),
        parent_span_id: None,
        call_id: format!("{i:016x}"),
        is_request: true,
        side: Side::Server,
        span_name: "tools/call get_x".into(),
        start_time_ns: start,
        end_time_ns: start + 1_000_000,
        observed_time_ns: start,
        method: "tools/call".into(),
        tool_name: Some("get_x".into()),
        prompt_name: None,
        resource_uri: None,
        operation_class: OperationClass::Read,
        outcome: Outcome::Ok,
        error_type: None,
        jsonrpc_code: None,
        error_message: None,
        request_id: None,
        protocol_version: None,
        session_id: None,
        server_name: Some("srv".into()),
        client_name: None,
        attribution: Attribution {
            principal_reason: "no_principal".into(),
            ..Default::default()
        },
        network_transport: None,
        client_address: None,
        client_port: None,
        server_address: None,
        server_port: None,
        source: Arc::new(Source {
            ingest_protocol: "test",
            ..Default::default()
        }),
        arguments: Payload::default(),
        result: Payload::default(),
        attributes: vec![("k".into(), "v".into())],
        resource_attributes: Arc::default(),
    }
}

/// A fresh signing key.
pub(crate) fn key() -> SigningKey {
    SigningKey::generate("test.calltrail").unwrap()
}

/// Seals one tool-call segment of `n` records, numbered from `first_id`, into `root`.
pub(crate) fn seal(chain: &mut Chain, root: &Path, first_id: i64, n: usize) -> std::path::PathBuf {
    seal_at(chain, root, first_id, n, T0)
}

/// Like [`seal`], with the records starting at `start` (ns), so in `start`'s hour partition.
pub(crate) fn seal_at(
    chain: &mut Chain,
    root: &Path,
    first_id: i64,
    n: usize,
    start: i64,
) -> std::path::PathBuf {
    let layout = Layout::new(root, "w");
    let calls: Vec<ToolCall> = (0..n as i64)
        .map(|i| call(first_id + i, start + (first_id + i) * 1000))
        .collect();
    let refs: Vec<&ToolCall> = calls.iter().collect();
    let batch = arrow_schema::tool_calls_batch(&refs).unwrap();
    let dir = layout.partition_dir(TOOL_CALLS, Partition::of(start));
    let name = layout.next_file_name(first_id, first_id as u64, first_id as u64);
    chain
        .seal(TOOL_CALLS, &dir, &name, &batch, |kv| {
            writer_properties(1, 9, kv)
        })
        .unwrap();
    dir.join(name)
}

/// A store under `root` whose chain holds segments of the given sizes; returns the key and the
/// segment files in seq order.
pub(crate) fn store(root: &Path, sizes: &[usize]) -> (SigningKey, Vec<std::path::PathBuf>) {
    let key = key();
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = Chain::open(root, &key, "test.calltrail", feed).unwrap();
    let mut next = 0i64;
    let files = sizes
        .iter()
        .map(|&n| {
            let f = seal(&mut chain, root, next, n);
            next += n as i64;
            f
        })
        .collect();
    (key, files)
}

/// splitmix64: a tiny deterministic generator, so a failing case replays from its seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform enough in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// `n` distinct leaf hashes.
pub(crate) fn leaves(n: u64) -> Vec<crate::merkle::Hash> {
    (0..n)
        .map(|i| crate::merkle::leaf_hash(&i.to_be_bytes()))
        .collect()
}

/// A hash from its 64 hex digits.
pub(crate) fn unhex(s: &str) -> crate::merkle::Hash {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).unwrap();
    h
}
