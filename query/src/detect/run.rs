//! One detector run: roll up the days it needs (reusing unchanged ones), fold the history
//! before the first hour it scores, then score each hour in order and fold it in; check the
//! pipeline (D9); drop suppressed findings; store the new ones and the baseline profiles.

use std::collections::BTreeMap;

use foldhash::HashMap;

use calltrail_schemas::finding::Finding;

use super::config::{DetectConfig, Suppression};
use super::history::{DAY, History};
use super::rollup::{self, Obtained};
use super::rows::{HOUR_NS, Hour, Names, hours_of_day};
use super::scoring::Scoring;
use super::{baseline, behaviour, novelty, pipeline, rates, store};
use crate::engine::Engine;
use crate::{Error, Result};

/// The hours a run scores: `[from_ns, to_ns)`, widened to whole hours.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest {
    /// Start of the first hour scored, ns since the epoch.
    pub from_ns: i64,
    /// End of the last hour scored (exclusive).
    pub to_ns: i64,
    /// The time of the run, ns: stamped on findings; D9's heartbeat check runs only when the
    /// range ends within two hours of it.
    pub now_ns: i64,
}

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Days of rollups obtained so far, of the total.
    RollupDays(u64, u64),
    /// Hours scored so far, of the total.
    Hours(u64, u64),
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Hours scored.
    pub hours: u64,
    /// Days rolled up from their calls.
    pub days_computed: u64,
    /// Days whose stored rollup was reused.
    pub days_reused: u64,
    /// Findings matched by a suppression and dropped.
    pub suppressed: u64,
    /// Findings a previous run had already stored.
    pub duplicates: u64,
    /// The findings stored by this run.
    pub findings: Vec<Finding>,
    /// Rules that stayed silent or fell back for lack of history, and why.
    pub cold_start: Vec<String>,
}

/// Runs the detectors over `req` against the store of `engine`.
pub async fn run(
    engine: &Engine,
    cfg: &DetectConfig,
    req: &RunRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RunReport> {
    cfg.validate().map_err(Error::Plan)?;
    let from_hour = req.from_ns.div_euclid(HOUR_NS);
    let to_hour = (req.to_ns + HOUR_NS - 1).div_euclid(HOUR_NS);
    if to_hour <= from_hour {
        return Err(Error::Plan(
            "the run's range is empty: from must be before to".into(),
        ));
    }
    let start_hour = from_hour - History::lookback_hours(cfg);
    let mut report = RunReport::default();
    let mut names = Names::default();
    let started = std::time::Instant::now();
    let hours = load_hours(
        engine,
        start_hour,
        to_hour,
        &mut names,
        &mut report,
        progress,
    )
    .await?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: rollups loaded"
    );

    let mut history = History::default();
    for (h, rows) in hours.range(start_hour..from_hour) {
        history.fold(*h, rows, cfg);
    }
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: history folded"
    );
    report.cold_start = cold_start(cfg, &history, from_hour);
    let mut findings = Vec::new();
    let mut unapproved_reported = HashMap::default();
    let empty = Hour::default();
    let total = u64::try_from(to_hour - from_hour).unwrap_or(0);
    for hour in from_hour..to_hour {
        let rows = hours.get(&hour).unwrap_or(&empty);
        let s = Scoring::new(cfg, &names, &history, hour, rows);
        findings.extend(behaviour::volume(&s));
        findings.extend(novelty::first_writes(&s));
        findings.extend(novelty::new_servers(&s, &mut unapproved_reported));
        findings.extend(behaviour::hours(&s));
        findings.extend(rates::error_storms(&s));
        findings.extend(rates::token_spikes(&s));
        findings.extend(novelty::peer_outliers(&s));
        findings.extend(behaviour::breadth(&s));
        history.fold(hour, rows, cfg);
        report.hours += 1;
        progress(Progress::Hours(report.hours, total));
    }
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: hours scored"
    );
    let data_dir = engine.data_dir();
    findings.extend(pipeline::chain_gaps(data_dir)?);
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: chains checked"
    );
    if req.to_ns >= req.now_ns - 2 * HOUR_NS {
        findings.extend(pipeline::missing_heartbeats(
            data_dir,
            &cfg.pipeline,
            req.now_ns,
        )?);
    }
    let before = findings.len();
    findings.retain(|f| !cfg.suppress.iter().any(|s| suppresses(s, f)));
    report.suppressed = (before - findings.len()) as u64;
    for f in &mut findings {
        f.detected_at_ns = req.now_ns;
    }
    let found = findings.len();
    report.findings = store::append(data_dir, findings, req.now_ns)?;
    report.duplicates = (found - report.findings.len()) as u64;
    // Profiles move by one hour of the week per hour scored; they are refreshed by the run that
    // completes a UTC day (and whenever none are stored), which keeps hourly runs short.
    if to_hour % DAY == 0 || !baseline::stored(data_dir) {
        let profiles = baseline::profiles(&hours, to_hour, cfg.baseline_days, &names);
        baseline::store(data_dir, &profiles)?;
    }
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: profiles stored"
    );
    Ok(report)
}

/// The non-empty hours of `[start_hour, to_hour)`, from the days' rollups.
async fn load_hours(
    engine: &Engine,
    start_hour: i64,
    to_hour: i64,
    names: &mut Names,
    report: &mut RunReport,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<BTreeMap<i64, Hour>> {
    let (first_day, last_day) = (start_hour.div_euclid(DAY), (to_hour - 1).div_euclid(DAY));
    let days = u64::try_from(last_day - first_day + 1).unwrap_or(0);
    let mut hours = BTreeMap::new();
    for (i, day) in (first_day..=last_day).enumerate() {
        let (rollup, how) = rollup::day(engine, &store::date_of(day * DAY * HOUR_NS)).await?;
        match how {
            Obtained::Computed => report.days_computed += 1,
            Obtained::Reused => report.days_reused += 1,
            Obtained::Empty => {}
        }
        for (h, rows) in hours_of_day(&rollup, day * DAY, names)?
            .into_iter()
            .enumerate()
        {
            let hour = day * DAY + h as i64;
            let used =
                !(rows.calls.is_empty() && rows.tokens.is_empty() && rows.quarters.is_empty());
            if used && (start_hour..to_hour).contains(&hour) {
                hours.insert(hour, rows);
            }
        }
        progress(Progress::RollupDays(i as u64 + 1, days));
    }
    Ok(hours)
}

/// What lack of history changes in this run, in words for the operator.
fn cold_start(cfg: &DetectConfig, history: &History, from_hour: i64) -> Vec<String> {
    let mut notes = Vec::new();
    let store_days = history.first_hour.map_or(0, |f| (from_hour - f) / DAY);
    if store_days < i64::from(cfg.new_servers.min_history_days) {
        notes.push(format!(
            "cold start: the store has {store_days} days of history before the first hour scored; D3 needs {} before a server counts as new",
            cfg.new_servers.min_history_days
        ));
    }
    let min = i64::from(cfg.min_history_days);
    let young = history
        .principals
        .values()
        .filter(|p| p.history_days(from_hour) < min)
        .count();
    let hours_young = history
        .principals
        .values()
        .filter(|p| p.history_days(from_hour) < i64::from(cfg.hours.weeks.min(4)) * 7)
        .count();
    if store_days < min || young > 0 {
        notes.push(format!(
            "cold start: {young} principals have less than {min} days of history: D1 compares them with their team's peers (or stays silent without {} seasoned peers); D2, D6, D7 and D8 stay silent for them",
            cfg.peers.min_peers
        ));
    }
    if hours_young > 0 {
        notes.push(format!(
            "cold start: {hours_young} principals have less than 4 weeks of history: D4 stays silent for them"
        ));
    }
    notes
}

/// Whether the suppression `s` covers the finding `f`.
fn suppresses(s: &Suppression, f: &Finding) -> bool {
    let matches =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let current = s.until.as_deref().is_none_or(|u| {
        chrono::DateTime::parse_from_rfc3339(u)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .is_some_and(|until| f.window_start_ns < until)
    });
    current
        && matches(&s.detector, Some(&f.detector))
        && matches(&s.entity, Some(&f.entity))
        && matches(&s.server, f.server_name.as_deref())
        && matches(&s.tool, f.tool_name.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::draft::finding;

    #[test]
    fn suppressions_match_every_given_field_until_they_lapse() {
        let mut f = finding("D1", "volume_spike", "user", "batch-bot", 1_000, 2_000);
        f.server_name = Some("etl-mcp".into());
        let rule =
            |detector: Option<&str>, entity: Option<&str>, until: Option<&str>| Suppression {
                detector: detector.map(str::to_string),
                entity: entity.map(str::to_string),
                server: None,
                tool: None,
                until: until.map(str::to_string),
                reason: "nightly load".into(),
            };
        assert!(suppresses(&rule(Some("D1"), Some("batch-bot"), None), &f));
        assert!(!suppresses(&rule(Some("D4"), Some("batch-bot"), None), &f));
        assert!(!suppresses(&rule(None, Some("alice"), None), &f));
        assert!(suppresses(
            &rule(None, Some("batch-bot"), Some("1970-01-02T00:00:00Z")),
            &f
        ));
        assert!(!suppresses(
            &rule(None, Some("batch-bot"), Some("1970-01-01T00:00:00Z")),
            &f
        ));
    }
}
