//! Normal activity, compactly: one [`Event`] per tool call and one [`Inference`] per LLM call
//! (the full records are built when writing). Why it stays below every rule: the module
//! documentation of `labelled.rs`.

use std::collections::{BTreeMap, HashSet};

use calltrail_schemas::Outcome;

use super::org::{Org, Rng, works};
use super::{Dataset, HOUR, SEC, START_SECS, day_ns};

/// One tool call, compactly (the full record is built when writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub t: i64,
    pub who: u16,
    pub target: u16,
    pub outcome: Outcome,
    pub trace: u64,
    /// Distinguishes calls within a trace.
    pub n: u32,
    pub duration_ms: u16,
    /// Part of an injected incident (everything else is normal activity).
    pub incident: bool,
}

/// One LLM inference, compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inference {
    pub t: i64,
    pub who: u16,
    pub trace: u64,
    pub n: u32,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub incident: bool,
}

/// A trace id per (hour, principal, purpose): a person's calls in an hour form one agent run.
pub fn trace_of(t: i64, who: u16, tag: u8) -> u64 {
    let hour = (t - START_SECS * SEC).div_euclid(HOUR) as u64;
    (hour << 32) | (u64::from(who) << 8) | u64::from(tag)
}

/// 1 % of calls fail: tool errors, protocol errors and denials.
fn normal_outcome(rng: &mut Rng) -> Outcome {
    match rng.below(1000) {
        0..6 => Outcome::ToolError,
        6..8 => Outcome::ProtocolError,
        8..10 => Outcome::Denied,
        _ => Outcome::Ok,
    }
}

pub fn event(rng: &mut Rng, t: i64, who: u16, target: u16, tag: u8, n: u32) -> Event {
    Event {
        t,
        who,
        target,
        outcome: normal_outcome(rng),
        trace: trace_of(t, who, tag),
        n,
        duration_ms: 40 + rng.below(400) as u16,
        incident: false,
    }
}

/// One day of normal activity of everyone.
pub fn normal_day(org: &Org, day: u32, calls: &mut Vec<Event>, llm: &mut Vec<Inference>) {
    for who in 0..org.principals.len() as u16 {
        if org.principals[who as usize].is_human() {
            let first = calls.len();
            human_hours(org, who, day, calls);
            human_tokens(org, who, day, &calls[first..], llm);
            on_call_night(org, who, day, calls);
        } else {
            service_day(org, who, day, calls);
        }
    }
}

fn human_hours(org: &Org, who: u16, day: u32, calls: &mut Vec<Event>) {
    if !works(org, who, day) {
        return;
    }
    let p = &org.principals[who as usize];
    let mut rng = Rng::keyed(&[4, u64::from(who), u64::from(day)]);
    let factor = 0.85 + 0.3 * rng.unit();
    for hour in p.start_hour..p.start_hour + 8 {
        let n = rng.poisson(p.rate * factor).min(12);
        for i in 0..n {
            let t = day_ns(day) + hour * HOUR + rng.below(3600) as i64 * SEC;
            let target = if !p.writes.is_empty() && rng.unit() < 0.12 {
                p.writes[0]
            } else {
                rng.pick(&p.reads)
            };
            calls.push(event(&mut rng, t, who, target, 0, i));
        }
    }
}

/// The day's tokens, bounded around the person's constant, in traces of the day's calls.
fn human_tokens(org: &Org, who: u16, day: u32, today: &[Event], llm: &mut Vec<Inference>) {
    if today.is_empty() {
        return;
    }
    let p = &org.principals[who as usize];
    let mut rng = Rng::keyed(&[5, u64::from(who), u64::from(day)]);
    let per_call = p.tokens * (0.9 + 0.2 * rng.unit()) / f64::from(p.llm_calls);
    for n in 0..p.llm_calls {
        let call = today[rng.below(today.len() as u64) as usize];
        llm.push(Inference {
            t: call.t - SEC,
            who,
            trace: call.trace,
            n,
            input_tokens: (per_call * 0.75) as u32,
            output_tokens: (per_call * 0.25) as u32,
            incident: false,
        });
    }
}

/// The person on call answers a page on half the nights: a few reads, one night hour.
fn on_call_night(org: &Org, who: u16, day: u32, calls: &mut Vec<Event>) {
    let p = &org.principals[who as usize];
    if p.on_call != Some(u64::from(day / 7) % 4) || day < p.joined_day {
        return;
    }
    let mut rng = Rng::keyed(&[6, u64::from(who), u64::from(day)]);
    if rng.below(2) == 0 {
        return;
    }
    let hour = p.start_hour + 13 + rng.below(6) as i64;
    for i in 0..1 + rng.below(4) as u32 {
        let t = day_ns(day) + hour * HOUR + rng.below(3600) as i64 * SEC;
        let target = rng.pick(&p.reads);
        calls.push(event(&mut rng, t, who, target, 1, i));
    }
}

fn service_day(org: &Org, who: u16, day: u32, calls: &mut Vec<Event>) {
    let p = &org.principals[who as usize];
    let mut rng = Rng::keyed(&[7, u64::from(who), u64::from(day)]);
    let tools: Vec<u16> = p.reads.iter().chain(&p.writes).copied().collect();
    for hour in 0..24 {
        for i in 0..rng.poisson(p.rate).min(8) {
            let t = day_ns(day) + hour * HOUR + rng.below(3600) as i64 * SEC;
            let target = rng.pick(&tools);
            calls.push(event(&mut rng, t, who, target, 0, i));
        }
    }
}

/// Calls per (principal, hour) of normal activity: the figures the generator promises to keep
/// low. Returned as `(max calls of a human in an hour, max distinct targets of a human in an
/// hour, max calls of a service account in an hour)`.
pub fn normal_hourly_maxima(data: &Dataset) -> (usize, usize, usize) {
    let mut hours: BTreeMap<(u16, i64), Vec<u16>> = BTreeMap::new();
    for e in data.calls.iter().filter(|e| !e.incident) {
        hours
            .entry((e.who, e.t.div_euclid(HOUR)))
            .or_default()
            .push(e.target);
    }
    let (mut calls, mut distinct, mut service) = (0, 0, 0);
    for ((who, _), targets) in hours {
        if data.org.principals[who as usize].is_human() {
            calls = calls.max(targets.len());
            distinct = distinct.max(targets.iter().collect::<HashSet<_>>().len());
        } else {
            service = service.max(targets.len());
        }
    }
    (calls, distinct, service)
}
