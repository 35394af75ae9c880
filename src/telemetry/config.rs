//! The `[telemetry]` configuration section: where Calltrail's own metrics go.

use http::Uri;
use serde::Deserialize;

use super::TelemetryError;

/// Calltrail's own metrics: served at `GET /metrics` and, optionally, pushed over OTLP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Serve `GET /metrics` (Prometheus text format 0.0.4) on the OTLP/HTTP port. Like
    /// `/healthz`, it needs no bearer token: anyone who can reach the port can read the counters
    /// (they carry no tokens, source names or record contents). Default `true`.
    pub metrics_endpoint: bool,
    /// Push the same metrics over OTLP to this URL, your own collector or backend, e.g.
    /// `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318` (HTTP). Plain `http://` only.
    /// For `http`, a URL without a path gets `/v1/metrics` appended; one with a path is used as
    /// it is. Default: none, nothing is pushed.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http` (OTLP/HTTP protobuf). Default `grpc`.
    pub otlp_protocol: OtlpProtocol,
    /// How often metrics are pushed, in milliseconds (1000 to 3600000). Default 60000.
    pub interval_ms: u64,
    /// Most label sets each business metric keeps (`calltrail_tool_calls_total` by team, server
    /// and outcome; `calltrail_llm_tokens_total` by team and token type), 1 to 100000. Label
    /// values come from senders: once a metric has this many, calls of a new combination are
    /// added to one overflow series labelled `otel_metric_overflow="true"`, as the
    /// OpenTelemetry Collector's spanmetrics connector does. Default 2000.
    pub business_series_limit: usize,
}

/// The OTLP transport for pushed metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics_endpoint: true,
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            interval_ms: 60_000,
            business_series_limit: calltrail_collector::business_stats::DEFAULT_SERIES_LIMIT,
        }
    }
}

/// Shortest and longest push interval, in milliseconds.
const INTERVAL_MS: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;

/// Allowed `business_series_limit`: at least one series; at most what a scrape can carry
/// comfortably (each series is a line of every scrape and a time series in Prometheus).
const BUSINESS_SERIES_LIMIT: std::ops::RangeInclusive<usize> = 1..=100_000;

impl TelemetryConfig {
    /// Checks every key; the error names it (`telemetry.interval_ms: ...`).
    pub fn validate(&self) -> Result<(), TelemetryError> {
        if !INTERVAL_MS.contains(&self.interval_ms) {
            return Err(TelemetryError::Config {
                key: "telemetry.interval_ms",
                message: format!(
                    "must be between {} and {}",
                    INTERVAL_MS.start(),
                    INTERVAL_MS.end()
                ),
            });
        }
        if !BUSINESS_SERIES_LIMIT.contains(&self.business_series_limit) {
            return Err(TelemetryError::Config {
                key: "telemetry.business_series_limit",
                message: format!(
                    "must be between {} and {}",
                    BUSINESS_SERIES_LIMIT.start(),
                    BUSINESS_SERIES_LIMIT.end()
                ),
            });
        }
        self.otlp_url()?;
        Ok(())
    }

    /// The URL metrics are pushed to, `None` when push is off.
    pub fn otlp_url(&self) -> Result<Option<String>, TelemetryError> {
        let Some(text) = self.otlp_endpoint.as_deref() else {
            return Ok(None);
        };
        let bad = |message: String| TelemetryError::Config {
            key: "telemetry.otlp_endpoint",
            message,
        };
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e| bad(format!("`{text}` is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(format!(
                    "`{text}`: https is not supported for telemetry push yet; use http:// \
                     (for example to a collector on the same host)"
                )));
            }
            _ => {
                return Err(bad(format!(
                    "`{text}` must start with http:// and name a host, e.g. http://127.0.0.1:4317"
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad(format!("`{text}` names no host")));
        }
        let url = text.trim();
        let has_path = uri.path() != "/" && !uri.path().is_empty();
        Ok(Some(match self.otlp_protocol {
            OtlpProtocol::Http if !has_path => {
                format!("{}/v1/metrics", url.trim_end_matches('/'))
            }
            _ => url.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TelemetryConfig, String> {
        let c: TelemetryConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_serve_metrics_and_push_nothing() {
        let c = parse("").unwrap();
        assert_eq!(c, TelemetryConfig::default());
        assert!(c.metrics_endpoint);
        assert_eq!(c.otlp_url().unwrap(), None);
        assert_eq!(c.interval_ms, 60_000);
        assert_eq!(c.business_series_limit, 2000);
    }

    #[test]
    fn business_series_limit_out_of_range_names_the_key() {
        for bad in [
            "business_series_limit = 0",
            "business_series_limit = 100001",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.starts_with("telemetry.business_series_limit: "),
                "{bad}: {e}"
            );
        }
        let e = parse("business_series_limit = -1").unwrap_err();
        assert!(e.contains("business_series_limit"), "{e}");
        assert_eq!(
            parse("business_series_limit = 1")
                .unwrap()
                .business_series_limit,
            1
        );
    }

    #[test]
    fn interval_out_of_range_names_the_key() {
        for bad in [
            "interval_ms = 999",
            "interval_ms = 3600001",
            "interval_ms = 0",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("telemetry.interval_ms: "), "{bad}: {e}");
        }
        assert_eq!(parse("interval_ms = 1000").unwrap().interval_ms, 1000);
    }

    #[test]
    fn endpoint_must_be_plain_http_with_a_host() {
        for bad in [
            "otlp_endpoint = \"https://collector:4317\"",
            "otlp_endpoint = \"collector:4317\"",
            "otlp_endpoint = \"ftp://collector\"",
            "otlp_endpoint = \"http://\"",
            "otlp_endpoint = \"not a url\"",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("telemetry.otlp_endpoint: "), "{bad}: {e}");
        }
    }

    #[test]
    fn http_endpoint_gets_the_metrics_path_when_it_has_none() {
        let url = |text: &str| parse(text).unwrap().otlp_url().unwrap().unwrap();
        assert_eq!(
            url("otlp_protocol = \"http\"\notlp_endpoint = \"http://127.0.0.1:4318\""),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            url("otlp_protocol = \"http\"\notlp_endpoint = \"http://127.0.0.1:4318/\""),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            url("otlp_protocol = \"http\"\notlp_endpoint = \"http://h:4318/otlp/v1/metrics\""),
            "http://h:4318/otlp/v1/metrics"
        );
        assert_eq!(
            url("otlp_endpoint = \"http://127.0.0.1:4317\""),
            "http://127.0.0.1:4317"
        );
    }

    #[test]
    fn unknown_keys_and_protocols_are_rejected() {
        let e = parse("metrics_endpont = false").unwrap_err();
        assert!(e.contains("metrics_endpont"), "{e}");
        let e = parse("otlp_protocol = \"udp\"").unwrap_err();
        assert!(e.contains("otlp_protocol") && e.contains("udp"), "{e}");
        assert_eq!(
            parse("otlp_protocol = \"http\"").unwrap().otlp_protocol,
            OtlpProtocol::Http
        );
        assert!(!parse("metrics_endpoint = false").unwrap().metrics_endpoint);
    }
}
