//! `verify-export`: checks a bundle offline with the public key alone, and names every failure
//! by check, file and record.
//!
//! In order: the manifest's signature (and that `pubkey.txt` is the key given); every file
//! against the manifest (none missing, none extra, size and SHA-256); each checkpoint's and
//! receipt's signature; every record's leaf hash recomputed from its values; the JSON Lines or
//! CSV rows against the Parquet rows, field by field; every proof against its record and its
//! chain's checkpoint; one proof per record and one record per proof; the counts against the
//! manifest's. A check goes on after a failure, so one run reports everything it can see.
//!
//! - `report`: the report and its findings;
//! - `records`: records re-hashed, and text rows compared with the Parquet copy;
//! - `proofs`: proofs matched to records and walked to their checkpoint.

mod proofs;
mod records;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::bundle::{MANIFEST, PUBKEY};
use super::files::{hash_file, list_files};
use super::manifest::Manifest;
use super::{Format, Progress};
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::merkle::Hash;
use crate::note::{VerifierKey, open_note};
use crate::receipt::DeletionReceipt;
use crate::{Result, io_err};
pub use report::{ChainCheck, Check, ExportFinding, ExportReport};

/// Findings listed per check before the rest are only counted.
const MAX_LISTED: usize = 50;

/// What is kept of a record while its proof is looked for: about 140 bytes with its key, its
/// event id and its share of the map.
struct Record {
    /// Index of its table's name in `Checker::names`.
    table: u32,
    event_id: Box<str>,
    leaf: Hash,
    proven: bool,
}

struct Checker<'a> {
    dir: &'a Path,
    key: &'a VerifierKey,
    report: ExportReport,
    listed: HashMap<Check, usize>,
    /// Records by (index of the chain id in `names`, seq).
    records: HashMap<(u32, u64), Record>,
    /// Chain ids and table names, each stored once.
    names: Vec<String>,
    checkpoints: BTreeMap<String, Checkpoint>,
}

/// Verifies the bundle in `dir` under `key`. Errs only when `dir` cannot be read at all;
/// every failed check is a finding in the report.
pub fn verify_export(
    dir: &Path,
    key: &VerifierKey,
    progress: Progress<'_>,
) -> Result<ExportReport> {
    if !dir.is_dir() {
        return Err(io_err("open", dir)(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a directory",
        )));
    }
    let mut c = Checker {
        dir,
        key,
        report: ExportReport {
            ok: false,
            dir: dir.to_owned(),
            manifest_signed: false,
            files: 0,
            records: 0,
            tables: BTreeMap::new(),
            proofs_verified: 0,
            chains: Vec::new(),
            findings: Vec::new(),
        },
        listed: HashMap::new(),
        records: HashMap::new(),
        names: Vec::new(),
        checkpoints: BTreeMap::new(),
    };
    let Some(manifest) = c.manifest() else {
        return Ok(c.finish());
    };
    c.pubkey();
    c.files(&manifest)?;
    let total = manifest.records.saturating_mul(2);
    c.chains(&manifest);
    let mut done = 0u64;
    for (table, _) in &manifest.tables {
        let file = format!("records/{table}.parquet");
        c.records_file(table, &file, &mut |n| {
            done += n;
            progress(done, total);
        });
        if manifest.format != Format::Parquet {
            c.text_file(table, &file, manifest.format);
        }
    }
    for chain in &manifest.chains {
        c.proofs_file(&chain.chain_id, &mut |n| {
            done += n;
            progress(done, total);
        });
    }
    c.unproven();
    c.counts(&manifest);
    Ok(c.finish())
}

impl Checker<'_> {
    /// The index of `name` in `names`, added when new (there are a handful: chains and tables).
    fn intern(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.names.push(name.to_owned());
                (self.names.len() - 1) as u32
            }
        }
    }

    fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("?", String::as_str)
    }

    fn find(
        &mut self,
        check: Check,
        file: Option<&str>,
        record: Option<(&str, &str, u64)>,
        detail: impl Into<String>,
    ) {
        let n = self.listed.entry(check).or_default();
        *n += 1;
        if *n > MAX_LISTED {
            return;
        }
        self.report.findings.push(ExportFinding {
            check,
            file: file.map(str::to_owned),
            event_id: record.map(|r| r.0.to_owned()).filter(|e| !e.is_empty()),
            chain_id: record.map(|r| r.1.to_owned()),
            seq: record.map(|r| r.2),
            detail: detail.into(),
        });
    }

    fn finish(mut self) -> ExportReport {
        for (check, n) in &self.listed {
            if *n > MAX_LISTED {
                self.report.findings.push(ExportFinding {
                    check: *check,
                    file: None,
                    event_id: None,
                    chain_id: None,
                    seq: None,
                    detail: format!(
                        "{} more {} failures not listed",
                        n - MAX_LISTED,
                        check.name()
                    ),
                });
            }
        }
        self.report.ok = self.report.findings.is_empty();
        self.report
    }

    /// Reads the manifest, checking its signature; `None` when there is no usable manifest.
    fn manifest(&mut self) -> Option<Manifest> {
        let path = self.dir.join(MANIFEST);
        let note = match std::fs::read_to_string(&path) {
            Ok(n) => n,
            Err(e) => {
                self.find(
                    Check::Manifest,
                    Some(MANIFEST),
                    None,
                    format!("cannot be read ({e}): without the signed manifest this is not a complete export (an interrupted one leaves none)"),
                );
                return None;
            }
        };
        let text = match open_note(&note, self.key) {
            Ok(text) => {
                self.report.manifest_signed = true;
                text.to_owned()
            }
            Err(e) => {
                self.find(
                    Check::ManifestSignature,
                    Some(MANIFEST),
                    None,
                    format!("{e}: nothing it lists can be trusted; the other checks go on against its unsigned text"),
                );
                match note.rfind("\n\n") {
                    Some(i) => note[..=i].to_owned(),
                    None => note.clone(),
                }
            }
        };
        match Manifest::parse(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                self.find(Check::Manifest, Some(MANIFEST), None, e);
                None
            }
        }
    }

    fn pubkey(&mut self) {
        let key = std::fs::read_to_string(self.dir.join(PUBKEY))
            .ok()
            .and_then(|t| VerifierKey::parse(t.trim()).ok());
        if key.as_ref() != Some(self.key) {
            self.find(
                Check::PublicKey,
                Some(PUBKEY),
                None,
                "missing, unreadable, or not the key given to verify with",
            );
        }
    }

    /// Every file against the manifest.
    fn files(&mut self, manifest: &Manifest) -> Result<()> {
        let present = list_files(self.dir)?;
        let listed: BTreeMap<&str, _> = manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), f))
            .collect();
        for path in &present {
            if path != MANIFEST && !listed.contains_key(path.as_str()) {
                self.find(
                    Check::FileExtra,
                    Some(path),
                    None,
                    "not listed in the manifest",
                );
            }
        }
        for (path, entry) in listed {
            if path == MANIFEST || path.split('/').any(|p| p == ".." || p.is_empty()) {
                self.find(
                    Check::Manifest,
                    Some(path),
                    None,
                    "not a path a bundle holds",
                );
                continue;
            }
            if !present.iter().any(|p| p == path) {
                self.find(
                    Check::FileMissing,
                    Some(path),
                    None,
                    "listed in the manifest but not in the bundle",
                );
                continue;
            }
            self.report.files += 1;
            let (sha256, size) = hash_file(&self.dir.join(path))?;
            if size != entry.size {
                self.find(
                    Check::FileSize,
                    Some(path),
                    None,
                    format!("{size} bytes, the manifest says {}", entry.size),
                );
            }
            if sha256 != entry.sha256 {
                self.find(
                    Check::FileHash,
                    Some(path),
                    None,
                    format!(
                        "SHA-256 {}, the manifest says {}",
                        hex::encode(sha256),
                        hex::encode(entry.sha256)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Each chain's checkpoint and receipts.
    fn chains(&mut self, manifest: &Manifest) {
        for chain in &manifest.chains {
            let id = chain.chain_id.as_str();
            let file = format!("checkpoints/{id}.note");
            let mut summary = ChainCheck {
                chain_id: id.to_owned(),
                tree_size: None,
                signed_at: None,
                proofs_verified: 0,
                receipts: 0,
            };
            match std::fs::read_to_string(self.dir.join(&file)) {
                Err(e) => self.find(
                    Check::Checkpoint,
                    Some(&file),
                    None,
                    format!("cannot be read: {e}"),
                ),
                Ok(note) => match SignedCheckpoint::open(&note, self.key) {
                    Err(e) => self.find(Check::Checkpoint, Some(&file), None, e.to_string()),
                    Ok(s) if s.checkpoint.origin.rsplit('/').next() != Some(id) => self.find(
                        Check::Checkpoint,
                        Some(&file),
                        None,
                        format!("its origin {} is not chain {id}'s", s.checkpoint.origin),
                    ),
                    Ok(s) if s.checkpoint.size != chain.tree_size => self.find(
                        Check::Checkpoint,
                        Some(&file),
                        None,
                        format!(
                            "size {}, the manifest says {}",
                            s.checkpoint.size, chain.tree_size
                        ),
                    ),
                    Ok(s) => {
                        summary.tree_size = Some(s.checkpoint.size);
                        summary.signed_at = s.checkpoint.timestamp;
                        self.checkpoints.insert(id.to_owned(), s.checkpoint);
                    }
                },
            }
            summary.receipts = self.receipts(id, chain.tree_size);
            self.report.chains.push(summary);
        }
    }

    /// The chain's receipts, if it has any: each must verify, be the chain's, and lie below
    /// its checkpoint's size. Returns how many verified.
    fn receipts(&mut self, chain_id: &str, tree_size: u64) -> u64 {
        let file = format!("receipts/{chain_id}.jsonl");
        let Ok(text) = std::fs::read_to_string(self.dir.join(&file)) else {
            return 0;
        };
        let mut ok = 0;
        for (i, line) in text.lines().enumerate() {
            let where_ = format!("{file} line {}", i + 1);
            let note = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("note").and_then(|n| n.as_str()).map(str::to_owned));
            let Some(note) = note else {
                self.find(
                    Check::Receipt,
                    Some(&where_),
                    None,
                    "not a {\"path\", \"note\"} line",
                );
                continue;
            };
            match DeletionReceipt::open(&note, self.key) {
                Err(e) => self.find(Check::Receipt, Some(&where_), None, e.to_string()),
                Ok(r) if r.chain_id != chain_id || r.last_seq >= tree_size => self.find(
                    Check::Receipt,
                    Some(&where_),
                    None,
                    format!(
                        "deleted seqs {}..={} of chain {} are not below chain {chain_id}'s checkpoint of size {tree_size}",
                        r.first_seq, r.last_seq, r.chain_id
                    ),
                ),
                Ok(_) => ok += 1,
            }
        }
        ok
    }

    /// Opens a Parquet file of the bundle for reading in batches; a failure is a finding.
    fn batches(&mut self, file: &str) -> Option<ParquetRecordBatchReader> {
        let opened = File::open(self.dir.join(file))
            .map_err(|e| e.to_string())
            .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()))
            .and_then(|b| b.with_batch_size(8192).build().map_err(|e| e.to_string()));
        match opened {
            Ok(reader) => Some(reader),
            Err(e) => {
                self.find(Check::Unreadable, Some(file), None, e);
                None
            }
        }
    }

    fn counts(&mut self, manifest: &Manifest) {
        if self.report.records != manifest.records {
            self.find(
                Check::RecordCount,
                None,
                None,
                format!(
                    "{} records in the bundle, the manifest says {}",
                    self.report.records, manifest.records
                ),
            );
        }
        for (table, n) in &manifest.tables {
            let got = self.report.tables.get(table).copied().unwrap_or(0);
            if got != *n {
                self.find(
                    Check::RecordCount,
                    Some(&format!("records/{table}.parquet")),
                    None,
                    format!("{got} {table} records, the manifest says {n}"),
                );
            }
        }
        for chain in &manifest.chains {
            let index = self.names.iter().position(|n| *n == chain.chain_id);
            let got = self
                .records
                .keys()
                .filter(|(c, _)| Some(*c as usize) == index)
                .count() as u64;
            if got != chain.records {
                self.find(
                    Check::RecordCount,
                    None,
                    None,
                    format!(
                        "{got} records of chain {}, the manifest says {}",
                        chain.chain_id, chain.records
                    ),
                );
            }
        }
    }
}
