//! `--dev`: secrets made up and kept in files, so that one command runs Tether on a laptop.
//! Never for production: whoever reads these files can read every stored token.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Where `--dev` keeps its files: the SQLite file's folder, else `tether-data/`.
pub fn data_dir(storage_url: &str) -> PathBuf {
    storage_url
        .strip_prefix("sqlite://")
        .and_then(|p| Path::new(p).parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("tether-data"), Path::to_path_buf)
}

/// The content of `name` in `dir`, created with `make()` (mode 0600) when missing.
pub fn kept_secret(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let path = dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        anyhow::ensure!(!existing.is_empty(), "{} is empty", path.display());
        return Ok(existing);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let value = make();
    write_private(&path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(file = %path.display(), "--dev: created a secret file; never use --dev in production");
    Ok(value)
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// A random HS256 secret for development host tokens.
pub fn new_jwt_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    STANDARD.encode(bytes)
}

pub const ENCRYPTION_KEY_FILE: &str = "dev-encryption.key";
pub const JWT_SECRET_FILE: &str = "dev-jwt-secret";
