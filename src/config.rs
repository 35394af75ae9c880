//! `calltrail.toml`: one typed section per component, unknown keys rejected, validated at
//! start-up with errors that name the key. Every field is optional; the embedded default
//! (`./calltrail-data`, loopback listeners) needs no file at all.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use calltrail_collector::forward::ForwardConfig;
use calltrail_collector::{AuthConfig, Authenticator, ReceiverConfig, WalConfig};
use calltrail_query::QueryLimits;
use calltrail_query::api::ApiConfig;
use calltrail_query::detect::DetectConfig;
use calltrail_query::price_table::ChargebackConfig;
use calltrail_retention::StoreConfig;
use calltrail_retention::bucket::config::BucketSettings;
use calltrail_retention::chain::IntegrityConfig;
use calltrail_retention::policy::RetentionConfig;
use calltrail_schemas::{AttributionConfig, Attributor, Directory, ToolCatalog};
use serde::Deserialize;

use crate::telemetry::TelemetryConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store lives. Default `./calltrail-data`.
    pub data_dir: PathBuf,
    /// How long `serve` may take to drain and flush on SIGTERM before exiting non-zero, in
    /// milliseconds. Default 30000.
    pub shutdown_deadline_ms: u64,
    /// OTLP receivers.
    pub receivers: ReceiverConfig,
    /// Ingest authentication (bearer tokens); on by default beyond loopback.
    pub auth: AuthConfig,
    /// Write-ahead log: what an acknowledgement means (fsync policy), segment size, queue.
    pub wal: WalConfig,
    /// Parquet store.
    pub store: StoreConfig,
    /// Tamper evidence: the checkpoint signing key and heartbeat.
    pub integrity: IntegrityConfig,
    /// Retention classes: which records are kept how long.
    pub retention: RetentionConfig,
    /// Attribution of calls to principals, teams, tenants and cost centres.
    pub attribution: AttributionConfig,
    /// Calltrail's own metrics: `GET /metrics` and optional OTLP push.
    pub telemetry: TelemetryConfig,
    /// SIEM forwarding: named destinations over Kafka, syslog and OTLP.
    pub forward: ForwardConfig,
    /// Bounds on every SQL query: rows, time, memory, size.
    pub query: QueryLimits,
    /// The query API: listen address and token verification.
    pub api: ApiConfig,
    /// Chargeback: versioned price tables and the platform's fixed cost.
    pub chargeback: ChargebackConfig,
    /// Baselines and anomaly detection: schedule, thresholds, suppressions.
    pub detect: DetectConfig,
    /// An S3-compatible bucket for sealed segments, checkpoints and receipts (`calltrail bucket
    /// push`, `calltrail query --from-bucket`), optionally under S3 Object Lock. None by default.
    /// Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`, never from this file.
    pub bucket: Option<BucketSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("calltrail-data"),
            shutdown_deadline_ms: 30_000,
            receivers: ReceiverConfig::default(),
            auth: AuthConfig::default(),
            wal: WalConfig::default(),
            store: StoreConfig::default(),
            integrity: IntegrityConfig::default(),
            retention: RetentionConfig::default(),
            attribution: AttributionConfig::default(),
            telemetry: TelemetryConfig::default(),
            forward: ForwardConfig::default(),
            query: QueryLimits::default(),
            api: ApiConfig::default(),
            chargeback: ChargebackConfig::default(),
            detect: DetectConfig::default(),
            bucket: None,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file; relative paths in it are relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| anyhow!("config file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut config.data_dir);
        config.attribution.directory.as_mut().map(rebase);
        config.integrity.signing_key.as_mut().map(rebase);
        config.attribution.tool_catalog.as_mut().map(rebase);
        if let Some(tls) = config.receivers.tls.as_mut() {
            rebase(&mut tls.cert_file);
            rebase(&mut tls.key_file);
            tls.client_ca_file.as_mut().map(rebase);
        }
        config.api.auth.jwks_file.as_mut().map(rebase);
        config.api.auth.jwks_ca_file.as_mut().map(rebase);
        for d in &mut config.forward.destinations {
            if let Some(tls) = d.syslog.as_mut().and_then(|s| s.tls.as_mut()) {
                rebase(&mut tls.ca_file);
                tls.client_cert.as_mut().map(rebase);
                tls.client_key.as_mut().map(rebase);
            }
            if let Some(o) = d.otlp.as_mut() {
                o.ca_file.as_mut().map(rebase);
            }
        }
        config
            .validate()
            .map_err(|e| anyhow!("config file {}: {e}", path.display()))?;
        Ok(config)
    }

    /// Checks every section; the error names the key.
    pub fn validate(&self) -> Result<()> {
        if !(100..=600_000).contains(&self.shutdown_deadline_ms) {
            return Err(anyhow!(
                "shutdown_deadline_ms: must be between 100 and 600000"
            ));
        }
        self.receivers
            .validate()
            .map_err(|(key, msg)| anyhow!("{key}: {msg}"))?;
        self.authenticator()?;
        self.wal
            .validate()
            .map_err(|(key, msg)| anyhow!("{key}: {msg}"))?;
        self.store.validate()?;
        self.integrity.validate()?;
        self.retention.validate()?;
        self.attribution.validate()?;
        self.telemetry.validate()?;
        self.forward.validate().map_err(|e| anyhow!(e))?;
        self.query.validate().map_err(|e| anyhow!(e))?;
        self.api.validate().map_err(|e| anyhow!(e))?;
        self.chargeback.validate().map_err(|e| anyhow!(e))?;
        self.detect.validate().map_err(|e| anyhow!(e))?;
        if let Some(bucket) = &self.bucket {
            bucket.validate()?;
        }
        Ok(())
    }

    /// Compiles the ingest authentication rules for the configured listen addresses.
    pub fn authenticator(&self) -> Result<Authenticator> {
        let r = &self.receivers;
        let beyond_loopback = !r.grpc_addr.ip().is_loopback() || !r.http_addr.ip().is_loopback();
        Authenticator::with_client_certs(&self.auth, beyond_loopback, r.verifies_clients())
            .map_err(|(key, msg)| anyhow!("{key}: {msg}"))
    }

    /// Loads the directory and catalog files and compiles the attribution rules.
    pub fn attributor(&self) -> Result<Attributor> {
        let a = &self.attribution;
        let directory = match &a.directory {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!("attribution.directory: cannot read {}", p.display())
                })?;
                Directory::from_csv(&text)
                    .with_context(|| format!("attribution.directory ({})", p.display()))?
            }
            None => Directory::default(),
        };
        let catalog = match &a.tool_catalog {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!("attribution.tool_catalog: cannot read {}", p.display())
                })?;
                ToolCatalog::from_toml(&text)
                    .with_context(|| format!("attribution.tool_catalog ({})", p.display()))?
            }
            None => ToolCatalog::default(),
        };
        Ok(Attributor::new(a.clone(), directory, catalog))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("calltrail.toml");
        std::fs::write(&p, text)?;
        Config::load(&p)
    }

    #[test]
    fn empty_file_is_the_default() {
        let c = load("").unwrap();
        assert_eq!(c.receivers.grpc_addr.to_string(), "127.0.0.1:4317");
        assert_eq!(c.store.flush_interval_ms, 1000);
    }

    #[test]
    fn bucket_section_is_optional_and_validated() {
        assert!(load("").unwrap().bucket.is_none());
        let c = load("[bucket]\nendpoint = \"https://s3.example\"\nbucket = \"audit\"\n").unwrap();
        assert_eq!(c.bucket.unwrap().region, "us-east-1");
        let e = load("[bucket]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"audit\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bucket.endpoint"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("[store]\nflush_interval_ms = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.flush_interval_ms"), "{e}");
        let e = load("[receivers]\ngrpc_adr = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grpc_adr"), "{e}");
        let e = load("[receivers]\nhttp_addr = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http_addr"), "{e}");
        let e = load("[attribution]\nsensitive = \"some\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sensitive"), "{e}");
        let e = load("[receivers]\nmax_body_bytes = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("receivers.max_body_bytes"), "{e}");
        let e = load("[telemetry]\ninterval_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("telemetry.interval_ms: must be between"), "{e}");
        let e = load("[telemetry]\notlp_endpoint = \"https://otel.example:4317\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("telemetry.otlp_endpoint: "), "{e}");
        let e = load("[telemetry]\nmetrics = false\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `metrics`"), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/calltrail.toml");
        let c = Config::load(&path).unwrap();
        assert!(c.telemetry.metrics_endpoint);
        assert_eq!(c.telemetry.interval_ms, 60_000);
        assert!(c.attributor().is_ok());
    }

    #[test]
    fn telemetry_section_is_optional_and_typed() {
        let c = load("").unwrap();
        assert!(c.telemetry.metrics_endpoint);
        assert_eq!(c.telemetry.otlp_endpoint, None);
        let c = load(
            "[telemetry]\nmetrics_endpoint = false\notlp_endpoint = \"http://127.0.0.1:4318\"\notlp_protocol = \"http\"\ninterval_ms = 15000\n",
        )
        .unwrap();
        assert!(!c.telemetry.metrics_endpoint);
        assert_eq!(
            c.telemetry.otlp_url().unwrap().as_deref(),
            Some("http://127.0.0.1:4318/v1/metrics")
        );
        assert_eq!(c.telemetry.interval_ms, 15_000);
    }

    #[test]
    fn the_documented_example_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/calltrail.toml");
        let c = Config::load(&p).unwrap();
        assert!(c.attributor().is_ok());
        assert_eq!(c.wal.fsync, calltrail_collector::wal::FsyncPolicy::Always);
        assert_eq!(c.store.dedup_window, 524_288);
    }

    #[test]
    fn wal_and_budget_errors_name_the_key() {
        let e = load(
            "[wal]
fsync_interval_ms = 0
",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("wal.fsync_interval_ms"), "{e}");
        let e = load(
            "[wal]
fsync = \"maybe\"
",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fsync") && e.contains("maybe"), "{e}");
        let e = load(
            "[receivers]
memory_budget_mib = 8
",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("receivers.memory_budget_mib"), "{e}");
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let e = load("[receivers]\nhttp_addr = \"0.0.0.0:4318\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.tokens"), "{e}");
        let ok = format!(
            "[receivers]\nhttp_addr = \"0.0.0.0:4318\"\n[[auth.tokens]]\nsource = \"gw\"\nsha256 = \"{}\"\n",
            calltrail_collector::auth::token_sha256("t")
        );
        assert!(load(&ok).is_ok());
    }

    #[test]
    fn tls_paths_are_relative_to_the_file_and_checked() {
        let c = load("[receivers.tls]\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n").unwrap();
        let tls = c.receivers.tls.unwrap();
        assert!(tls.cert_file.is_absolute() && tls.cert_file.ends_with("c.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/k.pem"));
        let e = load(
            "[receivers.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"required\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("receivers.tls.client_ca_file"), "{e}");
        let e = load("[receivers.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nciphers = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ciphers"), "{e}");
    }

    #[test]
    fn client_certificates_count_as_authentication_beyond_loopback() {
        let tls = "[receivers.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n";
        let open = "[receivers]\nhttp_addr = \"0.0.0.0:4318\"\n";
        let e = load(&format!("{open}{tls}")).unwrap_err().to_string();
        assert!(
            e.contains("auth.tokens"),
            "TLS alone is no authentication: {e}"
        );
        let mtls = format!("{open}{tls}client_ca_file = \"ca\"\nclient_auth = \"optional\"\n");
        assert!(load(&mtls).is_ok());
        let e = load("[[auth.client_certs]]\nsubject = \"CN=a\"\nsource = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.client_certs"), "{e}");
    }

    #[test]
    fn missing_directory_file_names_the_key() {
        let c = load("[attribution]\ndirectory = \"nope.csv\"\n").unwrap();
        let e = format!("{:#}", c.attributor().unwrap_err());
        assert!(
            e.contains("attribution.directory") && e.contains("nope.csv"),
            "{e}"
        );
    }
}
