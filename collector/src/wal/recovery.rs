//! Start-up recovery: check every segment, cut damaged tails, replay what is past the
//! checkpoint.
//!
//! Each segment is read frame by frame. The first frame that is partial, fails its checksum,
//! declares an impossible length or breaks the sequence order ends that segment: the bytes from
//! there on are copied to `quarantine/` (for forensics: nothing is deleted unseen), the segment
//! is truncated to its last whole frame, and the damage is reported with its offset and size.
//! Frames past the checkpoint are handed to the caller's replay function in sequence order.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::frame::{self, Damage, Next};
use super::segment::{self, MAGIC, sync_dir};
use super::{WalError, checkpoint};

/// A segment tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The segment.
    pub segment: PathBuf,
    /// Offset of the first unusable byte.
    pub offset: u64,
    /// Bytes removed from the segment (and kept in `quarantined`).
    pub bytes: u64,
    /// What was wrong there.
    pub damage: Damage,
    /// Where the removed bytes were kept.
    pub quarantined: PathBuf,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint found (0 when none, or when it was unreadable).
    pub checkpoint: u64,
    /// Why the checkpoint could not be read, when it could not: everything was replayed and
    /// records already in sealed files were recognised by their file names.
    pub checkpoint_error: Option<String>,
    /// Segments examined.
    pub segments: usize,
    /// Whole, valid frames found.
    pub frames: u64,
    /// Frames past the checkpoint handed to the replay function.
    pub replayed: u64,
    /// Valid frames whose payload the replay function could not decode (kept in quarantine).
    pub undecodable: u64,
    /// Damaged tails cut off.
    pub cuts: Vec<Cut>,
    /// Segments removed because no valid frame was left in them.
    pub empty_removed: usize,
    /// Bytes in the segments kept, after cutting.
    pub kept_bytes: u64,
    /// The sequence number the next appended frame gets.
    pub next_seq: u64,
}

/// What the replay function did with one frame.
#[derive(Debug)]
pub enum Replayed {
    /// The records were handed on.
    Done,
    /// The payload did not decode; the frame is quarantined and recovery goes on.
    Undecodable(String),
}

/// The quarantine directory inside the log directory.
pub fn quarantine_dir(dir: &Path) -> PathBuf {
    dir.join("quarantine")
}

/// Recovers the log in `dir` (created if missing), calling `replay(seq, payload)` for every
/// valid frame past the checkpoint, in order. A replay error aborts recovery.
pub fn recover(
    dir: &Path,
    mut replay: impl FnMut(u64, &[u8]) -> Result<Replayed, String>,
) -> Result<RecoveryReport, WalError> {
    std::fs::create_dir_all(dir).map_err(|e| WalError::io("create", dir, e))?;
    let mut report = RecoveryReport::default();
    match checkpoint::read(dir) {
        Ok(c) => report.checkpoint = c,
        Err(e) => report.checkpoint_error = Some(e.to_string()),
    }
    let segments = segment::list(dir).map_err(|e| WalError::io("list", dir, e))?;
    report.segments = segments.len();
    let mut prev: Option<u64> = None;
    let mut payload = Vec::new();
    let mut removed = false;
    for (_, path) in segments {
        let (kept, bytes) =
            recover_segment(&path, &mut prev, &mut payload, &mut report, &mut replay)?;
        report.kept_bytes += bytes;
        if kept == 0 {
            std::fs::remove_file(&path).map_err(|e| WalError::io("remove", &path, e))?;
            report.empty_removed += 1;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir).map_err(|e| WalError::io("fsync", dir, e))?;
    }
    report.next_seq = prev.unwrap_or(0).max(report.checkpoint) + 1;
    Ok(report)
}

/// Recovers one segment; returns how many valid frames it keeps, and its length after cutting.
fn recover_segment(
    path: &Path,
    prev: &mut Option<u64>,
    payload: &mut Vec<u8>,
    report: &mut RecoveryReport,
    replay: &mut impl FnMut(u64, &[u8]) -> Result<Replayed, String>,
) -> Result<(u64, u64), WalError> {
    let io = |op| move |e| WalError::io(op, path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut magic = [0u8; MAGIC.len()];
    let header_ok = reader.read_exact(&mut magic).is_ok() && &magic == MAGIC;
    let mut offset = MAGIC.len() as u64;
    let mut kept = 0;
    let damage = if header_ok {
        loop {
            match frame::read_next(&mut reader, *prev, payload).map_err(io("read"))? {
                Next::Frame { seq } => {
                    report.frames += 1;
                    kept += 1;
                    *prev = Some(seq);
                    if seq > report.checkpoint {
                        report.replayed += 1;
                        if let Replayed::Undecodable(why) =
                            replay(seq, payload).map_err(WalError::Replay)?
                        {
                            report.undecodable += 1;
                            let q = quarantine(path, &format!("frame-{seq}.payload"), payload)?;
                            tracing::error!(seq, error = %why, quarantined = %q.display(),
                                "A write-ahead-log frame could not be decoded; it is kept in quarantine.");
                        }
                    }
                    offset += (frame::HEADER_LEN + payload.len()) as u64;
                }
                Next::End => break None,
                Next::Damaged(d) => break Some(d),
            }
        }
    } else {
        offset = 0;
        // An empty file is a segment the crash caught before its magic: nothing to report.
        (len > 0).then_some(Damage::Header)
    };
    drop(reader);
    if let Some(damage) = damage {
        cut(&file, path, offset, len, damage, report)?;
    }
    Ok((kept, if kept == 0 { 0 } else { offset }))
}

/// Copies `path[offset..len]` to quarantine and truncates the segment at `offset`.
fn cut(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    damage: Damage,
    report: &mut RecoveryReport,
) -> Result<(), WalError> {
    let io = |op| move |e| WalError::io(op, path, e);
    let mut tail = Vec::new();
    let mut f = file;
    f.seek(SeekFrom::Start(offset)).map_err(io("seek"))?;
    f.read_to_end(&mut tail).map_err(io("read"))?;
    let seg_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment");
    let quarantined = quarantine(path, &format!("{seg_name}.{offset}.damaged"), &tail)?;
    file.set_len(offset).map_err(io("truncate"))?;
    file.sync_all().map_err(io("fsync"))?;
    tracing::warn!(segment = %path.display(), offset, bytes = len - offset, damage = damage.as_str(),
        quarantined = %quarantined.display(),
        "Cut a damaged write-ahead-log tail (a write the crash interrupted, or corruption); the bytes are kept in quarantine.");
    report.cuts.push(Cut {
        segment: path.to_owned(),
        offset,
        bytes: len - offset,
        damage,
        quarantined,
    });
    Ok(())
}

/// Writes `bytes` durably to `<log dir>/quarantine/<name>`.
fn quarantine(segment: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, WalError> {
    let dir = quarantine_dir(segment.parent().unwrap_or(Path::new(".")));
    std::fs::create_dir_all(&dir).map_err(|e| WalError::io("create", &dir, e))?;
    let path = dir.join(name);
    let written = (|| {
        let mut f = File::create(&path)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        sync_dir(&dir)
    })();
    written.map_err(|e| WalError::io("write", &path, e))?;
    Ok(path)
}
