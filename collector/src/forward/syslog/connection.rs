//! Opening a connection to a syslog receiver (DNS, then a UDP socket, a TCP connection, or a
//! TCP connection and a TLS handshake), all within one time budget, with errors that say which
//! step failed; and telling whether an open stream is still usable.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::{SyslogConfig, SyslogProtocol, SyslogTls};
use crate::tls::{TlsError, read_certs, read_key, read_roots};

/// Why a syslog destination could not be set up or reached. Each variant names the step.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// A TLS file could not be read.
    #[error("syslog.tls.{key}: cannot read {}: {error}", path.display())]
    TlsFile {
        /// The setting naming the file (`ca_file`, `client_cert`, `client_key`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A TLS file or setting is not usable.
    #[error("syslog.tls.{key}: {problem}")]
    TlsInvalid {
        /// The setting (`ca_file`, `client_cert`, `client_key`, `server_name`).
        key: &'static str,
        /// What is wrong (never any key material).
        problem: String,
    },
    /// The host name could not be resolved.
    #[error("DNS: cannot resolve {address}: {error}")]
    Resolve {
        /// The configured address.
        address: String,
        /// The resolver's error.
        error: io::Error,
    },
    /// The host name resolved to no address.
    #[error("DNS: {address} resolves to no address")]
    NoAddress {
        /// The configured address.
        address: String,
    },
    /// No resolved address accepted a TCP connection.
    #[error("TCP connect to {addr} failed: {error}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// Why it failed (connection refused, no route...).
        error: io::Error,
    },
    /// The UDP socket could not be opened or pointed at the receiver.
    #[error("UDP socket for {addr}: {error}")]
    Udp {
        /// The receiver's address.
        addr: SocketAddr,
        /// The underlying error.
        error: io::Error,
    },
    /// The TLS handshake failed (untrusted or wrong certificate, no common protocol...).
    #[error("TLS handshake with {server_name} ({addr}) failed: {error}")]
    Handshake {
        /// The name the certificate was checked against.
        server_name: String,
        /// The receiver's address.
        addr: SocketAddr,
        /// rustls's reason.
        error: io::Error,
    },
    /// The receiver closed the connection right after the handshake: it refused the client
    /// certificate, or wanted one (TLS 1.3 reports that after the client's handshake is done).
    #[error(
        "TLS: {server_name} ({addr}) closed the connection right after the handshake ({detail}): it requires a client certificate or refused the one sent (see its log)"
    )]
    RefusedAfterHandshake {
        /// The name the certificate was checked against.
        server_name: String,
        /// The receiver's address.
        addr: SocketAddr,
        /// What was seen (end of stream, an alert).
        detail: String,
    },
    /// The connect budget ran out.
    #[error("{step} {address} timed out after {ms} ms (connect_timeout_ms)")]
    Timeout {
        /// The step under way: `DNS lookup of`, `TCP connect to`, `TLS handshake with`.
        step: &'static str,
        /// The configured address.
        address: String,
        /// The budget.
        ms: u64,
    },
}

/// An open connection.
#[derive(Debug)]
pub(crate) enum Conn {
    /// A UDP socket connected to the receiver.
    Udp(UdpSocket),
    /// A TCP stream.
    Tcp(TcpStream),
    /// A TLS stream.
    Tls(Box<TlsStream<TcpStream>>),
}

/// What [`open`] needs besides the configuration: the TLS connector and the name checked.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    name: String,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.name)
            .finish_non_exhaustive()
    }
}

fn invalid(key: &'static str, path: &Path, problem: impl std::fmt::Display) -> SyslogError {
    SyslogError::TlsInvalid {
        key,
        problem: format!("{}: {problem}", path.display()),
    }
}

/// The receivers' TLS errors, as syslog's (same keys, same wording).
impl From<TlsError> for SyslogError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Read { key, path, error } => Self::TlsFile { key, path, error },
            TlsError::Invalid { key, path, problem } => Self::TlsInvalid {
                key,
                problem: format!("{}: {problem}", path.display()),
            },
        }
    }
}

impl TlsSetup {
    /// Reads the CA, and the client certificate and key when set, and builds the connector:
    /// rustls with the `ring` provider, the CA file as the only trust anchors.
    pub(crate) fn load(config: &SyslogConfig, tls: &SyslogTls) -> Result<Self, SyslogError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = read_roots("ca_file", &tls.ca_file)?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("ca_file", &tls.ca_file, e))?
            .with_root_certificates(roots);
        let client = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("client_cert", cert)?;
                let private = read_key("client_key", key)?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(_) => invalid(
                            "client_key",
                            key,
                            "this private key does not belong to the certificate in client_cert",
                        ),
                        other => invalid(
                            "client_key",
                            key,
                            format!("unusable private key or certificate: {other}"),
                        ),
                    })?
            }
            _ => builder.with_no_client_auth(),
        };
        let name = config.server_name().unwrap_or_default();
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| SyslogError::TlsInvalid {
                key: "server_name",
                problem: format!("{name:?} is not a DNS name or an IP address"),
            })?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
            name,
        })
    }
}

/// Opens a connection to the receiver within `connect_timeout_ms`: DNS, then each resolved
/// address in turn until one connects, then the TLS handshake. After a handshake it waits a
/// moment (twice the TCP connect time plus 100 ms, at most 1 s) for the receiver to refuse the
/// client, which TLS 1.3 receivers do only after the handshake.
pub(crate) async fn open(
    config: &SyslogConfig,
    tls: Option<&TlsSetup>,
) -> Result<Conn, SyslogError> {
    let ms = config.connect_timeout_ms;
    let deadline = Instant::now() + Duration::from_millis(ms);
    let timeout = |step| SyslogError::Timeout {
        step,
        address: config.address.clone(),
        ms,
    };
    let addrs: Vec<SocketAddr> =
        timeout_at(deadline, tokio::net::lookup_host(config.address.as_str()))
            .await
            .map_err(|_| timeout("DNS lookup of"))?
            .map_err(|error| SyslogError::Resolve {
                address: config.address.clone(),
                error,
            })?
            .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(SyslogError::NoAddress {
            address: config.address.clone(),
        });
    };
    if config.protocol == SyslogProtocol::Udp {
        let local: SocketAddr = if first.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let udp = |error| SyslogError::Udp { addr: first, error };
        let socket = UdpSocket::bind(local).await.map_err(udp)?;
        socket.connect(first).await.map_err(udp)?;
        return Ok(Conn::Udp(socket));
    }
    let started = Instant::now();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout("TCP connect to")),
            Ok(Ok(s)) => {
                stream = Some((s, addr));
                break;
            }
            Ok(Err(error)) => last = Some(SyslogError::Connect { addr, error }),
        }
    }
    let Some((stream, addr)) = stream else {
        return Err(last.unwrap_or(SyslogError::NoAddress {
            address: config.address.clone(),
        }));
    };
    let rtt = started.elapsed();
    // Batches are written in whole chunks and flushed: no need to wait for more to coalesce.
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Conn::Tcp(stream));
    };
    let server_name = tls.name.clone();
    let mut stream = timeout_at(
        deadline,
        tls.connector.connect(tls.server_name.clone(), stream),
    )
    .await
    .map_err(|_| timeout("TLS handshake with"))?
    .map_err(|error| SyslogError::Handshake {
        server_name: server_name.clone(),
        addr,
        error,
    })?;
    let settle = (rtt * 2 + Duration::from_millis(100)).min(Duration::from_secs(1));
    let until = (Instant::now() + settle).min(deadline);
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        match timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return Ok(Conn::Tls(Box::new(stream))),
            Ok(Ok(0)) => {
                return Err(SyslogError::RefusedAfterHandshake {
                    server_name,
                    addr,
                    detail: "end of stream".into(),
                });
            }
            // A receiver that talks: ignore what it says.
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(SyslogError::RefusedAfterHandshake {
                    server_name,
                    addr,
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(Conn::Tls(Box::new(stream)))
}

/// Checks, without waiting, that the receiver has not closed or reset a stream: a syslog
/// receiver never sends anything, so a readable stream means end of stream or an error. Lets
/// the I/O driver run once first, so that what the kernel knows is seen. Datagrams: `Ok`.
pub(crate) async fn check_open(conn: &mut Conn) -> Result<(), String> {
    match conn {
        Conn::Udp(_) => Ok(()),
        Conn::Tcp(s) => probe(s).await,
        Conn::Tls(s) => probe(s.as_mut()).await,
    }
}

async fn probe<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(), String> {
    tokio::task::yield_now().await;
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        let mut rb = ReadBuf::new(&mut buf);
        let polled = poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Pending => None,
                Poll::Ready(r) => Some(r),
            })
        })
        .await;
        match polled {
            None => return Ok(()),
            Some(Ok(())) if rb.filled().is_empty() => {
                return Err("the receiver closed the connection".into());
            }
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(format!("the connection is broken: {e}")),
        }
    }
    Ok(())
}
