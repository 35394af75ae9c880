//! The hour being scored, as the rules see it: each principal's activity in it, beside the
//! history and the configuration.

use std::collections::BTreeMap;

use foldhash::HashMap;

use calltrail_schemas::finding::Finding;

use super::config::DetectConfig;
use super::history::{History, Principal};
use super::rows::{HOUR_NS, Hour, Names};

/// One tool (or resource) of one server, as a principal used it in the hour.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ItemUse {
    pub(crate) calls: u64,
    pub(crate) writes: bool,
    pub(crate) deletes: bool,
}

/// A principal's activity in the hour.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity {
    pub(crate) calls: u64,
    pub(crate) deletes: u64,
    pub(crate) human: bool,
    pub(crate) team: u32,
    pub(crate) tenant: u32,
    /// (server, item) → use.
    pub(crate) items: BTreeMap<(u32, u32), ItemUse>,
}

/// Everything a rule needs to score one hour.
pub(crate) struct Scoring<'a> {
    pub(crate) cfg: &'a DetectConfig,
    pub(crate) names: &'a Names,
    pub(crate) history: &'a History,
    /// The hour scored, in hours since the epoch.
    pub(crate) hour: i64,
    pub(crate) rows: &'a Hour,
    /// Principal → activity (attributed calls only).
    pub(crate) activity: BTreeMap<u32, Activity>,
    /// Team → its humans seen in the baseline window before the hour.
    team_humans: HashMap<u32, Vec<u32>>,
}

impl<'a> Scoring<'a> {
    /// The scoring of `hour` with its `rows`.
    pub(crate) fn new(
        cfg: &'a DetectConfig,
        names: &'a Names,
        history: &'a History,
        hour: i64,
        rows: &'a Hour,
    ) -> Self {
        let mut activity: BTreeMap<u32, Activity> = BTreeMap::new();
        for r in rows.calls.iter().filter(|r| r.principal != 0) {
            let a = activity.entry(r.principal).or_default();
            a.calls += r.calls;
            a.human |= r.human;
            if r.team != 0 {
                a.team = r.team;
            }
            if r.tenant != 0 {
                a.tenant = r.tenant;
            }
            if r.deletes {
                a.deletes += r.calls;
            }
            let u = a.items.entry((r.server, r.item)).or_default();
            u.calls += r.calls;
            u.writes |= r.writes;
            u.deletes |= r.deletes;
        }
        let mut team_humans = history.active_humans(hour, cfg.baseline_days);
        // By name, not id: ids depend on the order names were first read, which differs
        // between a run that folds from scratch and one that resumes a persisted history, and
        // the order of the values reaches the last bits of a mean.
        for humans in team_humans.values_mut() {
            humans.sort_unstable_by(|a, b| names.name(*a).cmp(names.name(*b)));
        }
        Self {
            cfg,
            names,
            history,
            hour,
            rows,
            activity,
            team_humans,
        }
    }

    /// The server `a` called most in the hour (ties to the first name).
    pub(crate) fn top_server(&self, a: &Activity) -> u32 {
        let mut per_server: BTreeMap<u32, u64> = BTreeMap::new();
        for ((server, _), u) in &a.items {
            *per_server.entry(*server).or_default() += u.calls;
        }
        per_server
            .into_iter()
            .max_by(|(s1, c1), (s2, c2)| {
                c1.cmp(c2)
                    .then_with(|| self.names.name(*s2).cmp(self.names.name(*s1)))
            })
            .map_or(0, |(s, _)| s)
    }

    /// The order of two `(server, item)` pairs by their names: the order explanations list
    /// tools in and the first of them a finding names (ids would make it depend on the order
    /// names were first read).
    pub(crate) fn item_order(&self, a: (u32, u32), b: (u32, u32)) -> std::cmp::Ordering {
        let n = |(s, i): (u32, u32)| (self.names.name(s), self.names.name(i));
        n(a).cmp(&n(b))
    }

    /// The order of two teams (or other ids) by their names, the empty name first.
    pub(crate) fn name_order(&self, a: u32, b: u32) -> std::cmp::Ordering {
        self.names.name(a).cmp(self.names.name(b))
    }

    /// The window of the hour, in ns.
    pub(crate) fn window(&self) -> (i64, i64) {
        (self.hour * HOUR_NS, (self.hour + 1) * HOUR_NS)
    }

    /// The humans of `team` other than `except` seen in the baseline window.
    pub(crate) fn peers(&self, team: u32, except: u32) -> Vec<u32> {
        self.team_humans
            .get(&team)
            .map(|m| m.iter().copied().filter(|p| *p != except).collect())
            .unwrap_or_default()
    }

    /// What the history knows of `principal` (none for a first-timer).
    pub(crate) fn known(&self, principal: u32) -> Option<&Principal> {
        self.history.principals.get(&principal)
    }

    /// Whether `principal` has at least `min_history_days` of history.
    pub(crate) fn seasoned(&self, principal: u32) -> bool {
        self.known(principal)
            .is_some_and(|p| p.history_days(self.hour) >= i64::from(self.cfg.min_history_days))
    }

    /// Fills the scope columns of a finding about `principal`.
    pub(crate) fn about(&self, mut f: Finding, principal: u32, a: &Activity) -> Finding {
        f.principal = self.names.opt(principal);
        f.team = self.names.opt(a.team);
        f.tenant = self.names.opt(a.tenant);
        f
    }

    /// The people in `team` who used `(server, item)` in the `days` before the hour.
    pub(crate) fn item_users(&self, team: u32, server: u32, item: u32, days: u32) -> usize {
        let since = self.hour - i64::from(days) * 24;
        self.history
            .team_items
            .get(&(team, server, item))
            .map_or(0, |users: &HashMap<u32, i64>| {
                users.values().filter(|h| **h >= since).count()
            })
    }
}
