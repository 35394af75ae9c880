//! A sealed segment's description: the chain metadata in its Parquet footer and its sidecar
//! manifest (`docs/specs/chain.md` §3).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash_hex;
use crate::merkle::Hash;

/// Footer key prefix of the chain metadata.
const PREFIX: &str = "calltrail.chain.";
/// Footer key of the canonical encoding version.
pub const CANONICAL_VERSION_KEY: &str = "calltrail.canonical_version";

/// What a segment holds and how it links to the rest of its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentMeta {
    /// The chain id.
    pub chain_id: String,
    /// The table (`tool_calls` or `llm_calls`).
    pub table: String,
    /// The Parquet file's name (in the manifest; the footer cannot name its own file).
    #[serde(default)]
    pub file: String,
    /// Seq of the first row.
    pub first_seq: u64,
    /// Seq of the last row.
    pub last_seq: u64,
    /// Number of rows: `last_seq - first_seq + 1`.
    pub count: u64,
    /// `chain_hash[first_seq - 1]`: the previous segment's last hash, or the genesis value.
    #[serde(with = "crate::hash_hex::one")]
    pub prev_hash: Hash,
    /// `chain_hash[last_seq]`.
    #[serde(with = "crate::hash_hex::one")]
    pub last_hash: Hash,
    /// RFC 6962 head of this segment's leaf hashes.
    #[serde(with = "crate::hash_hex::one")]
    pub segment_root: Hash,
    /// Size of the chain's tree once this segment is in it: `last_seq + 1`.
    pub tree_size: u64,
    /// Head of the chain's tree at `tree_size`.
    #[serde(with = "crate::hash_hex::one")]
    pub tree_root: Hash,
    /// Compact range of `[0, tree_size)`, largest subtree first.
    #[serde(with = "crate::hash_hex::list")]
    pub frontier: Vec<Hash>,
    /// Version of the canonical record encoding the leaf hashes cover.
    pub canonical_version: u8,
    /// The retention class of every record in the segment, when the writer had a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_class: Option<String>,
    /// The class's keep duration when the segment was written, in days: retention never
    /// expires the segment earlier, whatever the policy says later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u64>,
}

/// Footer key of the retention class.
pub const RETENTION_CLASS_KEY: &str = "calltrail.retention.class";
/// Footer key of the class's keep duration in days.
pub const KEEP_DAYS_KEY: &str = "calltrail.retention.keep_days";

impl SegmentMeta {
    /// The footer key-value pairs (all but `file`).
    pub fn footer(&self) -> Vec<(String, String)> {
        let frontier: Vec<String> = self.frontier.iter().map(hex::encode).collect();
        [
            ("id", self.chain_id.clone()),
            ("table", self.table.clone()),
            ("first_seq", self.first_seq.to_string()),
            ("last_seq", self.last_seq.to_string()),
            ("count", self.count.to_string()),
            ("prev_hash", hex::encode(self.prev_hash)),
            ("last_hash", hex::encode(self.last_hash)),
            ("segment_root", hex::encode(self.segment_root)),
            ("tree_size", self.tree_size.to_string()),
            ("tree_root", hex::encode(self.tree_root)),
            ("frontier", frontier.join(",")),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v))
        .chain([(
            CANONICAL_VERSION_KEY.to_owned(),
            self.canonical_version.to_string(),
        )])
        .chain(
            self.retention_class
                .iter()
                .map(|c| (RETENTION_CLASS_KEY.to_owned(), c.clone())),
        )
        .chain(
            self.keep_days
                .iter()
                .map(|d| (KEEP_DAYS_KEY.to_owned(), d.to_string())),
        )
        .collect()
    }

    /// Reads the footer pairs back; `None` when the footer has no chain metadata. The error
    /// names the key that is missing or malformed.
    pub fn from_footer(kv: &HashMap<String, String>, file: &str) -> Result<Option<Self>, String> {
        let get = |k: &str| {
            kv.get(&format!("{PREFIX}{k}"))
                .ok_or_else(|| format!("footer lacks {PREFIX}{k}"))
        };
        if !kv.contains_key(&format!("{PREFIX}id")) {
            return Ok(None);
        }
        let num = |k: &str| {
            get(k)?
                .parse::<u64>()
                .map_err(|_| format!("{PREFIX}{k} is not a number"))
        };
        let hash =
            |k: &str| hash_hex::parse(get(k)?).ok_or_else(|| format!("{PREFIX}{k} is not a hash"));
        let frontier = get("frontier")?;
        let frontier = if frontier.is_empty() {
            Vec::new()
        } else {
            frontier
                .split(',')
                .map(hash_hex::parse)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{PREFIX}frontier is not a list of hashes"))?
        };
        let canonical_version = kv
            .get(CANONICAL_VERSION_KEY)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("footer lacks {CANONICAL_VERSION_KEY}"))?;
        Ok(Some(Self {
            chain_id: get("id")?.clone(),
            table: get("table")?.clone(),
            file: file.to_owned(),
            first_seq: num("first_seq")?,
            last_seq: num("last_seq")?,
            count: num("count")?,
            prev_hash: hash("prev_hash")?,
            last_hash: hash("last_hash")?,
            segment_root: hash("segment_root")?,
            tree_size: num("tree_size")?,
            tree_root: hash("tree_root")?,
            frontier,
            canonical_version,
            retention_class: kv.get(RETENTION_CLASS_KEY).cloned(),
            keep_days: kv.get(KEEP_DAYS_KEY).and_then(|d| d.parse().ok()),
        }))
    }
}

/// The chain metadata in the footer of the Parquet file at `path`; `None` when it has none.
pub fn read_footer(path: &Path) -> crate::Result<Option<SegmentMeta>> {
    let file = std::fs::File::open(path).map_err(crate::io_err("open", path))?;
    let reader = parquet::file::reader::SerializedFileReader::new(file)?;
    let kv = footer_pairs(parquet::file::reader::FileReader::metadata(&reader).file_metadata());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    SegmentMeta::from_footer(&kv, &name)
        .map_err(|e| crate::Error::Integrity(format!("{}: {e}", path.display())))
}

/// The footer's key-value metadata as a map.
pub fn footer_pairs(meta: &parquet::file::metadata::FileMetaData) -> HashMap<String, String> {
    meta.key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|p| p.value.clone().map(|v| (p.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the sidecar manifest of `meta` beside the Parquet file at `parquet`. Not fsynced: the
/// footer holds the same metadata durably, and readers fall back to it.
pub fn write_manifest(parquet: &Path, meta: &SegmentMeta) -> crate::Result<()> {
    let bytes = serde_json::to_vec_pretty(meta)
        .map_err(|e| crate::Error::Integrity(format!("encoding a manifest: {e}")))?;
    let path = manifest_path(parquet);
    crate::files::write_bytes_atomic_lazy(&path, &bytes)?;
    std::fs::set_permissions(&path, crate::parquet_file::read_only())
        .map_err(crate::io_err("chmod", &path))
}

/// The sidecar manifest of the Parquet file at `parquet`: `_<stem>.manifest.json`. The leading
/// underscore hides it from engines that read a table's directory (pyarrow datasets, Spark,
/// Hive and Trino skip names starting with `_` or `.`).
pub fn manifest_path(parquet: &Path) -> PathBuf {
    let stem = parquet
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    parquet.with_file_name(format!("_{stem}.manifest.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SegmentMeta {
        SegmentMeta {
            chain_id: "c".into(),
            table: "tool_calls".into(),
            file: "f.parquet".into(),
            first_seq: 3,
            last_seq: 4,
            count: 2,
            prev_hash: [1; 32],
            last_hash: [2; 32],
            segment_root: [3; 32],
            tree_size: 5,
            tree_root: [4; 32],
            frontier: vec![[5; 32], [6; 32]],
            canonical_version: 1,
            retention_class: Some("reads".into()),
            keep_days: Some(396),
        }
    }

    #[test]
    fn footer_and_manifest_round_trip() {
        let m = meta();
        let kv: HashMap<String, String> = m.footer().into_iter().collect();
        assert_eq!(
            SegmentMeta::from_footer(&kv, "f.parquet").unwrap(),
            Some(m.clone())
        );
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<SegmentMeta>(&json).unwrap(), m);
        assert_eq!(
            SegmentMeta::from_footer(&HashMap::new(), "x").unwrap(),
            None
        );
        let mut broken = kv.clone();
        broken.insert("calltrail.chain.last_hash".into(), "zz".into());
        let e = SegmentMeta::from_footer(&broken, "x").unwrap_err();
        assert!(e.contains("last_hash"), "{e}");
        assert_eq!(
            manifest_path(Path::new("/d/1-w-0-1-2.parquet")),
            Path::new("/d/_1-w-0-1-2.manifest.json")
        );
    }
}
