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
    /// TLS (and client certificates) on both receivers. Default: none, plaintext.
    pub tls: Option<TlsConfig>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_body_bytes: 16 * 1024 * 1024,
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
        Ok(())
    }
}
