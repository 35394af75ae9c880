//! Segment files: `<first sequence number, 20 digits>.wal`, each starting with [`MAGIC`] then
//! frames in increasing sequence order.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The first bytes of every segment: name and format version.
pub const MAGIC: &[u8; 8] = b"CTWAL\0\0\x01";

/// The file name of the segment whose first frame is `first_seq`.
pub fn name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The segments in `dir`, by first sequence number.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(first) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Syncs a directory so that a new or removed entry survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a new segment holding only the magic, durable with its directory entry.
pub fn create(dir: &Path, first_seq: u64) -> io::Result<(File, PathBuf)> {
    let path = dir.join(name(first_seq));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let made = (|| {
        std::os::unix::fs::FileExt::write_all_at(&file, MAGIC, 0)?;
        file.sync_all()?;
        sync_dir(dir)
    })();
    if let Err(e) = made {
        // A half-made segment would hold no frame; removing it keeps the name free for a retry.
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok((file, path))
}
