//! The `[forward]` section: named destinations, each with a transport (Kafka, syslog, OTLP), a
//! format, a filter and a start position, validated at start-up with errors that name the key.

use serde::Deserialize;

use super::filter::FilterConfig;
use super::format::{FormatKind, FormatOptions};
use super::kafka::KafkaConfig;
use super::otlp::OtlpConfig;
use super::syslog::SyslogConfig;

/// Where a new destination starts (the first time it runs; after that, its cursor).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// With records sealed from now on (default).
    #[default]
    Now,
    /// With the oldest record retention still keeps.
    Earliest,
}

/// One destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Its name: in metrics, status, `calltrail forward test NAME`, and its state directory
    /// `<data_dir>/forward/<name>/`.
    pub name: String,
    /// The format events are sent in (ignored by OTLP destinations, which send spans).
    #[serde(default = "default_format")]
    pub format: FormatKind,
    /// Format options (payloads opt-in, OCSF AI fields, LEEF delimiter).
    #[serde(default)]
    pub format_options: FormatOptions,
    /// Where it starts the first time.
    #[serde(default)]
    pub start: StartPosition,
    /// Which events it is sent.
    #[serde(default)]
    pub filter: FilterConfig,
    /// Kafka transport.
    pub kafka: Option<KafkaConfig>,
    /// Syslog transport.
    pub syslog: Option<SyslogConfig>,
    /// OTLP/HTTP transport.
    pub otlp: Option<OtlpConfig>,
}

fn default_format() -> FormatKind {
    FormatKind::Json
}

/// `[forward]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// The destinations (`[[forward.destinations]]`).
    pub destinations: Vec<DestinationConfig>,
    /// Events per batch handed to a transport (and per cursor advance). Default 2000.
    pub batch_size: usize,
    /// The longest wait between retries of a failing destination, in ms. Default 30000.
    pub max_backoff_ms: u64,
    /// How often a destination that is caught up looks for new segments when no checkpoint
    /// wakes it, in ms. Default 1000.
    pub poll_ms: u64,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            destinations: Vec::new(),
            batch_size: 2000,
            max_backoff_ms: 30_000,
            poll_ms: 1000,
        }
    }
}

impl ForwardConfig {
    /// Checks every destination; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100_000).contains(&self.batch_size) {
            return Err("forward.batch_size: must be between 1 and 100000".into());
        }
        if !(100..=3_600_000).contains(&self.max_backoff_ms) {
            return Err("forward.max_backoff_ms: must be between 100 and 3600000".into());
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return Err("forward.poll_ms: must be between 10 and 60000".into());
        }
        let mut names = Vec::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let key = format!("forward.destinations[{i}]");
            d.validate(&key)?;
            if names.contains(&d.name.as_str()) {
                return Err(format!("{key}.name: {:?} names two destinations", d.name));
            }
            names.push(&d.name);
        }
        Ok(())
    }

    /// The destination called `name`.
    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }
}

impl DestinationConfig {
    /// Checks the destination; errors name the key under `key`.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            || self.name.starts_with('.')
        {
            return Err(format!(
                "{key}.name: {:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-' (not starting with '.')",
                self.name
            ));
        }
        let transports = [
            self.kafka.is_some(),
            self.syslog.is_some(),
            self.otlp.is_some(),
        ]
        .iter()
        .filter(|t| **t)
        .count();
        if transports != 1 {
            return Err(format!(
                "{key}: exactly one of kafka, syslog, otlp must be configured (found {transports})"
            ));
        }
        if let Some(k) = &self.kafka {
            k.validate(&format!("{key}.kafka"))?;
        }
        if let Some(s) = &self.syslog {
            s.validate(&format!("{key}.syslog"))
                .map_err(|e| e.to_string())?;
        }
        if let Some(o) = &self.otlp {
            o.validate(&format!("{key}.otlp"))?;
        }
        self.format_options
            .validate()
            .map_err(|e| format!("{key}.format_options: {e}"))?;
        self.filter.validate(&format!("{key}.filter"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ForwardConfig, String> {
        let c: ForwardConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn destinations_parse_and_errors_name_the_key() {
        let c = parse(
            r#"
[[destinations]]
name = "soc"
format = "cef"
start = "earliest"
filter = { operation_class = ["write"], tenant = ["acme-*"] }
kafka = { brokers = "127.0.0.1:9092", topic = "calltrail.{tenant}" }

[[destinations]]
name = "qradar"
format = "leef"
syslog = { address = "127.0.0.1:514", protocol = "udp" }
"#,
        )
        .unwrap();
        assert_eq!(c.destinations.len(), 2);
        assert_eq!(c.destination("soc").unwrap().start, StartPosition::Earliest);
        assert_eq!(c.destination("qradar").unwrap().start, StartPosition::Now);

        for (text, key) in [
            (
                "[[destinations]]\nname = \"a\"\n",
                "forward.destinations[0]: exactly one of kafka, syslog, otlp",
            ),
            (
                "[[destinations]]\nname = \"a b\"\nkafka = { brokers = \"x:1\" }",
                "forward.destinations[0].name",
            ),
            (
                "[[destinations]]\nname = \"a\"\nkafka = { brokers = \"x:1\" }\n[[destinations]]\nname = \"a\"\nkafka = { brokers = \"x:1\" }",
                "forward.destinations[1].name",
            ),
            (
                "[[destinations]]\nname = \"a\"\nfilter = { kinds = [\"anomaly!\"] }\nkafka = { brokers = \"x:1\" }",
                "forward.destinations[0].filter.kinds",
            ),
            (
                "[[destinations]]\nname = \"a\"\nkafka = { brokers = \"\" }",
                "forward.destinations[0].kafka.brokers",
            ),
            (
                "[[destinations]]\nname = \"a\"\nformat = \"leef\"\nformat_options = { leef_delimiter = \"=\" }\nkafka = { brokers = \"x:1\" }",
                "forward.destinations[0].format_options",
            ),
            (
                "[[destinations]]\nname = \"a\"\notlp = { endpoint = \"ftp://x\" }",
                "forward.destinations[0].otlp.endpoint",
            ),
            ("batch_size = 0", "forward.batch_size"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(key), "{text}\n=> {e}");
        }
        assert!(
            parse("[[destinations]]\nname = \"a\"\nkafka = { brokers = \"x:1\", color = 1 }")
                .is_err(),
            "unknown keys are refused"
        );
    }
}
