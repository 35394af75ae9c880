//! Rules on first times and rare things: D2 first write or delete tool, D3 new or unapproved
//! server, D7 a tool the principal's peers do not use.

use std::collections::BTreeMap;

use foldhash::HashMap;

use calltrail_schemas::finding::{Finding, Severity};

use super::draft::{finding, hour_phrase};
use super::history::DAY;
use super::scoring::Scoring;

/// Whether `last` (the last hour something was seen) is within the `days` before `hour`.
fn seen_within(last: Option<&i64>, hour: i64, days: u32) -> bool {
    last.is_some_and(|h| *h >= hour - i64::from(days) * DAY)
}

fn tool_list(s: &Scoring<'_>, tools: &[(u32, u32)]) -> String {
    tools
        .iter()
        .map(|(server, item)| format!("{}/{}", s.names.name(*server), s.names.name(*item)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// D2: a write or delete tool the principal has not used in the last `new_terms.days`
/// (principals with less than the minimum history are new to everything, so stay silent).
pub(crate) fn first_writes(s: &Scoring<'_>) -> Vec<Finding> {
    let days = s.cfg.new_terms.days;
    let mut out = Vec::new();
    for (p, a) in &s.activity {
        if !s.seasoned(*p) {
            continue;
        }
        let mut new: Vec<((u32, u32), bool, u64)> = a
            .items
            .iter()
            .filter(|(_, u)| u.writes || u.deletes)
            .filter(|((server, item), _)| {
                !seen_within(
                    s.history.principal_items.get(&(*p, *server, *item)),
                    s.hour,
                    days,
                )
            })
            .map(|(k, u)| (*k, u.deletes, u.calls))
            .collect();
        if new.is_empty() {
            continue;
        }
        new.sort_by(|x, y| s.item_order(x.0, y.0));
        let name = s.names.name(*p);
        let (start, end) = s.window();
        let mut f = s.about(
            finding("D2", "first_write_or_delete", "user", name, start, end),
            *p,
            a,
        );
        let tools: Vec<(u32, u32)> = new.iter().map(|(k, _, _)| *k).collect();
        let deletes = new.iter().any(|(_, d, _)| *d);
        let calls: u64 = new.iter().map(|(_, _, c)| *c).sum();
        f.server_name = s.names.opt(tools[0].0);
        f.tool_name = s.names.opt(tools[0].1);
        f.observed = calls as f64;
        f.expected = Some(0.0);
        f.score = tools.len() as f64;
        f.severity = if deletes {
            Severity::High
        } else {
            Severity::Medium
        };
        f.explanation = format!(
            "{name} made {calls} calls {} to {} {} they had not used in the last {days} days: {}.",
            hour_phrase(s.hour),
            if deletes { "delete or write" } else { "write" },
            if tools.len() == 1 { "tool" } else { "tools" },
            tool_list(s, &tools)
        );
        out.push(f);
    }
    out
}

/// Calls and teams per server in the hour.
fn servers_in_hour(s: &Scoring<'_>) -> BTreeMap<u32, (u64, BTreeMap<u32, u64>)> {
    let mut servers: BTreeMap<u32, (u64, BTreeMap<u32, u64>)> = BTreeMap::new();
    for r in s.rows.calls.iter().filter(|r| r.server != 0) {
        let e = servers.entry(r.server).or_default();
        e.0 += r.calls;
        *e.1.entry(r.team).or_default() += r.calls;
    }
    servers
}

/// D3: a server never seen (org-wide) in the last `new_servers.days`, one a team has not used
/// in that time, or one not on the approved list (reported once per server and day).
/// `reported` remembers the days an unapproved server was reported on, across the hours of a
/// run.
pub(crate) fn new_servers(s: &Scoring<'_>, reported: &mut HashMap<u32, i64>) -> Vec<Finding> {
    let rule = &s.cfg.new_servers;
    let store_days = s
        .history
        .first_hour
        .map_or(0, |first| (s.hour - first) / DAY);
    let mut out = Vec::new();
    for (server, (calls, teams)) in servers_in_hour(s) {
        let name = s.names.name(server);
        let approved =
            s.cfg.approved_servers.is_empty() || s.cfg.approved_servers.iter().any(|a| a == name);
        let known = seen_within(s.history.servers.get(&server), s.hour, rule.days);
        // Teams by name (the empty team first): ties and lists do not depend on ids.
        let mut teams: Vec<(u32, u64)> = teams.into_iter().collect();
        teams.sort_by(|x, y| s.name_order(x.0, y.0));
        let top_team = teams
            .iter()
            .max_by(|(t1, c1), (t2, c2)| c1.cmp(c2).then_with(|| s.name_order(*t2, *t1)))
            .map_or(0, |(t, _)| *t);
        let day = s.hour / DAY;
        let (rule_name, why, severity) = if !known && store_days >= i64::from(rule.min_history_days)
        {
            let why = if approved {
                "never seen before".to_string()
            } else {
                "never seen before and not on the approved list".to_string()
            };
            (
                "new_server",
                why,
                if approved {
                    Severity::Medium
                } else {
                    Severity::High
                },
            )
        } else if !approved && reported.get(&server) != Some(&day) {
            (
                "unapproved_server",
                "not on the approved list".to_string(),
                Severity::High,
            )
        } else if let Some(team) = teams.iter().map(|(t, _)| *t).find(|t| {
            *t != 0
                && known
                && team_is_seasoned(s, *t)
                && !seen_within(s.history.team_servers.get(&(*t, server)), s.hour, rule.days)
        }) {
            let why = format!(
                "used by team {} for the first time in {} days",
                s.names.name(team),
                rule.days
            );
            ("new_server_for_team", why, Severity::Low)
        } else {
            continue;
        };
        if !approved {
            reported.insert(server, day);
        }
        let (start, end) = s.window();
        let mut f = finding("D3", rule_name, "server", name, start, end);
        f.server_name = Some(name.to_string());
        f.team = s.names.opt(top_team);
        f.observed = calls as f64;
        f.expected = Some(0.0);
        f.score = 1.0;
        f.severity = severity;
        let team_names: Vec<&str> = teams
            .iter()
            .map(|(t, _)| {
                if *t == 0 {
                    "(no team)"
                } else {
                    s.names.name(*t)
                }
            })
            .collect();
        f.explanation = format!(
            "MCP server {name} received {calls} calls {} from {}; it is {why}.",
            hour_phrase(s.hour),
            team_names.join(", ")
        );
        out.push(f);
    }
    out
}

/// Whether `team` has been seen for at least the minimum history.
fn team_is_seasoned(s: &Scoring<'_>, team: u32) -> bool {
    let min = i64::from(s.cfg.min_history_days);
    s.history
        .principals
        .values()
        .any(|p| p.team == team && p.history_days(s.hour) >= min)
}

/// D7: a human calling (at least `peers.min_calls` times) a tool that under `peers.max_share`
/// of their team's active peers used in the baseline, and that they did not use themselves.
pub(crate) fn peer_outliers(s: &Scoring<'_>) -> Vec<Finding> {
    let rule = &s.cfg.peers;
    let days = s.cfg.baseline_days;
    let mut out = Vec::new();
    for (p, a) in &s.activity {
        if !a.human || a.team == 0 || !s.seasoned(*p) {
            continue;
        }
        let peers = s.peers(a.team, *p).len();
        if peers < rule.min_peers as usize {
            continue;
        }
        let mut rare: Vec<((u32, u32), u64, usize)> = a
            .items
            .iter()
            .filter(|(_, u)| u.calls >= rule.min_calls)
            .filter(|((server, item), _)| {
                !seen_within(
                    s.history.principal_items.get(&(*p, *server, *item)),
                    s.hour,
                    days,
                )
            })
            .map(|((server, item), u)| {
                let users = s.item_users(a.team, *server, *item, days);
                ((*server, *item), u.calls, users)
            })
            .filter(|(_, _, users)| (*users as f64) < rule.max_share * peers as f64)
            .collect();
        rare.sort_by(|x, y| s.item_order(x.0, y.0));
        let Some(((server, item), _, users)) = rare.first().copied() else {
            continue;
        };
        let calls: u64 = rare.iter().map(|(_, c, _)| *c).sum();
        let tools: Vec<(u32, u32)> = rare.iter().map(|(k, _, _)| *k).collect();
        let name = s.names.name(*p);
        let (start, end) = s.window();
        let mut f = s.about(
            finding("D7", "peer_outlier", "user", name, start, end),
            *p,
            a,
        );
        f.server_name = s.names.opt(server);
        f.tool_name = s.names.opt(item);
        f.observed = calls as f64;
        f.expected = Some(users as f64 / peers as f64);
        f.score = 1.0 - users as f64 / peers as f64;
        f.severity = Severity::Medium;
        f.explanation = format!(
            "{name} made {calls} calls {} to {}, used by {users} of the {peers} peers in team {} in the last {days} days (under {:.0}%).",
            hour_phrase(s.hour),
            tool_list(s, &tools),
            s.names.name(a.team),
            rule.max_share * 100.0
        );
        out.push(f);
    }
    out
}
