//! Baselines and anomaly detection on tool calls (detectors D1–D9 of
//! `docs/detection.md`). A run rolls each day of calls up once (`rollup`, SQL kept in
//! `query/sql/detect/`), folds the history into per-principal, team and server state
//! (`history`; resumed from the one the previous run persisted when it can be, `state`),
//! scores each hour of its range with the rules (`behaviour`: D1, D4, D8; `novelty`: D2, D3,
//! D7; `rates`: D5, D6; `pipeline`: D9), stores new findings in the `anomalies` table
//! (`store`) and the hour-of-week profiles (`baseline`).
//!
//! The rules are Rust rather than SQL views because each compares an hour with a history that
//! advances hour by hour (a streaming fold); the aggregation they start from is SQL.

pub mod baseline;
mod behaviour;
pub mod config;
pub(crate) mod draft;
mod history;
pub mod list;
mod novelty;
mod pipeline;
mod rates;
mod rollup;
mod rows;
mod run;
mod scoring;
mod state;
mod stats;
pub(crate) mod store;

pub use config::DetectConfig;
pub use list::{AnomalyFilter, list};
pub use run::{Progress, RunReport, RunRequest, run};
