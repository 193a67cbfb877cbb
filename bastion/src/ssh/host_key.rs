//! The bastion's own SSH host key: loaded from disk, or generated on first start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::{Algorithm, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot read host key {path}: {source}")]
    Load {
        path: String,
        source: russh::keys::Error,
    },
    #[error("cannot create host key {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot generate host key: {0}")]
    Generate(String),
}

/// Loads the ed25519 host key at `path`, creating it (mode 0600) when it does not exist.
/// Returns the key and whether it was generated now.
pub fn load_or_generate(path: &Path) -> Result<(PrivateKey, bool), HostKeyError> {
    if path.exists() {
        let key =
            russh::keys::load_secret_key(path, None).map_err(|source| HostKeyError::Load {
                path: path.display().to_string(),
                source,
            })?;
        return Ok((key, false));
    }
    let create_err = |source| HostKeyError::Create {
        path: path.display().to_string(),
        source,
    };
    let mut key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| HostKeyError::Generate(e.to_string()))?;
    key.set_comment("bastion host key");
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| HostKeyError::Generate(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(create_err)?;
    }
    // create_new: never overwrite a key another process wrote in the meantime.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(create_err)?;
    file.write_all(text.as_bytes()).map_err(create_err)?;
    file.sync_all().map_err(create_err)?;
    Ok((key, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/host_ed25519_key");
        let (first, created) = load_or_generate(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, created) = load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(
            first.public_key().key_data(),
            second.public_key().key_data()
        );
    }

    #[test]
    fn a_corrupt_key_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        std::fs::write(&path, "not a key").unwrap();
        let err = load_or_generate(&path).unwrap_err().to_string();
        assert!(err.contains("host_key"), "{err}");
    }
}
