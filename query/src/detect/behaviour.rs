//! Rules on a principal's own rhythm: D1 volume spike, D4 unusual hours, D8 breadth spike.

use calltrail_schemas::finding::{Finding, Severity};

use super::draft::{finding, hour_of_week, hour_phrase, num};
use super::history::{DAY, WEEK};
use super::scoring::{Activity, Scoring};
use super::stats::{median, robust_z};

/// Floor of the spread of log1p hourly counts: one regular week does not make a few extra
/// calls a spike (with four weekly samples the MAD is often 0).
const LOG_SPREAD_FLOOR: f64 = 0.25;
/// Floor of the spread of distinct tools per hour.
const BREADTH_SPREAD_FLOOR: f64 = 1.0;
/// Fewest active hours of history D8 scores against.
const BREADTH_MIN_HOURS: usize = 10;

/// D1: calls in the hour against the same hour of the week over the baseline weeks (robust z
/// on log1p); with less than the minimum history, against the peers of the team at that hour.
pub(crate) fn volume(s: &Scoring<'_>) -> Vec<Finding> {
    let rule = &s.cfg.volume;
    let weeks = i64::from(s.cfg.baseline_days / 7);
    let mut out = Vec::new();
    for (p, a) in &s.activity {
        if a.calls < rule.min_calls {
            continue;
        }
        let (history, basis) = if s.seasoned(*p) {
            let h: Vec<f64> = (1..=weeks)
                .map(|k| s.history.at(*p, s.hour - k * WEEK).calls as f64)
                .collect();
            (h, "their")
        } else {
            let peers = s.peers(a.team, *p);
            let seasoned: Vec<u32> = peers.into_iter().filter(|q| s.seasoned(*q)).collect();
            if a.team == 0 || seasoned.len() < s.cfg.peers.min_peers as usize {
                continue;
            }
            let h: Vec<f64> = seasoned
                .iter()
                .flat_map(|q| (1..=weeks).map(move |k| (*q, k)))
                .map(|(q, k)| s.history.at(q, s.hour - k * WEEK).calls as f64)
                .collect();
            (h, "their team's")
        };
        let med = median(&history);
        let logs: Vec<f64> = history.iter().map(|x| x.ln_1p()).collect();
        let z = robust_z((a.calls as f64).ln_1p(), &logs, LOG_SPREAD_FLOOR);
        let floor = (rule.min_calls as f64).max(rule.median_factor * med);
        if z <= rule.z || (a.calls as f64) < floor {
            continue;
        }
        out.push(volume_finding(s, *p, a, med, z, weeks, basis));
    }
    out
}

fn volume_finding(
    s: &Scoring<'_>,
    p: u32,
    a: &Activity,
    med: f64,
    z: f64,
    weeks: i64,
    basis: &str,
) -> Finding {
    let name = s.names.name(p);
    let (start, end) = s.window();
    let mut f = s.about(
        finding("D1", "volume_spike", "user", name, start, end),
        p,
        a,
    );
    let server = s.top_server(a);
    f.server_name = s.names.opt(server);
    f.observed = a.calls as f64;
    f.expected = Some(med);
    f.score = z;
    f.severity = if z > 2.0 * s.cfg.volume.z {
        Severity::High
    } else {
        Severity::Medium
    };
    f.explanation = format!(
        "{name} made {} calls (most to {}) {}; {basis} median for {} over the last {weeks} weeks is {} (robust z {:.1}).",
        a.calls,
        s.names.name(server),
        hour_phrase(s.hour),
        hour_of_week(s.hour),
        num(med),
        z
    );
    f
}

/// How usual the hour is for `p`: the share of the last `weeks` weeks in which they were
/// active at this hour of the day on the same kind of day (weekday or weekend), smoothed over
/// the two hours either side (a day counts 1 when they were active at the hour, 0.5 an hour
/// off, 0.25 two hours off), so a person who starts an hour early is
/// not unusual but one active at 03:00 for the first time is.
fn usual(s: &Scoring<'_>, p: u32, weeks: i64) -> f64 {
    let weekend = |h: i64| {
        // Day 0 of the epoch (1970-01-01) was a Thursday: days 2 and 3 of each week are the
        // weekend.
        let dow = (h.div_euclid(DAY) + 3).rem_euclid(7);
        dow >= 5
    };
    let kind = weekend(s.hour);
    let mut weight = 0.0;
    let mut days = 0.0;
    for d in 1..=weeks * 7 {
        let base = s.hour - d * DAY;
        if weekend(base) != kind {
            continue;
        }
        days += 1.0;
        weight += [(0, 1.0), (-1, 0.5), (1, 0.5), (-2, 0.25), (2, 0.25)]
            .into_iter()
            .filter(|(offset, _)| s.history.at(p, base + offset).calls > 0)
            .map(|(_, w)| w)
            .fold(0.0, f64::max);
    }
    if days == 0.0 { 1.0 } else { weight / days }
}

/// D4: activity in an hour the principal is rarely active in (probability below the
/// threshold) with enough calls, or any delete call.
pub(crate) fn hours(s: &Scoring<'_>) -> Vec<Finding> {
    let rule = &s.cfg.hours;
    let mut out = Vec::new();
    for (p, a) in &s.activity {
        let Some(known) = s.known(*p) else { continue };
        let weeks = (known.history_days(s.hour) / 7).min(i64::from(rule.weeks));
        if weeks < 4 || (a.calls < rule.min_calls && a.deletes == 0) {
            continue;
        }
        let prob = usual(s, *p, weeks);
        if prob >= rule.max_probability {
            continue;
        }
        let name = s.names.name(*p);
        let (start, end) = s.window();
        let mut f = s.about(
            finding("D4", "unusual_hours", "user", name, start, end),
            *p,
            a,
        );
        f.server_name = s.names.opt(s.top_server(a));
        f.observed = a.calls as f64;
        f.expected = Some(prob);
        f.score = 1.0 - prob;
        f.severity = if a.deletes > 0 {
            Severity::High
        } else {
            Severity::Medium
        };
        let deletes = if a.deletes > 0 {
            format!(", {} of them deletes", a.deletes)
        } else {
            String::new()
        };
        f.explanation = format!(
            "{name} made {} calls{deletes} {}; in the last {weeks} weeks they were active at this time on {:.1}% of comparable days (threshold {:.1}%).",
            a.calls,
            hour_phrase(s.hour),
            prob * 100.0,
            rule.max_probability * 100.0
        );
        out.push(f);
    }
    out
}

/// D8: distinct tools and resources in the hour against the principal's active hours over
/// the baseline (robust z), at least the configured number.
pub(crate) fn breadth(s: &Scoring<'_>) -> Vec<Finding> {
    let rule = &s.cfg.breadth;
    let mut out = Vec::new();
    for (p, a) in &s.activity {
        let distinct = a.items.len() as u64;
        if distinct < rule.min_distinct || !s.seasoned(*p) {
            continue;
        }
        let since = s.hour - i64::from(s.cfg.baseline_days) * DAY;
        let history: Vec<f64> = (since..s.hour)
            .map(|h| s.history.at(*p, h))
            .filter(|h| h.calls > 0)
            .map(|h| h.distinct as f64)
            .collect();
        if history.len() < BREADTH_MIN_HOURS {
            continue;
        }
        let z = robust_z(distinct as f64, &history, BREADTH_SPREAD_FLOOR);
        if z <= rule.z {
            continue;
        }
        let med = median(&history);
        let name = s.names.name(*p);
        let (start, end) = s.window();
        let mut f = s.about(
            finding("D8", "breadth_spike", "user", name, start, end),
            *p,
            a,
        );
        f.server_name = s.names.opt(s.top_server(a));
        f.observed = distinct as f64;
        f.expected = Some(med);
        f.score = z;
        f.severity = Severity::High;
        f.explanation = format!(
            "{name} used {distinct} distinct tools or resources in {} calls {}; their median over {} active hours in the last {} days is {} (robust z {z:.1}).",
            a.calls,
            hour_phrase(s.hour),
            history.len(),
            s.cfg.baseline_days,
            num(med)
        );
        out.push(f);
    }
    out
}
