//! The injected incidents: who, when, and the calls that make them; each one labelled with the
//! detectors that must find it.

use std::collections::HashSet;

use calltrail_schemas::Outcome;

use super::normal::{Event, event};
use super::org::{
    Org, Principal, Region, Rng, Team, UNAPPROVED, is_holiday, is_weekday, works, works_at,
};
use super::{DAY, DAYS, GAP_DAYS, HOUR, Incident, MIN, SEC, day_ns};

/// What [`plan`] places.
pub struct Planned {
    /// The incidents' tool calls.
    pub calls: Vec<Event>,
    pub incidents: Vec<Incident>,
    /// `(who, day)` whose tokens are multiplied by 12.
    pub blow_ups: Vec<(u16, u32)>,
}

/// Places every incident in the organisation's days 35–59.
pub fn plan(org: &Org) -> Planned {
    let mut planner = Planner {
        org,
        rng: Rng::keyed(&[8]),
        used: HashSet::new(),
        calls: Vec::new(),
        incidents: Vec::new(),
        blow_ups: Vec::new(),
    };
    for plan in [
        plan_stolen,
        plan_loops,
        plan_first_delete,
        plan_token_blow_ups,
        plan_peer_outliers,
        plan_sweeps,
        plan_new_servers,
        plan_error_storms,
    ] {
        plan(&mut planner);
    }
    Planned {
        calls: planner.calls,
        incidents: planner.incidents,
        blow_ups: planner.blow_ups,
    }
}

/// Places incidents: picks victims (each once), days and hours, and emits their calls.
struct Planner<'a> {
    org: &'a Org,
    rng: Rng,
    used: HashSet<u16>,
    calls: Vec<Event>,
    incidents: Vec<Incident>,
    /// `(who, day)` whose tokens blow up.
    blow_ups: Vec<(u16, u32)>,
}

impl Planner<'_> {
    /// An unused human who is not a new joiner and passes `ok`; marks them used.
    fn victim(&mut self, ok: impl Fn(&Principal) -> bool) -> u16 {
        let org = self.org;
        let pool: Vec<u16> = (0..org.principals.len() as u16)
            .filter(|w| {
                let p = &org.principals[*w as usize];
                p.is_human() && !p.is_joiner() && !self.used.contains(w) && ok(p)
            })
            .collect();
        assert!(!pool.is_empty(), "no victim left for an incident");
        let who = self.rng.pick(&pool);
        self.used.insert(who);
        who
    }

    /// A day in 35..60, not a gap day, on which `who` works.
    fn day_for(&mut self, who: u16) -> u32 {
        let days: Vec<u32> = (35..DAYS)
            .filter(|d| !GAP_DAYS.contains(d) && works(self.org, who, *d))
            .collect();
        self.rng.pick(&days)
    }

    fn label(
        &mut self,
        detectors: &[&'static str],
        kind: &'static str,
        entity: &str,
        start: i64,
        end: i64,
        what: &'static str,
    ) {
        self.incidents.push(Incident {
            detectors: detectors.to_vec(),
            entity_kind: kind,
            entity: entity.into(),
            start_ns: start,
            end_ns: end,
            what,
        });
    }

    /// `n` calls by `who` spread evenly over `[start, start + span)`, targets in turn.
    fn burst(&mut self, who: u16, start: i64, span: i64, n: u32, targets: &[u16], tag: u8) {
        for i in 0..n {
            let t = start + span * i64::from(i) / i64::from(n) + self.rng.below(5) as i64 * SEC;
            let target = targets[i as usize % targets.len()];
            let mut e = event(&mut self.rng, t, who, target, tag, i);
            e.incident = true;
            self.calls.push(e);
        }
    }

    fn name(&self, who: u16) -> String {
        self.org.principals[who as usize].name.clone()
    }

    fn team_of(&self, who: u16) -> &Team {
        &self.org.teams[self.org.principals[who as usize].team]
    }
}

/// Every read *tool* (not resource) of the victim's team: theirs, their peers', and the shared
/// servers' their team uses.
fn team_tools(org: &Org, team: &Team) -> Vec<u16> {
    team.reads
        .iter()
        .chain(&team.shared_reads)
        .copied()
        .filter(|t| !org.targets[*t as usize].resource)
        .collect()
}

/// Stolen credential used at night: ≥ 150 calls over 01:00–04:00 UTC across 12 of the team's
/// read tools (≥ 10 distinct an hour, so D8 as well). Never an on-call person, whose nights are
/// usual.
fn plan_stolen(p: &mut Planner) {
    for _ in 0..6 {
        let who = p.victim(|v| v.on_call.is_none());
        let day = p.day_for(who);
        let tools: Vec<u16> = team_tools(p.org, p.team_of(who))
            .into_iter()
            .take(12)
            .collect();
        let start = day_ns(day) + HOUR;
        for h in 0..3 {
            p.burst(who, start + h * HOUR, HOUR, 55, &tools, 2);
        }
        let name = p.name(who);
        p.label(
            &["D1", "D4", "D8"],
            "user",
            &name,
            start,
            start + 3 * HOUR,
            "stolen credential: 165 calls across 12 tools at 01:00-04:00 UTC",
        );
    }
}

/// An agent stuck in a loop: 320 calls of one tool in the third working hour.
fn plan_loops(p: &mut Planner) {
    for _ in 0..6 {
        let who = p.victim(|_| true);
        let day = p.day_for(who);
        let v = &p.org.principals[who as usize];
        let (start, tool) = (day_ns(day) + (v.start_hour + 2) * HOUR, v.reads[0]);
        p.burst(who, start, HOUR, 320, &[tool], 3);
        // A looping agent gets answers: its calls succeed, so its server's error rate (D5)
        // stays normal.
        for e in p.calls.iter_mut().rev().take(320) {
            e.outcome = Outcome::Ok;
        }
        let name = p.name(who);
        p.label(
            &["D1"],
            "user",
            &name,
            start,
            start + HOUR,
            "agent loop: 320 calls of one tool in a working hour",
        );
    }
}

/// A reader (never wrote anything) deletes, once or twice, inside their hours. Not three times,
/// so that D7's 3-call floor keeps it D2's alone.
fn plan_first_delete(p: &mut Planner) {
    for i in 0..6 {
        let who = p.victim(|v| v.writes.is_empty());
        let day = p.day_for(who);
        let start = day_ns(day) + (p.org.principals[who as usize].start_hour + 3) * HOUR;
        let tool = p.team_of(who).deletes[0];
        p.burst(who, start + 10 * MIN, 30 * MIN, 1 + i % 2, &[tool], 4);
        let name = p.name(who);
        p.label(
            &["D2"],
            "user",
            &name,
            start,
            start + HOUR,
            "first-ever delete by a user with 35+ days of history",
        );
    }
}

/// An unapproved server nobody saw before: 3 people of one team call it twice each in an hour
/// every one of them works (2 calls each keeps D7's 3-call floor out of it).
fn plan_new_servers(p: &mut Planner) {
    for i in 0..UNAPPROVED.len() {
        let (t, day) = ([0, 3, 5, 8, 10][i], [36, 42, 45, 51, 57][i]);
        let team = &p.org.teams[t];
        assert!(!GAP_DAYS.contains(&day) && is_weekday(day) && !is_holiday(day, team.region));
        let hour = if team.region == Region::Eu { 11 } else { 17 };
        let start = day_ns(day) + hour * HOUR;
        let people: Vec<u16> = team
            .humans
            .iter()
            .copied()
            .filter(|w| !p.used.contains(w) && works_at(p.org, *w, day, hour))
            .take(3)
            .collect();
        assert_eq!(
            people.len(),
            3,
            "three of {} work at {hour}:00 on day {day}",
            team.name
        );
        let target = p.org.unapproved[i];
        for (k, who) in people.iter().enumerate() {
            p.used.insert(*who);
            p.burst(
                *who,
                start + (5 + 15 * k as i64) * MIN,
                10 * MIN,
                2,
                &[target],
                5,
            );
            let name = p.name(*who);
            p.label(
                &[],
                "user",
                &name,
                start,
                start + HOUR,
                "collateral: calls a new unapproved server",
            );
        }
        p.label(
            &["D3"],
            "server",
            UNAPPROVED[i],
            start,
            start + HOUR,
            "new unapproved server called 6 times by one team",
        );
    }
}

/// An error storm: 80 calls, 75 failing, in 5 minutes (h:20–h:25, inside one bucket of 5, 10
/// or 15 minutes) on a shared server, from at least 16 people working then, at most 5 each (so
/// no one's hour nears D1's floor).
fn plan_error_storms(p: &mut Planner) {
    for (i, server) in [
        "jira-mcp",
        "confluence-mcp",
        "github-mcp",
        "slack-mcp",
        "warehouse-mcp",
    ]
    .iter()
    .enumerate()
    {
        let day = [36, 39, 45, 49, 56][i];
        let (hour, people) = [10, 11, 14, 15, 16]
            .iter()
            .map(|h| (*h, storm_people(p, server, day, *h)))
            .max_by_key(|(_, people)| people.len())
            .expect("candidate hours");
        assert!(
            people.len() >= 16,
            "{server} has {} users at work on day {day}",
            people.len()
        );
        let start = day_ns(day) + hour * HOUR + 20 * MIN;
        for k in 0..80u32 {
            let (who, target) = people[k as usize % people.len()];
            let t = start + 5 * MIN * i64::from(k) / 80;
            let mut e = event(&mut p.rng, t, who, target, 6, k);
            e.outcome = match k % 16 {
                0..5 => Outcome::ToolError,
                5..10 => Outcome::ProtocolError,
                10..15 => Outcome::Denied,
                _ => Outcome::Ok,
            };
            e.incident = true;
            p.calls.push(e);
        }
        p.label(
            &["D5"],
            "server",
            server,
            start,
            start + 5 * MIN,
            "error storm: 75 of 80 calls fail in 5 minutes",
        );
    }
}

/// Up to 20 people at work at `hour` on `day` who use `server`, with the target they use there.
fn storm_people(p: &Planner, server: &str, day: u32, hour: i64) -> Vec<(u16, u16)> {
    let org = p.org;
    (0..org.principals.len() as u16)
        .filter(|w| !p.used.contains(w) && works_at(org, *w, day, hour))
        .filter_map(|w| {
            let reads = &org.principals[w as usize].reads;
            reads
                .iter()
                .find(|t| org.targets[**t as usize].server == server)
                .map(|t| (w, *t))
        })
        .take(20)
        .collect()
}

/// A day of tokens 12 times the person's usual (their team's day is inflated too).
fn plan_token_blow_ups(p: &mut Planner) {
    for _ in 0..6 {
        let who = p.victim(|_| true);
        let day = p.day_for(who);
        p.blow_ups.push((who, day));
        let (name, team) = (p.name(who), p.team_of(who).name);
        let start = day_ns(day);
        p.label(
            &["D6"],
            "user",
            &name,
            start,
            start + DAY,
            "token blow-up: 12x the usual day",
        );
        p.label(
            &[],
            "team",
            team,
            start,
            start + DAY,
            "collateral: a member's token blow-up",
        );
    }
}

/// Six calls in a working hour of a read tool of another team's server, which nobody of the
/// victim's team ever called.
fn plan_peer_outliers(p: &mut Planner) {
    for i in 0..6u64 {
        let who = p.victim(|_| true);
        let day = p.day_for(who);
        let own = p.org.principals[who as usize].team;
        let other = (own + 1 + (i as usize * 5) % 11) % p.org.teams.len();
        let tool = p.org.teams[other].reads[(i % 8) as usize];
        let start = day_ns(day) + (p.org.principals[who as usize].start_hour + 4) * HOUR;
        p.burst(who, start + 5 * MIN, 45 * MIN, 6, &[tool], 7);
        let (name, server) = (p.name(who), p.org.targets[tool as usize].server.clone());
        p.label(
            &["D7"],
            "user",
            &name,
            start,
            start + HOUR,
            "peer-group outlier: another team's tool, 6 calls",
        );
        p.label(
            &[],
            "server",
            &server,
            start,
            start + HOUR,
            "collateral: first call of this server by the team",
        );
    }
}

/// Enumeration: ≥ 15 distinct tools (4 sweeps) or 20 resources (2 sweeps) in a working hour,
/// two calls each.
fn plan_sweeps(p: &mut Planner) {
    for i in 0..6 {
        let resources = i >= 4;
        let org = p.org;
        let uses_docs = |v: &Principal| {
            let team = &org.teams[v.team];
            team.shared_reads
                .iter()
                .any(|t| org.targets[*t as usize].server == "docs-mcp")
        };
        let who = if resources {
            p.victim(uses_docs)
        } else {
            p.victim(|_| true)
        };
        let day = p.day_for(who);
        let start = day_ns(day) + (p.org.principals[who as usize].start_hour + 5) * HOUR;
        let targets = if resources {
            p.org.sweep_resources.clone()
        } else {
            team_tools(p.org, p.team_of(who))
        };
        assert!(targets.len() >= 15, "a sweep needs 15 targets");
        let n = 2 * targets.len() as u32;
        p.burst(who, start + 2 * MIN, 50 * MIN, n, &targets, 8);
        let name = p.name(who);
        let what = if resources {
            "enumeration: 20 resources read twice each in an hour"
        } else {
            "enumeration: 15+ distinct tools twice each in an hour"
        };
        p.label(&["D8"], "user", &name, start, start + HOUR, what);
    }
}
