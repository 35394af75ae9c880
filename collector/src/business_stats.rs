//! Business counters for `/metrics`: MCP calls by team, server and outcome, and LLM tokens by
//! team, with a cap on the number of series.
//!
//! # What is counted
//!
//! A record is counted once the write-ahead log has accepted it (the moment the exporter gets
//! its acknowledgement), never on receive: a request refused for overload counts nothing, and
//! its retry counts once.
//!
//! Calls approximate the `calls` view (`docs/specs/record.md`, "Pairing") without reading the
//! store: only records with `is_request`; a call seen from both sides counts once. A window of
//! the last [`PAIR_WINDOW`] fingerprints of `(trace_id, call_id)` and of server `event_id`s
//! decides:
//!
//! - a client record counts unless a record of the same `(trace_id, call_id)` was counted
//!   (its server partner, the FastMCP wrapper/wire pair, or a retried export of itself);
//! - a server record counts unless the same record was already counted (a retried export) or
//!   a client record of its call was counted first; sibling server records sharing a parent
//!   each count, as in the view.
//!
//! Whichever record of a call arrives first gives the labels; within one export request server
//! records go first, because the server saw the outcome. Partners arriving further apart than
//! the window (about 65 000 calls) are counted twice; the `calls` view stays the exact figure.
//!
//! Tokens are `input_tokens` and `output_tokens` of each `llm_calls` record, a retried export
//! of the same span counted once within the window.
//!
//! # Cardinality
//!
//! Label values come from senders, so the number of series is capped, as the OpenTelemetry
//! Collector's spanmetrics connector does: each metric keeps at most `series_limit` label sets;
//! a label set first seen after that is added to one overflow series (exported with the single
//! label `otel_metric_overflow="true"`). Label values longer than [`MAX_LABEL_BYTES`] are
//! truncated; an absent or empty team or server is left out of the labels. Memory is bounded by
//! the limit and the window (a few MiB), whatever is sent.
//!
//! # Cost on the ingest path
//!
//! [`BusinessStats::tally`] runs before the append, outside any lock: one hash lookup and two
//! fingerprints per record, and an owned copy of each distinct label set of the request.
//! [`BusinessStats::commit`] takes one mutex per accepted request for a loop over its records.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, PoisonError};

use calltrail_schemas::{LlmCall, Outcome, Side, ToolCall};

/// Series per metric when `telemetry.business_series_limit` is not set.
pub const DEFAULT_SERIES_LIMIT: usize = 2000;

/// Longest label value kept, in bytes; longer values are cut at a character boundary.
pub const MAX_LABEL_BYTES: usize = 128;

/// Fingerprints remembered to pair the records of one call (a server record takes two).
pub const PAIR_WINDOW: usize = 1 << 17;

/// The labels of one `calltrail_tool_calls_total` series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallLabels {
    /// The record's team, when attribution found one.
    pub team: Option<String>,
    /// The MCP server's name, when the span named it.
    pub server: Option<String>,
    /// How the call ended.
    pub outcome: Outcome,
}

/// Which token count a `calltrail_llm_tokens_total` series adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// `gen_ai.usage.input_tokens`.
    Input,
    /// `gen_ai.usage.output_tokens`.
    Output,
}

impl TokenType {
    /// The `token_type` label value (as `gen_ai.token.type` spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Input => "input",
            TokenType::Output => "output",
        }
    }
}

/// The labels of one `calltrail_llm_tokens_total` series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenLabels {
    /// The record's team, when attribution found one.
    pub team: Option<String>,
    /// Input or output tokens.
    pub token_type: TokenType,
}

/// A snapshot of one capped metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts<K> {
    /// Each tracked label set and its count, in no particular order.
    pub series: Vec<(K, u64)>,
    /// The overflow series' count, once any label set has been folded into it.
    pub overflow: Option<u64>,
}

/// The business counters: fed by the ingest pipeline, read by the metrics callbacks.
#[derive(Debug)]
pub struct BusinessStats {
    series_limit: usize,
    hasher: RandomState,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    calls: Capped<CallLabels>,
    tokens: Capped<TokenLabels>,
    window: Window,
}

impl Default for BusinessStats {
    fn default() -> Self {
        Self::new(DEFAULT_SERIES_LIMIT)
    }
}

impl BusinessStats {
    /// Counters keeping at most `series_limit` label sets per metric (0 folds everything into
    /// the overflow series).
    pub fn new(series_limit: usize) -> Self {
        Self::with_window(series_limit, PAIR_WINDOW)
    }

    fn with_window(series_limit: usize, window: usize) -> Self {
        Self {
            series_limit,
            hasher: RandomState::new(),
            inner: Mutex::new(Inner {
                calls: Capped::new(series_limit),
                tokens: Capped::new(series_limit),
                window: Window::new(window),
            }),
        }
    }

    /// The cap on label sets per metric.
    pub fn series_limit(&self) -> usize {
        self.series_limit
    }

    /// What one request would add, computed before it is appended (no lock taken). Nothing
    /// is counted until [`BusinessStats::commit`].
    pub fn tally(&self, tool_calls: &[ToolCall], llm_calls: &[LlmCall]) -> Tally {
        let mut t = Tally::default();
        let mut call_index: HashMap<(Option<&str>, Option<&str>, Outcome), usize> = HashMap::new();
        // Servers first: within a request, a paired call takes the server's labels.
        for side in [Side::Server, Side::Client] {
            for r in tool_calls.iter().filter(|r| r.is_request && r.side == side) {
                let team = label(r.attribution.team.as_deref());
                let server = label(r.server_name.as_deref());
                let labels = *call_index
                    .entry((team, server, r.outcome))
                    .or_insert_with(|| {
                        t.call_labels.push(CallLabels {
                            team: team.map(str::to_owned),
                            server: server.map(str::to_owned),
                            outcome: r.outcome,
                        });
                        t.call_labels.len() - 1
                    });
                t.calls.push(PendingCall {
                    call: self.fingerprint(Key::Call, &r.trace_id, &r.call_id),
                    event: self.fingerprint(Key::Event, &r.event_id, ""),
                    side,
                    labels,
                });
            }
        }
        let mut team_index: HashMap<Option<&str>, usize> = HashMap::new();
        for r in llm_calls {
            let tokens = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            let (input, output) = (tokens(r.input_tokens), tokens(r.output_tokens));
            if input == 0 && output == 0 {
                continue;
            }
            let team = label(r.attribution.team.as_deref());
            let team = *team_index.entry(team).or_insert_with(|| {
                t.token_teams.push(team.map(str::to_owned));
                t.token_teams.len() - 1
            });
            t.llm.push(PendingLlm {
                event: self.fingerprint(Key::Event, &r.event_id, ""),
                team,
                input,
                output,
            });
        }
        t
    }

    /// Counts a tally once its request is durable in the write-ahead log.
    pub fn commit(&self, tally: Tally) {
        if tally.calls.is_empty() && tally.llm.is_empty() {
            return;
        }
        // A panic elsewhere while holding the lock leaves counters that are still coherent
        // (every update is a single add): keep counting rather than poison ingest.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            calls,
            tokens,
            window,
        } = &mut *inner;
        let mut per_labels = vec![0u64; tally.call_labels.len()];
        for c in &tally.calls {
            if window.first_sighting(c) {
                per_labels[c.labels] += 1;
            }
        }
        for (labels, n) in tally.call_labels.into_iter().zip(per_labels) {
            if n > 0 {
                calls.add(labels, n);
            }
        }
        let mut per_team = vec![(0u64, 0u64); tally.token_teams.len()];
        for l in &tally.llm {
            if window.set_new(l.event, Seen::Record) {
                let sums = &mut per_team[l.team];
                sums.0 = sums.0.saturating_add(l.input);
                sums.1 = sums.1.saturating_add(l.output);
            }
        }
        for (team, (input, output)) in tally.token_teams.into_iter().zip(per_team) {
            for (token_type, n) in [(TokenType::Input, input), (TokenType::Output, output)] {
                if n > 0 {
                    let team = team.clone();
                    tokens.add(TokenLabels { team, token_type }, n);
                }
            }
        }
    }

    /// The calls counted so far.
    pub fn calls(&self) -> Counts<CallLabels> {
        self.lock().calls.snapshot()
    }

    /// The tokens counted so far.
    pub fn tokens(&self) -> Counts<TokenLabels> {
        self.lock().tokens.snapshot()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A 64-bit fingerprint of `(kind, a, b)`. Collisions within the window are astronomically
    /// unlikely (about 2^-30 at its size) and would only fold one call into another.
    fn fingerprint(&self, kind: Key, a: &str, b: &str) -> u64 {
        self.hasher.hash_one((kind, a, b))
    }
}

/// What kind of identity a fingerprint is of, so that a call key never equals an event key.
#[derive(Hash)]
enum Key {
    Call,
    Event,
}

/// One request's contribution, counted by [`BusinessStats::commit`] once it is durable.
#[derive(Debug, Default)]
pub struct Tally {
    calls: Vec<PendingCall>,
    call_labels: Vec<CallLabels>,
    llm: Vec<PendingLlm>,
    token_teams: Vec<Option<String>>,
}

#[derive(Debug)]
struct PendingCall {
    /// Fingerprint of `(trace_id, call_id)`.
    call: u64,
    /// Fingerprint of the record's `event_id`.
    event: u64,
    side: Side,
    /// Index into `Tally::call_labels`.
    labels: usize,
}

#[derive(Debug)]
struct PendingLlm {
    event: u64,
    /// Index into `Tally::token_teams`.
    team: usize,
    input: u64,
    output: u64,
}

/// A label value as exported: absent when empty, cut to [`MAX_LABEL_BYTES`].
fn label(value: Option<&str>) -> Option<&str> {
    let v = value?;
    if v.is_empty() {
        return None;
    }
    if v.len() <= MAX_LABEL_BYTES {
        return Some(v);
    }
    let mut end = MAX_LABEL_BYTES;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    Some(&v[..end])
}

/// Counts by label set: at most `limit` sets, later ones folded into `overflow`.
#[derive(Debug)]
struct Capped<K> {
    counts: HashMap<K, u64>,
    overflow: Option<u64>,
    limit: usize,
}

impl<K: Eq + Hash + Clone> Capped<K> {
    fn new(limit: usize) -> Self {
        Self {
            counts: HashMap::new(),
            overflow: None,
            limit,
        }
    }

    fn add(&mut self, key: K, n: u64) {
        if let Some(c) = self.counts.get_mut(&key) {
            *c = c.wrapping_add(n);
        } else if self.counts.len() < self.limit {
            self.counts.insert(key, n);
        } else {
            let o = self.overflow.get_or_insert(0);
            *o = o.wrapping_add(n);
        }
    }

    fn snapshot(&self) -> Counts<K> {
        Counts {
            series: self.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            overflow: self.overflow,
        }
    }
}

/// What a remembered fingerprint stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A call first counted from a client record.
    Client,
    /// A call counted from a server record (later client records of it are not counted).
    Server,
    /// A server or LLM record already counted (its retries are not).
    Record,
}

/// The last `capacity` fingerprints, oldest forgotten first.
#[derive(Debug)]
struct Window {
    seen: HashMap<u64, Seen>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Window {
    fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `key` as `what`; an update keeps its place in the window.
    fn set(&mut self, key: u64, what: Seen) {
        if self.seen.insert(key, what).is_none() {
            self.order.push_back(key);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
    }

    /// Remembers `key` and says whether it is new.
    fn set_new(&mut self, key: u64, what: Seen) -> bool {
        if self.seen.contains_key(&key) {
            return false;
        }
        self.set(key, what);
        true
    }

    /// Whether `c` counts as a call (see the module documentation), remembering it.
    fn first_sighting(&mut self, c: &PendingCall) -> bool {
        match c.side {
            Side::Client => self.set_new(c.call, Seen::Client),
            Side::Server => {
                if !self.set_new(c.event, Seen::Record) {
                    return false;
                }
                let partner_counted = self.seen.get(&c.call) == Some(&Seen::Client);
                self.set(c.call, Seen::Server);
                !partner_counted
            }
        }
    }
}

#[cfg(test)]
#[path = "business_stats_tests.rs"]
mod tests;
