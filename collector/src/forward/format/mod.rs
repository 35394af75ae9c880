//! The event formats SIEMs ingest: every forwarded event (a stored record, an anomaly finding
//! or a signed checkpoint) encoded as OCSF, ECS, CEF, LEEF or Calltrail's native JSON.
//!
//! One [`Formatter`] per destination encodes one event at a time into a caller's buffer, so
//! the delivery loop can batch without copying. Every format carries the event id, the chain,
//! the seq and the leaf hash (for a checkpoint: the tree size and root), so a SIEM can
//! deduplicate redeliveries and see gaps; where each goes is in `docs/forward-formats.md`.
//! Tool arguments and results (content, hash and size) leave only when a destination opts in
//! with [`FormatOptions::include_payloads`].
//!
//! Formats read records through [`RecordRow`]'s typed accessors by column name and never
//! fail or panic on odd values: nulls, empty strings, control characters and huge values are
//! encoded (escaped or replaced as each format requires) rather than refused.
//!
//! - [`ocsf`]: OCSF 1.3.0 JSON (AWS Security Lake), API Activity, Detection Finding and Base
//!   Event;
//! - [`ecs`]: Elastic Common Schema JSON;
//! - [`cef`]: ArcSight CEF (also Sentinel's CommonSecurityLog);
//! - [`leef`]: QRadar LEEF 2.0;
//! - [`json`]: the stored row as JSON.

pub mod cef;
mod common;
pub mod ecs;
mod fields;
pub mod json;
pub mod leef;
pub mod ocsf;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

use super::event::{Event, EventKind, RecordRow};

/// Which format a destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// OCSF 1.3.0 JSON (1.8.0 with [`FormatOptions::ocsf_ai_operation`]).
    Ocsf,
    /// Elastic Common Schema JSON.
    Ecs,
    /// ArcSight Common Event Format, one line.
    Cef,
    /// QRadar Log Event Extended Format 2.0, one line.
    Leef,
    /// The stored row as a JSON object, column name → value.
    Json,
}

impl FormatKind {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ocsf => "ocsf",
            Self::Ecs => "ecs",
            Self::Cef => "cef",
            Self::Leef => "leef",
            Self::Json => "json",
        }
    }
}

/// Options of a destination's format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatOptions {
    /// Forward tool arguments and results (their content, SHA-256 and size). Off by default:
    /// a SIEM is another system with other readers, so what a tool was given and returned
    /// never leaves Calltrail unless a destination opts in.
    pub include_payloads: bool,
    /// OCSF only: add the OCSF 1.8 `ai_operation` profile (`ai_model`, `message_context` with
    /// token counts) to LLM calls, and declare schema version 1.8.0 instead of 1.3.0. Off by
    /// default, because AWS Security Lake accepts OCSF 1.3 at most.
    pub ocsf_ai_operation: bool,
    /// LEEF only: the character between attributes, default TAB. Must be ASCII, not a letter
    /// or digit, and not `=`, `\`, space, CR, LF or NUL. Printable characters other than `|` are
    /// written literally in the header; others as `0xNN`.
    pub leef_delimiter: char,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            include_payloads: false,
            ocsf_ai_operation: false,
            leef_delimiter: '\t',
        }
    }
}

impl FormatOptions {
    /// Checks the options, for configuration loading: a bad LEEF delimiter is refused here
    /// rather than on every event.
    pub fn validate(&self) -> Result<(), FormatError> {
        leef::check_delimiter(self.leef_delimiter)
    }
}

/// Why an event could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The record is from a table Calltrail does not forward.
    #[error("records of table {0:?} are not forwarded")]
    UnknownTable(String),
    /// The LEEF delimiter cannot separate attributes unambiguously.
    #[error(
        "leef_delimiter {0:?} is not allowed: it must be ASCII, not a letter or digit, and not =, \\, space, CR, LF or NUL"
    )]
    LeefDelimiter(char),
    /// JSON serialisation failed (a bug: every value we write is serialisable).
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes events in one destination's format.
#[derive(Debug, Clone)]
pub struct Formatter {
    kind: FormatKind,
    options: FormatOptions,
}

impl Formatter {
    /// A formatter for `kind` with `options`.
    pub fn new(kind: FormatKind, options: FormatOptions) -> Self {
        Self { kind, options }
    }

    /// The format.
    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    /// The options.
    pub fn options(&self) -> &FormatOptions {
        &self.options
    }

    /// Appends the encoded event (one event, no trailing newline) to `out`. On error `out` is
    /// left as it was, so a batch never holds half an event.
    pub fn encode(&self, event: &Event<'_>, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let start = out.len();
        let result = self.encode_into(event, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_into(&self, event: &Event<'_>, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if let Event::Record(row) = event {
            record_kind(row)?;
        }
        let o = &self.options;
        match self.kind {
            FormatKind::Ocsf => ocsf::encode(event, o, out),
            FormatKind::Ecs => ecs::encode(event, o, out),
            FormatKind::Cef => {
                cef::encode(event, o, out);
                Ok(())
            }
            FormatKind::Leef => leef::encode(event, o, out),
            FormatKind::Json => json::encode(event, o, out),
        }
    }

    /// MIME-ish content type for OTLP/Kafka headers: `application/json` for the JSON formats,
    /// `text/plain` for CEF and LEEF.
    pub fn content_type(&self) -> &'static str {
        match self.kind {
            FormatKind::Ocsf | FormatKind::Ecs | FormatKind::Json => "application/json",
            FormatKind::Cef | FormatKind::Leef => "text/plain",
        }
    }
}

/// The kind of a record, refusing tables that are not forwarded ([`RecordRow::kind`] would
/// call them tool calls).
fn record_kind(row: &RecordRow<'_>) -> Result<EventKind, FormatError> {
    EventKind::of_table(row.table()).ok_or_else(|| FormatError::UnknownTable(row.table().into()))
}
