//! The rollups as typed rows with interned names, grouped by hour: the form the rules walk.

use foldhash::HashMap;

use arrow::array::{Array, AsArray, DictionaryArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type};

use super::rollup::DayRollup;
use crate::columns::Columns;
use crate::{Error, Result};

/// Nanoseconds in an hour.
pub(crate) const HOUR_NS: i64 = 3_600_000_000_000;

/// Interned names: rules compare `u32`s, and explanations look the names up.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    /// The id of `name`, interning it. Id 0 is the empty name (no principal, team, server).
    pub(crate) fn id(&mut self, name: &str) -> u32 {
        if self.names.is_empty() {
            self.ids.insert(String::new(), 0);
            self.names.push(String::new());
        }
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    /// Names with the ids they had when persisted (`list[id]`), or `None` unless `list`
    /// starts with the empty name and holds each name once.
    pub(crate) fn from_list(list: Vec<String>) -> Option<Self> {
        if list.first().is_none_or(|n| !n.is_empty()) {
            return None;
        }
        let mut ids = HashMap::default();
        for (i, n) in list.iter().enumerate() {
            if ids.insert(n.clone(), u32::try_from(i).ok()?).is_some() {
                return None;
            }
        }
        Some(Self { ids, names: list })
    }

    /// How many names are interned (ids are below this).
    pub(crate) fn count(&self) -> usize {
        self.names.len()
    }

    /// The name of `id`.
    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    /// The name of `id`, or `None` for the empty name.
    pub(crate) fn opt(&self, id: u32) -> Option<String> {
        (id != 0).then(|| self.name(id).to_string())
    }
}

/// Calls of one principal to one tool of one server in one hour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallRow {
    pub(crate) principal: u32,
    pub(crate) human: bool,
    pub(crate) team: u32,
    pub(crate) tenant: u32,
    pub(crate) server: u32,
    /// The tool (or resource, prompt, method).
    pub(crate) item: u32,
    /// `write` or `delete`: the operation classes D2 watches.
    pub(crate) writes: bool,
    pub(crate) deletes: bool,
    pub(crate) calls: u64,
    /// Tool or protocol errors.
    pub(crate) errors: u64,
    pub(crate) denied: u64,
}

/// Calls to one server in one 15-minute bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuarterRow {
    /// Quarter hours since the Unix epoch.
    pub(crate) quarter: i64,
    pub(crate) server: u32,
    pub(crate) calls: u64,
    /// Tool or protocol errors and denials.
    pub(crate) failed: u64,
}

/// LLM tokens of one principal in one hour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRow {
    pub(crate) principal: u32,
    pub(crate) team: u32,
    pub(crate) tenant: u32,
    pub(crate) tokens: u64,
}

/// One hour's rows.
#[derive(Debug, Default, Clone)]
pub(crate) struct Hour {
    pub(crate) calls: Vec<CallRow>,
    pub(crate) quarters: Vec<QuarterRow>,
    pub(crate) tokens: Vec<TokenRow>,
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Splits a day's rollup (the day starting at `day_hour`, in hours since the epoch) into its
/// 24 hours.
pub(crate) fn hours_of_day(
    rollup: &DayRollup,
    day_hour: i64,
    names: &mut Names,
) -> Result<Vec<Hour>> {
    let mut hours = vec![Hour::default(); 24];
    let slot = |h: i64| usize::try_from(h).ok().filter(|h| *h < 24);
    for b in &rollup.calls {
        read_calls(b, names, &mut |h, row| {
            if let Some(i) = slot(h) {
                hours[i].calls.push(row);
            }
        })?;
    }
    for b in &rollup.quarters {
        let c = Columns(b);
        let server = ids(b, "server", names)?;
        let (quarter, calls, errors, denied) = (
            c.i64("quarter")?,
            c.i64("calls")?,
            c.i64("errors")?,
            c.i64("denied")?,
        );
        for (i, server) in server.into_iter().enumerate() {
            let q = quarter.value(i);
            if let Some(h) = slot(q / 4) {
                hours[h].quarters.push(QuarterRow {
                    quarter: day_hour * 4 + q,
                    server,
                    calls: u64_of(calls.value(i)),
                    failed: u64_of(errors.value(i)) + u64_of(denied.value(i)),
                });
            }
        }
    }
    for b in &rollup.tokens {
        let c = Columns(b);
        let (hour, tokens) = (c.i64("hour")?, c.i64("tokens")?);
        let principal = ids(b, "principal", names)?;
        let team = ids(b, "team", names)?;
        let tenant = ids(b, "tenant", names)?;
        for i in 0..b.num_rows() {
            if let Some(h) = slot(hour.value(i)) {
                hours[h].tokens.push(TokenRow {
                    principal: principal[i],
                    team: team[i],
                    tenant: tenant[i],
                    tokens: if tokens.is_null(i) {
                        0
                    } else {
                        u64_of(tokens.value(i))
                    },
                });
            }
        }
    }
    Ok(hours)
}

/// The interned ids of the text column `name`: each distinct value is interned once (through
/// a dictionary cast), not once per row, which is most of the cost of reading a day.
fn ids(b: &RecordBatch, name: &str, names: &mut Names) -> Result<Vec<u32>> {
    let col = b
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("a rollup lost its {name} column")))?;
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let text = arrow::compute::cast(col, &DataType::Utf8)
        .and_then(|t| arrow::compute::cast(&t, &dict_type))
        .map_err(|e| Error::Internal(format!("{name}: {e}")))?;
    let dict = text
        .as_any()
        .downcast_ref::<DictionaryArray<Int32Type>>()
        .ok_or_else(|| Error::Internal(format!("{name} is not text")))?;
    let values = dict.values().as_string::<i32>();
    let map: Vec<u32> = (0..values.len())
        .map(|i| {
            names.id(if values.is_null(i) {
                ""
            } else {
                values.value(i)
            })
        })
        .collect();
    Ok(dict
        .keys()
        .iter()
        .map(|k| {
            k.and_then(|k| usize::try_from(k).ok())
                .and_then(|k| map.get(k).copied())
                .unwrap_or(0)
        })
        .collect())
}

fn read_calls(
    b: &RecordBatch,
    names: &mut Names,
    push: &mut dyn FnMut(i64, CallRow),
) -> Result<()> {
    let c = Columns(b);
    let (hour, calls, errors, denied) = (
        c.i64("hour")?,
        c.i64("calls")?,
        c.i64("errors")?,
        c.i64("denied")?,
    );
    let principal = ids(b, "principal", names)?;
    let kind = ids(b, "principal_kind", names)?;
    let team = ids(b, "team", names)?;
    let tenant = ids(b, "tenant", names)?;
    let server = ids(b, "server", names)?;
    let item = ids(b, "item", names)?;
    let class = ids(b, "operation_class", names)?;
    let (human, write, delete) = (names.id("human"), names.id("write"), names.id("delete"));
    for i in 0..b.num_rows() {
        push(
            hour.value(i),
            CallRow {
                principal: principal[i],
                human: kind[i] == human,
                team: team[i],
                tenant: tenant[i],
                server: server[i],
                item: item[i],
                writes: class[i] == write,
                deletes: class[i] == delete,
                calls: u64_of(calls.value(i)),
                errors: u64_of(errors.value(i)),
                denied: u64_of(denied.value(i)),
            },
        );
    }
    Ok(())
}
