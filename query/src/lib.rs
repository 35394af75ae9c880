//! Calltrail's read-only SQL over the Parquet store, on Apache DataFusion.
//!
//! - [`engine`]: a session with the tables (`tool_calls`, `llm_calls`, `audit_events`) and views (`calls`)
//!   registered over a data directory, and read-only query execution;
//! - [`output`]: results as a text table, CSV or JSON;
//! - [`jwt`]: bearer tokens (RS256, ES256) verified against a JWKS, and local tokens minted;
//! - [`auth`]: the `[api.auth]` settings, and a token's role and row scope;
//! - [`api`]: the HTTP API (`POST /api/v1/sql`, the OpenAPI document).

pub mod api;
pub mod auth;
pub mod engine;
pub mod jwt;
pub mod output;

pub use engine::{Engine, QueryLimits, Scope};

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL is invalid or not allowed (DDL, DML, statements): the user's mistake.
    #[error("{0}")]
    Plan(String),
    /// Running the query failed.
    #[error("query failed: {0}")]
    Execution(String),
    /// Formatting the results failed.
    #[error("formatting results failed: {0}")]
    Output(String),
    /// A bug: a registered table or view could not be built.
    #[error("internal error (a bug): {0}")]
    Internal(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
