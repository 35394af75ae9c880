//! The syslog transport: events as RFC 5424 (or legacy RFC 3164) messages over UDP (RFC 5426),
//! TCP (RFC 6587) or TLS (RFC 5425), to rsyslog, syslog-ng or a SIEM's syslog listener.
//!
//! - [`config`]: the `[forward.destinations.syslog]` section;
//! - [`message`]: the message layout (header, Calltrail's structured data, MSG, truncation);
//! - [`framing`]: octet counting, LF framing, datagrams.
//!
//! # What counts as delivered
//!
//! Syslog has no acknowledgement, so "delivered" means what the protocol can say:
//!
//! - **UDP**: best effort. A datagram the kernel took counts as delivered. When the kernel
//!   reports the receiver's port unreachable (ICMP, seen on a later send or right after the
//!   batch), the whole batch is retried: a receiver that is down on a reachable host is noticed,
//!   but a datagram lost on the way never is.
//! - **TCP and TLS**: messages are written in chunks of up to 64 KiB, each written and flushed
//!   (handed to the kernel) within `write_timeout_ms`. Before a batch, and after its last chunk,
//!   the connection is checked: a receiver never sends anything, so end of stream or a reset
//!   means it closed. A broken connection usually shows only on the write after the one the
//!   receiver never read, so on any failure the last chunk flushed before it is not counted
//!   either: `Retry { delivered }` covers the chunks flushed before that one. The connection
//!   is dropped and the next `send` reconnects. What remains possible is the loss of bytes that
//!   sat in the kernel's buffers when a receiver died without closing (a crash with no reset
//!   reaching us): syslog over TCP cannot tell; use a receiver with a disk queue, and dedupe
//!   by `event_id` (retries can duplicate, never drop, what they resend).

pub mod config;
mod connection;
pub mod framing;
pub mod message;

use std::time::Duration;

use tokio::io::AsyncWriteExt;

pub use config::{ConfigError, Framing, SyslogConfig, SyslogProtocol, SyslogRfc, SyslogTls};
pub use connection::SyslogError;
pub use message::{MessageBuilder, TooLarge};

use connection::{Conn, TlsSetup, check_open, open};

use crate::forward::transport::{Message, Rejection, Retry, SendResult};

/// Bytes written and flushed at a time on a stream.
const CHUNK_BYTES: usize = 64 * 1024;

/// A syslog destination's connection and message builder.
#[derive(Debug)]
pub struct SyslogTransport {
    config: SyslogConfig,
    builder: MessageBuilder,
    framing: Option<Framing>,
    tls: Option<TlsSetup>,
    conn: Option<Conn>,
}

impl SyslogTransport {
    /// A transport for `config` (validated) that connects on its first `send`. Reads the TLS
    /// files now, so that a bad file is reported at once.
    pub fn new(config: &SyslogConfig) -> Result<Self, SyslogError> {
        let tls = match (&config.tls, config.protocol) {
            (Some(tls), SyslogProtocol::Tls) => Some(TlsSetup::load(config, tls)?),
            (None, SyslogProtocol::Tls) => {
                return Err(SyslogError::TlsInvalid {
                    key: "ca_file",
                    problem: "protocol \"tls\" needs a [tls] section with ca_file".into(),
                });
            }
            _ => None,
        };
        Ok(Self {
            config: config.clone(),
            builder: MessageBuilder::new(config),
            framing: config.effective_framing(),
            tls,
            conn: None,
        })
    }

    /// A transport for `config` (validated), connected: DNS, TCP connect and TLS handshake (or
    /// the UDP socket) done within `connect_timeout_ms`. The error says which step failed (for
    /// `calltrail forward test`).
    pub async fn connect(config: &SyslogConfig) -> Result<Self, SyslogError> {
        let mut transport = Self::new(config)?;
        transport.conn = Some(open(&transport.config, transport.tls.as_ref()).await?);
        Ok(transport)
    }

    /// Uses `builder` instead of the configured one (a fixed host name and PROCID, for tests).
    pub fn with_builder(mut self, builder: MessageBuilder) -> Self {
        self.builder = builder;
        self
    }

    /// True when a connection is open (it may still turn out broken on the next `send`).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Sends every message of `batch`, connecting first when needed, and says how far delivery
    /// is confirmed (see the module documentation). A message whose header and structured data
    /// alone exceed `max_message_bytes` is rejected.
    pub async fn send(&mut self, batch: &[Message]) -> SendResult {
        if let Some(conn) = &mut self.conn
            && let Err(why) = check_open(conn).await
        {
            tracing::debug!(address = %self.config.address, reason = %why, "The syslog connection is no longer usable; reconnecting.");
            self.conn = None;
        }
        if self.conn.is_none() {
            match open(&self.config, self.tls.as_ref()).await {
                Ok(c) => self.conn = Some(c),
                Err(e) => return Err(self.retry(0, Vec::new(), &e.to_string())),
            }
        }
        let result = if matches!(self.conn, Some(Conn::Udp(_))) {
            self.send_datagrams(batch).await
        } else {
            self.send_stream(batch).await
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn retry(&self, delivered: usize, mut rejected: Vec<Rejection>, reason: &str) -> Retry {
        rejected.retain(|r| r.index < delivered);
        Retry {
            delivered,
            rejected,
            reason: format!("syslog {}: {reason}", self.config.address),
        }
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms)
    }

    async fn send_datagrams(&mut self, batch: &[Message]) -> SendResult {
        let Some(Conn::Udp(socket)) = &self.conn else {
            return Err(self.retry(0, Vec::new(), "no UDP socket"));
        };
        let mut rejected = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            let bytes = match self.builder.build(m) {
                Ok(b) => b,
                Err(e) => {
                    rejected.push(Rejection {
                        index: i,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let failure =
                match tokio::time::timeout(self.write_timeout(), socket.send(&bytes)).await {
                    Ok(Ok(n)) if n == bytes.len() => continue,
                    Ok(Ok(n)) => format!("UDP send sent {n} of {} bytes", bytes.len()),
                    Ok(Err(e)) => format!("UDP send failed: {e}"),
                    Err(_) => format!(
                        "UDP send timed out after {} ms (write_timeout_ms)",
                        self.config.write_timeout_ms
                    ),
                };
            // A refusal reported now is about an earlier datagram: resend the whole batch.
            return Err(self.retry(0, rejected, &failure));
        }
        tokio::task::yield_now().await;
        if let Ok(Some(e)) = socket.take_error() {
            return Err(self.retry(
                0,
                rejected,
                &format!("the receiver's host reports an error for the datagrams sent: {e}"),
            ));
        }
        Ok(rejected)
    }

    async fn send_stream(&mut self, batch: &[Message]) -> SendResult {
        let mut rejected = Vec::new();
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 8192);
        // `confirmed`: the prefix covered by flushed chunks; `before_last`: the prefix before
        // the last flushed chunk, which is all that counts when something fails.
        let (mut confirmed, mut before_last) = (0, 0);
        let mut message = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            match self.builder.build(m) {
                Ok(bytes) => message = bytes,
                Err(e) => {
                    rejected.push(Rejection {
                        index: i,
                        reason: e.to_string(),
                    });
                    message.clear();
                }
            }
            if !message.is_empty() {
                framing::frame_into(self.framing, &message, &mut chunk);
            }
            if chunk.len() >= CHUNK_BYTES || i + 1 == batch.len() {
                if let Err(why) = self.write(&chunk).await {
                    return Err(self.retry(before_last, rejected, &why));
                }
                chunk.clear();
                before_last = confirmed;
                confirmed = i + 1;
            }
        }
        if let Some(conn) = &mut self.conn
            && let Err(why) = check_open(conn).await
        {
            return Err(self.retry(before_last, rejected, &format!("after writing: {why}")));
        }
        Ok(rejected)
    }

    /// Writes and flushes `bytes` within `write_timeout_ms`.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        let ms = self.config.write_timeout_ms;
        let limit = self.write_timeout();
        let written = match &mut self.conn {
            Some(Conn::Tcp(s)) => {
                tokio::time::timeout(limit, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Some(Conn::Tls(s)) => {
                tokio::time::timeout(limit, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Some(Conn::Udp(_)) | None => return Err("no open stream".into()),
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing failed: {e}")),
            Err(_) => Err(format!(
                "writing timed out after {ms} ms (write_timeout_ms): the receiver is not reading"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
