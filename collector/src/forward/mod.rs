//! SIEM forwarding: every stored record, every anomaly finding and every signed checkpoint
//! delivered, at least once, to each configured destination, in the format it ingests. The
//! store is the source of truth; each destination is a replayable consumer of it with its own
//! durable cursors.
//!
//! - [`event`]: what is forwarded: stored records and findings read back as rows, and
//!   checkpoints;
//! - [`transport`]: the contract between the delivery loop and a transport;
//! - [`source`]: the store read back in chain order past a destination's cursor;
//! - [`findings`]: the `anomalies` table's files past a destination's findings cursor;
//! - [`cursor`]: a destination's durable positions: per chain, and per findings partition;
//! - [`filter`]: which events a destination is sent;
//! - [`format`]: the event formats (OCSF, ECS, CEF, LEEF, native JSON);
//! - [`dead_letter`]: events a destination refused for good, kept with the reason;
//! - [`kafka`]: the Kafka transport;
//! - [`syslog`]: the syslog transport (RFC 5424/3164 over UDP, TCP or TLS);
//! - [`otlp`]: the OTLP/HTTP transport, re-exporting enriched spans;
//! - [`config`]: the `[forward]` section;
//! - [`deliver`]: the delivery loop, one task per destination;
//! - `prepare`: its first stage, reading and encoding the backlog on a blocking thread.

pub use config::{DestinationConfig, ForwardConfig};
pub use deliver::{DestinationStats, Forwarders};

pub mod config;
pub mod cursor;
pub mod dead_letter;
pub mod deliver;
pub mod event;
pub mod filter;
pub mod findings;
pub mod format;
pub mod kafka;
pub mod otlp;
mod prepare;
pub mod source;
pub mod syslog;
pub mod transport;
