//! A labelled store for the detectors' precision/recall test: 60 days of an organisation's
//! normal MCP activity with incidents injected at known times, written through the real store
//! writer (as `ledger.rs` does), and the list of those incidents.
//!
//! Everything comes from a seeded PRNG keyed by what it decides (principal, day, purpose), so
//! the same call yields the same records on every run, and a shorter range (`days`) is an exact
//! prefix of the full one.
//!
//! **The organisation.** 12 teams in 4 tenants (8 in Europe working from 06–09 UTC, 4 in the US
//! from 13–15 UTC), 14–18 humans each plus one new joiner (from day 40–44), and two service
//! accounts. Each team owns two servers (`<team>-ledger-mcp`, `<team>-reports-mcp`: four reads,
//! a write and a delete each) and uses three of six shared servers (`jira-mcp`, `docs-mcp` with
//! resources, ...). Every normal server is on the approved list.
//!
//! **Normal behaviour, and why it stays below every rule** (D1–D9, in
//! `/work/shared/reference/chargeback-and-detection.md`):
//! - A human works 8 consecutive hours from their own start hour on weekdays, except public
//!   holidays (day 11 everywhere, day 28 in Europe, day 35 in the US) and 4 % of days off. Each
//!   working hour has a Poisson count of calls (rate 2–4.5, a daily factor 0.85–1.15) capped at
//!   12: no normal hour reaches D1's floor of 20 calls. Every working hour of the week holds about
//!   2.5 % of a person's calls, above D4's 1 %.
//! - A human uses 5 reads (3 of the team's, 2 of its shared servers), and every second one a
//!   write of the team's as well (12 % of calls): at most 6 distinct targets an hour, far from
//!   D8's 10. Every target a human uses is used by at least 2 of their team (D7). Humans never
//!   delete and never touch another team's servers. Everyone uses their tools from their first
//!   day, so nobody's first write falls in the scored range except a new joiner's, whose history
//!   is then shorter than 14 days (D2's guard).
//! - On call: in each team 4 people take a week each in turn; the one on call works one night
//!   hour (13–18 h after their start) on half the nights, 1–4 reads: below D4's 5 calls, never
//!   destructive, and everyone in the rotation did it within the previous 4 weeks.
//! - Service accounts (`svc-<team>-sync`, `svc-<team>-etl`) call 6 tools of their team's
//!   servers, reads, writes and deletes, every hour of every day (Poisson rate 1.5–3, capped at
//!   8). Both accounts of a team use the same tools, so no tool is a lone account's.
//! - Errors: 1 % of calls (tool errors, protocol errors, denials); no server gets 50 calls in 15
//!   minutes (D5's floor) except during the agent loops, whose calls all succeed.
//! - LLM calls: a human's tokens for a working day are their own constant times a factor in
//!   0.9–1.1 (bounded, no tail: D6's robust z cannot reach 3.5), split over 4–8 calls, each in the
//!   trace of one of that day's tool calls and attributed like it.
//!
//! **Incidents** (days 35–59, so every victim has at least 28 days of history; victims are
//! never new joiners and each is used once): see [`Incident`] and the `plan_*` functions. Some
//! incidents carry extra labels with no detector (`detectors` empty): entities an incident
//! legitimately disturbs as well (the team whose day of tokens a blow-up inflates, the server a
//! peer-group outlier is the first of its team to call, the users who call a new server). A
//! finding on them is a true positive, but no detector is required to find them.
//!
//! **Chain gaps** (D9): in the hours of [`GAP_DAYS`] at 14:00 UTC, the records of minutes 0–20,
//! 20–40 and 40–60 are each written by a writer of their own (one flush each), so the segments
//! of minutes 20–40 sit in the chain between segments of the same hour. Those segments (Parquet
//! files and manifests) are then deleted: a hole in `seq` whose neighbours on both sides are
//! rows of that hour, whatever the retention classes.
//!
//! Modules: [`org`] (the organisation, its calendar, the PRNG), [`normal`] (normal activity),
//! [`incidents`] (the injected incidents), [`store`] (records, writing, the chain gaps) and
//! [`checks`] (what the generator promises about its own output).

#![allow(dead_code, unreachable_pub)]

#[path = "labelled/checks.rs"]
pub mod checks;
#[path = "labelled/incidents.rs"]
pub mod incidents;
#[path = "labelled/normal.rs"]
pub mod normal;
#[path = "labelled/org.rs"]
pub mod org;
#[path = "labelled/store.rs"]
pub mod store;

pub use normal::{Event, Inference};
pub use org::Org;
pub use store::{Store, segments, write_store};

/// Number of days of the full store.
pub const DAYS: u32 = 60;
/// First day of the store: Monday 2026-08-03T00:00:00Z, in seconds since the epoch.
pub const START_SECS: i64 = 1_785_715_200;
/// Days whose 14:00 UTC hour loses a segment (D9); no other incident is placed on them.
pub const GAP_DAYS: [u32; 5] = [37, 44, 50, 53, 58];
/// The hour of day (UTC) of the chain gaps.
pub const GAP_HOUR: i64 = 14;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
/// One hour in nanoseconds.
pub const HOUR: i64 = 60 * MIN;
/// One day in nanoseconds.
pub const DAY: i64 = 24 * HOUR;
const SEED: u64 = 0x00ca_117a_11de_7ec7;

/// Nanoseconds of midnight UTC starting day `day` of the store.
pub fn day_ns(day: u32) -> i64 {
    START_SECS * SEC + i64::from(day) * DAY
}

/// `ns` as RFC 3339 (seconds precision, UTC), as the command line takes it.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns.div_euclid(SEC), 0)
        .expect("a time within chrono's range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One injected incident: what happened, to which entity, when, and which detectors must see
/// it. A finding of any detector on the same entity whose window overlaps `[start_ns, end_ns)`
/// is a true positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The detectors that must find it (`D1`..`D9`); empty for an entity an incident disturbs
    /// as well, which a detector may but need not flag.
    pub detectors: Vec<&'static str>,
    /// `user`, `team`, `server` or `chain`.
    pub entity_kind: &'static str,
    /// The principal, team, server name or chain id.
    pub entity: String,
    /// Start of the incident, ns since the epoch.
    pub start_ns: i64,
    /// Its end (exclusive).
    pub end_ns: i64,
    /// What happened, for people reading a missed incident.
    pub what: &'static str,
}

// ----- the dataset -----

/// Records and labels, before writing.
pub struct Dataset {
    /// Who, which servers and tools.
    pub org: Org,
    /// Days of data from [`START_SECS`].
    pub days: u32,
    /// Tool calls in time order.
    pub calls: Vec<Event>,
    /// LLM calls in time order.
    pub llm: Vec<Inference>,
    /// Incidents within the range, except the chain gaps (known once written).
    pub incidents: Vec<Incident>,
    /// Start of each hour that will lose a segment.
    pub gaps: Vec<i64>,
}

impl Dataset {
    /// The first `days` days (at most [`DAYS`]) of the labelled workload.
    pub fn generate(days: u32) -> Self {
        assert!((1..=DAYS).contains(&days), "1 to {DAYS} days");
        let org = Org::build();
        let (mut calls, mut llm) = (Vec::new(), Vec::new());
        for day in 0..days {
            normal::normal_day(&org, day, &mut calls, &mut llm);
        }
        let incidents::Planned {
            calls: extra,
            mut incidents,
            blow_ups,
        } = incidents::plan(&org);
        apply_blow_ups(&mut llm, &blow_ups);
        let end = day_ns(days);
        // Nights on call spill past the last midnight: the range ends there.
        calls.extend(extra);
        calls.retain(|e| e.t < end);
        llm.retain(|l| l.t < end);
        calls.sort_by_key(|e| (e.t, e.trace, e.n));
        llm.sort_by_key(|l| (l.t, l.trace, l.n));
        incidents.retain(|i| i.end_ns <= end);
        let gaps = GAP_DAYS
            .iter()
            .map(|d| day_ns(*d) + GAP_HOUR * HOUR)
            .filter(|g| g + HOUR <= end)
            .collect();
        Self {
            org,
            days,
            calls,
            llm,
            incidents,
            gaps,
        }
    }

    /// `[from, to)` of the whole store.
    pub fn range(&self) -> (i64, i64) {
        (day_ns(0), day_ns(self.days))
    }

    /// Every principal's name.
    pub fn principals(&self) -> Vec<String> {
        self.org.principals.iter().map(|p| p.name.clone()).collect()
    }
}

fn apply_blow_ups(llm: &mut [Inference], blow_ups: &[(u16, u32)]) {
    for l in llm.iter_mut() {
        let day = ((l.t - day_ns(0)) / DAY) as u32;
        if blow_ups.contains(&(l.who, day)) {
            l.input_tokens *= 12;
            l.output_tokens *= 12;
            l.incident = true;
        }
    }
}
