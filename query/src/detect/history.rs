//! What the rules know of the past: per principal, server and team, folded from the hourly
//! rows in time order. A run folds its history once, then for each hour it scores: score the
//! hour against the history (which never contains the hour itself), then fold the hour in.

use foldhash::HashMap;

use super::config::DetectConfig;
use super::rows::{Hour, QuarterRow};
use super::stats::Ewma;

/// Hours in a day and in a week.
pub(crate) const DAY: i64 = 24;
pub(crate) const WEEK: i64 = 7 * DAY;

/// What is known of a principal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Principal {
    pub(crate) human: bool,
    /// The team and tenant of their latest calls.
    pub(crate) team: u32,
    pub(crate) tenant: u32,
    /// The first and latest hour they made a call or used tokens.
    pub(crate) first_hour: i64,
    pub(crate) last_hour: i64,
}

impl Principal {
    /// Whole days between their first hour and `hour`.
    pub(crate) fn history_days(&self, hour: i64) -> i64 {
        (hour - self.first_hour) / DAY
    }
}

/// A principal's activity in one hour.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PrincipalHour {
    pub(crate) calls: u64,
    /// Distinct tools, resources and prompts (per server).
    pub(crate) distinct: u64,
    pub(crate) deletes: u64,
}

/// The history.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// The first hour with any data.
    pub(crate) first_hour: Option<i64>,
    pub(crate) principals: HashMap<u32, Principal>,
    /// (principal, hour) → activity, for the last weeks the rules look back.
    pub(crate) principal_hours: HashMap<(u32, i64), PrincipalHour>,
    /// (principal, server, item) → the last hour they used it.
    pub(crate) principal_items: HashMap<(u32, u32, u32), i64>,
    /// (team, server, item) → humans of the team who used it → their last hour.
    pub(crate) team_items: HashMap<(u32, u32, u32), HashMap<u32, i64>>,
    /// Server → the last hour it was called.
    pub(crate) servers: HashMap<u32, i64>,
    /// (team, server) → the last hour the team called it.
    pub(crate) team_servers: HashMap<(u32, u32), i64>,
    /// Server → weighted failure rate of its 15-minute buckets.
    pub(crate) server_rates: HashMap<u32, Ewma>,
    /// (principal, day) → tokens.
    pub(crate) principal_days: HashMap<(u32, i64), u64>,
    /// (team, day) → tokens.
    pub(crate) team_days: HashMap<(u32, i64), u64>,
}

impl History {
    /// Hours of history the rules need before the first hour they score: the longest look-back
    /// of any rule.
    pub(crate) fn lookback_hours(cfg: &DetectConfig) -> i64 {
        let days = [
            cfg.baseline_days,
            cfg.new_terms.days,
            cfg.new_servers.days,
            cfg.hours.weeks * 7,
        ]
        .into_iter()
        .max()
        .unwrap_or(90);
        i64::from(days) * DAY
    }

    /// Folds in the rows of `hour` (hours since the epoch).
    pub(crate) fn fold(&mut self, hour: i64, rows: &Hour, cfg: &DetectConfig) {
        if rows.calls.is_empty() && rows.tokens.is_empty() && rows.quarters.is_empty() {
            return;
        }
        self.first_hour.get_or_insert(hour);
        // (principal, server, item) of the hour, sorted and deduplicated: distinct counts
        // without a set per principal.
        let mut items: Vec<(u32, u32, u32)> = Vec::with_capacity(rows.calls.len());
        for r in &rows.calls {
            if r.principal != 0 {
                self.see(r.principal, r.human, r.team, r.tenant, hour);
                let h = self.principal_hours.entry((r.principal, hour)).or_default();
                h.calls += r.calls;
                if r.deletes {
                    h.deletes += r.calls;
                }
                items.push((r.principal, r.server, r.item));
                self.principal_items
                    .insert((r.principal, r.server, r.item), hour);
                if r.human && r.team != 0 {
                    self.team_items
                        .entry((r.team, r.server, r.item))
                        .or_default()
                        .insert(r.principal, hour);
                }
            }
            if r.server != 0 {
                self.servers.insert(r.server, hour);
                if r.team != 0 {
                    self.team_servers.insert((r.team, r.server), hour);
                }
            }
        }
        items.sort_unstable();
        items.dedup();
        for (p, _, _) in items {
            if let Some(h) = self.principal_hours.get_mut(&(p, hour)) {
                h.distinct += 1;
            }
        }
        let mut quarters: Vec<&QuarterRow> = rows.quarters.iter().collect();
        quarters.sort_by_key(|q| q.quarter);
        for q in quarters {
            if q.calls > 0 {
                self.server_rates
                    .entry(q.server)
                    .or_default()
                    .update(q.failed as f64 / q.calls as f64, cfg.errors.alpha);
            }
        }
        for t in &rows.tokens {
            if t.principal != 0 {
                let human = self.principals.get(&t.principal).is_some_and(|p| p.human);
                self.see(t.principal, human, t.team, t.tenant, hour);
                *self
                    .principal_days
                    .entry((t.principal, hour / DAY))
                    .or_default() += t.tokens;
            }
            if t.team != 0 {
                *self.team_days.entry((t.team, hour / DAY)).or_default() += t.tokens;
            }
        }
        if hour % DAY == DAY - 1 {
            self.prune(hour, cfg);
        }
    }

    fn see(&mut self, principal: u32, human: bool, team: u32, tenant: u32, hour: i64) {
        let p = self.principals.entry(principal).or_insert(Principal {
            human,
            team,
            tenant,
            first_hour: hour,
            last_hour: hour,
        });
        p.human |= human;
        if team != 0 {
            p.team = team;
        }
        if tenant != 0 {
            p.tenant = tenant;
        }
        p.last_hour = hour;
    }

    /// Drops what no rule looks at any more, so a long backfill keeps bounded memory.
    fn prune(&mut self, hour: i64, cfg: &DetectConfig) {
        let hours_back = i64::from(cfg.baseline_days.max(cfg.hours.weeks * 7)) * DAY + DAY;
        self.principal_hours
            .retain(|(_, h), _| *h > hour - hours_back);
        let days_back = i64::from(cfg.baseline_days) + 1;
        self.principal_days
            .retain(|(_, d), _| *d > hour / DAY - days_back);
        self.team_days
            .retain(|(_, d), _| *d > hour / DAY - days_back);
    }

    /// The principal's activity in `hour` (none when absent).
    pub(crate) fn at(&self, principal: u32, hour: i64) -> PrincipalHour {
        self.principal_hours
            .get(&(principal, hour))
            .copied()
            .unwrap_or_default()
    }

    /// The humans of each team seen in the `days` before `hour`.
    pub(crate) fn active_humans(&self, hour: i64, days: u32) -> HashMap<u32, Vec<u32>> {
        let since = hour - i64::from(days) * DAY;
        let mut teams: HashMap<u32, Vec<u32>> = HashMap::default();
        for (id, p) in &self.principals {
            if p.human && p.team != 0 && p.last_hour >= since {
                teams.entry(p.team).or_default().push(*id);
            }
        }
        teams
    }
}
