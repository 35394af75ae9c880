//! Calltrail's read-only SQL over the Parquet store, on Apache DataFusion.
//!
//! - [`engine`]: a session with the tables (`tool_calls`, `llm_calls`, `audit_events`) and views (`calls`)
//!   registered over a data directory, and read-only query execution;
//! - [`output`]: results as a text table, CSV or JSON;
//! - [`jwt`]: bearer tokens (RS256, ES256) verified against a JWKS, and local tokens minted;
//! - [`jwks_fetch`]: the identity provider's JWKS by URL, refreshed, and the swappable verifier;
//! - [`auth`]: the `[api.auth]` settings, and a token's role and row scope;
//! - [`price_table`]: the `[chargeback]` settings (versioned price tables);
//! - [`chargeback`]: who pays for which usage, with the platform's fixed cost allocated;
//! - [`roi`]: adoption and value figures per week;
//! - [`focus`]: the hourly chargeback as FOCUS 1.2 cost and usage rows, as CSV or Parquet;
//! - [`api`]: the HTTP API (`POST /api/v1/sql`, chargeback, ROI, the OpenAPI document).

pub mod api;
mod api_calls;
mod api_charts;
mod api_detect;
mod api_drilldown;
mod api_reports;
pub mod auth;
pub mod chargeback;
pub mod charts;
mod columns;
pub mod date_hint;
pub mod detect;
pub mod engine;
mod files;
pub mod focus;
pub mod jwks_fetch;
pub mod jwt;
pub mod operations;
pub mod output;
pub mod price_table;
pub mod report_rollup;
pub mod roi;
pub mod store_source;
pub mod ui;

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
