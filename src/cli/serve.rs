//! `calltrail serve`: the receivers, the store writer and the process's own metrics, until
//! SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use calltrail::telemetry::Telemetry;
use calltrail_collector::forward::Forwarders;
use calltrail_collector::wal::{self, RecoveryReport, WalStats};
use calltrail_collector::{Pipeline, Receivers, WalWriter};
use calltrail_retention::chain::keys;
use calltrail_retention::{Layout, StoreWriter};
use tokio::signal::unix::{SignalKind, signal};

use super::ConfigArgs;

/// Arguments of `calltrail serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// OTLP/gRPC listen address (overrides `receivers.grpc_addr`).
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address (overrides `receivers.http_addr`).
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Query API listen address (overrides `api.listen`).
    #[arg(long)]
    api_addr: Option<SocketAddr>,
    /// Write `{"grpc": ADDR, "http": ADDR, "data_dir": DIR}` here once listening (for scripts
    /// and tests that use port 0).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

/// A name for this writer's files, different across processes and restarts.
fn writer_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:04x}{:04x}", std::process::id() & 0xffff, nanos & 0xffff)
}

/// Holds an exclusive lock on the data directory's log for the life of the process: two
/// servers appending to one log would corrupt it.
pub(crate) fn lock_data_dir(wal_dir: &Path) -> Result<std::fs::File> {
    let path = wal_dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "data_dir: {} is in use by another calltrail process",
            wal_dir.parent().unwrap_or(wal_dir).display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Says what recovery found: quietly when the last stop was clean, loudly when data was cut.
fn log_recovery(report: &RecoveryReport, already_stored: u64) {
    if let Some(e) = &report.checkpoint_error {
        tracing::warn!(error = %e, "The write-ahead-log checkpoint was unreadable; replaying the whole log (records already in Parquet are recognised and skipped).");
    }
    for cut in &report.cuts {
        tracing::warn!(segment = %cut.segment.display(), offset = cut.offset, bytes = cut.bytes,
            damage = cut.damage.as_str(), quarantined = %cut.quarantined.display(),
            "Write-ahead-log recovery cut a damaged tail.");
    }
    if report.replayed > 0 || !report.cuts.is_empty() || report.undecodable > 0 {
        tracing::warn!(
            replayed_frames = report.replayed,
            records_already_stored = already_stored,
            damaged_tails = report.cuts.len(),
            undecodable_frames = report.undecodable,
            checkpoint = report.checkpoint,
            "Recovered the write-ahead log after an unclean stop."
        );
    } else {
        tracing::info!(
            checkpoint = report.checkpoint,
            segments = report.segments,
            "Write-ahead log clean."
        );
    }
}

fn write_ready_file(
    path: &Path,
    receivers: &Receivers,
    api: Option<SocketAddr>,
    data_dir: &Path,
) -> Result<()> {
    let body = serde_json::json!({
        "grpc": receivers.grpc_addr.to_string(),
        "http": receivers.http_addr.to_string(),
        "api": api.map(|a| a.to_string()),
        "data_dir": data_dir.display().to_string(),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let mut config = args.config.load()?;
    if let Some(a) = args.grpc_addr {
        config.receivers.grpc_addr = a;
    }
    if let Some(a) = args.http_addr {
        config.receivers.http_addr = a;
    }
    config.validate()?;
    let attributor = Arc::new(config.attributor()?);
    let auth = config.authenticator()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;

    // First, so that components recording through `opentelemetry::global::meter` get this
    // provider rather than the no-op one.
    let telemetry = Telemetry::install(&config.telemetry)?;

    let wal_dir = config.data_dir.join("wal");
    std::fs::create_dir_all(&wal_dir)
        .with_context(|| format!("data_dir: cannot create {}", wal_dir.display()))?;
    let _lock = lock_data_dir(&wal_dir)?;

    let layout = Arc::new(Layout::new(&config.data_dir, writer_id()));
    let integrity = &config.integrity;
    let key = keys::load_or_create(
        integrity.signing_key.as_deref(),
        &config.data_dir,
        &integrity.log_name,
    )?;
    let writer = StoreWriter::spawn(
        config.store.clone(),
        layout,
        integrity,
        &key,
        &config.retention,
    )?;
    tracing::info!(chain_id = %writer.chain_id(), key = %key.verifier().to_text(),
        "Records are chained and checkpoints signed; verifiers pin this public key.");
    let control = calltrail::control::listen(&config.data_dir, writer.audit())?;
    let retention =
        super::retention::spawn_schedule(&config.data_dir, &config.retention, key.clone());
    telemetry.observe_store(writer.handle().stats());
    let report = {
        let (dir, data, sink) = (wal_dir.clone(), config.data_dir.clone(), writer.handle());
        tokio::task::spawn_blocking(move || wal::recover_into(&dir, &data, &sink)).await??
    };
    log_recovery(&report.0, report.1);
    let wal_stats = Arc::new(WalStats::after_recovery(&report.0));
    let checkpointer =
        wal::spawn_checkpointer(wal_dir.clone(), writer.flushed(), Arc::clone(&wal_stats));
    let wal = WalWriter::start(
        wal_dir,
        config.wal.clone(),
        report.0.next_seq,
        writer.handle(),
        Arc::clone(&wal_stats),
    )?;
    telemetry.observe_wal(&wal_stats, &wal.handle());
    let pipeline = Pipeline::new(
        attributor,
        wal.handle(),
        config.receivers.memory_budget_mib << 20,
    )
    .with_business_series_limit(config.telemetry.business_series_limit);
    telemetry.observe_ingest(pipeline.stats());
    telemetry.observe_business(pipeline.business_stats());
    // After recovery, so the store holds every acknowledged record before forwarding reads it.
    let forwarders = Forwarders::start(&config.forward, &config.data_dir, &writer.checkpoints())?;
    telemetry.observe_forward(forwarders.stats());
    let receivers = Receivers::start(
        &config.receivers,
        auth,
        pipeline.clone(),
        telemetry.metrics_renderer(),
    )
    .await?;
    // After recovery and with the API: scores each hour as it completes.
    let detector = super::detect::spawn_schedule(
        &config.data_dir,
        config.query.clone(),
        config.detect.clone(),
    );
    let api = if config.api.enabled {
        let addr = args.api_addr.unwrap_or(config.api.listen);
        let (bound, task) = super::api::start(&config, addr, writer.audit()).await?;
        tracing::info!(api = %bound, ui = %format!("http://{bound}/ui/"),
            "The query API and web UI are listening; `calltrail token --role auditor --url` prints a login link.");
        Some((bound, task))
    } else {
        None
    };
    if let Some(p) = &args.ready_file {
        write_ready_file(
            p,
            &receivers,
            api.as_ref().map(|(a, _)| *a),
            &config.data_dir,
        )?;
    }
    tracing::info!(
        grpc = %receivers.grpc_addr, http = %receivers.http_addr, data_dir = %config.data_dir.display(),
        "Calltrail is recording. Send OTLP traces; query with `calltrail query`."
    );

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; draining."),
        _ = int.recv() => tracing::info!("SIGINT received; draining."),
    }

    control.abort();
    if let Some((_, task)) = &api {
        task.abort();
    }
    calltrail::control::remove(&config.data_dir);
    if let Some(d) = detector {
        d.abort();
    }
    if let Some(r) = retention {
        r.abort();
    }
    let deadline = Duration::from_millis(config.shutdown_deadline_ms);
    let drained = tokio::time::timeout(deadline, async {
        receivers.shutdown().await;
        drop(pipeline);
        wal.shutdown().await;
        let stats = writer.shutdown().await;
        // Last: what the writer sealed while draining goes out now or at the next start.
        forwarders.shutdown().await;
        if let Err(e) = checkpointer.await {
            tracing::error!(error = %e, "The checkpoint task failed.");
        }
        stats
    })
    .await;
    // After the store has drained, so a final OTLP push carries the final counts.
    if let Err(e) = telemetry.shutdown().await {
        tracing::warn!(error = %e, "The final push of Calltrail's own metrics failed.");
    }
    match drained {
        Ok(stats) => {
            tracing::info!(
                files = stats.files.load(std::sync::atomic::Ordering::Relaxed),
                rows = stats.rows.load(std::sync::atomic::Ordering::Relaxed),
                "Calltrail stopped cleanly; everything accepted is in Parquet."
            );
            Ok(())
        }
        Err(_) => bail!(
            "shutdown did not finish within shutdown_deadline_ms ({} ms)",
            deadline.as_millis()
        ),
    }
}
