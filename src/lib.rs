//! The `calltrail` binary's library: its configuration file, its own metrics ([`telemetry`]), the
//! control socket through which the CLI reaches a running server ([`control`]), and the
//! synthetic workload that `calltrail demo` and the ingest benchmark send.

pub mod config;
pub mod control;
pub mod telemetry;
pub mod workload;
