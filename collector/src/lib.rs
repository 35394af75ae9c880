//! Calltrail's OTLP receivers and ingest pipeline.
//!
//! Data flows one way: receive ([`otlp_http`], [`otlp_grpc`]) → decode (protobuf, or
//! [`otlp_json`]) → map and attribute ([`pipeline`], using `calltrail-schemas`) → the
//! write-ahead log ([`wal`]; acknowledged once durable) → the store writer
//! (`calltrail-retention`). [`receivers`] runs both receivers, over TLS when [`tls`] is
//! configured, [`auth`] decides who may send and [`admission`] how much may be in flight.

pub mod admission;
pub mod auth;
pub mod business_stats;
pub mod config;
pub mod forward;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod otlp_json;
pub mod pipeline;
pub mod receivers;
pub mod retry_info;
pub mod tls;
pub mod wal;

#[cfg(test)]
mod test_pki;
#[cfg(test)]
mod test_stack;

pub use auth::{AuthConfig, Authenticator};
pub use config::ReceiverConfig;
pub use pipeline::{IngestError, IngestReport, Pipeline};
pub use receivers::{Peer, Receivers, ReceiversError};
pub use tls::{ClientAuth, TlsConfig, TlsError};
pub use wal::{WalConfig, WalHandle, WalWriter};
