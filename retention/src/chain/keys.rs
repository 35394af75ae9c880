//! Key files: the private signing key (mode 0600) and the public key verifiers pin, in the
//! signed-note text forms (`docs/specs/chain.md` §4).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::files::{ensure_dir, sync_dir};
use crate::note::{SigningKey, VerifierKey};
use crate::{Error, Result, io_err};

/// Reads a private key file. Warns when others may read it.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "The signing key is readable by other users; chmod 600 it.");
    }
    SigningKey::parse(&text).map_err(|e| Error::Integrity(format!("{}: {e}", path.display())))
}

/// Reads a public key file.
pub fn read_verifier_key(path: &Path) -> Result<VerifierKey> {
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    VerifierKey::parse(text.trim())
        .map_err(|e| Error::Integrity(format!("{}: {e}", path.display())))
}

/// Writes `key` to `private` (mode 0600, never replacing an existing file) and its public key
/// to `public`.
pub fn write_key_pair(key: &SigningKey, private: &Path, public: &Path) -> Result<()> {
    for p in [private, public] {
        if p.exists() {
            return Err(Error::Integrity(format!(
                "{} exists; not replacing a key",
                p.display()
            )));
        }
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            ensure_dir(dir)?;
        }
    }
    let write = |path: &Path, mode: u32, text: String| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io_err("create", path))?;
        f.write_all(text.as_bytes())
            .map_err(io_err("write", path))?;
        f.sync_all().map_err(io_err("fsync", path))
    };
    write(private, 0o600, key.to_text() + "\n")?;
    write(public, 0o644, key.verifier().to_text() + "\n")?;
    for p in [private, public] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// The signing key `serve` uses: `configured` if set, else `<data_dir>/keys/calltrail.key`,
/// generated (named `log_name`) with its public key on first start.
pub fn load_or_create(
    configured: Option<&Path>,
    data_dir: &Path,
    log_name: &str,
) -> Result<SigningKey> {
    if let Some(path) = configured {
        return read_signing_key(path);
    }
    let private = default_private_key(data_dir);
    if private.exists() {
        return read_signing_key(&private);
    }
    let key = SigningKey::generate(log_name)
        .map_err(|e| Error::Integrity(format!("generating a signing key: {e}")))?;
    let public = private.with_extension("pub");
    write_key_pair(&key, &private, &public)?;
    tracing::info!(public_key = %public.display(),
        "Generated the checkpoint signing key; give verifiers its public key.");
    Ok(key)
}

/// `<data_dir>/keys/calltrail.key`.
pub fn default_private_key(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("calltrail.key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(None, dir.path(), "k.test").unwrap();
        let private = default_private_key(dir.path());
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = read_verifier_key(&private.with_extension("pub")).unwrap();
        assert_eq!(public, key.verifier());
        assert_eq!(
            load_or_create(None, dir.path(), "k.test")
                .unwrap()
                .verifier(),
            public,
            "reused"
        );
        let again = SigningKey::generate("x").unwrap();
        assert!(write_key_pair(&again, &private, &dir.path().join("x.pub")).is_err());
    }
}
