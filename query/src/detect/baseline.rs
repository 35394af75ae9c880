//! Hour-of-week baseline profiles per user, team and server over the trailing
//! `baseline_days`: calls (median and MAD of the weekly values), error and denied rates,
//! distinct tools (median) and LLM tokens (median). Computed from the rollups at the end of
//! each run and stored as `<data_dir>/baselines/profiles/{user,team,server}.parquet`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use foldhash::HashMap;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::history::{DAY, WEEK};
use super::rows::{HOUR_NS, Hour, Names};
use super::stats::{median, spread};
use crate::files::write_parquet;
use crate::{Error, Result};

/// The kinds of entity with a profile.
pub const ENTITIES: [&str; 3] = ["user", "team", "server"];

/// One hour of the week of one entity's profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileRow {
    /// `user`, `team` or `server`.
    pub entity_kind: String,
    /// The principal, team or server.
    pub entity: String,
    /// The user's team (the team itself for a team; none for a server).
    pub team: Option<String>,
    /// The user's tenant.
    pub tenant: Option<String>,
    /// 0 = Monday 00:00 UTC … 167 = Sunday 23:00.
    pub hour_of_week: i64,
    /// Weekly values the statistics are over.
    pub weeks: i64,
    /// Median calls in the hour.
    pub calls_median: f64,
    /// Median absolute deviation of the calls.
    pub calls_mad: f64,
    /// Tool and protocol errors per call.
    pub error_rate: f64,
    /// Denied calls per call.
    pub denied_rate: f64,
    /// Median distinct tools and resources in the hour.
    pub distinct_tools_median: f64,
    /// Median LLM tokens in the hour.
    pub tokens_median: f64,
    /// Start of the trailing window, ns.
    pub window_start_ns: i64,
    /// End of the trailing window (exclusive), ns.
    pub window_end_ns: i64,
}

/// One entity-hour's totals.
#[derive(Debug, Default, Clone)]
struct Cell {
    calls: u64,
    errors: u64,
    denied: u64,
    /// (server, item) pairs used, deduplicated when the profile is computed.
    items: Vec<(u32, u32)>,
    tokens: u64,
}

/// (kind index, entity id) → hour → totals; and each entity's team and tenant.
type Cells = HashMap<(usize, u32), HashMap<i64, Cell>>;

fn hour_of_week(hour: i64) -> i64 {
    // 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of its week.
    (hour + 72).rem_euclid(WEEK)
}

/// The profiles over the hours `[end_hour - baseline_days·24, end_hour)` of `hours`.
pub(crate) fn profiles(
    hours: &BTreeMap<i64, Hour>,
    end_hour: i64,
    baseline_days: u32,
    names: &Names,
) -> Vec<ProfileRow> {
    let start_hour = end_hour - i64::from(baseline_days) * DAY;
    let mut cells: Cells = HashMap::default();
    let mut scope: HashMap<(usize, u32), (u32, u32)> = HashMap::default();
    for (hour, rows) in hours.range(start_hour..end_hour) {
        for r in &rows.calls {
            for (kind, id) in [(0, r.principal), (1, r.team), (2, r.server)] {
                if id == 0 {
                    continue;
                }
                let c = cells
                    .entry((kind, id))
                    .or_default()
                    .entry(*hour)
                    .or_default();
                c.calls += r.calls;
                c.errors += r.errors;
                c.denied += r.denied;
                c.items.push((r.server, r.item));
                if kind == 0 {
                    scope.insert((kind, id), (r.team, r.tenant));
                }
            }
        }
        for t in &rows.tokens {
            for (kind, id) in [(0, t.principal), (1, t.team)] {
                if id != 0 {
                    let c = cells
                        .entry((kind, id))
                        .or_default()
                        .entry(*hour)
                        .or_default();
                    c.tokens += t.tokens;
                }
            }
        }
    }
    let weeks = i64::from(baseline_days) / 7;
    let mut out = Vec::new();
    for by_hour in cells.values_mut() {
        for c in by_hour.values_mut() {
            c.items.sort_unstable();
            c.items.dedup();
        }
    }
    let mut keys: Vec<&(usize, u32)> = cells.keys().collect();
    keys.sort_by(|a, b| (a.0, names.name(a.1)).cmp(&(b.0, names.name(b.1))));
    for key in keys {
        let by_hour = &cells[key];
        let (team, tenant) = match key.0 {
            0 => scope.get(key).copied().unwrap_or((0, 0)),
            1 => (key.1, 0),
            _ => (0, 0),
        };
        let mut by_how: BTreeMap<i64, Vec<&Cell>> = BTreeMap::new();
        for (h, cell) in by_hour {
            by_how.entry(hour_of_week(*h)).or_default().push(cell);
        }
        for (how, samples) in by_how {
            let mut calls: Vec<f64> = samples.iter().map(|c| c.calls as f64).collect();
            let mut distinct: Vec<f64> = samples.iter().map(|c| c.items.len() as f64).collect();
            let mut tokens: Vec<f64> = samples.iter().map(|c| c.tokens as f64).collect();
            // Weeks without activity at this hour count as zeros.
            for v in [&mut calls, &mut distinct, &mut tokens] {
                v.resize(weeks.max(samples.len() as i64) as usize, 0.0);
            }
            let total: u64 = samples.iter().map(|c| c.calls).sum();
            let rate = |n: u64| {
                if total == 0 {
                    0.0
                } else {
                    n as f64 / total as f64
                }
            };
            let m = median(&calls);
            out.push(ProfileRow {
                entity_kind: ENTITIES[key.0].to_string(),
                entity: names.name(key.1).to_string(),
                team: names.opt(team),
                tenant: names.opt(tenant),
                hour_of_week: how,
                weeks: calls.len() as i64,
                calls_median: m,
                calls_mad: spread(&calls, m, 0.0),
                error_rate: rate(samples.iter().map(|c| c.errors).sum()),
                denied_rate: rate(samples.iter().map(|c| c.denied).sum()),
                distinct_tools_median: median(&distinct),
                tokens_median: median(&tokens),
                window_start_ns: start_hour * HOUR_NS,
                window_end_ns: end_hour * HOUR_NS,
            });
        }
    }
    out
}

static PROFILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("entity_kind", DataType::Utf8, false),
        f("entity", DataType::Utf8, false),
        f("team", DataType::Utf8, true),
        f("tenant", DataType::Utf8, true),
        f("hour_of_week", DataType::Int64, false),
        f("weeks", DataType::Int64, false),
        f("calls_median", DataType::Float64, false),
        f("calls_mad", DataType::Float64, false),
        f("error_rate", DataType::Float64, false),
        f("denied_rate", DataType::Float64, false),
        f("distinct_tools_median", DataType::Float64, false),
        f("tokens_median", DataType::Float64, false),
        f("window_start", ts(), false),
        f("window_end", ts(), false),
    ]))
});

fn to_batch(rows: &[&ProfileRow]) -> Result<RecordBatch> {
    let text = |get: &dyn Fn(&ProfileRow) -> Option<&str>| {
        let mut b = StringBuilder::new();
        rows.iter().for_each(|r| b.append_option(get(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let int = |get: &dyn Fn(&ProfileRow) -> i64| {
        let mut b = Int64Builder::new();
        rows.iter().for_each(|r| b.append_value(get(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let float = |get: &dyn Fn(&ProfileRow) -> f64| {
        let mut b = Float64Builder::new();
        rows.iter().for_each(|r| b.append_value(get(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let time = |get: &dyn Fn(&ProfileRow) -> i64| {
        let mut b = TimestampNanosecondBuilder::new().with_timezone("UTC");
        rows.iter().for_each(|r| b.append_value(get(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    RecordBatch::try_new(
        PROFILE_SCHEMA.clone(),
        vec![
            text(&|r| Some(&r.entity_kind)),
            text(&|r| Some(&r.entity)),
            text(&|r| r.team.as_deref()),
            text(&|r| r.tenant.as_deref()),
            int(&|r| r.hour_of_week),
            int(&|r| r.weeks),
            float(&|r| r.calls_median),
            float(&|r| r.calls_mad),
            float(&|r| r.error_rate),
            float(&|r| r.denied_rate),
            float(&|r| r.distinct_tools_median),
            float(&|r| r.tokens_median),
            time(&|r| r.window_start_ns),
            time(&|r| r.window_end_ns),
        ],
    )
    .map_err(|e| Error::Internal(e.to_string()))
}

fn profile_path(data_dir: &Path, kind: &str) -> PathBuf {
    data_dir
        .join("baselines")
        .join("profiles")
        .join(format!("{kind}.parquet"))
}

/// Whether profiles of every kind are stored.
pub(crate) fn stored(data_dir: &Path) -> bool {
    ENTITIES.iter().all(|k| profile_path(data_dir, k).is_file())
}

/// Replaces the stored profiles with `rows`, one file per kind, each atomically.
pub(crate) fn store(data_dir: &Path, rows: &[ProfileRow]) -> Result<()> {
    for kind in ENTITIES {
        let of_kind: Vec<&ProfileRow> = rows.iter().filter(|r| r.entity_kind == kind).collect();
        write_parquet(&to_batch(&of_kind)?, &profile_path(data_dir, kind))?;
    }
    Ok(())
}

/// The stored profile rows of the entity `id` of `kind` (none before the first run).
pub fn load(data_dir: &Path, kind: &str, id: &str) -> Result<Vec<ProfileRow>> {
    use crate::columns::Columns;
    let path = profile_path(data_dir, kind);
    let Ok(file) = fs::File::open(&path) else {
        return Ok(Vec::new());
    };
    let err = |e: &dyn std::fmt::Display| Error::Internal(format!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch.map_err(|e| err(&e))?;
        let c = Columns(&b);
        let (entity, team, tenant) = (c.str("entity")?, c.str("team")?, c.str("tenant")?);
        let (how, weeks) = (c.i64("hour_of_week")?, c.i64("weeks")?);
        let floats: Vec<_> = [
            "calls_median",
            "calls_mad",
            "error_rate",
            "denied_rate",
            "distinct_tools_median",
            "tokens_median",
        ]
        .iter()
        .map(|n| c.f64(n))
        .collect::<Result<_>>()?;
        let (start, end) = (c.i64("window_start")?, c.i64("window_end")?);
        let opt = |a: &arrow::array::StringArray, i: usize| {
            use arrow::array::Array;
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        for i in (0..b.num_rows()).filter(|i| entity.value(*i) == id) {
            out.push(ProfileRow {
                entity_kind: kind.to_string(),
                entity: id.to_string(),
                team: opt(&team, i),
                tenant: opt(&tenant, i),
                hour_of_week: how.value(i),
                weeks: weeks.value(i),
                calls_median: floats[0].value(i),
                calls_mad: floats[1].value(i),
                error_rate: floats[2].value(i),
                denied_rate: floats[3].value(i),
                distinct_tools_median: floats[4].value(i),
                tokens_median: floats[5].value(i),
                window_start_ns: start.value(i),
                window_end_ns: end.value(i),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rows::{CallRow, TokenRow};

    #[test]
    fn a_profile_is_the_median_of_the_weekly_values_with_missing_weeks_as_zero() {
        let mut names = Names::default();
        let (alice, team, server, item) = (
            names.id("alice"),
            names.id("payments"),
            names.id("payments-mcp"),
            names.id("transfer"),
        );
        // Monday 2026-09-14 10:00 UTC, then the three Mondays before it at 10:00.
        let monday = 1_789_380_000 / 3600;
        let mut hours = BTreeMap::new();
        for (week, calls) in [(0, 4), (1, 6), (2, 8)] {
            let hour = monday - week * WEEK;
            let row = CallRow {
                principal: alice,
                human: true,
                team,
                tenant: 0,
                server,
                item,
                writes: true,
                deletes: false,
                calls,
                errors: 1,
                denied: 0,
            };
            let tokens = TokenRow {
                principal: alice,
                team,
                tenant: 0,
                tokens: 100,
            };
            hours.insert(
                hour,
                Hour {
                    calls: vec![row],
                    quarters: vec![],
                    tokens: vec![tokens],
                },
            );
        }
        let rows = profiles(&hours, monday + 1, 28, &names);
        let alice_row = rows
            .iter()
            .find(|r| r.entity_kind == "user" && r.entity == "alice")
            .expect("alice's profile");
        assert_eq!(alice_row.hour_of_week, 10);
        assert_eq!(alice_row.weeks, 4);
        // Weekly values 4, 6, 8 and a missing week (0): median 5, MAD median(|−5|,|−1|,1,3)=2.
        assert_eq!(alice_row.calls_median, 5.0);
        assert_eq!(alice_row.calls_mad, 2.0);
        assert!((alice_row.error_rate - 3.0 / 18.0).abs() < 1e-12);
        assert_eq!(alice_row.tokens_median, 100.0);
        assert_eq!(alice_row.team.as_deref(), Some("payments"));
        assert!(
            rows.iter()
                .any(|r| r.entity_kind == "server" && r.entity == "payments-mcp")
        );
    }
}
