//! The bundle's files on disk: created new and fsynced, listed, and hashed for the manifest.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::manifest::FileEntry;
use crate::files::sync_dir;
use crate::{Result, io_err};

/// Creates `dir/rel` (and its parent directories), writes `bytes` and fsyncs it.
pub(crate) fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(rel);
    let mut f = create(&path)?;
    f.write_all(bytes).map_err(io_err("write", &path))?;
    f.sync_all().map_err(io_err("fsync", &path))
}

/// Creates a new file, and its parent directories.
pub(crate) fn create(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    }
    File::create_new(path).map_err(io_err("create", path))
}

/// Every file under `dir`, relative and `/`-separated, sorted.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_err("stat", &path))?;
            if kind.is_dir() {
                walk(base, &path, out)?;
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// SHA-256 and size of the file at `path`, read in 1 MiB blocks.
pub(crate) fn hash_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finalize().into(), size))
}

pub(crate) fn hash_files(dir: &Path) -> Result<Vec<FileEntry>> {
    list_files(dir)?
        .into_iter()
        .map(|path| {
            let (sha256, size) = hash_file(&dir.join(&path))?;
            Ok(FileEntry { path, size, sha256 })
        })
        .collect()
}

/// Fsyncs `dir` and every directory under it, so the entries of the files written survive.
pub(crate) fn sync_dirs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
        let path = entry.map_err(io_err("list", dir))?.path();
        if path.is_dir() {
            sync_dirs(&path)?;
        }
    }
    sync_dir(dir)
}
