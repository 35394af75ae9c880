//! The persisted history against a fold from scratch, on a small generated store: the same
//! history and the same findings, whichever way a run got its history.

use std::collections::BTreeMap;

use calltrail_schemas::finding::Finding;

use super::*;
use crate::detect::history::window_start;
use crate::detect::rows::{CallRow, QuarterRow, TokenRow};
use crate::detect::run::score_hours;

/// One row of the generated store, by name (each run interns names in its own order).
#[derive(Debug, Clone)]
enum Raw {
    Call {
        principal: String,
        human: bool,
        team: String,
        server: String,
        item: String,
        class: &'static str,
        calls: u64,
        errors: u64,
    },
    Quarter {
        quarter: i64,
        server: String,
        calls: u64,
        failed: u64,
    },
    Tokens {
        principal: String,
        team: String,
        tokens: u64,
    },
}

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Midnight UTC of the store's first day (2026-08-03, a Monday), in hours since the epoch.
const ORIGIN: i64 = 1_785_715_200 / 3600;
/// Days the store covers.
const DAYS: i64 = 56;

fn cfg() -> DetectConfig {
    // Short windows, so that 56 days hold cold starts, seasoned principals and trims.
    let mut c = DetectConfig {
        baseline_days: 7,
        min_history_days: 3,
        ..DetectConfig::default()
    };
    c.new_terms.days = 5;
    c.new_servers.days = 35;
    c.new_servers.min_history_days = 2;
    c.hours.weeks = 4;
    c.errors.min_buckets = 8;
    c.errors.min_calls = 10;
    c.errors.min_errors = 3;
    c.tokens.min_days = 2;
    c.peers.min_peers = 2;
    c.breadth.min_distinct = 6;
    c
}

/// A store of 12 people in 3 teams and a bot, with the quirks the history must forget exactly:
/// someone away for a month, someone changing team, someone losing theirs, a bot that later
/// acts as a person and a person who later acts as a bot, a server seen only early on; and
/// incidents for every rule late in it.
fn store() -> BTreeMap<i64, Vec<Raw>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out: BTreeMap<i64, Vec<Raw>> = BTreeMap::new();
    let teams = ["crm", "pay", "files"];
    for hour in ORIGIN..ORIGIN + DAYS * DAY {
        let (day, hod) = (hour / DAY - ORIGIN / DAY, hour % DAY);
        let weekday = (hour.div_euclid(DAY) + 3).rem_euclid(7) < 5;
        let mut rows = Vec::new();
        for p in 0..13u64 {
            let name = format!("user{p}");
            let mut team = teams[(p % 3) as usize].to_string();
            if p == 8 && day >= 10 {
                team = "pay".into();
            }
            if p == 11 && day >= 12 {
                team = String::new();
            }
            let human = (p != 12 || day >= 25) && (p != 10 || day < 10);
            let away = p == 2 && (5..35).contains(&day);
            let at_work = (8..18).contains(&hod) && weekday;
            if away || !(at_work || (p == 12 && hod % 3 == 0)) || rng.below(10) < 3 {
                continue;
            }
            let server = format!("{team}-mcp");
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(6);
                let class = ["read", "read", "read", "write", "write", "delete"][i as usize];
                rows.push(Raw::Call {
                    principal: name.clone(),
                    human,
                    team: team.clone(),
                    server: server.clone(),
                    item: format!("{class}_{i}"),
                    class,
                    calls: 2 + rng.below(8),
                    errors: rng.below(2),
                });
            }
            if day < 4 && p == 0 {
                rows.push(call(&name, human, &team, "legacy-mcp", "read_0", "read", 3));
            }
            rows.push(Raw::Tokens {
                principal: name.clone(),
                team,
                tokens: 500 + rng.below(500),
            });
        }
        // Incidents, late enough for everyone to be seasoned.
        match (day, hod) {
            (50, 3) => rows.push(call("user3", true, "pay", "pay-mcp", "read_0", "read", 300)),
            (51, 10) => rows.push(call(
                "user5",
                true,
                "files",
                "files-mcp",
                "drop",
                "delete",
                4,
            )),
            (52, 11) => rows.push(call("user6", true, "crm", "shadow-mcp", "x", "read", 9)),
            (53, 14) => {
                for i in 0..12 {
                    rows.push(call(
                        "user4",
                        true,
                        "pay",
                        "pay-mcp",
                        &format!("t{i}"),
                        "read",
                        1,
                    ));
                }
            }
            (53, 15) => rows.push(Raw::Tokens {
                principal: "user7".into(),
                team: "pay".into(),
                tokens: 900_000,
            }),
            (54, 9) => rows.push(call("user1", true, "pay", "pay-mcp", "rare", "read", 5)),
            _ => {}
        }
        let mut per_server: BTreeMap<String, u64> = BTreeMap::new();
        for r in &rows {
            if let Raw::Call { server, calls, .. } = r {
                *per_server.entry(server.clone()).or_default() += calls;
            }
        }
        for (server, calls) in per_server {
            for q in 0..4 {
                let burst = day == 52 && hod == 10 && q == 2 && server == "crm-mcp";
                let calls = calls + 10;
                let failed = if burst { calls } else { rng.below(2) };
                rows.push(Raw::Quarter {
                    quarter: hour * 4 + q,
                    server: server.clone(),
                    calls,
                    failed,
                });
            }
        }
        if !rows.is_empty() {
            out.insert(hour, rows);
        }
    }
    out
}

fn call(
    p: &str,
    human: bool,
    team: &str,
    server: &str,
    item: &str,
    class: &'static str,
    calls: u64,
) -> Raw {
    Raw::Call {
        principal: p.into(),
        human,
        team: team.into(),
        server: server.into(),
        item: item.into(),
        class,
        calls,
        errors: 0,
    }
}

/// The rows of `hours` of the store, interned in `names` (in hour order, as a run reads them).
fn intern(
    store: &BTreeMap<i64, Vec<Raw>>,
    hours: std::ops::Range<i64>,
    names: &mut Names,
    into: &mut BTreeMap<i64, Hour>,
) {
    for (hour, raws) in store.range(hours) {
        let mut h = Hour::default();
        for r in raws {
            match r {
                Raw::Call {
                    principal,
                    human,
                    team,
                    server,
                    item,
                    class,
                    calls,
                    errors,
                } => h.calls.push(CallRow {
                    principal: names.id(principal),
                    human: *human,
                    team: names.id(team),
                    tenant: names.id("acme"),
                    server: names.id(server),
                    item: names.id(item),
                    writes: *class == "write",
                    deletes: *class == "delete",
                    calls: *calls,
                    errors: *errors,
                    denied: 0,
                }),
                Raw::Quarter {
                    quarter,
                    server,
                    calls,
                    failed,
                } => h.quarters.push(QuarterRow {
                    quarter: *quarter,
                    server: names.id(server),
                    calls: *calls,
                    failed: *failed,
                }),
                Raw::Tokens {
                    principal,
                    team,
                    tokens,
                } => h.tokens.push(TokenRow {
                    principal: names.id(principal),
                    team: names.id(team),
                    tenant: names.id("acme"),
                    tokens: *tokens,
                }),
            }
        }
        into.insert(*hour, h);
    }
}

/// The history by name, one sorted line per entry: equal for equal histories whatever the
/// ids.
fn canonical(h: &History, names: &Names) -> Vec<String> {
    let n = |id: &u32| names.name(*id).to_string();
    let mut out = vec![format!(
        "start {} first {:?} days {:?}",
        h.start, h.first_hour, h.data_days
    )];
    for (id, p) in &h.principals {
        let m = &h.marks[id];
        out.push(format!(
            "principal {} {} {} {} {} {} {:?} {} {} {:?}",
            n(id),
            p.human,
            n(&p.team),
            n(&p.tenant),
            p.first_hour,
            p.last_hour,
            m.human_hour,
            m.team_hour,
            m.tenant_hour,
            m.day_firsts
        ));
    }
    for ((p, hour), a) in &h.principal_hours {
        out.push(format!("hour {} {hour} {a:?}", n(p)));
    }
    for ((p, s, i), hour) in &h.principal_items {
        out.push(format!("item {} {} {} {hour}", n(p), n(s), n(i)));
    }
    for ((t, s, i), users) in &h.team_items {
        for (u, hour) in users {
            out.push(format!(
                "team_item {} {} {} {} {hour}",
                n(t),
                n(s),
                n(i),
                n(u)
            ));
        }
    }
    for (s, hour) in &h.servers {
        out.push(format!("server {} {hour}", n(s)));
    }
    for ((t, s), hour) in &h.team_servers {
        out.push(format!("team_server {} {} {hour}", n(t), n(s)));
    }
    for (s, e) in &h.server_rates {
        out.push(format!(
            "rate {} {:?} {:?} {}",
            n(s),
            e.mean.to_bits(),
            e.var.to_bits(),
            e.count
        ));
    }
    for (s, b) in &h.buckets {
        out.push(format!("buckets {} {b:?}", n(s)));
    }
    for ((p, d), t) in &h.principal_days {
        out.push(format!("pday {} {d} {t}", n(p)));
    }
    for ((t, d), x) in &h.team_days {
        out.push(format!("tday {} {d} {x}", n(t)));
    }
    out.sort();
    out
}

/// Asserts two canonical histories are equal, naming the lines that differ.
fn assert_same(a: &[String], b: &[String]) {
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter()
            .filter(|l| !y.contains(l))
            .take(8)
            .cloned()
            .collect()
    };
    assert!(
        a == b,
        "histories differ:\nonly in the first: {:#?}\nonly in the second: {:#?}",
        only(a, b),
        only(b, a)
    );
}

fn sorted(mut f: Vec<Finding>) -> Vec<Finding> {
    f.sort_by(|a, b| a.finding_id.cmp(&b.finding_id));
    f
}

/// A run as `run::run` does it from scratch: fold `[window, from)`, score `[from, to)`.
fn from_scratch(
    store: &BTreeMap<i64, Vec<Raw>>,
    cfg: &DetectConfig,
    from: i64,
    to: i64,
) -> (History, Names, Vec<Finding>) {
    let window = window_start(from, cfg);
    let (mut names, mut hours) = (Names::default(), BTreeMap::new());
    intern(store, window..to, &mut names, &mut hours);
    let mut h = History::new(window);
    for (hour, rows) in hours.range(window..from) {
        h.fold(*hour, rows, cfg);
    }
    let findings = score_hours(cfg, &names, &mut h, &hours, from..to, &mut || {});
    (h, names, findings)
}

/// A run that resumes the state in `dir`: trim to its window, fold `[end, from)`, score
/// `[from, to)`, persist.
fn resumed(
    store: &BTreeMap<i64, Vec<Raw>>,
    cfg: &DetectConfig,
    dir: &Path,
    from: i64,
    to: i64,
) -> (History, Names, Vec<Finding>) {
    let window = window_start(from, cfg);
    let p = load(dir, cfg).expect("the state loads");
    p.fits(window, from).expect("the state fits");
    let (mut h, mut names, end) = (p.history, p.names, p.end);
    let mut hours = BTreeMap::new();
    intern(store, end..to, &mut names, &mut hours);
    h.trim(window, cfg);
    for (hour, rows) in hours.range(end..from) {
        h.fold(*hour, rows, cfg);
    }
    let findings = score_hours(cfg, &names, &mut h, &hours, from..to, &mut || {});
    save(dir, cfg, &h, &names, to, &BTreeMap::new()).expect("saves");
    (h, names, findings)
}

#[test]
fn a_resumed_history_is_the_history_folded_from_scratch_and_finds_the_same() {
    let cfg = cfg();
    let store = store();
    let dir = tempfile::tempdir().expect("tempdir");
    // The first run, a week earlier than the one compared, persists its history.
    let first = ORIGIN + 38 * DAY + 2;
    let (h, names, _) = from_scratch(&store, &cfg, first, first + 5);
    save(dir.path(), &cfg, &h, &names, first + 5, &BTreeMap::new()).expect("saves");
    // Hourly and multi-hour runs resume it, across midnights and a window that moves by days.
    let mut at = first + 5;
    for len in [1, 1, 30, 97, 1] {
        resumed(&store, &cfg, dir.path(), at, at + len);
        at += len;
    }
    // The compared run starts after a gap (hours folded, not scored) and spans the incidents.
    let from = ORIGIN + 50 * DAY;
    assert!(at < from);
    let to = ORIGIN + DAYS * DAY;
    let (scratch_h, scratch_names, scratch) = from_scratch(&store, &cfg, from, to);
    let (resumed_h, resumed_names, resumed) = resumed(&store, &cfg, dir.path(), from, to);
    assert_same(
        &canonical(&scratch_h, &scratch_names),
        &canonical(&resumed_h, &resumed_names),
    );
    let detectors: std::collections::BTreeSet<&str> =
        scratch.iter().map(|f| f.detector.as_str()).collect();
    assert!(
        ["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"]
            .iter()
            .all(|d| detectors.contains(d)),
        "the store exercises the rules: {detectors:?}"
    );
    assert_eq!(sorted(scratch.clone()), sorted(resumed));
    // A backfill over the whole range finds, for the hours compared, what hourly runs do.
    let (_, _, backfill) = from_scratch(&store, &cfg, first, to);
    let backfill: Vec<Finding> = backfill
        .into_iter()
        .filter(|f| f.window_end_ns > from * crate::detect::rows::HOUR_NS)
        .collect();
    assert_eq!(sorted(scratch), sorted(backfill));
}

#[test]
fn trimming_forgets_exactly_what_a_later_fold_never_saw() {
    let cfg = cfg();
    let store = store();
    let end = ORIGIN + 38 * DAY + 7;
    let (mut names, mut hours) = (Names::default(), BTreeMap::new());
    intern(&store, ORIGIN..end, &mut names, &mut hours);
    let mut early = History::new(ORIGIN);
    for (hour, rows) in &hours {
        early.fold(*hour, rows, &cfg);
    }
    let start = ORIGIN + 12 * DAY;
    early.trim(start, &cfg);
    let mut late = History::new(start);
    for (hour, rows) in hours.range(start..end) {
        late.fold(*hour, rows, &cfg);
    }
    assert_same(&canonical(&early, &names), &canonical(&late, &names));
    assert_eq!(early, late);
}

#[test]
fn a_missing_corrupt_or_foreign_state_is_refused_with_a_reason() {
    let cfg = cfg();
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(load(dir.path(), &cfg), Err(StateError::Missing)));
    let (h, names, _) = from_scratch(&store(), &cfg, ORIGIN + 20 * DAY, ORIGIN + 20 * DAY + 1);
    save(
        dir.path(),
        &cfg,
        &h,
        &names,
        ORIGIN + 20 * DAY + 1,
        &BTreeMap::new(),
    )
    .expect("saves");
    let loaded = load(dir.path(), &cfg).expect("loads");
    assert_eq!(
        canonical(&loaded.history, &loaded.names),
        canonical(&h, &names)
    );
    let mut other = cfg.clone();
    other.errors.alpha = 0.2;
    assert!(matches!(
        load(dir.path(), &other),
        Err(StateError::Settings)
    ));
    let file = path(dir.path());
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    assert!(matches!(
        load(dir.path(), &cfg),
        Err(StateError::Decode { .. })
    ));
    let text = String::from_utf8(bytes).expect("utf-8");
    std::fs::write(&file, text.replacen("\"version\":1", "\"version\":99", 1)).expect("write");
    assert!(matches!(
        load(dir.path(), &cfg),
        Err(StateError::Version(99))
    ));
    // An id beyond the names: inconsistent, not silently the empty name.
    let bad = text.replacen("\"servers\":[[", "\"servers\":[[4000000,", 1);
    std::fs::write(&file, bad).expect("write");
    assert!(matches!(
        load(dir.path(), &cfg),
        Err(StateError::Corrupt(_) | StateError::Decode { .. })
    ));
}

#[test]
fn a_day_whose_rows_changed_is_caught_and_one_whose_files_alone_changed_is_not() {
    let store = store();
    let (mut names, mut hours) = (Names::default(), BTreeMap::new());
    let day = ORIGIN / DAY + 30;
    let end = (day + 1) * DAY - 3;
    intern(&store, day * DAY..end, &mut names, &mut hours);
    let mut marks = BTreeMap::new();
    marks.insert(
        day,
        DayMark {
            sources: Some("before".into()),
            rows: Some(rows_digest(&hours, &names, day * DAY..end)),
        },
    );
    marks.insert(
        day - 1,
        DayMark {
            sources: Some("old".into()),
            rows: None,
        },
    );
    let mut now = BTreeMap::from([(day - 1, Some("old".into())), (day, Some("after".into()))]);
    let changed = changed_days(&marks, end, (day - 1) * DAY, &now).expect("comparable");
    assert_eq!(changed, [day]);
    // The day gained hours after `end` (the current day growing): the folded rows are the same.
    let mut later = hours.clone();
    intern(&store, end..(day + 1) * DAY, &mut names, &mut later);
    same_rows(&marks, end, &changed, &later, &names).expect("same rows");
    // Late data inside the folded hours: caught.
    let row = later
        .range_mut(day * DAY..end)
        .find_map(|(_, h)| h.calls.first_mut())
        .expect("a call in the day");
    row.calls += 1;
    assert!(matches!(
        same_rows(&marks, end, &changed, &later, &names),
        Err(StateError::Changed(_))
    ));
    // A day without a rows digest whose files changed cannot be settled.
    now.insert(day - 1, Some("new".into()));
    assert!(changed_days(&marks, end, (day - 1) * DAY, &now).is_err());
}
