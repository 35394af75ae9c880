//! The `calltrail` binary's library: its configuration file and the synthetic workload that
//! `calltrail demo` and the ingest benchmark send.

pub mod config;
pub mod workload;
