//! Binds and runs both receivers, and stops them gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::ReceiverConfig;
use crate::otlp_grpc::TraceExportService;
use crate::otlp_http;
use crate::pipeline::Pipeline;

/// Why the receivers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiversError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        /// The configuration key of the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The running OTLP receivers.
#[derive(Debug)]
pub struct Receivers {
    /// The bound OTLP/gRPC address (useful when configured with port 0).
    pub grpc_addr: SocketAddr,
    /// The bound OTLP/HTTP address.
    pub http_addr: SocketAddr,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(
    key: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ReceiversError> {
    let err = |source| ReceiversError::Bind { key, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

impl Receivers {
    /// Binds both listeners and starts serving; `auth` decides which requests are accepted.
    pub async fn start(
        config: &ReceiverConfig,
        auth: Authenticator,
        pipeline: Pipeline,
    ) -> Result<Self, ReceiversError> {
        let auth = Arc::new(auth);
        let (grpc_listener, grpc_addr) = bind("receivers.grpc_addr", config.grpc_addr).await?;
        let (http_listener, http_addr) = bind("receivers.http_addr", config.http_addr).await?;
        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let (http_stop, http_stopped) = oneshot::channel::<()>();

        let service =
            TraceExportService::new(pipeline.clone(), config.max_body_bytes, Arc::clone(&auth));
        let grpc = tokio::spawn(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = grpc_stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "The OTLP/gRPC receiver stopped with an error.");
            }
        });
        let app = otlp_http::router(pipeline, config.max_body_bytes, auth);
        let http = tokio::spawn(async move {
            let served = axum::serve(
                http_listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "The OTLP/HTTP receiver stopped with an error.");
            }
        });
        tracing::info!(%grpc_addr, %http_addr, "OTLP receivers listening.");
        Ok(Self {
            grpc_addr,
            http_addr,
            stops: vec![grpc_stop, http_stop],
            tasks: vec![grpc, http],
        })
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
