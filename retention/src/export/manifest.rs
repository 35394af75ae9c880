//! The bundle's manifest: what was selected, how many records of each table and chain, and the
//! SHA-256 and size of every other file, as the text of a note signed with the store's key
//! (`manifest.note`; format in `docs/export.md`).
//!
//! ```text
//! calltrail-export v1
//! created 2026-11-23T17:00:00Z
//! from 2026-11-01T00:00:00Z
//! to 2026-12-01T00:00:00Z
//! filter tenant acme-bank-eu
//! format csv
//! records 1234
//! table tool_calls 1000
//! table llm_calls 234
//! chain 0123456789abcdef0123456789abcdef 58211 1234
//! file <sha-256, 64 hex> <size in bytes> <path, relative to the bundle>
//! ```

use std::fmt::Write as _;

use super::Format;

/// The first line of a manifest.
pub(crate) const HEADER: &str = "calltrail-export v1";

/// One file of the bundle, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Relative to the bundle, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// One exported chain: its id, the tree size of the checkpoint its proofs lead to, and the
/// records exported from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainEntry {
    pub chain_id: String,
    pub tree_size: u64,
    pub records: u64,
}

/// The manifest's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// When the export was made (RFC 3339).
    pub created: String,
    /// Start of the time range, inclusive (RFC 3339).
    pub from: String,
    /// End of the time range, exclusive (RFC 3339).
    pub to: String,
    /// Filters: (`tenant` | `principal` | `server` | `tool`, value), in the order given.
    pub filters: Vec<(String, String)>,
    /// The records' text format (the Parquet copy is always there).
    pub format: Format,
    /// Records exported, every table and chain.
    pub records: u64,
    /// Records per table.
    pub tables: Vec<(String, u64)>,
    /// The exported chains.
    pub chains: Vec<ChainEntry>,
    /// Every file of the bundle but the manifest itself, sorted by path.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The text to sign: one item per line, each line ending in a newline.
    pub(crate) fn to_text(&self) -> String {
        let mut t = format!("{HEADER}\n");
        // Writing to a String cannot fail.
        let _ = writeln!(t, "created {}", self.created);
        let _ = writeln!(t, "from {}", self.from);
        let _ = writeln!(t, "to {}", self.to);
        for (k, v) in &self.filters {
            let _ = writeln!(t, "filter {k} {v}");
        }
        let _ = writeln!(t, "format {}", self.format);
        let _ = writeln!(t, "records {}", self.records);
        for (table, n) in &self.tables {
            let _ = writeln!(t, "table {table} {n}");
        }
        for c in &self.chains {
            let _ = writeln!(t, "chain {} {} {}", c.chain_id, c.tree_size, c.records);
        }
        for f in &self.files {
            let _ = writeln!(t, "file {} {} {}", hex::encode(f.sha256), f.size, f.path);
        }
        t
    }

    /// Parses a manifest text; the error names the line and what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(format!("the first line is not {HEADER:?}")),
        }
        let mut m = Manifest {
            created: String::new(),
            from: String::new(),
            to: String::new(),
            filters: Vec::new(),
            format: Format::Parquet,
            records: 0,
            tables: Vec::new(),
            chains: Vec::new(),
            files: Vec::new(),
        };
        let (mut from, mut to, mut records, mut format) = (false, false, false, false);
        for (i, line) in lines {
            let bad = |what: &str| format!("line {}: {what}: {line:?}", i + 1);
            let (key, rest) = line.split_once(' ').ok_or_else(|| bad("no value"))?;
            let number = |s: &str| s.parse::<u64>().map_err(|_| bad("not a number"));
            match key {
                "created" => m.created = rest.to_owned(),
                "from" => (m.from, from) = (rest.to_owned(), true),
                "to" => (m.to, to) = (rest.to_owned(), true),
                "filter" => {
                    let (k, v) = rest.split_once(' ').ok_or_else(|| bad("no filter value"))?;
                    m.filters.push((k.to_owned(), v.to_owned()));
                }
                "format" => {
                    m.format = rest.parse().map_err(|_| bad("unknown format"))?;
                    format = true;
                }
                "records" => (m.records, records) = (number(rest)?, true),
                "table" => {
                    let (t, n) = rest.split_once(' ').ok_or_else(|| bad("no count"))?;
                    m.tables.push((t.to_owned(), number(n)?));
                }
                "chain" => {
                    let parts: Vec<&str> = rest.split(' ').collect();
                    let [chain_id, size, n] = parts[..] else {
                        return Err(bad("not `chain <id> <tree size> <records>`"));
                    };
                    m.chains.push(ChainEntry {
                        chain_id: chain_id.to_owned(),
                        tree_size: number(size)?,
                        records: number(n)?,
                    });
                }
                "file" => {
                    let mut parts = rest.splitn(3, ' ');
                    let (Some(hash), Some(size), Some(path)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(bad("not `file <sha-256> <size> <path>`"));
                    };
                    let mut sha256 = [0u8; 32];
                    hex::decode_to_slice(hash, &mut sha256)
                        .map_err(|_| bad("not a SHA-256 in hex"))?;
                    m.files.push(FileEntry {
                        path: path.to_owned(),
                        size: number(size)?,
                        sha256,
                    });
                }
                _ => return Err(bad("unknown item")),
            }
        }
        if !(from && to && records && format) {
            return Err("a from, to, format or records line is missing".into());
        }
        Ok(m)
    }
}
