//! The `calltrail` binary's library: its configuration file, its own metrics ([`telemetry`]) and
//! the synthetic workload that `calltrail demo` and the ingest benchmark send.

pub mod config;
pub mod telemetry;
pub mod workload;
