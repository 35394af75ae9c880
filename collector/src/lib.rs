//! Calltrail's OTLP receivers and ingest pipeline.
//!
//! Data flows one way: receive ([`otlp_http`], [`otlp_grpc`]) → decode (protobuf, or
//! [`otlp_json`]) → map and attribute ([`pipeline`], using `calltrail-schemas`) → the store
//! writer (`calltrail-retention`). [`receivers`] runs both receivers, over TLS when [`tls`] is
//! configured, and [`auth`] decides who may send.

pub mod auth;
pub mod config;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod otlp_json;
pub mod pipeline;
pub mod receivers;
pub mod tls;

pub use auth::{AuthConfig, Authenticator};
pub use config::ReceiverConfig;
pub use pipeline::{IngestError, IngestReport, Pipeline};
pub use receivers::{Peer, Receivers, ReceiversError};
pub use tls::{ClientAuth, TlsConfig, TlsError};
