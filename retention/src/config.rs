//! The `[store]` configuration section.

use serde::Deserialize;

use crate::{Error, Result};

/// How records are batched into Parquet files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Flush buffered records at least this often, so data is queryable within about this
    /// many milliseconds of arriving. Default 1000.
    pub flush_interval_ms: u64,
    /// Flush as soon as this many records are buffered. Bounds memory and file size.
    /// Default 32768.
    pub flush_max_rows: usize,
    /// Requests that may wait for the writer; when full, the write-ahead log waits (and its own
    /// bounded queue pushes back on receivers) instead of buffering more. Default 128.
    pub queue_capacity: usize,
    /// Zstandard level of Parquet pages (1 = fastest). Default 1.
    pub zstd_level: i32,
    /// Event ids remembered to drop exporter retries before they reach Parquet (about 40 bytes
    /// each); 0 turns the filter off. Default 524288.
    pub dedup_window: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: 1000,
            flush_max_rows: 32_768,
            queue_capacity: 128,
            zstd_level: 1,
            dedup_window: 524_288,
        }
    }
}

impl StoreConfig {
    /// Checks ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: &str| {
            Err(Error::Config {
                key: format!("store.{key}"),
                message: message.into(),
            })
        };
        if !(10..=3_600_000).contains(&self.flush_interval_ms) {
            return bad("flush_interval_ms", "must be between 10 and 3600000");
        }
        if !(1..=10_000_000).contains(&self.flush_max_rows) {
            return bad("flush_max_rows", "must be between 1 and 10000000");
        }
        if !(1..=1_000_000).contains(&self.queue_capacity) {
            return bad("queue_capacity", "must be between 1 and 1000000");
        }
        if self.dedup_window > 100_000_000 {
            return bad("dedup_window", "must be at most 100000000");
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad("zstd_level", "must be between 1 and 22");
        }
        Ok(())
    }
}
