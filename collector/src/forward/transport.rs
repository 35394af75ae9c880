//! The contract between the delivery loop and a transport (Kafka, syslog, OTLP): a batch of
//! encoded messages goes out, and the transport says how far delivery is confirmed.

use super::event::EventMeta;

/// One encoded event, ready for a transport.
#[derive(Debug, Clone)]
pub struct Message {
    /// The formatted event (OCSF, ECS, CEF, LEEF or native JSON).
    pub payload: Vec<u8>,
    /// What every transport adds around it (syslog structured data, Kafka headers and key).
    pub meta: EventMeta,
}

/// A message the destination refused for good (malformed for it, too large, not authorised
/// for this topic...): retrying cannot help, so it goes to the dead-letter file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its index in the batch.
    pub index: usize,
    /// Why, as the destination said.
    pub reason: String,
}

/// Why a batch must be sent again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({delivered} of the batch confirmed)")]
pub struct Retry {
    /// The messages `[0, delivered)` are confirmed delivered (or rejected, see `rejected`);
    /// nothing is known of the others, which are sent again.
    pub delivered: usize,
    /// Rejections among the confirmed prefix.
    pub rejected: Vec<Rejection>,
    /// What went wrong (connection refused, broker down, TLS handshake...).
    pub reason: String,
}

/// The result of sending a batch: every message confirmed, except the rejections listed; or a
/// confirmed prefix and a reason to retry the rest.
pub type SendResult = Result<Vec<Rejection>, Retry>;
