//! What a store holds: its segment files (with their chain metadata, read cheaply from the
//! manifest, else the footer) and its checkpoint notes, each with where it came from. Verify,
//! prove, retention, export and the forwarders all start here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use calltrail_schemas::arrow_schema::{LLM_CALLS, TOOL_CALLS};
use calltrail_schemas::audit::AUDIT_EVENTS;

use crate::chain::checkpoint_log::read_log;
use crate::chain::segment::{SegmentMeta, manifest_path, read_footer};
use crate::{Result, io_err};

/// A segment file and what its manifest (else footer) says about it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Relative to the store root.
    pub file: PathBuf,
    /// Start of its hour partition, in nanoseconds, when the path has one.
    pub hour_ns: Option<i64>,
    /// `None` when neither manifest nor footer can be read.
    pub meta: Option<SegmentMeta>,
    /// The sidecar manifest alone, when it can be read.
    pub manifest: Option<SegmentMeta>,
}

fn hour_of(file: &Path) -> Option<i64> {
    let mut date = None;
    let mut hour = None;
    for c in file.components() {
        let c = c.as_os_str().to_string_lossy();
        if let Some(d) = c.strip_prefix("date=") {
            date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        } else if let Some(h) = c.strip_prefix("hour=") {
            hour = h.parse::<u32>().ok();
        }
    }
    let t = date?.and_hms_opt(hour?, 0, 0)?.and_utc();
    t.timestamp_nanos_opt()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err("list", dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if name.ends_with(".parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every segment file under `root`, relative to it, sorted: the listing alone, without reading
/// any file (for callers that keep what they read before).
pub fn segment_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for table in [TOOL_CALLS, LLM_CALLS, AUDIT_EVENTS] {
        walk(&root.join(table), &mut paths)?;
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect())
}

/// The segment file `file` (relative to `root`) with what its manifest, else its footer, says.
pub fn describe(root: &Path, file: PathBuf) -> Listed {
    let path = root.join(&file);
    let manifest = std::fs::read(manifest_path(&path))
        .ok()
        .and_then(|b| serde_json::from_slice::<SegmentMeta>(&b).ok());
    let meta = manifest
        .clone()
        .or_else(|| read_footer(&path).ok().flatten());
    Listed {
        hour_ns: hour_of(&file),
        file,
        meta,
        manifest,
    }
}

/// Every segment file under `root`, sorted by path, described.
pub fn segments(root: &Path) -> Result<Vec<Listed>> {
    Ok(segment_files(root)?
        .into_iter()
        .map(|f| describe(root, f))
        .collect())
}

/// A stored checkpoint note and where it is.
#[derive(Debug, Clone)]
pub(crate) struct StoredNote {
    /// Relative to the store root.
    pub file: PathBuf,
    /// 1-based line in that file.
    pub line: usize,
    /// The note.
    pub note: String,
}

/// The checkpoint notes under `root/checkpoints`, by chain directory name.
pub(crate) fn checkpoints(root: &Path) -> Result<HashMap<String, Vec<StoredNote>>> {
    let base = root.join("checkpoints");
    let mut out: HashMap<String, Vec<StoredNote>> = HashMap::new();
    let chains = match std::fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("list", &base)(e)),
    };
    for chain in chains {
        let dir = chain.map_err(io_err("list", &base))?.path();
        let Some(id) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let notes = out.entry(id).or_default();
        for l in read_log(&dir)? {
            notes.push(StoredNote {
                file: l.file.strip_prefix(root).unwrap_or(&l.file).to_owned(),
                line: l.line,
                // A line that is not a note entry is still evidence: it is checked as a note.
                note: l.entry.unwrap_or_else(|raw| raw),
            });
        }
    }
    Ok(out)
}
