//! The `[receivers]` configuration section.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::tls::TlsConfig;

/// Where and how the OTLP receivers listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// OTLP/gRPC listen address. Default `127.0.0.1:4317` (loopback only).
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address. Default `127.0.0.1:4318` (loopback only).
    pub http_addr: SocketAddr,
    /// Largest accepted request body in bytes, compressed or decompressed. Default 16 MiB.
    pub max_body_bytes: usize,
    /// Memory for requests in flight (bodies, decoded requests, records, log frames), in MiB.
    /// Requests past it are refused with a retryable error. Must hold at least one request of
    /// `max_body_bytes` (4 × its size). Default 256.
    pub memory_budget_mib: usize,
    /// Open connections per receiver; more wait in the listen backlog until one closes.
    /// Default 1024.
    pub max_connections: usize,
    /// TLS (and client certificates) on both receivers. Default: none, plaintext.
    pub tls: Option<TlsConfig>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_body_bytes: 16 * 1024 * 1024,
            memory_budget_mib: 256,
            max_connections: 1024,
            tls: None,
        }
    }
}

impl ReceiverConfig {
    /// True when a verified client certificate can authenticate requests (mTLS configured).
    pub fn verifies_clients(&self) -> bool {
        self.tls.as_ref().is_some_and(TlsConfig::verifies_clients)
    }

    /// Checks ranges and combinations, without reading files; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err((
                "receivers.max_body_bytes".into(),
                "must be between 1024 and 1073741824".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err((
                "receivers.max_connections".into(),
                "must be between 1 and 1000000".into(),
            ));
        }
        let min = (self.max_body_bytes * crate::admission::EXPANSION).div_ceil(1 << 20);
        if !(min..=1 << 20).contains(&self.memory_budget_mib) {
            return Err((
                "receivers.memory_budget_mib".into(),
                format!("must be between {min} (4 × receivers.max_body_bytes) and 1048576"),
            ));
        }
        Ok(())
    }
}
