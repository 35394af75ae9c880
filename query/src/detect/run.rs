//! One detector run: resume the history the previous run persisted (`state`) and fold in the
//! hours since, or, when there is none it can use, roll up the days of the window (reusing
//! unchanged rollups) and fold the history from scratch; then score each hour in order and
//! fold it in; persist the history; check the pipeline (D9); drop suppressed findings; store
//! the new ones and, once a day, the baseline profiles.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use calltrail_schemas::finding::Finding;

use super::config::{DetectConfig, Suppression};
use super::history::{DAY, History, window_start};
use super::rollup::{self, Obtained};
use super::rows::{HOUR_NS, Hour, Names, hours_of_day};
use super::scoring::Scoring;
use super::state::{self, DayMark, Persisted, StateError};
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
    let data_dir = engine.data_dir();
    // Profiles move by one hour of the week per hour scored; they are refreshed by the run that
    // completes a UTC day (and whenever none are stored), which keeps hourly runs short.
    let profiles_due = to_hour % DAY == 0 || !baseline::stored(data_dir);
    let span = Span {
        window: window_start(from_hour, cfg),
        from_hour,
        to_hour,
        need_from: if profiles_due {
            from_hour.min(to_hour - i64::from(cfg.baseline_days) * DAY)
        } else {
            from_hour
        },
    };
    let mut report = RunReport::default();
    let mut loaded = Loaded::default();
    let started = std::time::Instant::now();
    let mut ctx = LoadCtx {
        engine,
        report: &mut report,
        progress,
    };
    // A later history than this run's end (a backfill of older hours) is left in place.
    let mut keep_state = false;
    let reused_before = ctx.report.days_reused;
    let resumed = match state::load(data_dir, cfg) {
        Ok(p) => {
            keep_state = p.end > to_hour;
            resume(cfg, p, &span, &mut loaded, &mut ctx).await?
        }
        Err(e) => Err(e),
    };
    let (mut history, names, old_marks) = match resumed {
        Ok(r) => {
            tracing::debug!(
                secs = started.elapsed().as_secs_f64(),
                "detect: persisted history resumed"
            );
            r
        }
        Err(why) => {
            if matches!(why, StateError::Missing) {
                tracing::debug!("detect: no persisted history; folding the history from scratch");
            } else {
                tracing::info!(error = %why, "detect: folding the history from scratch");
            }
            let mut names = Names::default();
            loaded = Loaded::default();
            // The days an abandoned resume read are read again (computed ones are now stored).
            ctx.report.days_reused = reused_before;
            let days = span.window.div_euclid(DAY)..=(to_hour - 1).div_euclid(DAY);
            load_days(&mut ctx, days, to_hour, &mut names, &mut loaded).await?;
            tracing::debug!(
                secs = started.elapsed().as_secs_f64(),
                "detect: rollups loaded"
            );
            let mut history = History::new(span.window);
            for (h, rows) in loaded.hours.range(span.window..from_hour) {
                history.fold(*h, rows, cfg);
            }
            (history, names, BTreeMap::new())
        }
    };
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: history folded"
    );
    report.cold_start = cold_start(cfg, &history, from_hour);
    let total = u64::try_from(to_hour - from_hour).unwrap_or(0);
    let mut scored = 0;
    let mut findings = score_hours(
        cfg,
        &names,
        &mut history,
        &loaded.hours,
        from_hour..to_hour,
        &mut || {
            scored += 1;
            progress(Progress::Hours(scored, total));
        },
    );
    report.hours = scored;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: hours scored"
    );
    if profiles_due {
        let profiles = baseline::profiles(&loaded.hours, to_hour, cfg.baseline_days, &names);
        baseline::store(data_dir, &profiles)?;
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "detect: profiles stored"
        );
    }
    if !keep_state {
        persist(data_dir, cfg, &history, &names, to_hour, loaded, &old_marks);
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "detect: history persisted"
        );
    }
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
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        "detect: findings stored"
    );
    Ok(report)
}

/// The hours a run is about.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// The start of the history's window ([`window_start`] of `from_hour`).
    window: i64,
    /// The first hour scored.
    from_hour: i64,
    /// The hour after the last scored.
    to_hour: i64,
    /// The first hour whose rows the run needs besides its history: `from_hour`, or the start
    /// of the profiles' window when they are due.
    need_from: i64,
}

/// The rows a run has read: the non-empty hours, and each day's source digest (of the days
/// read, and of the days a resumed history was checked against).
#[derive(Debug, Default)]
struct Loaded {
    hours: BTreeMap<i64, Hour>,
    sources: BTreeMap<i64, Option<String>>,
    /// The days read whole.
    days: BTreeSet<i64>,
}

/// What reading rollups needs besides the days.
struct LoadCtx<'a> {
    engine: &'a Engine,
    report: &'a mut RunReport,
    progress: &'a (dyn Fn(Progress) + Sync),
}

/// The history `p` moved on to the run's window, with the names its ids refer to and the
/// marks of its days; or why it cannot be resumed. Reads the rows of the days the run needs
/// (from the first hour `p` did not fold, or the first day whose rows must be compared) into
/// `loaded`.
async fn resume(
    cfg: &DetectConfig,
    p: Persisted,
    span: &Span,
    loaded: &mut Loaded,
    ctx: &mut LoadCtx<'_>,
) -> Result<std::result::Result<(History, Names, BTreeMap<i64, DayMark>), StateError>> {
    if let Err(e) = p.fits(span.window, span.from_hour) {
        return Ok(Err(e));
    }
    let data_dir = ctx.engine.data_dir();
    for day in span.window.div_euclid(DAY)..=(p.end - 1).div_euclid(DAY) {
        let digest = rollup::source_digest(data_dir, &store::date_of(day * DAY * HOUR_NS))?;
        loaded.sources.insert(day, digest);
    }
    let changed = match state::changed_days(&p.days, p.end, span.window, &loaded.sources) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let first_day = changed
        .iter()
        .copied()
        .chain([p.end.div_euclid(DAY), span.need_from.div_euclid(DAY)])
        .min()
        .unwrap_or(span.window.div_euclid(DAY));
    let last_day = (span.to_hour - 1).div_euclid(DAY);
    let Persisted {
        mut history,
        mut names,
        end,
        days,
    } = p;
    load_days(ctx, first_day..=last_day, span.to_hour, &mut names, loaded).await?;
    if let Err(e) = state::same_rows(&days, end, &changed, &loaded.hours, &names) {
        return Ok(Err(e));
    }
    history.trim(span.window, cfg);
    for (h, rows) in loaded.hours.range(end.max(span.window)..span.from_hour) {
        history.fold(*h, rows, cfg);
    }
    Ok(Ok((history, names, days)))
}

/// Scores each hour of `range` against the history of the hours before it, then folds it in;
/// the window moves on at each midnight as it would for a run scoring that hour alone, so a
/// backfill finds what hourly runs would. Calls `tick` after each hour.
pub(super) fn score_hours(
    cfg: &DetectConfig,
    names: &Names,
    history: &mut History,
    hours: &BTreeMap<i64, Hour>,
    range: std::ops::Range<i64>,
    tick: &mut dyn FnMut(),
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut unapproved_reported = HashMap::default();
    let empty = Hour::default();
    for hour in range {
        history.trim(window_start(hour, cfg), cfg);
        let rows = hours.get(&hour).unwrap_or(&empty);
        let s = Scoring::new(cfg, names, history, hour, rows);
        findings.extend(behaviour::volume(&s));
        findings.extend(novelty::first_writes(&s));
        findings.extend(novelty::new_servers(&s, &mut unapproved_reported));
        findings.extend(behaviour::hours(&s));
        findings.extend(rates::error_storms(&s));
        findings.extend(rates::token_spikes(&s));
        findings.extend(novelty::peer_outliers(&s));
        findings.extend(behaviour::breadth(&s));
        history.fold(hour, rows, cfg);
        tick();
    }
    findings
}

/// Persists `history` (folded to `end`) with the marks of its days, taken from the rows the
/// run read (`loaded`, dropped before the history is encoded); a failure is logged, not
/// returned: the next run folds from scratch.
fn persist(
    data_dir: &std::path::Path,
    cfg: &DetectConfig,
    history: &History,
    names: &Names,
    end: i64,
    loaded: Loaded,
    old_marks: &BTreeMap<i64, DayMark>,
) {
    let last_day = (end - 1).div_euclid(DAY);
    let mut marks = BTreeMap::new();
    for day in history.start.div_euclid(DAY)..=last_day {
        let Some(sources) = loaded.sources.get(&day) else {
            tracing::warn!(
                day,
                "detect: a day of the history was not checked; not persisting it"
            );
            return;
        };
        // Late data reaches the last two days: their rows are kept comparable.
        let rows = if day < last_day - 1 {
            None
        } else if loaded.days.contains(&day) {
            let hours = day * DAY..((day + 1) * DAY).min(end);
            Some(state::rows_digest(&loaded.hours, names, hours))
        } else {
            old_marks.get(&day).and_then(|m| m.rows.clone())
        };
        marks.insert(
            day,
            DayMark {
                sources: sources.clone(),
                rows,
            },
        );
    }
    // The rows are not needed any more: their memory goes before the history is encoded.
    drop(loaded);
    if let Err(e) = state::save(data_dir, cfg, history, names, end, &marks) {
        tracing::warn!(error = %e, "detect: the history could not be persisted; the next run folds it from scratch");
    }
}

/// Days whose stored rollups are read at once, on as many threads as there are cores: enough
/// to keep the cores busy, few enough that the rollups waiting to be split into hours stay small.
const READ_AHEAD_DAYS: usize = 8;

/// Reads the rollups of `days` into `loaded`: the non-empty hours before `to_hour` and each
/// day's source digest.
async fn load_days(
    ctx: &mut LoadCtx<'_>,
    days: std::ops::RangeInclusive<i64>,
    to_hour: i64,
    names: &mut Names,
    loaded: &mut Loaded,
) -> Result<()> {
    let days: Vec<i64> = days.collect();
    let total = days.len() as u64;
    let mut done = 0;
    for chunk in days.chunks(READ_AHEAD_DAYS) {
        let found = read_stored(ctx.engine.data_dir(), chunk);
        for (day, found) in chunk.iter().zip(found) {
            let date = store::date_of(day * DAY * HOUR_NS);
            let (rollup, how, digest) = rollup::day(ctx.engine, &date, found?).await?;
            match how {
                Obtained::Computed => ctx.report.days_computed += 1,
                Obtained::Reused => ctx.report.days_reused += 1,
                Obtained::Empty => {}
            }
            for (h, rows) in hours_of_day(&rollup, day * DAY, names)?
                .into_iter()
                .enumerate()
            {
                let hour = day * DAY + h as i64;
                let used =
                    !(rows.calls.is_empty() && rows.tokens.is_empty() && rows.quarters.is_empty());
                if used && hour < to_hour {
                    loaded.hours.insert(hour, rows);
                }
            }
            loaded.sources.insert(*day, digest);
            loaded.days.insert(*day);
            done += 1;
            (ctx.progress)(Progress::RollupDays(done, total));
        }
    }
    Ok(())
}

/// The stored rollups of `days`, read on scoped threads (decoding Parquet is most of the cost
/// of reading a day), in the order of `days`.
fn read_stored(data_dir: &std::path::Path, days: &[i64]) -> Vec<Result<rollup::Stored>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = days.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = days
            .chunks(per_thread)
            .map(|part| {
                let worker = scope.spawn(move || {
                    part.iter()
                        .map(|d| rollup::stored(data_dir, &store::date_of(d * DAY * HOUR_NS)))
                        .collect::<Vec<_>>()
                });
                (part.len(), worker)
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|(len, w)| {
                // One result per day whatever happens, so the results stay beside their days.
                w.join().unwrap_or_else(|_| {
                    (0..len)
                        .map(|_| Err(Error::Internal("a rollup reader panicked".into())))
                        .collect()
                })
            })
            .collect()
    })
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
