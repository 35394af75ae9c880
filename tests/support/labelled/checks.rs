//! What the generator promises about its own output, checked on the records before they are
//! written: normal activity stays below every rule, and each labelled incident is in the data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use calltrail_schemas::{OperationClass, Outcome, PrincipalKind};

use super::normal::{Event, normal_hourly_maxima};
use super::{DAY, DAYS, Dataset, HOUR, Incident, day_ns};

/// The detectors, in order.
pub const DETECTORS: [&str; 9] = ["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9"];

/// Normal activity never nears a rule: few calls and targets per hour, no deletes by people,
/// no other team's servers, no target a person uses alone in their team.
pub fn assert_normal_data_is_quiet(data: &Dataset) {
    let (calls, distinct, service) = normal_hourly_maxima(data);
    println!(
        "normal data: at most {calls} calls and {distinct} distinct targets in a human's hour, {service} calls in a service account's hour"
    );
    assert!(calls < 20 && distinct < 10 && service < 20);
    let org = &data.org;
    let mut users: HashMap<(usize, u16), BTreeSet<u16>> = HashMap::new();
    for e in data.calls.iter().filter(|e| !e.incident) {
        let p = &org.principals[e.who as usize];
        let target = &org.targets[e.target as usize];
        if p.kind != PrincipalKind::Human {
            continue;
        }
        assert_ne!(target.class, OperationClass::Delete, "{} deleted", p.name);
        assert!(
            target.owner.is_none_or(|t| t == p.team),
            "{} used another team's {}",
            p.name,
            target.server
        );
        assert!(org.approved_servers.contains(&target.server));
        users.entry((p.team, e.target)).or_default().insert(e.who);
    }
    for ((team, target), who) in users {
        assert!(
            who.len() >= 2,
            "{} of {} used by {who:?} alone",
            org.targets[target as usize].name,
            org.teams[team].name
        );
    }
}

/// At least 5 incidents for each detector, all in days 35–59.
pub fn assert_every_detector_has_incidents(incidents: &[Incident]) {
    for d in DETECTORS {
        let n = incidents
            .iter()
            .filter(|i| i.detectors.contains(&d))
            .count();
        println!("{d}: {n} incidents");
        assert!(n >= 5, "{d} has {n} incidents");
    }
    for i in incidents {
        assert!(
            i.start_ns >= day_ns(35) && i.end_ns <= day_ns(DAYS),
            "{i:?}"
        );
    }
}

/// The calls of `[start, end)` in the dataset that `keep` selects.
fn calls_in<'a>(
    data: &'a Dataset,
    i: &Incident,
    keep: impl Fn(&Event) -> bool + 'a,
) -> impl Iterator<Item = &'a Event> + 'a {
    let (start, end) = (i.start_ns, i.end_ns);
    data.calls
        .iter()
        .filter(move |e| e.t >= start && e.t < end && keep(e))
}

/// Distinct targets of `who` in each hour of the incident, the smallest.
fn least_hourly_breadth(data: &Dataset, i: &Incident, who: u16) -> usize {
    (i.start_ns..i.end_ns)
        .step_by(HOUR as usize)
        .map(|h| {
            let hour = Incident {
                start_ns: h,
                end_ns: h + HOUR,
                ..i.clone()
            };
            calls_in(data, &hour, |e| e.who == who)
                .map(|e| e.target)
                .collect::<BTreeSet<_>>()
                .len()
        })
        .min()
        .unwrap_or(0)
}

/// What each label claims is in the data: the volumes, breadths, first uses and failures the
/// detectors are meant to see.
pub fn assert_incidents_are_in_the_data(data: &Dataset) {
    let org = &data.org;
    let index: HashMap<&str, u16> = org
        .principals
        .iter()
        .enumerate()
        .map(|(n, p)| (p.name.as_str(), n as u16))
        .collect();
    for i in data.incidents.iter().filter(|i| !i.detectors.is_empty()) {
        let who = index.get(i.entity.as_str()).copied().unwrap_or(u16::MAX);
        let mine = |e: &Event| e.who == who;
        let target = |e: &Event| &org.targets[e.target as usize];
        let before =
            |keep: &dyn Fn(&Event) -> bool| data.calls.iter().any(|e| e.t < i.start_ns && keep(e));
        let ok = match i.detectors[0] {
            "D1" if i.detectors.contains(&"D4") => {
                let p = &org.principals[who as usize];
                let hour = (i.start_ns.rem_euclid(DAY)) / HOUR;
                calls_in(data, i, mine).count() >= 150
                    && !(p.start_hour..p.start_hour + 8).contains(&hour)
                    && least_hourly_breadth(data, i, who) >= 10
            }
            "D1" => calls_in(data, i, mine).count() >= 300,
            "D8" => least_hourly_breadth(data, i, who) >= 15,
            "D2" => {
                let deletes = calls_in(data, i, |e| {
                    mine(e) && target(e).class == OperationClass::Delete
                })
                .count();
                (1..=2).contains(&deletes)
                    && !before(&|e| mine(e) && target(e).class != OperationClass::Read)
            }
            "D3" => {
                calls_in(data, i, |e| target(e).server == i.entity).count() >= 5
                    && !before(&|e| target(e).server == i.entity)
                    && !org.approved_servers.contains(&i.entity)
            }
            "D5" => {
                calls_in(data, i, |e| {
                    target(e).server == i.entity && e.outcome != Outcome::Ok
                })
                .count()
                    >= 60
            }
            "D6" => {
                let day = |t: i64| (t - day_ns(0)).div_euclid(DAY);
                let mut by_day: BTreeMap<i64, u64> = BTreeMap::new();
                for l in data.llm.iter().filter(|l| l.who == who) {
                    *by_day.entry(day(l.t)).or_default() +=
                        u64::from(l.input_tokens + l.output_tokens);
                }
                let blown = by_day.remove(&day(i.start_ns)).unwrap_or(0);
                let mut rest: Vec<u64> = by_day.into_values().collect();
                rest.sort_unstable();
                blown >= 10 * rest[rest.len() / 2]
            }
            "D7" => {
                let team = org.principals[who as usize].team;
                let foreign = |e: &Event| target(e).owner.is_some_and(|t| t != team);
                let peers = |e: &Event| org.principals[e.who as usize].team == team;
                let odd: Vec<u16> = calls_in(data, i, |e| mine(e) && foreign(e))
                    .map(|e| e.target)
                    .collect();
                odd.len() >= 5 && !before(&|e| peers(e) && odd.contains(&e.target))
            }
            _ => true,
        };
        assert!(ok, "the data does not show {i:?}");
    }
}
