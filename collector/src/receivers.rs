//! Binds and runs both receivers, and stops them gracefully.
//!
//! Each receiver takes its connections from its own accept loop ([`accept_loop`]). With TLS
//! configured, every handshake runs in a task of its own under
//! `receivers.tls.handshake_timeout_ms`, so a slow or silent client never holds up the next
//! accept. Ready connections ([`Conn`], which knows its [`Peer`]) reach axum through a
//! [`Listener`] and tonic through an incoming stream; handlers find the [`Peer`] in the request
//! extensions (HTTP: `ConnectInfo<Peer>`, gRPC: `Peer`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::auth::Authenticator;
use crate::config::ReceiverConfig;
use crate::otlp_grpc::TraceExportService;
use crate::otlp_http;
use crate::pipeline::Pipeline;
use crate::tls::{self, TlsError};

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
    /// The TLS certificate, key or client CA could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The other end of a receiver connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The subject DN (`CN=gateway-eu-1,O=Bank`) of the client certificate verified during the
    /// TLS handshake, if the client presented one.
    pub client_subject: Option<Arc<str>>,
}

/// An accepted connection, plaintext or TLS, and who is on the other end.
#[derive(Debug)]
pub(crate) struct Conn {
    io: Io,
    peer: Peer,
    /// This connection's place under `receivers.max_connections`, given back when it closes.
    _open: OwnedSemaphorePermit,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

/// The accept loop's output, as an axum [`Listener`].
#[derive(Debug)]
pub(crate) struct ConnListener {
    conns: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl Listener for ConnListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.conns.recv().await {
            Some(conn) => {
                let addr = conn.peer.addr;
                (conn, addr)
            }
            // The accept loop only ends once this receiver is gone: never reached.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, ConnListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ConnListener>) -> Self {
        stream.io().peer.clone()
    }
}

/// At most this many TLS handshakes are in progress per receiver; past it, new connections
/// wait in the kernel's backlog.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// How a receiver's connections are secured.
#[derive(Clone)]
struct Handshake {
    acceptor: TlsAcceptor,
    timeout: Duration,
}

/// Accepts connections until `conns` is dropped (the server stopped), handing each over once
/// it is ready: at once for plaintext, after the TLS handshake otherwise.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Handshake>,
    conns: mpsc::Sender<Conn>,
    receiver: &'static str,
    max_connections: usize,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    // At the limit, connections wait in the kernel's listen backlog until one closes: each open
    // connection holds read and write buffers, so their number bounds memory too.
    let open = Arc::new(Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            () = conns.closed() => return,
            p = Arc::clone(&open).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let permit = tokio::select! {
            () = conns.closed() => return,
            p = Arc::clone(&pending).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = conns.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, typically: retrying at once would spin.
                tracing::error!(receiver, error = %e, "Accepting a connection failed; retrying in 1 s.");
                tokio::select! {
                    () = conns.closed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let peer = Peer {
            addr,
            client_subject: None,
        };
        match &tls {
            None => {
                drop(permit);
                if conns
                    .send(Conn {
                        io: Io::Plain(tcp),
                        peer,
                        _open: slot,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(handshake) => {
                let handshake = handshake.clone();
                let conns = conns.clone();
                tokio::spawn(async move {
                    if let Some(conn) = handshake.run(tcp, peer, slot, receiver).await {
                        let _ = conns.send(conn).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl Handshake {
    /// The TLS handshake, within the timeout; `None` (and the connection closed) on failure.
    async fn run(
        self,
        tcp: TcpStream,
        mut peer: Peer,
        slot: OwnedSemaphorePermit,
        receiver: &'static str,
    ) -> Option<Conn> {
        let addr = peer.addr;
        let stream = match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(receiver, peer = %addr, error = %e, "A TLS handshake failed; the connection is closed.");
                return None;
            }
            Err(_) => {
                tracing::debug!(receiver, peer = %addr, "A client did not finish its TLS handshake within receivers.tls.handshake_timeout_ms; the connection is closed.");
                return None;
            }
        };
        match tls::client_subject(stream.get_ref().1) {
            Ok(subject) => peer.client_subject = subject.map(Arc::from),
            Err(e) => {
                tracing::warn!(receiver, peer = %addr, error = %e, "A verified client certificate names no usable identity; the connection is closed.");
                return None;
            }
        }
        Some(Conn {
            io: Io::Tls(Box::new(stream)),
            peer,
            _open: slot,
        })
    }
}

/// Starts the accept loop of one receiver.
fn spawn_accept_loop(
    listener: TcpListener,
    tls: Option<Handshake>,
    receiver: &'static str,
    max_connections: usize,
) -> (mpsc::Receiver<Conn>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let task = accept_loop(listener, tls, tx, receiver, max_connections);
    (rx, tokio::spawn(task))
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
    /// Loads the TLS files (when configured), binds both listeners and starts serving; `auth`
    /// decides which requests are accepted; `metrics`, when given, is served at `GET /metrics`
    /// on the OTLP/HTTP port.
    pub async fn start(
        config: &ReceiverConfig,
        auth: Authenticator,
        pipeline: Pipeline,
        metrics: Option<otlp_http::MetricsRenderer>,
    ) -> Result<Self, ReceiversError> {
        let tls = config.tls.as_ref().map(tls::TlsConfig::load).transpose()?;
        let auth = Arc::new(auth);
        let (grpc_listener, grpc_addr) = bind("receivers.grpc_addr", config.grpc_addr).await?;
        let (http_listener, http_addr) = bind("receivers.http_addr", config.http_addr).await?;
        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let (http_stop, http_stopped) = oneshot::channel::<()>();

        let handshake = |server_config: &Arc<rustls::ServerConfig>, timeout| Handshake {
            acceptor: TlsAcceptor::from(Arc::clone(server_config)),
            timeout,
        };
        let (mut grpc_conns, grpc_accept) = spawn_accept_loop(
            grpc_listener,
            tls.as_ref()
                .map(|t| handshake(&t.grpc, t.handshake_timeout)),
            "otlp_grpc",
            config.max_connections,
        );
        let (http_conns, http_accept) = spawn_accept_loop(
            http_listener,
            tls.as_ref()
                .map(|t| handshake(&t.http, t.handshake_timeout)),
            "otlp_http",
            config.max_connections,
        );

        let service =
            TraceExportService::new(pipeline.clone(), config.max_body_bytes, Arc::clone(&auth));
        let grpc = tokio::spawn(async move {
            let incoming = futures::stream::poll_fn(move |cx| {
                grpc_conns
                    .poll_recv(cx)
                    .map(|conn| conn.map(Ok::<_, Infallible>))
            });
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
        let app = match metrics {
            Some(render) => app.merge(otlp_http::metrics_router(render)),
            None => app,
        };
        let http = tokio::spawn(async move {
            let listener = ConnListener {
                conns: http_conns,
                local: http_addr,
            };
            let served = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(async {
                    let _ = http_stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "The OTLP/HTTP receiver stopped with an error.");
            }
        });
        match &config.tls {
            Some(t) => tracing::info!(
                %grpc_addr, %http_addr, client_auth = ?t.client_auth(),
                "OTLP receivers listening with TLS."
            ),
            None => tracing::info!(%grpc_addr, %http_addr, "OTLP receivers listening."),
        }
        Ok(Self {
            grpc_addr,
            http_addr,
            stops: vec![grpc_stop, http_stop],
            // The servers first: once they stop, their accept loops end.
            tasks: vec![grpc, http, grpc_accept, http_accept],
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use calltrail_retention::StoreConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::test_stack;
    use crate::wal::WalConfig;

    async fn healthz(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn connections_past_the_limit_wait_until_one_closes() {
        let dir = tempfile::tempdir().unwrap();
        let stack =
            test_stack::start(dir.path(), WalConfig::default(), StoreConfig::default()).await;
        let config = ReceiverConfig {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: 1,
            ..ReceiverConfig::default()
        };
        let r = Receivers::start(&config, Authenticator::open(), stack.pipeline.clone(), None)
            .await
            .unwrap();
        let idle = TcpStream::connect(r.http_addr).await.unwrap();
        let waiting = tokio::spawn(healthz(r.http_addr));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "a second connection was served");
        drop(idle);
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("served once the first connection closed")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        r.shutdown().await;
        stack.shutdown().await;
    }
}
