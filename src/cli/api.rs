//! The query API inside `calltrail serve`: the engine, the token verifier (the identity
//! provider's JWKS from a file or a URL, or the local key's), the audit hook that seals every
//! query into the chain, and the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use calltrail::config::Config;
use calltrail_query::Engine;
use calltrail_query::api::{ApiState, AuditHook, serve};
use calltrail_query::auth::local_key;
use calltrail_query::jwks_fetch::{JwksFetcher, KeySource};
use calltrail_query::jwt::{Jwks, Verifier};
use calltrail_retention::audit::AuditSink;
use calltrail_schemas::audit::AuditEvent;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::operations::ServerOperations;

/// The verifier of the API's tokens.
fn verifier(config: &Config) -> Result<Verifier> {
    let auth = &config.api.auth;
    let jwks = match &auth.jwks_file {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("api.auth.jwks_file: cannot read {}", path.display()))?;
            serde_json::from_slice::<Jwks>(&text)
                .with_context(|| format!("api.auth.jwks_file: {} is not a JWKS", path.display()))?
        }
        None => local_key(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("the local API token key: {e}"))?
            .jwks(),
    };
    Verifier::new(&jwks, auth.expectations()).context("api.auth")
}

/// Where the API's keys come from: fetched by URL (once now, so a bad URL stops start-up),
/// or fixed.
async fn key_source(config: &Config) -> Result<KeySource> {
    let auth = &config.api.auth;
    let Some(url) = &auth.jwks_url else {
        return Ok(KeySource::fixed(verifier(config)?));
    };
    let fetcher = JwksFetcher::new(url, auth.jwks_ca_file.as_deref())
        .map_err(|e| anyhow::anyhow!("api.auth.jwks_url: {e}"))?;
    KeySource::fetch_first(fetcher, auth.expectations())
        .await
        .context("api.auth.jwks_url: cannot fetch the identity provider's JWKS at start-up")
}

/// Seals each query record into the chain as a `query.executed` audit event.
fn audit_hook(sink: AuditSink) -> AuditHook {
    Arc::new(move |r| {
        let sink = sink.clone();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let mut details = vec![
            ("role".to_owned(), r.role.to_owned()),
            ("outcome".to_owned(), r.outcome.to_owned()),
        ];
        if let Some(rows) = r.rows {
            details.push(("rows".to_owned(), rows.to_string()));
        }
        let event = AuditEvent {
            event_id: format!("query-{now}-{}", &r.sql_sha256[..16]),
            time_ns: now,
            action: "query.executed".into(),
            actor: r.subject,
            subject: r.sql_sha256,
            reason: None,
            details,
        };
        tokio::spawn(async move {
            if let Err(e) = sink.append(event).await {
                tracing::error!(error = %e, "Recording a query in the audit log failed.");
            }
        });
    })
}

/// Starts the API on `addr`; returns the bound address and the server task.
pub(crate) async fn start(
    config: &Config,
    addr: SocketAddr,
    audit: AuditSink,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let engine = Arc::new(Engine::open(&config.data_dir, config.query.clone()).await?);
    let keys = Arc::new(key_source(config).await?);
    let refresh = Duration::from_secs(config.api.auth.jwks_refresh_secs);
    let state = ApiState {
        engine: Arc::clone(&engine),
        verifier: keys.clone(),
        auth: Arc::new(config.api.auth.clone()),
        audit: Some(audit_hook(audit)),
        chargeback: Arc::new(config.chargeback.clone()),
        operations: Some(Arc::new(ServerOperations::new(Arc::new(config.clone())))),
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("api.listen: cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    // The refresh and the warm-up run inside the server's task, so stopping the server stops
    // them too.
    let task = tokio::spawn(async move {
        tokio::select! {
            r = serve(listener, state) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "The query API stopped.");
                }
            }
            () = keys.keep_fresh(refresh) => {}
            () = warm_report_rollups(engine) => {}
        }
    });
    Ok((bound, task))
}

/// Days of report rollups kept built ahead of the first report (two months: this month's and
/// last month's chargeback read rollups only).
const WARM_DAYS: i64 = 62;
/// The first warm-up waits this long after start-up, so that a short-lived server (a test, a
/// one-off query) never spends its cores on it.
const WARM_DELAY: Duration = Duration::from_secs(120);
/// How often completed days are looked for.
const WARM_EVERY: Duration = Duration::from_secs(3600);

/// Builds the report rollups of the completed days of the last [`WARM_DAYS`] in the
/// background, once after [`WARM_DELAY`] and then every [`WARM_EVERY`], so that the web UI's
/// and the API's monthly reports read rollups rather than every call (`docs/reports.md`).
/// Days whose rollup is current cost a digest check; a failure is logged and retried later.
async fn warm_report_rollups(engine: Arc<Engine>) {
    tokio::time::sleep(WARM_DELAY).await;
    loop {
        let today = chrono::Utc::now().date_naive();
        let first = today - chrono::Duration::days(WARM_DAYS);
        let last = today - chrono::Duration::days(2);
        match calltrail_query::report_rollup::warm_up(&engine, first, last).await {
            Ok(0) => {}
            Ok(days) => tracing::info!(days, "Built the report rollups of completed days."),
            Err(e) => tracing::warn!(
                error = %e,
                "Building report rollups failed; reports read the calls until the next try."
            ),
        }
        tokio::time::sleep(WARM_EVERY).await;
    }
}
