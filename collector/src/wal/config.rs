//! The `[wal]` configuration section.

use serde::Deserialize;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync before acknowledging, once per group of concurrent requests (group commit).
    /// Nothing acknowledged is lost, even on power loss.
    Always,
    /// Acknowledge once written to the OS; fsync every `fsync_interval_ms`. A process crash
    /// loses nothing; a power loss or kernel crash may lose the last interval.
    Interval,
    /// Never fsync the log (the OS writes it back when it likes). Unsafe: a power loss or kernel
    /// crash may lose acknowledged data. For benchmarks and disposable environments.
    Never,
}

/// How the write-ahead log is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// `always` (default), `interval` or `never`.
    pub fsync: FsyncPolicy,
    /// Milliseconds between fsyncs under the `interval` policy. Default 200.
    pub fsync_interval_ms: u64,
    /// A segment file is closed and a new one started past this size. Default 64 MiB.
    pub segment_max_bytes: u64,
    /// Requests that may wait for the log (queued or being written); when full, receivers
    /// answer with a retryable error. Default 256.
    pub queue_capacity: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 200,
            segment_max_bytes: 64 << 20,
            queue_capacity: 256,
        }
    }
}

impl WalConfig {
    /// Checks ranges; errors are `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((format!("wal.{key}"), message.to_owned()));
        if !(1..=60_000).contains(&self.fsync_interval_ms) {
            return bad("fsync_interval_ms", "must be between 1 and 60000");
        }
        if !((1 << 20)..=(4 << 30)).contains(&self.segment_max_bytes) {
            return bad("segment_max_bytes", "must be between 1 MiB and 4 GiB");
        }
        if !(1..=100_000).contains(&self.queue_capacity) {
            return bad("queue_capacity", "must be between 1 and 100000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_bad_values_name_the_key() {
        let c: WalConfig = toml::from_str("fsync = \"interval\"\nfsync_interval_ms = 50").unwrap();
        assert_eq!(c.fsync, FsyncPolicy::Interval);
        assert!(c.validate().is_ok());
        let err = toml::from_str::<WalConfig>("fsync = \"sometimes\"").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let c = WalConfig {
            queue_capacity: 0,
            ..WalConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "wal.queue_capacity");
    }
}
