//! Legal holds: a hold preserves every record in its scope (tenant, principal, server, time
//! range; each optional, all given must match) whatever the retention policy says, until it is
//! released. Holds are not a side file: placing and releasing one are audit events in the
//! chain ([`crate::audit`]), so the set of holds in force is a fold over signed, chained
//! records, and nobody can lift one without leaving a trace.

use std::path::Path;

use arrow::array::{Array, AsArray};
use calltrail_schemas::arrow_schema::LLM_CALLS;
use calltrail_schemas::audit::AuditEvent;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::audit::read_events;
use crate::{Error, Result, io_err};

/// Audit action of a placed hold.
pub const PLACED: &str = "hold.placed";
/// Audit action of a released hold.
pub const RELEASED: &str = "hold.released";

const HOUR_NS: i64 = 3_600_000_000_000;

/// What a hold preserves. Every field given must match a record; none given holds everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HoldScope {
    /// Tenant (legal entity), exact.
    pub tenant: Option<String>,
    /// Principal, exact.
    pub principal: Option<String>,
    /// MCP server name, exact. LLM calls have no server, so a hold naming one never holds them.
    pub server: Option<String>,
    /// Records that started at or after this time (ns since the epoch).
    pub from_ns: Option<i64>,
    /// Records that started before this time (ns since the epoch).
    pub to_ns: Option<i64>,
}

impl HoldScope {
    fn details(&self) -> Vec<(String, String)> {
        let mut d = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                d.push((k.to_owned(), v));
            }
        };
        put("tenant", self.tenant.clone());
        put("principal", self.principal.clone());
        put("server", self.server.clone());
        put("from_ns", self.from_ns.map(|t| t.to_string()));
        put("to_ns", self.to_ns.map(|t| t.to_string()));
        d
    }

    fn from_event(e: &AuditEvent) -> Result<Self> {
        let time = |k: &str| {
            e.detail(k)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        Error::Integrity(format!("hold {}: {k} is not a time: {v:?}", e.subject))
                    })
                })
                .transpose()
        };
        Ok(Self {
            tenant: e.detail("tenant").map(str::to_owned),
            principal: e.detail("principal").map(str::to_owned),
            server: e.detail("server").map(str::to_owned),
            from_ns: time("from_ns")?,
            to_ns: time("to_ns")?,
        })
    }

    /// True when the scope may hold records that started in `[start_ns, end_ns)`.
    fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.from_ns.is_none_or(|f| end_ns > f) && self.to_ns.is_none_or(|t| start_ns < t)
    }

    /// True when the scope names a field only the records themselves can tell.
    fn needs_rows(&self) -> bool {
        self.tenant.is_some() || self.principal.is_some() || self.server.is_some()
    }

    /// A sentence naming the scope.
    pub fn describe(&self) -> String {
        let d = self.details();
        if d.is_empty() {
            return "every record".into();
        }
        d.iter()
            .map(|(k, v)| match k.as_str() {
                "from_ns" | "to_ns" => format!("{}={}", &k[..k.len() - 3], rfc3339(v)),
                _ => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn rfc3339(ns: &str) -> String {
    ns.parse::<i64>()
        .ok()
        .map(chrono::DateTime::from_timestamp_nanos)
        .map_or_else(
            || ns.to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// A hold and its history.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// Its id (`hold-` and 12 hex digits).
    pub id: String,
    /// What it preserves.
    pub scope: HoldScope,
    /// Why it was placed.
    pub reason: String,
    /// Who placed it.
    pub placed_by: String,
    /// When (ns since the epoch).
    pub placed_at_ns: i64,
    /// The chain and seq of the audit event that placed it.
    pub placed_record: (String, u64),
    /// Who released it, when and why, if it was.
    pub released: Option<Release>,
}

/// The release of a hold.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    /// Who released it.
    pub by: String,
    /// When (ns since the epoch).
    pub at_ns: i64,
    /// Why.
    pub reason: Option<String>,
}

impl Hold {
    /// True until released.
    pub fn is_active(&self) -> bool {
        self.released.is_none()
    }
}

/// A new hold id.
pub fn new_id() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 6];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::Integrity("the system random source failed".into()))?;
    Ok(format!("hold-{}", hex::encode(b)))
}

/// The audit event that places hold `id`.
pub fn placed_event(
    id: &str,
    scope: &HoldScope,
    reason: &str,
    by: &str,
    now_ns: i64,
) -> Result<AuditEvent> {
    if reason.trim().is_empty() || by.trim().is_empty() {
        return Err(Error::Config {
            key: "hold".into(),
            message: "a hold needs a reason and who places it".into(),
        });
    }
    if let (Some(f), Some(t)) = (scope.from_ns, scope.to_ns)
        && f >= t
    {
        return Err(Error::Config {
            key: "hold.to".into(),
            message: "the end of a hold's time range must be after its start".into(),
        });
    }
    Ok(AuditEvent {
        event_id: format!("{id}-placed"),
        time_ns: now_ns,
        action: PLACED.into(),
        actor: by.to_owned(),
        subject: id.to_owned(),
        reason: Some(reason.to_owned()),
        details: scope.details(),
    })
}

/// The audit event that releases `hold`.
pub fn released_event(hold: &Hold, reason: &str, by: &str, now_ns: i64) -> Result<AuditEvent> {
    if !hold.is_active() {
        return Err(Error::Config {
            key: "hold".into(),
            message: format!("{} is already released", hold.id),
        });
    }
    if reason.trim().is_empty() || by.trim().is_empty() {
        return Err(Error::Config {
            key: "hold".into(),
            message: "releasing a hold needs a reason and who releases it".into(),
        });
    }
    Ok(AuditEvent {
        event_id: format!("{}-released", hold.id),
        time_ns: now_ns,
        action: RELEASED.into(),
        actor: by.to_owned(),
        subject: hold.id.clone(),
        reason: Some(reason.to_owned()),
        details: Vec::new(),
    })
}

/// Every hold there is, from the audit events in the store.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    holds: Vec<Hold>,
}

impl Holds {
    /// Folds the audit events under `root` into holds.
    pub fn load(root: &Path) -> Result<Self> {
        let mut holds: Vec<Hold> = Vec::new();
        for stored in read_events(root)? {
            let e = &stored.event;
            match e.action.as_str() {
                PLACED if !holds.iter().any(|h| h.id == e.subject) => holds.push(Hold {
                    id: e.subject.clone(),
                    scope: HoldScope::from_event(e)?,
                    reason: e.reason.clone().unwrap_or_default(),
                    placed_by: e.actor.clone(),
                    placed_at_ns: e.time_ns,
                    placed_record: (stored.chain_id.clone(), stored.seq),
                    released: None,
                }),
                RELEASED => {
                    if let Some(h) = holds.iter_mut().find(|h| h.id == e.subject) {
                        h.released.get_or_insert(Release {
                            by: e.actor.clone(),
                            at_ns: e.time_ns,
                            reason: e.reason.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(Self { holds })
    }

    /// Every hold, oldest first.
    pub fn all(&self) -> &[Hold] {
        &self.holds
    }

    /// The holds in force.
    pub fn active(&self) -> impl Iterator<Item = &Hold> {
        self.holds.iter().filter(|h| h.is_active())
    }

    /// The hold `id`.
    pub fn get(&self, id: &str) -> Option<&Hold> {
        self.holds.iter().find(|h| h.id == id)
    }

    /// The active holds preserving some record of the segment file `path` (of `table`, whose
    /// records started in the hour from `hour_ns`). Reads the file only when a hold's scope
    /// names a tenant, principal or server.
    pub fn holding(&self, path: &Path, table: &str, hour_ns: i64) -> Result<Vec<String>> {
        let candidates: Vec<&Hold> = self
            .active()
            .filter(|h| h.scope.overlaps(hour_ns, hour_ns + HOUR_NS))
            .filter(|h| !(h.scope.server.is_some() && table == LLM_CALLS))
            .collect();
        let mut held: Vec<String> = candidates
            .iter()
            .filter(|h| !h.scope.needs_rows())
            .map(|h| h.id.clone())
            .collect();
        let by_rows: Vec<&Hold> = candidates
            .into_iter()
            .filter(|h| h.scope.needs_rows())
            .collect();
        if !by_rows.is_empty() {
            held.extend(rows_held(path, &by_rows)?);
        }
        Ok(held)
    }

    /// The active holds whose placing record lies in `chain` seqs `first..=last`: a segment
    /// holding it is kept as long as the hold is in force.
    pub fn placed_in(&self, chain: &str, first: u64, last: u64) -> Vec<String> {
        self.active()
            .filter(|h| h.placed_record.0 == chain && (first..=last).contains(&h.placed_record.1))
            .map(|h| h.id.clone())
            .collect()
    }
}

/// The ids of the holds in `holds` that preserve some row of the segment at `path`.
fn rows_held(path: &Path, holds: &[&Hold]) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(io_err("open", path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let wanted = ["tenant", "principal", "server_name", "start_time"];
    let schema = builder.parquet_schema();
    let indices: Vec<usize> = (0..schema.num_columns())
        .filter(|&i| wanted.contains(&schema.column(i).name()))
        .collect();
    let mask = ProjectionMask::leaves(schema, indices);
    let mut found = vec![false; holds.len()];
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
        };
        let (tenant, principal, server) = (text("tenant"), text("principal"), text("server_name"));
        let start = batch
            .column_by_name("start_time")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>());
        let is = |col: Option<&arrow::array::StringArray>, i: usize, want: &Option<String>| {
            want.as_deref()
                .is_none_or(|w| col.is_some_and(|c| c.is_valid(i) && c.value(i) == w))
        };
        for i in 0..batch.num_rows() {
            for (k, h) in holds.iter().enumerate() {
                if found[k] {
                    continue;
                }
                let s = &h.scope;
                let in_time = start.is_none_or(|t| {
                    let t = t.value(i);
                    s.from_ns.is_none_or(|f| t >= f) && s.to_ns.is_none_or(|to| t < to)
                });
                if in_time
                    && is(tenant, i, &s.tenant)
                    && is(principal, i, &s.principal)
                    && is(server, i, &s.server)
                {
                    found[k] = true;
                }
            }
        }
    }
    Ok(holds
        .iter()
        .zip(found)
        .filter(|(_, f)| *f)
        .map(|(h, _)| h.id.clone())
        .collect())
}
