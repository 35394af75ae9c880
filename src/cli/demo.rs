//! `calltrail demo`: a deterministic synthetic workload sent over real OTLP/gRPC.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use calltrail::workload::Workload;

use super::time::parse_time;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

/// Arguments of `calltrail demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// OTLP/gRPC endpoint of a running `calltrail serve`.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Spans to send in all (rounded up to whole agent tasks).
    #[arg(long, default_value_t = 2000)]
    spans: usize,
    /// Spans per second; 0 sends as fast as the server accepts.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seed of the workload: the same seed sends the same calls.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Spans per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// When the first task starts (RFC 3339 or YYYY-MM-DD), to fill a store with history;
    /// default: `--hours` before now.
    #[arg(long)]
    start: Option<String>,
    /// Hours the tasks are spread over.
    #[arg(long, default_value_t = 1)]
    hours: u32,
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    if args.batch == 0 || args.rate < 0.0 || !args.rate.is_finite() || args.hours == 0 {
        bail!("--batch and --hours must be positive and --rate a non-negative number");
    }
    let mut client = TraceServiceClient::connect(args.endpoint.clone())
        .await
        .with_context(|| {
            format!(
                "cannot connect to {} (is `calltrail serve` running?)",
                args.endpoint
            )
        })?;
    // Spread tasks over the hours so the data looks like real traffic.
    let span_ns = i64::from(args.hours) * 3_600_000_000_000;
    let start = match &args.start {
        Some(t) => parse_time("start", t)?,
        None => calltrail_collector::pipeline::now_ns() - span_ns,
    };
    let step = (span_ns / (args.spans.max(1) as i64 / 3).max(1)).max(1);
    let mut workload = Workload::new(args.seed, start, step);
    let started = Instant::now();
    let (mut sent, mut requests, mut rejected) = (0usize, 0usize, 0i64);
    while sent < args.spans {
        let req = workload.next_request(args.batch.min(args.spans - sent));
        let n = calltrail_schemas::span_count(&req);
        let resp = client
            .export(req)
            .await
            .context("export failed")?
            .into_inner();
        rejected += resp.partial_success.map_or(0, |p| p.rejected_spans);
        sent += n;
        requests += 1;
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / args.rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {sent} spans in {requests} requests to {} in {secs:.2} s ({:.0} spans/s); rejected {rejected}",
        args.endpoint,
        sent as f64 / secs.max(1e-9)
    );
    println!(
        "try: calltrail query \"SELECT team, count(*) AS calls FROM calls GROUP BY team ORDER BY calls DESC\""
    );
    Ok(())
}
