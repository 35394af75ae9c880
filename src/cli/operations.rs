//! The server's side of the web UI's integrity and export pages ([`Operations`]): the store's
//! status (`calltrail status`), a verify run on demand whose result is kept as the last verify
//! (`<data>/verify/last.json`, so it survives restarts), and compliance exports started in the
//! background into `<data>/exports/<id>/` (the same bundle `calltrail export` writes).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use calltrail::config::Config;
use calltrail_query::operations::{ExportJob, ExportRequest, Operations};
use calltrail_retention::chain::keys::{default_private_key, read_signing_key, read_verifier_key};
use calltrail_retention::export::{ExportOptions, Format, Selection, export};
use calltrail_retention::verify::{VerifyOptions, verify};

use super::status::status_json;
use super::time::parse_time;

/// Exports kept in the list; older finished ones are forgotten (their bundles stay on disk).
const KEPT_JOBS: usize = 50;
/// Exports that may run at once: each reads the whole range.
const MAX_RUNNING: usize = 2;

/// The operations of one `serve`.
pub(crate) struct ServerOperations {
    config: Arc<Config>,
    /// Held while a verify runs: one at a time.
    verifying: Mutex<()>,
    jobs: Arc<Mutex<Vec<ExportJob>>>,
}

impl ServerOperations {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            verifying: Mutex::new(()),
            jobs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn last_verify_path(&self) -> PathBuf {
        self.config.data_dir.join("verify").join("last.json")
    }

    fn private_key(&self) -> PathBuf {
        self.config
            .integrity
            .signing_key
            .clone()
            .unwrap_or_else(|| default_private_key(&self.config.data_dir))
    }

    fn run_verify(&self) -> Result<serde_json::Value> {
        let _one = self
            .verifying
            .try_lock()
            .map_err(|_| anyhow!("a verify is already running"))?;
        let public = self.private_key().with_extension("pub");
        let options = VerifyOptions {
            pubkey: read_verifier_key(&public)
                .with_context(|| format!("reading the public key {}", public.display()))?,
            trusted: None,
            from_ns: None,
            to_ns: None,
            // Leave a core to ingest.
            threads: 1,
        };
        let report = verify(&self.config.data_dir, &options, &|_, _| {})?;
        let result = serde_json::json!({
            "ok": report.ok,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "segments": report.segments,
            "records": report.records,
            "chains": report.chains.len(),
            "chain_summaries": report.chains,
            "findings": report.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "notes": report.notes,
        });
        // A result recorded whole or not at all: the next start-up reads it back.
        calltrail_retention::files::write_bytes_atomic(
            &self.last_verify_path(),
            &serde_json::to_vec_pretty(&result)?,
        )?;
        Ok(result)
    }

    fn last_verify(&self) -> serde_json::Value {
        std::fs::read(self.last_verify_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn begin_export(&self, who: &str, request: ExportRequest) -> Result<ExportJob> {
        let format: Format = request
            .format
            .as_deref()
            .unwrap_or("parquet")
            .parse()
            .map_err(|e: String| anyhow!("format: {e}"))?;
        let selection = Selection {
            from_ns: parse_time("from", &request.from)?,
            to_ns: parse_time("to", &request.to)?,
            tenants: request.tenants,
            principals: request.principals,
            servers: request.servers,
            tools: request.tools,
        };
        if selection.from_ns >= selection.to_ns {
            return Err(anyhow!("from must be before to"));
        }
        let key = read_signing_key(&self.private_key())
            .context("the export signs its manifest with the store's key")?;
        let id = format!("export-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let out = self.config.data_dir.join("exports").join(&id);
        let job = ExportJob {
            id: id.clone(),
            requested_by: who.to_owned(),
            state: "running".into(),
            records: None,
            dir: out.display().to_string(),
            error: None,
        };
        {
            let mut jobs = self
                .jobs
                .lock()
                .map_err(|_| anyhow!("export list poisoned"))?;
            if jobs.iter().filter(|j| j.state == "running").count() >= MAX_RUNNING {
                return Err(anyhow!(
                    "{MAX_RUNNING} exports are running already; start this one when one is done"
                ));
            }
            if jobs.iter().any(|j| j.id == id) {
                return Err(anyhow!(
                    "an export started this millisecond already; try again"
                ));
            }
            jobs.insert(0, job.clone());
            jobs.truncate(KEPT_JOBS);
        }
        let options = ExportOptions {
            out,
            selection,
            format,
            key,
        };
        let root = self.config.data_dir.clone();
        let jobs = Arc::clone(&self.jobs);
        std::thread::Builder::new()
            .name("calltrail-export".into())
            .spawn(move || {
                let result = calltrail_retention::files::ensure_dir(&root.join("exports"))
                    .map_err(|e| e.to_string())
                    .and_then(|()| export(&root, &options, &|_, _| {}).map_err(|e| e.to_string()));
                if let Err(e) = &result {
                    tracing::warn!(export = %id, error = %e, "A compliance export failed.");
                }
                if let Ok(mut jobs) = jobs.lock()
                    && let Some(j) = jobs.iter_mut().find(|j| j.id == id)
                {
                    match result {
                        Ok(summary) => {
                            j.state = "done".into();
                            j.records = Some(summary.records);
                        }
                        Err(e) => {
                            j.state = "failed".into();
                            j.error = Some(e);
                        }
                    }
                }
            })
            .context("starting the export thread")?;
        Ok(job)
    }
}

impl Operations for ServerOperations {
    fn integrity(&self) -> Result<serde_json::Value, String> {
        let mut status = status_json(&self.config).map_err(|e| format!("{e:#}"))?;
        if let Some(o) = status.as_object_mut() {
            o.insert("verify".into(), self.last_verify());
        }
        Ok(status)
    }

    fn verify(&self) -> Result<serde_json::Value, String> {
        self.run_verify().map_err(|e| format!("{e:#}"))
    }

    fn start_export(&self, who: &str, request: ExportRequest) -> Result<ExportJob, String> {
        self.begin_export(who, request)
            .map_err(|e| format!("{e:#}"))
    }

    fn exports(&self) -> Vec<ExportJob> {
        self.jobs.lock().map(|j| j.clone()).unwrap_or_default()
    }
}
