//! The control socket: how `calltrail hold` reaches a running server, whose writer alone may
//! extend the chain. A Unix socket at `<data_dir>/run/control.sock`, in a directory of mode
//! 0700 and itself 0600, so only the account that owns the data may use it: the same account
//! that could edit the files anyway. One JSON request line, one JSON reply line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use calltrail_retention::audit::AuditSink;
use calltrail_schemas::audit::AuditEvent;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// The longest request accepted: an audit event is a few hundred bytes.
const MAX_REQUEST: u64 = 64 * 1024;

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be created, reached, read or written.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server answered with an error, or with something that is not an answer.
    #[error("the server refused: {0}")]
    Refused(String),
}

/// The socket's path under a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("control.sock")
}

/// An audit event on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    event_id: String,
    time_ns: i64,
    action: String,
    actor: String,
    subject: String,
    reason: Option<String>,
    details: Vec<(String, String)>,
}

impl From<AuditEvent> for WireEvent {
    fn from(e: AuditEvent) -> Self {
        Self {
            event_id: e.event_id,
            time_ns: e.time_ns,
            action: e.action,
            actor: e.actor,
            subject: e.subject,
            reason: e.reason,
            details: e.details,
        }
    }
}

impl From<WireEvent> for AuditEvent {
    fn from(e: WireEvent) -> Self {
        Self {
            event_id: e.event_id,
            time_ns: e.time_ns,
            action: e.action,
            actor: e.actor,
            subject: e.subject,
            reason: e.reason,
            details: e.details,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Request {
    /// Seal an audit event into the chain.
    Audit(WireEvent),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    seq: Option<u64>,
    error: Option<String>,
}

/// Listens on the control socket of `data_dir`, sealing the audit events it receives through
/// `sink`. A stale socket file from an earlier run is replaced (the data directory's lock
/// guarantees no other server uses it).
pub fn listen(data_dir: &Path, sink: AuditSink) -> Result<JoinHandle<()>, ControlError> {
    let path = socket_path(data_dir);
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let sink = sink.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &sink).await {
                            tracing::warn!(error = %e, "A control socket request failed.");
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "The control socket stopped accepting.");
                    return;
                }
            }
        }
    }))
}

async fn handle(stream: UnixStream, sink: &AuditSink) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Audit(event)) => {
            let event = AuditEvent::from(event);
            tracing::info!(action = %event.action, subject = %event.subject, actor = %event.actor,
                "Recording an audit event from the control socket.");
            match sink.append(event).await {
                Ok(seq) => Reply {
                    seq: Some(seq),
                    error: None,
                },
                Err(e) => Reply {
                    seq: None,
                    error: Some(e.to_string()),
                },
            }
        }
        Err(e) => Reply {
            seq: None,
            error: Some(format!("not a control request: {e}")),
        },
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Removes the socket file at shutdown, so a copy of the data directory holds data only.
pub fn remove(data_dir: &Path) {
    let path = socket_path(data_dir);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "Could not remove the control socket.");
    }
}

/// Asks the server on `data_dir` to seal `event`; returns its seq. Fails with
/// [`ControlError::Io`] when no server listens there.
pub async fn append_audit(data_dir: &Path, event: AuditEvent) -> Result<u64, ControlError> {
    let path = socket_path(data_dir);
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let stream = UnixStream::connect(&path).await.map_err(io)?;
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(&Request::Audit(event.into()))
        .map_err(|e| ControlError::Refused(e.to_string()))?;
    req.push(b'\n');
    write.write_all(&req).await.map_err(io)?;
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await
        .map_err(io)?;
    let reply: Reply = serde_json::from_str(&line)
        .map_err(|e| ControlError::Refused(format!("unreadable reply {line:?}: {e}")))?;
    match (reply.seq, reply.error) {
        (Some(seq), None) => Ok(seq),
        (_, Some(e)) => Err(ControlError::Refused(e)),
        (None, None) => Err(ControlError::Refused("an empty reply".into())),
    }
}
