//! What the rules know of the past: per principal, server and team, folded from the hourly
//! rows in time order. A run folds its history once, then for each hour it scores: score the
//! hour against the history (which never contains the hour itself), then fold the hour in.
//!
//! The history is a function of its *window*: the hours from a day-aligned start
//! ([`window_start`]) to the last hour folded. Moving the start later ([`History::trim`])
//! leaves exactly the history a fold from the new start would have built, which is what lets a
//! run resume from the history a previous run persisted (`state`) instead of folding 90 days
//! again. Everything kept is either the latest hour something happened (dropped when it falls
//! before the start), a per-hour or per-day total (dropped likewise), or, where a value depends
//! on older hours (a principal's first hour, the failure-rate EWMA), the few facts needed to
//! recompute it from the hours that remain.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::config::DetectConfig;
use super::rows::{Hour, QuarterRow};
use super::stats::Ewma;

/// Hours in a day and in a week.
pub(crate) const DAY: i64 = 24;
pub(crate) const WEEK: i64 = 7 * DAY;

/// What is known of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PrincipalHour {
    pub(crate) calls: u64,
    /// Distinct tools, resources and prompts (per server).
    pub(crate) distinct: u64,
    pub(crate) deletes: u64,
}

/// What [`History::trim`] needs to recompute a principal's [`Principal`] from the hours left
/// in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// The first hour of each day they were active, oldest first: the first hour of the window
    /// they were active is the first of these not before the start.
    pub(crate) day_firsts: VecDeque<i64>,
    /// The latest hour a call of theirs was a human's (`Principal::human` is whether that is
    /// in the window).
    pub(crate) human_hour: Option<i64>,
    /// The latest hour a row gave them their current (non-empty) team and tenant.
    pub(crate) team_hour: i64,
    pub(crate) tenant_hour: i64,
}

/// One 15-minute bucket of a server, as the failure-rate EWMA took it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Quarter hours since the epoch.
    pub(crate) quarter: i64,
    pub(crate) calls: u64,
    pub(crate) failed: u64,
}

/// The start of the window a run scoring from `from_hour` folds: the longest look-back of any
/// rule before it, moved back to a UTC midnight so that day totals are never cut.
pub(crate) fn window_start(from_hour: i64, cfg: &DetectConfig) -> i64 {
    (from_hour - History::lookback_hours(cfg)).div_euclid(DAY) * DAY
}

/// The history.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct History {
    /// The first hour of the window: nothing before it is folded in.
    pub(crate) start: i64,
    /// The first hour with any data.
    pub(crate) first_hour: Option<i64>,
    /// The first hour with data of each day that had any, oldest first.
    pub(crate) data_days: VecDeque<i64>,
    pub(crate) principals: HashMap<u32, Principal>,
    /// Principal → what recomputes their entry of `principals` after a trim.
    pub(crate) marks: HashMap<u32, Marks>,
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
    /// Server → its buckets with calls in the window, oldest first: the EWMA replayed after a
    /// trim (an EWMA cannot forget an observation, but a replay from the new start can).
    pub(crate) buckets: HashMap<u32, VecDeque<Bucket>>,
    /// (principal, day) → tokens.
    pub(crate) principal_days: HashMap<(u32, i64), u64>,
    /// (team, day) → tokens.
    pub(crate) team_days: HashMap<(u32, i64), u64>,
}

impl History {
    /// An empty history whose window starts at `start` (a UTC midnight, [`window_start`]).
    pub(crate) fn new(start: i64) -> Self {
        Self {
            start,
            ..Self::default()
        }
    }

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
        debug_assert!(hour >= self.start, "hour {hour} folded before the window");
        self.first_hour.get_or_insert(hour);
        push_day_first(&mut self.data_days, hour);
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
                let bucket = Bucket {
                    quarter: q.quarter,
                    calls: q.calls,
                    failed: q.failed,
                };
                bucket_into(self.server_rates.entry(q.server).or_default(), bucket, cfg);
                self.buckets.entry(q.server).or_default().push_back(bucket);
            }
        }
        for t in &rows.tokens {
            if t.principal != 0 {
                // Only calls say whether a principal is human: a token row never changes it.
                self.see(t.principal, false, t.team, t.tenant, hour);
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
        let m = self.marks.entry(principal).or_default();
        if human {
            m.human_hour = Some(hour);
        }
        if team != 0 {
            p.team = team;
            m.team_hour = hour;
        }
        if tenant != 0 {
            p.tenant = tenant;
            m.tenant_hour = hour;
        }
        p.last_hour = hour;
        push_day_first(&mut m.day_firsts, hour);
    }

    /// Moves the start of the window to `start` (a UTC midnight, not before the current
    /// start), dropping what the hours before it contributed: afterwards the history is the one
    /// a fold from `start` over the same hours would have built.
    pub(crate) fn trim(&mut self, start: i64, cfg: &DetectConfig) {
        if start <= self.start {
            return;
        }
        debug_assert_eq!(start.rem_euclid(DAY), 0, "a window starts at midnight");
        self.start = start;
        pop_before(&mut self.data_days, start);
        self.first_hour = self.data_days.front().copied();
        let marks = &mut self.marks;
        self.principals.retain(|id, p| {
            let Some(m) = marks.get_mut(id) else {
                return false;
            };
            pop_before(&mut m.day_firsts, start);
            let Some(first) = m.day_firsts.front() else {
                marks.remove(id);
                return false;
            };
            // What a fold from `start` would say: the first hour seen, human when a call in the
            // window was, and the latest team and tenant a row of the window gave (none if
            // none did).
            p.first_hour = *first;
            // The marks too, as a fold from `start` would have left them.
            m.human_hour = m.human_hour.filter(|h| *h >= start);
            p.human = m.human_hour.is_some();
            if m.team_hour < start {
                p.team = 0;
                m.team_hour = 0;
            }
            if m.tenant_hour < start {
                p.tenant = 0;
                m.tenant_hour = 0;
            }
            true
        });
        self.principal_hours.retain(|(_, h), _| *h >= start);
        self.principal_items.retain(|_, h| *h >= start);
        self.team_items.retain(|_, users| {
            users.retain(|_, h| *h >= start);
            !users.is_empty()
        });
        self.servers.retain(|_, h| *h >= start);
        self.team_servers.retain(|_, h| *h >= start);
        let start_day = start / DAY;
        self.principal_days.retain(|(_, d), _| *d >= start_day);
        self.team_days.retain(|(_, d), _| *d >= start_day);
        let rates = &mut self.server_rates;
        self.buckets.retain(|server, buckets| {
            let first = buckets.front().map(|b| b.quarter);
            while buckets.front().is_some_and(|b| b.quarter < start * 4) {
                buckets.pop_front();
            }
            if buckets.is_empty() {
                rates.remove(server);
                return false;
            }
            if first != buckets.front().map(|b| b.quarter) {
                rates.insert(*server, replay(buckets, cfg));
            }
            true
        });
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

    /// The failure-rate EWMA of every server, replayed from its buckets (after a load).
    pub(crate) fn replay_rates(&mut self, cfg: &DetectConfig) {
        self.server_rates = self
            .buckets
            .iter()
            .map(|(server, b)| (*server, replay(b, cfg)))
            .collect();
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

/// Records `hour` in `days` (first hours of active days, oldest first) when it opens a day.
fn push_day_first(days: &mut VecDeque<i64>, hour: i64) {
    if days
        .back()
        .is_none_or(|last| last.div_euclid(DAY) < hour.div_euclid(DAY))
    {
        days.push_back(hour);
    }
}

/// Drops the hours before `start` from the front of `hours`.
fn pop_before(hours: &mut VecDeque<i64>, start: i64) {
    while hours.front().is_some_and(|h| *h < start) {
        hours.pop_front();
    }
}

/// Folds one bucket into a server's EWMA: the one place the rate is computed, so a replay
/// repeats the fold bit for bit.
fn bucket_into(ewma: &mut Ewma, b: Bucket, cfg: &DetectConfig) {
    ewma.update(b.failed as f64 / b.calls as f64, cfg.errors.alpha);
}

/// A server's EWMA folded afresh from `buckets`.
fn replay(buckets: &VecDeque<Bucket>, cfg: &DetectConfig) -> Ewma {
    let mut ewma = Ewma::default();
    for b in buckets {
        bucket_into(&mut ewma, *b, cfg);
    }
    ewma
}
