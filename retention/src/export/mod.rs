//! Compliance export (`calltrail export`, `calltrail verify-export`): the records a filter
//! selects, written as a bundle a regulator can check offline with nothing but the store's
//! public key. Format: `docs/export.md`.
//!
//! ```text
//! DIR/
//!   README.txt                      what the bundle is and how to check it, in plain words
//!   manifest.note                   signed: the selection, counts, SHA-256 and size of every file
//!   pubkey.txt                      the public key the notes are signed with
//!   records/<table>.parquet         the selected records (tool_calls, llm_calls), chain columns kept
//!   records/<table>.jsonl|csv       the same records as text, with --format jsonl|csv
//!   proofs/<chain id>.parquet       one RFC 9162 audit path per record, to its chain's checkpoint
//!   checkpoints/<chain id>.note     the signed checkpoint those proofs lead to
//!   receipts/<chain id>.jsonl       signed deletion receipts of the chain's deleted seqs, if any
//! ```
//!
//! **Export** reads each chain's newest checkpoint that verifies under the store's key *before*
//! listing segments (a running server keeps sealing; only seqs below that checkpoint's size
//! are exported, so every record has a proof), builds the chain's tree in memory
//! (`levels`), checks its head against the checkpoint, then streams the candidate segments
//! (tables and hour partitions the filter can match), filters rows, re-hashes each selected
//! record from its content (it must equal the stored leaf hash), and writes the record and its
//! audit path. Everything goes to `DIR.partial-<pid>` first; every file is fsynced, the signed
//! manifest written last, and the directory renamed to `DIR` (never over an existing one).
//! A leftover partial directory has no manifest, and `verify-export` refuses it.
//!
//! **Memory.** The tree of the chain being exported: 64 bytes per record of the chain up to its
//! checkpoint (deleted records included), one chain at a time; plus a Parquet row group per
//! open file (65 536 rows) and one 8 192-row batch being read. 1 M exported records from a
//! 5 M-record chain: about 320 MB for the tree. Verification holds each record's chain, seq,
//! table, event id and leaf hash (about 140 bytes a record) to match proofs to records.
//!
//! Only `tool_calls` and `llm_calls` are exported: other tables a chain may hold (audit events)
//! are read for their leaf hashes only. `llm_calls` has no server or tool: with `--server` or
//! `--tool`, only `tool_calls` are exported.
//!
//! - `select`: the chains, checkpoints, segments and receipts an export reads, and the filter;
//! - `levels`: a chain's tree in memory, audit paths read off it;
//! - `bundle`: an export from start to rename: what each segment gives, and the manifest;
//! - `writers`: the records and proofs files;
//! - `files`: the bundle's files on disk: created, fsynced, listed, hashed;
//! - `manifest`: the signed manifest's text;
//! - `text`: the JSON Lines and CSV forms of records;
//! - `readme`: the README.txt;
//! - `check`: `verify-export`.

mod bundle;
mod check;
mod files;
mod levels;
mod manifest;
mod readme;
mod select;
mod text;
mod writers;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::note::SigningKey;

pub use bundle::export;
pub use check::{ChainCheck, Check, ExportFinding, ExportReport, verify_export};

/// The records' format besides the Parquet copy every bundle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Parquet only.
    Parquet,
    /// Also JSON Lines, one object per record.
    Jsonl,
    /// Also CSV (RFC 4180) with a header line.
    Csv,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parquet" => Ok(Format::Parquet),
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("unknown format {s:?}: parquet, jsonl or csv")),
        }
    }
}

/// Which records to export: `start_time` in `[from_ns, to_ns)`, and for each non-empty list,
/// a value equal to one of its entries (lists are ANDed, entries within one list ORed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Start of the time range, inclusive (ns since the Unix epoch).
    pub from_ns: i64,
    /// End of the time range, exclusive.
    pub to_ns: i64,
    /// `tenant` values.
    pub tenants: Vec<String>,
    /// `principal` values.
    pub principals: Vec<String>,
    /// `server_name` values (tool calls only).
    pub servers: Vec<String>,
    /// `tool_name` values (tool calls only).
    pub tools: Vec<String>,
}

/// What to export, where to, and the key that signs the manifest.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The bundle directory to create; it must not exist.
    pub out: PathBuf,
    /// The records to export.
    pub selection: Selection,
    /// The records' text format.
    pub format: Format,
    /// The store's signing key: checkpoints and receipts must verify under its public key, and
    /// it signs the manifest.
    pub key: SigningKey,
}

/// One exported chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainExport {
    /// The chain id.
    pub chain_id: String,
    /// The size of the checkpoint the proofs lead to.
    pub tree_size: u64,
    /// Records exported from the chain.
    pub records: u64,
    /// Deletion receipts included for the chain.
    pub receipts: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// The bundle directory.
    pub out: PathBuf,
    /// Records exported.
    pub records: u64,
    /// Records per table.
    pub tables: BTreeMap<String, u64>,
    /// One entry per chain with exported records.
    pub chains: Vec<ChainExport>,
    /// Files in the bundle, the manifest included.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// What was left out and why (records after the newest checkpoint, chains without one).
    pub notes: Vec<String>,
}

/// Progress: units done so far and the total expected.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "levels_tests.rs"]
mod levels_tests;
