//! What the benchmarks share: their command-line flags, and a store of chained records built
//! with the writer's own sealing code.

use std::path::Path;
use std::time::Instant;

use calltrail::workload::Workload;
use calltrail_retention::chain::Chain;
use calltrail_retention::layout::{Layout, Partition};
use calltrail_retention::note::SigningKey;
use calltrail_retention::parquet_file::writer_properties;
use calltrail_schemas::arrow_schema::{self, TOOL_CALLS};
use calltrail_schemas::{Attributor, IngestContext, ToolCall, map_request};

/// Tool calls per segment: the writer's default flush size.
const SEGMENT_ROWS: usize = 32_768;

/// The value after the flag `name` (`--records 1000`), if given.
pub(crate) fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Seals `records` workload tool calls (mapped and attributed as ingest does) into a store at
/// `root`, in segments of [`SEGMENT_ROWS`], and writes its signing key to `root/bench.key`.
#[allow(dead_code)] // not every benchmark builds a store
pub(crate) fn build_store(root: &Path, records: usize) -> SigningKey {
    let key = SigningKey::generate("bench.calltrail").expect("key");
    std::fs::create_dir_all(root).expect("store dir");
    std::fs::write(root.join("bench.key"), key.to_text()).expect("key file");
    let (feed, _) = tokio::sync::watch::channel(None);
    let mut chain = Chain::open(root, &key, "bench.calltrail", feed).expect("chain");
    let layout = Layout::new(root, "bench");
    let base = 1_795_400_000_000_000_000i64;
    let mut workload = Workload::new(7, base, 2_000_000);
    let ctx = IngestContext {
        observed_time_ns: base,
        protocol: "otlp_grpc",
        peer: Some("127.0.0.1:5555".into()),
        source: None,
    };
    let attributor = Attributor::default();
    let started = Instant::now();
    let (mut done, mut buf, mut n) = (0usize, Vec::<ToolCall>::new(), 0i64);
    while done < records {
        let req = workload.next_request(1000);
        buf.extend(map_request(&req, &ctx, &attributor).tool_calls);
        while buf.len() >= SEGMENT_ROWS || (done + buf.len() >= records && !buf.is_empty()) {
            let take = buf.len().min(SEGMENT_ROWS).min(records - done);
            let rows: Vec<ToolCall> = buf.drain(..take).collect();
            let refs: Vec<&ToolCall> = rows.iter().collect();
            let batch = arrow_schema::tool_calls_batch(&refs).expect("batch");
            let dir = layout.partition_dir(TOOL_CALLS, Partition::of(rows[0].start_time_ns));
            let name = layout.next_file_name(n, n as u64, n as u64);
            chain
                .seal(TOOL_CALLS, &dir, &name, &batch, |kv| {
                    writer_properties(1, 9, kv)
                })
                .expect("seal");
            n += 1;
            done += take;
            if done >= records {
                buf.clear();
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "built {done} records in {n} segments in {secs:.1} s ({:.0} records/s, single thread)",
        done as f64 / secs
    );
    key
}
