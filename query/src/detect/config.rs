//! `[detect]`: the schedule, the baseline window, each detector's thresholds and
//! minimum-history guard, the approved-server list, suppressions and allow-lists. Defaults are
//! the ones in `docs/detection.md` (from the reference rules D1–D9).

use serde::Deserialize;

/// The detectors' configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Whether `serve` scores each hour as it ends.
    pub enabled: bool,
    /// Seconds between scheduled runs (each scores the hours completed since the last).
    pub interval_secs: u64,
    /// Days of history an hour-of-week baseline covers (profiles, D1, D7, D8).
    pub baseline_days: u32,
    /// Days a principal must have been seen before rules that compare them with their own past
    /// apply (D1 falls back to the peer group; D2, D4, D6, D7, D8 stay silent).
    pub min_history_days: u32,
    /// Servers on the approved list; empty when there is no list (D3 then flags only servers
    /// never seen before).
    pub approved_servers: Vec<String>,
    /// D1: volume spike.
    pub volume: VolumeRule,
    /// D2: first use of a write or delete tool.
    pub new_terms: NewTermRule,
    /// D3: new or unapproved server.
    pub new_servers: NewServerRule,
    /// D4: activity outside usual hours.
    pub hours: HoursRule,
    /// D5: error or denied rate spike per server.
    pub errors: ErrorRule,
    /// D6: token consumption spike.
    pub tokens: TokenRule,
    /// D7: peer-group outlier.
    pub peers: PeerRule,
    /// D8: breadth spike.
    pub breadth: BreadthRule,
    /// D9: audit-pipeline health.
    pub pipeline: PipelineRule,
    /// Findings not to report.
    pub suppress: Vec<Suppression>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 3600,
            baseline_days: 28,
            min_history_days: 14,
            approved_servers: Vec::new(),
            volume: VolumeRule::default(),
            new_terms: NewTermRule::default(),
            new_servers: NewServerRule::default(),
            hours: HoursRule::default(),
            errors: ErrorRule::default(),
            tokens: TokenRule::default(),
            peers: PeerRule::default(),
            breadth: BreadthRule::default(),
            pipeline: PipelineRule::default(),
            suppress: Vec::new(),
        }
    }
}

/// D1 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeRule {
    /// Robust z (on log1p of the hourly count) above which an hour is a spike.
    pub z: f64,
    /// Fewest calls in the hour for a finding.
    pub min_calls: u64,
    /// The hour must also exceed this multiple of the baseline median.
    pub median_factor: f64,
}

impl Default for VolumeRule {
    fn default() -> Self {
        Self {
            z: 3.5,
            min_calls: 20,
            median_factor: 3.0,
        }
    }
}

/// D2 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewTermRule {
    /// A write or delete tool unused by the principal for this many days is new to them.
    pub days: u32,
}

impl Default for NewTermRule {
    fn default() -> Self {
        Self { days: 30 }
    }
}

/// D3 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewServerRule {
    /// A server unseen (org-wide, or by the team) for this many days is new.
    pub days: u32,
    /// Days of store history needed before "never seen" means anything.
    pub min_history_days: u32,
}

impl Default for NewServerRule {
    fn default() -> Self {
        Self {
            days: 90,
            min_history_days: 7,
        }
    }
}

/// D4 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoursRule {
    /// Weeks of history the hour-of-week probability is estimated from (4 to 8).
    pub weeks: u32,
    /// Probability below which an hour of the week is unusual for the principal.
    pub max_probability: f64,
    /// Fewest calls in an unusual hour for a finding (any delete call is enough).
    pub min_calls: u64,
}

impl Default for HoursRule {
    fn default() -> Self {
        Self {
            weeks: 8,
            max_probability: 0.01,
            min_calls: 5,
        }
    }
}

/// D5 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRule {
    /// Smoothing of the exponentially weighted error rate and its variance.
    pub alpha: f64,
    /// Standard deviations above the weighted rate that make a spike.
    pub sigmas: f64,
    /// Fewest failed (error or denied) calls in a bucket for a finding.
    pub min_errors: u64,
    /// Fewest calls in a bucket for a finding.
    pub min_calls: u64,
    /// Buckets of history a server needs before it is scored.
    pub min_buckets: u32,
}

impl Default for ErrorRule {
    fn default() -> Self {
        Self {
            alpha: 0.1,
            sigmas: 3.0,
            min_errors: 10,
            min_calls: 50,
            min_buckets: 96,
        }
    }
}

/// D6 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenRule {
    /// Robust z (on log1p of daily tokens) above which a day is a spike.
    pub z: f64,
    /// The day must also exceed this multiple of the principal's median day.
    pub median_factor: f64,
    /// A day above this multiple of the team's p95 day is a spike whatever the z.
    pub team_p95_factor: f64,
    /// Days with tokens a principal needs before it is scored.
    pub min_days: u32,
}

impl Default for TokenRule {
    fn default() -> Self {
        Self {
            z: 3.5,
            median_factor: 3.0,
            team_p95_factor: 5.0,
            min_days: 7,
        }
    }
}

/// D7 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerRule {
    /// A tool used by less than this share of the principal's peers is rare among them.
    pub max_share: f64,
    /// Fewest peers (other humans of the team active in the baseline) for the rule to apply.
    pub min_peers: u32,
    /// Fewest calls to the rare tool in the hour for a finding.
    pub min_calls: u64,
}

impl Default for PeerRule {
    fn default() -> Self {
        Self {
            max_share: 0.05,
            min_peers: 5,
            min_calls: 3,
        }
    }
}

/// D8 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreadthRule {
    /// Robust z of the hour's distinct tools and resources above which it is a spike.
    pub z: f64,
    /// Fewest distinct tools and resources in the hour for a finding.
    pub min_distinct: u64,
}

impl Default for BreadthRule {
    fn default() -> Self {
        Self {
            z: 3.5,
            min_distinct: 10,
        }
    }
}

/// D9 thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineRule {
    /// A chain whose newest checkpoint is older than this (while it has newer rows) is
    /// missing its heartbeat. Checked by runs that score the current hour only.
    pub max_checkpoint_age_secs: u64,
}

impl Default for PipelineRule {
    fn default() -> Self {
        Self {
            max_checkpoint_age_secs: 2 * 3600,
        }
    }
}

/// Findings to leave unreported: every field given must match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// The detector (`D1` … `D9`); every detector when absent.
    pub detector: Option<String>,
    /// The entity (principal, team, server or chain id).
    pub entity: Option<String>,
    /// The server.
    pub server: Option<String>,
    /// The tool.
    pub tool: Option<String>,
    /// RFC 3339 time after which the suppression lapses; forever when absent.
    pub until: Option<String>,
    /// Why (kept for reviewers of the configuration).
    pub reason: String,
}

/// The detectors' names.
pub const DETECTORS: [&str; 9] = ["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9"];

impl DetectConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("detect.{key} must be a positive number, not {v}"))
            }
        };
        if self.interval_secs < 60 {
            return Err("detect.interval_secs must be at least 60".into());
        }
        if !(7..=366).contains(&self.baseline_days) {
            return Err("detect.baseline_days must be between 7 and 366".into());
        }
        if self.min_history_days > self.baseline_days {
            return Err("detect.min_history_days must not exceed detect.baseline_days".into());
        }
        if !(4..=8).contains(&self.hours.weeks) {
            return Err("detect.hours.weeks must be between 4 and 8".into());
        }
        positive("volume.z", self.volume.z)?;
        positive("volume.median_factor", self.volume.median_factor)?;
        positive("hours.max_probability", self.hours.max_probability)?;
        positive("errors.sigmas", self.errors.sigmas)?;
        positive("tokens.z", self.tokens.z)?;
        positive("tokens.median_factor", self.tokens.median_factor)?;
        positive("tokens.team_p95_factor", self.tokens.team_p95_factor)?;
        positive("breadth.z", self.breadth.z)?;
        if !(self.errors.alpha > 0.0 && self.errors.alpha < 1.0) {
            return Err("detect.errors.alpha must be between 0 and 1".into());
        }
        if !(self.peers.max_share > 0.0 && self.peers.max_share < 1.0) {
            return Err("detect.peers.max_share must be between 0 and 1".into());
        }
        if self.new_terms.days == 0 || self.new_servers.days == 0 {
            return Err(
                "detect.new_terms.days and detect.new_servers.days must be positive".into(),
            );
        }
        for (i, s) in self.suppress.iter().enumerate() {
            if let Some(d) = &s.detector
                && !DETECTORS.contains(&d.as_str())
            {
                return Err(format!(
                    "detect.suppress[{i}].detector: {d:?} is not one of D1 … D9"
                ));
            }
            if let Some(u) = &s.until
                && chrono::DateTime::parse_from_rfc3339(u).is_err()
            {
                return Err(format!("detect.suppress[{i}].until: {u:?} is not RFC 3339"));
            }
            if s.detector.is_none() && s.entity.is_none() && s.server.is_none() && s.tool.is_none()
            {
                return Err(format!(
                    "detect.suppress[{i}] matches every finding; name a detector, entity, server or tool"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(DetectConfig::default().validate(), Ok(()));
        let parse = |text: &str| toml::from_str::<DetectConfig>(text);
        let c = parse("volume.z = -1").expect("parses");
        assert!(c.validate().unwrap_err().contains("detect.volume.z"));
        let c = parse("hours.weeks = 12").expect("parses");
        assert!(c.validate().unwrap_err().contains("detect.hours.weeks"));
        let c = parse("[[suppress]]\ndetector = \"D10\"\nreason = \"x\"").expect("parses");
        assert!(
            c.validate()
                .unwrap_err()
                .contains("detect.suppress[0].detector")
        );
        let c = parse("[[suppress]]\nreason = \"everything\"").expect("parses");
        assert!(c.validate().unwrap_err().contains("matches every finding"));
        let e = parse("volume.zz = 1").unwrap_err().to_string();
        assert!(e.contains("zz"), "{e}");
    }
}
