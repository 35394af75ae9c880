//! The exposition as a scraper sees it: names, suffixes, types, buckets, escaping.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use calltrail_collector::pipeline::IngestStats;
use calltrail_retention::StoreStats;
use opentelemetry::KeyValue;

use crate::telemetry::{Telemetry, TelemetryConfig};

fn telemetry() -> Telemetry {
    Telemetry::new(&TelemetryConfig::default()).unwrap()
}

fn render(t: &Telemetry) -> String {
    t.render_prometheus().unwrap()
}

/// The lines of `text` that are samples or metadata of `family`.
fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            name.strip_prefix(family).is_some_and(|rest| {
                rest.starts_with([' ', '{'])
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| rest.starts_with(s))
            })
        })
        .collect()
}

#[test]
fn counters_get_the_total_suffix_help_and_type() {
    let t = telemetry();
    let stats = Arc::new(IngestStats::default());
    t.observe_ingest(&stats);
    stats.spans_received.store(7, Ordering::Relaxed);
    stats.tool_calls.store(4, Ordering::Relaxed);
    stats.llm_calls.store(2, Ordering::Relaxed);
    stats.refused_busy.store(3, Ordering::Relaxed);
    let text = render(&t);
    assert_eq!(
        lines_of(&text, "calltrail_ingest_spans_received_total"),
        [
            "# HELP calltrail_ingest_spans_received_total Spans received in well-formed OTLP requests.",
            "# TYPE calltrail_ingest_spans_received_total counter",
            "calltrail_ingest_spans_received_total 7",
        ],
        "{text}"
    );
    let accepted = lines_of(&text, "calltrail_ingest_spans_accepted_total");
    assert!(
        accepted.contains(&"calltrail_ingest_spans_accepted_total{table=\"tool_calls\"} 4"),
        "{text}"
    );
    assert!(
        accepted.contains(&"calltrail_ingest_spans_accepted_total{table=\"llm_calls\"} 2"),
        "{text}"
    );
    let refused = lines_of(&text, "calltrail_ingest_requests_refused_total");
    assert!(
        refused.contains(&"calltrail_ingest_requests_refused_total{reason=\"busy\"} 3"),
        "{text}"
    );
    assert!(
        refused.contains(&"calltrail_ingest_requests_refused_total{reason=\"malformed\"} 0"),
        "{text}"
    );
    // Values are read at collection time, not at registration.
    stats.spans_received.store(9, Ordering::Relaxed);
    assert!(
        render(&t).contains("\ncalltrail_ingest_spans_received_total 9\n"),
        "{}",
        render(&t)
    );
}

#[test]
fn store_units_become_suffixes_and_pending_is_a_gauge() {
    let t = telemetry();
    let stats = Arc::new(StoreStats::default());
    t.observe_store(&stats);
    stats.files.store(2, Ordering::Relaxed);
    stats.bytes.store(123_456, Ordering::Relaxed);
    stats.rows.store(1000, Ordering::Relaxed);
    stats.pending_rows.store(17, Ordering::Relaxed);
    stats.write_errors.store(1, Ordering::Relaxed);
    let text = render(&t);
    for line in [
        "# TYPE calltrail_store_parquet_bytes_total counter",
        "calltrail_store_parquet_bytes_total 123456",
        "calltrail_store_parquet_files_total 2",
        "calltrail_store_rows_written_total 1000",
        "calltrail_store_write_errors_total 1",
        "# TYPE calltrail_store_rows_pending gauge",
        "calltrail_store_rows_pending 17",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[test]
fn histograms_have_cumulative_buckets_sum_and_count() {
    let t = telemetry();
    let h = t
        .meter()
        .f64_histogram("calltrail.test.latency")
        .with_unit("s")
        .with_description("Test latency.")
        .with_boundaries(vec![0.1, 1.0, 2.5])
        .build();
    for v in [0.05, 0.5, 0.75, 5.0] {
        h.record(v, &[]);
    }
    let text = render(&t);
    assert_eq!(
        lines_of(&text, "calltrail_test_latency_seconds"),
        [
            "# HELP calltrail_test_latency_seconds Test latency.",
            "# TYPE calltrail_test_latency_seconds histogram",
            "calltrail_test_latency_seconds_bucket{le=\"0.1\"} 1",
            "calltrail_test_latency_seconds_bucket{le=\"1\"} 3",
            "calltrail_test_latency_seconds_bucket{le=\"2.5\"} 3",
            "calltrail_test_latency_seconds_bucket{le=\"+Inf\"} 4",
            "calltrail_test_latency_seconds_sum 6.3",
            "calltrail_test_latency_seconds_count 4",
        ],
        "{text}"
    );
}

#[test]
fn label_values_and_help_are_escaped_and_names_sanitized() {
    let t = telemetry();
    let c = t
        .meter()
        .u64_counter("calltrail.test.odd-name/x")
        .with_description("Back\\slash and\nnewline.")
        .build();
    c.add(1, &[KeyValue::new("path", "a\"b\\c\nd")]);
    let text = render(&t);
    assert_eq!(
        lines_of(&text, "calltrail_test_odd_name_x_total"),
        [
            "# HELP calltrail_test_odd_name_x_total Back\\\\slash and\\nnewline.",
            "# TYPE calltrail_test_odd_name_x_total counter",
            "calltrail_test_odd_name_x_total{path=\"a\\\"b\\\\c\\nd\"} 1",
        ],
        "{text}"
    );
}

#[test]
fn the_resource_is_target_info_and_scrapes_are_timed() {
    let t = telemetry();
    let first = render(&t);
    let info = lines_of(&first, "target_info");
    assert!(
        info.iter().any(|l| l.contains("service_name=\"calltrail\"")
            && l.contains(&format!(
                "service_version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            ))),
        "{first}"
    );
    assert!(
        !first.contains("otel_scope_name"),
        "scope labels are off: {first}"
    );
    // The first scrape is recorded after rendering, so it shows in the second.
    assert!(!first.contains("calltrail_metrics_scrape_duration_seconds_count 1"));
    let second = render(&t);
    for line in [
        "# TYPE calltrail_metrics_scrape_duration_seconds histogram",
        "calltrail_metrics_scrape_duration_seconds_bucket{le=\"+Inf\"} 1",
        "calltrail_metrics_scrape_duration_seconds_count 1",
    ] {
        assert!(
            second.lines().any(|l| l == line),
            "no `{line}` in:\n{second}"
        );
    }
}

#[test]
fn metrics_endpoint_off_means_no_renderer() {
    let config = TelemetryConfig {
        metrics_endpoint: false,
        ..TelemetryConfig::default()
    };
    let t = Telemetry::new(&config).unwrap();
    assert!(t.render_prometheus().is_none());
    assert!(t.metrics_renderer().is_none());
    let t = telemetry();
    let render = t.metrics_renderer().unwrap();
    assert!(
        render().contains("# TYPE target_info gauge"),
        "{}",
        render()
    );
}

#[test]
fn an_invalid_config_is_refused() {
    let config = TelemetryConfig {
        interval_ms: 10,
        ..TelemetryConfig::default()
    };
    let e = Telemetry::new(&config).unwrap_err().to_string();
    assert!(e.starts_with("telemetry.interval_ms: "), "{e}");
}

#[test]
fn business_series_carry_their_labels_and_the_overflow_series_only_its_own() {
    use calltrail_collector::business_stats::BusinessStats;
    use calltrail_schemas::{Attributor, IngestContext, map_request};

    let t = telemetry();
    let stats = Arc::new(BusinessStats::new(3));
    t.observe_business(&stats);
    // Registered, nothing counted yet: no series.
    let empty = render(&t);
    assert!(
        !empty
            .lines()
            .any(|l| l.starts_with("calltrail_tool_calls_total")),
        "{empty}"
    );

    let request =
        crate::workload::Workload::new(7, 1_795_428_000_000_000_000, 1_000_000).next_request(400);
    let ctx = IngestContext {
        observed_time_ns: 1_795_428_001_000_000_000,
        protocol: "otlp_grpc",
        peer: None,
        source: None,
    };
    let mapped = map_request(&request, &ctx, &Attributor::default());
    stats.commit(stats.tally(&mapped.tool_calls, &mapped.llm_calls));
    let text = render(&t);

    for (family, labels) in [
        ("calltrail_tool_calls_total", ["outcome=\"", "server=\""]),
        ("calltrail_llm_tokens_total", ["token_type=\"", "team=\""]),
    ] {
        let lines = lines_of(&text, family);
        assert!(
            lines.contains(&format!("# TYPE {family} counter").as_str()),
            "{text}"
        );
        let series: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with('#'))
            .collect();
        // At most 3 label sets, and the overflow series for the rest.
        assert_eq!(series.len(), 4, "{family}: {text}");
        let overflow: Vec<&&str> = series
            .iter()
            .filter(|l| l.contains("otel_metric_overflow"))
            .collect();
        assert_eq!(overflow.len(), 1, "{text}");
        assert!(
            overflow[0].starts_with(&format!("{family}{{otel_metric_overflow=\"true\"}} ")),
            "{text}"
        );
        for line in series
            .iter()
            .filter(|l| !l.contains("otel_metric_overflow"))
        {
            for label in labels {
                assert!(line.contains(label), "{label} missing: {line}");
            }
        }
        // Every counted unit is in exactly one series.
        let rendered: u64 = series
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        let counts = if family.contains("tool") {
            let c = stats.calls();
            c.series.iter().map(|s| s.1).sum::<u64>() + c.overflow.unwrap()
        } else {
            let c = stats.tokens();
            c.series.iter().map(|s| s.1).sum::<u64>() + c.overflow.unwrap()
        };
        assert_eq!(rendered, counts, "{family}");
    }
}

#[test]
fn forward_gauges_keep_their_documented_names() {
    use calltrail_collector::forward::DestinationStats;

    let t = telemetry();
    let mut siem = DestinationStats::default();
    siem.name = "siem".into();
    let siem = Arc::new(siem);
    siem.up.store(true, Ordering::Relaxed);
    t.observe_forward(&[siem]);
    let text = render(&t);
    for line in [
        "# TYPE calltrail_forward_up gauge",
        "calltrail_forward_up{destination=\"siem\"} 1",
        "calltrail_forward_lag_records{destination=\"siem\"} 0",
        "calltrail_forward_lag_seconds{destination=\"siem\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}
