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
    let engine = Engine::open(&config.data_dir, config.query.clone()).await?;
    let keys = Arc::new(key_source(config).await?);
    let refresh = Duration::from_secs(config.api.auth.jwks_refresh_secs);
    let state = ApiState {
        engine: Arc::new(engine),
        verifier: keys.clone(),
        auth: Arc::new(config.api.auth.clone()),
        audit: Some(audit_hook(audit)),
        chargeback: Arc::new(config.chargeback.clone()),
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("api.listen: cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    // The refresh runs inside the server's task, so stopping the server stops it too.
    let task = tokio::spawn(async move {
        tokio::select! {
            r = serve(listener, state) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "The query API stopped.");
                }
            }
            () = keys.keep_fresh(refresh) => {}
        }
    });
    Ok((bound, task))
}
