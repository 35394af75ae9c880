//! Rules on rates and amounts: D5 error or denied rate spike per server (15-minute buckets
//! against an exponentially weighted baseline), D6 token consumption spike per principal or
//! team per day.

use std::collections::{BTreeMap, HashSet};

use foldhash::HashMap;

use calltrail_schemas::finding::{Finding, Severity};

use super::draft::{day_phrase, finding, num};
use super::history::DAY;
use super::rows::HOUR_NS;
use super::scoring::Scoring;
use super::stats::{median, percentile, robust_z};

/// Floor of the weighted standard deviation of a failure rate: a server that never fails
/// must still fail noticeably (with the minimum counts) to be flagged.
const RATE_SD_FLOOR: f64 = 0.02;
/// Floor of the spread of log1p daily tokens.
const TOKEN_SPREAD_FLOOR: f64 = 0.25;
/// Nanoseconds in a 15-minute bucket.
const QUARTER_NS: i64 = HOUR_NS / 4;

/// D5: each 15-minute bucket of the hour, per server, against the server's weighted failure
/// rate before it.
pub(crate) fn error_storms(s: &Scoring<'_>) -> Vec<Finding> {
    let rule = &s.cfg.errors;
    let mut rows: Vec<_> = s.rows.quarters.iter().filter(|q| q.server != 0).collect();
    rows.sort_by_key(|q| (q.quarter, q.server));
    let mut rates = BTreeMap::new();
    let mut out = Vec::new();
    for q in rows {
        let ewma = rates.entry(q.server).or_insert_with(|| {
            s.history
                .server_rates
                .get(&q.server)
                .copied()
                .unwrap_or_default()
        });
        let rate = q.failed as f64 / q.calls.max(1) as f64;
        let sd = ewma.sd().max(RATE_SD_FLOOR);
        let limit = ewma.mean + rule.sigmas * sd;
        let scored = ewma.count >= rule.min_buckets;
        let baseline = ewma.mean;
        ewma.update(rate, rule.alpha);
        if !scored || q.calls < rule.min_calls || q.failed < rule.min_errors || rate <= limit {
            continue;
        }
        let name = s.names.name(q.server);
        let start = q.quarter * QUARTER_NS;
        let mut f = finding(
            "D5",
            "error_rate_spike",
            "server",
            name,
            start,
            start + QUARTER_NS,
        );
        f.server_name = Some(name.to_string());
        f.observed = rate;
        f.expected = Some(baseline);
        f.score = (rate - baseline) / sd;
        f.severity = if rate > 0.5 {
            Severity::High
        } else {
            Severity::Medium
        };
        let t = chrono::DateTime::from_timestamp_nanos(start);
        f.explanation = format!(
            "MCP server {name} failed or denied {} of {} calls ({:.1}%) in the 15 minutes from {} UTC; its weighted failure rate is {:.1}% (limit {:.1}%).",
            q.failed,
            q.calls,
            rate * 100.0,
            t.format("%Y-%m-%d %H:%M"),
            baseline * 100.0,
            limit * 100.0
        );
        out.push(f);
    }
    out
}

/// Principal → (tokens, team, tenant).
type PrincipalTokens = BTreeMap<u32, (u64, u32, u32)>;

/// Tokens of the day the scored hour ends, per principal (with their team and tenant) and per
/// team: the history's hours of the day plus the scored hour.
fn day_totals(s: &Scoring<'_>) -> (PrincipalTokens, BTreeMap<u32, u64>) {
    let day = s.hour / DAY;
    let mut people: BTreeMap<u32, (u64, u32, u32)> = BTreeMap::new();
    let mut teams: BTreeMap<u32, u64> = BTreeMap::new();
    for ((p, d), tokens) in &s.history.principal_days {
        if *d == day {
            let known = s.known(*p);
            let e = people.entry(*p).or_insert((
                0,
                known.map_or(0, |k| k.team),
                known.map_or(0, |k| k.tenant),
            ));
            e.0 += tokens;
        }
    }
    for ((t, d), tokens) in &s.history.team_days {
        if *d == day {
            *teams.entry(*t).or_default() += tokens;
        }
    }
    for r in &s.rows.tokens {
        if r.principal != 0 {
            let e = people.entry(r.principal).or_insert((0, r.team, r.tenant));
            e.0 += r.tokens;
        }
        if r.team != 0 {
            *teams.entry(r.team).or_default() += r.tokens;
        }
    }
    (people, teams)
}

/// The non-zero daily totals in `days` before `day` of a key in a (key, day) → tokens map.
fn past_days<K: Copy + Eq + std::hash::Hash>(
    map: &HashMap<(K, i64), u64>,
    key: K,
    day: i64,
    days: u32,
) -> Vec<f64> {
    (1..=i64::from(days))
        .filter_map(|k| map.get(&(key, day - k)))
        .filter(|t| **t > 0)
        .map(|t| *t as f64)
        .collect()
}

/// The p95 of each team's principal-days with tokens in the `days` before `day`.
fn team_p95(s: &Scoring<'_>, day: i64, days: u32) -> HashMap<u32, f64> {
    let mut per_team: HashMap<u32, Vec<f64>> = HashMap::default();
    for ((p, d), tokens) in &s.history.principal_days {
        if *d < day
            && *d >= day - i64::from(days)
            && *tokens > 0
            && let Some(k) = s.known(*p)
        {
            per_team.entry(k.team).or_default().push(*tokens as f64);
        }
    }
    per_team
        .into_iter()
        .map(|(t, v)| (t, percentile(&v, 0.95)))
        .collect()
}

/// D6: a day's tokens per principal (and per team, when no one in it explains the team's
/// spike) against the last `baseline_days` (robust z on log1p, and a multiple of the median),
/// or above a multiple of the team's p95 day. Scored at the last hour of each UTC day.
pub(crate) fn token_spikes(s: &Scoring<'_>) -> Vec<Finding> {
    if s.hour % DAY != DAY - 1 {
        return Vec::new();
    }
    let rule = &s.cfg.tokens;
    let days = s.cfg.baseline_days;
    let day = s.hour / DAY;
    let (people, teams) = day_totals(s);
    let mut flagged_teams = HashSet::new();
    let mut out = Vec::new();
    let window = (day * DAY * HOUR_NS, (day + 1) * DAY * HOUR_NS);
    let team_p95s = team_p95(s, day, days);
    for (p, (tokens, team, tenant)) in &people {
        if !s.seasoned(*p) {
            continue;
        }
        let history = past_days(&s.history.principal_days, *p, day, days);
        if history.len() < rule.min_days as usize {
            continue;
        }
        let team_p95 = team_p95s.get(team).copied().unwrap_or(0.0);
        let med = median(&history);
        let logs: Vec<f64> = history.iter().map(|x| x.ln_1p()).collect();
        let z = robust_z((*tokens as f64).ln_1p(), &logs, TOKEN_SPREAD_FLOOR);
        let by_z = z > rule.z && *tokens as f64 >= rule.median_factor * med;
        let by_team =
            *team != 0 && team_p95 > 0.0 && *tokens as f64 > rule.team_p95_factor * team_p95;
        if !by_z && !by_team {
            continue;
        }
        flagged_teams.insert(*team);
        let name = s.names.name(*p);
        let mut f = finding("D6", "token_spike", "user", name, window.0, window.1);
        f.principal = Some(name.to_string());
        f.team = s.names.opt(*team);
        f.tenant = s.names.opt(*tenant);
        f.observed = *tokens as f64;
        f.expected = Some(med);
        f.score = z;
        f.severity = if *tokens as f64 > 10.0 * med {
            Severity::High
        } else {
            Severity::Medium
        };
        f.explanation = format!(
            "{name} used {tokens} LLM tokens on {}; their median day over the last {days} days is {} (robust z {z:.1}) and their team's p95 day is {}.",
            day_phrase(s.hour),
            num(med),
            num(team_p95.round())
        );
        out.push(f);
    }
    for (team, tokens) in &teams {
        if flagged_teams.contains(team) {
            continue;
        }
        let history = past_days(&s.history.team_days, *team, day, days);
        if history.len() < rule.min_days as usize {
            continue;
        }
        let med = median(&history);
        let logs: Vec<f64> = history.iter().map(|x| x.ln_1p()).collect();
        let z = robust_z((*tokens as f64).ln_1p(), &logs, TOKEN_SPREAD_FLOOR);
        if z <= rule.z || (*tokens as f64) < rule.median_factor * med {
            continue;
        }
        let name = s.names.name(*team);
        let mut f = finding("D6", "token_spike", "team", name, window.0, window.1);
        f.team = Some(name.to_string());
        f.observed = *tokens as f64;
        f.expected = Some(med);
        f.score = z;
        f.explanation = format!(
            "Team {name} used {tokens} LLM tokens on {}; its median day over the last {days} days is {} (robust z {z:.1}).",
            day_phrase(s.hour),
            num(med)
        );
        out.push(f);
    }
    out
}
