//! The persisted history: the [`History`] a run ended with, kept in
//! `<data_dir>/baselines/history.json` so that the next run folds only the hours since, not
//! the whole 90-day window again (the fold was two thirds of a scheduled run).
//!
//! # Format
//!
//! One JSON document, format [`VERSION`]: the settings the fold depends on, the window
//! `[start, end)` it covers (`start` a UTC midnight, `end` the hour after the last folded), a
//! mark per day of the window, the names its ids refer to (only those it uses; id 0 is the
//! empty name), and the history's maps as arrays of tuples. It holds integers only: the
//! failure-rate EWMAs are replayed from the buckets when it is read, so nothing depends on how
//! floats are printed and parsed.
//!
//! # Invariants
//!
//! - The history is the fold of the rollup rows of `[start, end)` (trimmed as
//!   [`History::trim`] does), nothing else: resuming it, trimming it to a later window and
//!   folding the hours since gives the history a fold from scratch would (the unit tests check
//!   this, and that the findings are the same).
//! - A day's mark records the digest of the day's source files when its rows were folded
//!   (`rollup::source_digest`, the digest the day's rollup is kept under) and, for the last two
//!   days of the window, the digest of the rows folded ([`rows_digest`]).
//!
//! # Validity and recovery
//!
//! A run resumes the state only when it was written by this format with the same settings,
//! its window starts no later than the run's and ends no later than the first hour the run
//! scores, and every day of the run's window that it folded is unchanged: same sources, or,
//! when the sources changed (late data, or the current day gaining hours), the same rows. A
//! missing, unreadable, corrupt or stale state is never an error: the run folds from scratch,
//! says why in a log line, and writes a new state. The file is replaced atomically (temporary
//! file, fsync, rename, fsync of the directory), so a crash leaves the old state or the new.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::DetectConfig;
use super::history::{Bucket, DAY, History, Marks, Principal, PrincipalHour};
use super::rows::{Hour, Names};

/// The format version written and read.
pub(crate) const VERSION: u32 = 1;

/// Why a persisted history cannot be resumed (the run then folds from scratch).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    /// No state file: the first run, or one after the file was removed.
    #[error("no history has been persisted yet")]
    Missing,
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The state file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The state file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The file is not a persisted history (truncated, corrupt, or another format).
    #[error("{path} is not a persisted history of this version: {source}")]
    Decode {
        /// The state file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// Written by another format version.
    #[error("the persisted history is format version {0}; this build reads version {VERSION}")]
    Version(u32),
    /// Folded with other `[detect]` settings.
    #[error("the persisted history was folded with other [detect] settings")]
    Settings,
    /// Parsed, but inconsistent with itself.
    #[error("the persisted history is inconsistent: {0}")]
    Corrupt(&'static str),
    /// Its window does not fit the run's.
    #[error(
        "the persisted history covers hours {start}..{end}, which does not fit a run folding from hour {window} and scoring from hour {from}"
    )]
    Window {
        /// First hour of the persisted window.
        start: i64,
        /// The hour after its last.
        end: i64,
        /// First hour of the run's window.
        window: i64,
        /// First hour the run scores.
        from: i64,
    },
    /// A day it folded has other rows now.
    #[error("the rollup of day {0} changed since the history was persisted")]
    Changed(String),
}

/// The settings the fold depends on (besides the window): the prune horizons and the EWMA's
/// smoothing, kept as its bits so no float is compared after printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Settings {
    baseline_days: u32,
    hours_weeks: u32,
    alpha_bits: u64,
}

impl Settings {
    fn of(cfg: &DetectConfig) -> Self {
        Self {
            baseline_days: cfg.baseline_days,
            hours_weeks: cfg.hours.weeks,
            alpha_bits: cfg.errors.alpha.to_bits(),
        }
    }
}

/// What a day of the window looked like when its rows were folded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayMark {
    /// Digest of the day's source files (none for a day without any).
    pub(crate) sources: Option<String>,
    /// Digest of the rows folded; kept for the last two days, which late data reaches.
    pub(crate) rows: Option<String>,
}

/// A persisted history, read back.
#[derive(Debug)]
pub(crate) struct Persisted {
    /// The history, its EWMAs replayed.
    pub(crate) history: History,
    /// The names its ids refer to.
    pub(crate) names: Names,
    /// The hour after the last hour folded.
    pub(crate) end: i64,
    /// Day (since the epoch) → its mark, for every day of `[history.start, end)`.
    pub(crate) days: BTreeMap<i64, DayMark>,
}

/// `(id, human, team, tenant, first_hour, last_hour, human_hour, team_hour, tenant_hour,
/// day_firsts)`.
type PrincipalRow = (
    u32,
    bool,
    u32,
    u32,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
    Vec<i64>,
);

/// `(team, server, item, [(human, last hour)])`.
type TeamItemRow = (u32, u32, u32, Vec<(u32, i64)>);
/// `(server, [(quarter, calls, failed)])`.
type BucketRow = (u32, Vec<(i64, u64, u64)>);

/// The document on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    version: u32,
    settings: Option<Settings>,
    start: i64,
    end: i64,
    days: Vec<(i64, DayMark)>,
    names: Vec<String>,
    first_hour: Option<i64>,
    data_days: Vec<i64>,
    principals: Vec<PrincipalRow>,
    /// `(principal, hour, calls, distinct, deletes)`.
    principal_hours: Vec<(u32, i64, u64, u64, u64)>,
    /// `(principal, server, item, last hour)`.
    principal_items: Vec<(u32, u32, u32, i64)>,
    team_items: Vec<TeamItemRow>,
    servers: Vec<(u32, i64)>,
    team_servers: Vec<(u32, u32, i64)>,
    buckets: Vec<BucketRow>,
    principal_days: Vec<(u32, i64, u64)>,
    team_days: Vec<(u32, i64, u64)>,
}

/// The state file of the store at `data_dir`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("baselines").join("history.json")
}

/// Writes the history of `[history.start, end)` with its day marks, replacing any state
/// atomically.
pub(crate) fn save(
    data_dir: &Path,
    cfg: &DetectConfig,
    history: &History,
    names: &Names,
    end: i64,
    days: &BTreeMap<i64, DayMark>,
) -> Result<(), StateError> {
    let path = path(data_dir);
    let bytes = serde_json::to_vec(&encode(cfg, history, names, end, days)).map_err(|e| {
        StateError::Write {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    calltrail_retention::files::write_bytes_atomic(&path, &bytes).map_err(|e| StateError::Write {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// Reads the state of the store at `data_dir`, checking it is this format, folded with `cfg`'s
/// settings, and consistent with itself.
pub(crate) fn load(data_dir: &Path, cfg: &DetectConfig) -> Result<Persisted, StateError> {
    let path = path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateError::Missing),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|source| StateError::Decode { path, source })?;
    // The text is as large as the history: gone before the history is built.
    drop(bytes);
    decode(snapshot, cfg)
}

impl Persisted {
    /// Checks that the run folding from `window` and scoring from `from` can resume this
    /// history.
    pub(crate) fn fits(&self, window: i64, from: i64) -> Result<(), StateError> {
        let (start, end) = (self.history.start, self.end);
        if start <= window && window <= end && end <= from {
            Ok(())
        } else {
            Err(StateError::Window {
                start,
                end,
                window,
                from,
            })
        }
    }
}

/// The days of `[window, end)` whose sources differ from their `marks`, given each day's
/// current source digest (`current`); an error when such a day has no rows digest to settle
/// whether its rows changed too.
pub(crate) fn changed_days(
    marks: &BTreeMap<i64, DayMark>,
    end: i64,
    window: i64,
    current: &BTreeMap<i64, Option<String>>,
) -> Result<Vec<i64>, StateError> {
    let mut changed = Vec::new();
    for day in window.div_euclid(DAY)..=(end - 1).div_euclid(DAY) {
        let mark = marks.get(&day);
        let now = current.get(&day).and_then(Option::as_ref);
        if mark.is_some_and(|m| m.sources.as_ref() == now) {
            continue;
        }
        if mark.is_none_or(|m| m.rows.is_none()) {
            return Err(StateError::Changed(date_of_day(day)));
        }
        changed.push(day);
    }
    Ok(changed)
}

/// Checks that the rows of each of `days` (now in `hours`, interned in `names`) are the rows
/// their `marks` say were folded (the day's hours before `end`).
pub(crate) fn same_rows(
    marks: &BTreeMap<i64, DayMark>,
    end: i64,
    days: &[i64],
    hours: &BTreeMap<i64, Hour>,
    names: &Names,
) -> Result<(), StateError> {
    for day in days {
        let folded = day * DAY..((day + 1) * DAY).min(end);
        let now = rows_digest(hours, names, folded);
        if marks.get(day).and_then(|m| m.rows.as_ref()) != Some(&now) {
            return Err(StateError::Changed(date_of_day(*day)));
        }
    }
    Ok(())
}

fn date_of_day(day: i64) -> String {
    super::store::date_of(day * DAY * super::rows::HOUR_NS)
}

/// A digest of the rows of the hours `range` of `hours`, by name and in order (ids differ from
/// run to run; the rollups are ordered, so the same calls give the same rows in the same order).
pub(crate) fn rows_digest(hours: &BTreeMap<i64, Hour>, names: &Names, range: Range<i64>) -> String {
    let mut h = Sha256::new();
    let name = |h: &mut Sha256, id: u32| {
        let n = names.name(id).as_bytes();
        h.update((n.len() as u64).to_le_bytes());
        h.update(n);
    };
    for (hour, rows) in hours.range(range) {
        h.update(hour.to_le_bytes());
        h.update((rows.calls.len() as u64).to_le_bytes());
        for r in &rows.calls {
            for id in [r.principal, r.team, r.tenant, r.server, r.item] {
                name(&mut h, id);
            }
            h.update([u8::from(r.human), u8::from(r.writes), u8::from(r.deletes)]);
            for n in [r.calls, r.errors, r.denied] {
                h.update(n.to_le_bytes());
            }
        }
        h.update((rows.quarters.len() as u64).to_le_bytes());
        for q in &rows.quarters {
            name(&mut h, q.server);
            h.update(q.quarter.to_le_bytes());
            h.update(q.calls.to_le_bytes());
            h.update(q.failed.to_le_bytes());
        }
        h.update((rows.tokens.len() as u64).to_le_bytes());
        for t in &rows.tokens {
            for id in [t.principal, t.team, t.tenant] {
                name(&mut h, id);
            }
            h.update(t.tokens.to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Renumbers ids densely as they are met, so the file holds only the names the history uses.
struct Compactor<'a> {
    names: &'a Names,
    new_ids: Vec<u32>,
    list: Vec<String>,
}

impl Compactor<'_> {
    fn id(&mut self, old: u32) -> u32 {
        let Some(slot) = self.new_ids.get_mut(old as usize) else {
            // An id not interned is a bug elsewhere; the empty name is the harmless reading.
            return 0;
        };
        if *slot == u32::MAX {
            *slot = self.list.len() as u32;
            self.list.push(self.names.name(old).to_string());
        }
        *slot
    }
}

fn encode(
    cfg: &DetectConfig,
    history: &History,
    names: &Names,
    end: i64,
    days: &BTreeMap<i64, DayMark>,
) -> Snapshot {
    let mut c = Compactor {
        names,
        new_ids: vec![u32::MAX; names.count().max(1)],
        list: Vec::new(),
    };
    c.id(0);
    let h = history;
    let principals = h
        .principals
        .iter()
        .map(|(id, p)| {
            let m = h.marks.get(id).cloned().unwrap_or_default();
            (
                c.id(*id),
                p.human,
                c.id(p.team),
                c.id(p.tenant),
                p.first_hour,
                p.last_hour,
                m.human_hour,
                m.team_hour,
                m.tenant_hour,
                m.day_firsts.into_iter().collect(),
            )
        })
        .collect();
    let principal_hours = h
        .principal_hours
        .iter()
        .map(|((p, hour), a)| (c.id(*p), *hour, a.calls, a.distinct, a.deletes))
        .collect();
    let principal_items = h
        .principal_items
        .iter()
        .map(|((p, s, i), hour)| (c.id(*p), c.id(*s), c.id(*i), *hour))
        .collect();
    let team_items = h
        .team_items
        .iter()
        .map(|((t, s, i), users)| {
            let users = users.iter().map(|(u, hour)| (c.id(*u), *hour)).collect();
            (c.id(*t), c.id(*s), c.id(*i), users)
        })
        .collect();
    let servers = h
        .servers
        .iter()
        .map(|(s, hour)| (c.id(*s), *hour))
        .collect();
    let team_servers = h
        .team_servers
        .iter()
        .map(|((t, s), hour)| (c.id(*t), c.id(*s), *hour))
        .collect();
    let buckets = h
        .buckets
        .iter()
        .map(|(s, b)| {
            let b = b.iter().map(|b| (b.quarter, b.calls, b.failed)).collect();
            (c.id(*s), b)
        })
        .collect();
    let principal_days = h
        .principal_days
        .iter()
        .map(|((p, d), n)| (c.id(*p), *d, *n))
        .collect();
    let team_days = h
        .team_days
        .iter()
        .map(|((t, d), n)| (c.id(*t), *d, *n))
        .collect();
    Snapshot {
        version: VERSION,
        settings: Some(Settings::of(cfg)),
        start: h.start,
        end,
        days: days.iter().map(|(d, m)| (*d, m.clone())).collect(),
        names: c.list,
        first_hour: h.first_hour,
        data_days: h.data_days.iter().copied().collect(),
        principals,
        principal_hours,
        principal_items,
        team_items,
        servers,
        team_servers,
        buckets,
        principal_days,
        team_days,
    }
}

fn decode(s: Snapshot, cfg: &DetectConfig) -> Result<Persisted, StateError> {
    if s.version != VERSION {
        return Err(StateError::Version(s.version));
    }
    if s.settings != Some(Settings::of(cfg)) {
        return Err(StateError::Settings);
    }
    if s.start.rem_euclid(DAY) != 0 || s.end < s.start {
        return Err(StateError::Corrupt("its window is not a window"));
    }
    let names = Names::from_list(s.names).ok_or(StateError::Corrupt("its names repeat"))?;
    let count = names.count();
    // Every id must name something: a corrupt file must not silently become the empty name.
    let id = |id: u32| {
        if (id as usize) < count {
            Ok(id)
        } else {
            Err(StateError::Corrupt("an id names nothing"))
        }
    };
    let mut h = History::new(s.start);
    h.first_hour = s.first_hour;
    h.data_days = s.data_days.into();
    for (p, human, team, tenant, first_hour, last_hour, human_hour, team_hour, tenant_hour, days) in
        s.principals
    {
        let principal = Principal {
            human,
            team: id(team)?,
            tenant: id(tenant)?,
            first_hour,
            last_hour,
        };
        let marks = Marks {
            day_firsts: VecDeque::from(days),
            human_hour,
            team_hour,
            tenant_hour,
        };
        h.principals.insert(id(p)?, principal);
        h.marks.insert(p, marks);
    }
    for (p, hour, calls, distinct, deletes) in s.principal_hours {
        let a = PrincipalHour {
            calls,
            distinct,
            deletes,
        };
        h.principal_hours.insert((id(p)?, hour), a);
    }
    for (p, server, item, hour) in s.principal_items {
        h.principal_items
            .insert((id(p)?, id(server)?, id(item)?), hour);
    }
    for (team, server, item, users) in s.team_items {
        let users = users
            .into_iter()
            .map(|(u, hour)| Ok((id(u)?, hour)))
            .collect::<Result<HashMap<_, _>, StateError>>()?;
        h.team_items
            .insert((id(team)?, id(server)?, id(item)?), users);
    }
    for (server, hour) in s.servers {
        h.servers.insert(id(server)?, hour);
    }
    for (team, server, hour) in s.team_servers {
        h.team_servers.insert((id(team)?, id(server)?), hour);
    }
    for (server, buckets) in s.buckets {
        let buckets = buckets
            .into_iter()
            .map(|(quarter, calls, failed)| Bucket {
                quarter,
                calls,
                failed,
            })
            .collect();
        h.buckets.insert(id(server)?, buckets);
    }
    if h.buckets.values().flatten().any(|b| b.calls == 0) {
        return Err(StateError::Corrupt("a bucket has no calls"));
    }
    h.replay_rates(cfg);
    for (p, day, tokens) in s.principal_days {
        h.principal_days.insert((id(p)?, day), tokens);
    }
    for (team, day, tokens) in s.team_days {
        h.team_days.insert((id(team)?, day), tokens);
    }
    Ok(Persisted {
        history: h,
        names,
        end: s.end,
        days: s.days.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests;
