//! Target host keys: pinned in the config, or trusted on first use and remembered.
//!
//! A target without `host_key` in the config is trusted the first time the bastion reaches
//! it; its key is appended to `<data_dir>/known_targets` and every later connection must
//! present the same key. A mismatch refuses the connection (a possible man in the middle).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PublicKey;
use tokio::sync::Mutex;

/// What checking a presented host key concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key matches the pinned or remembered key.
    Known,
    /// First contact: the key was remembered.
    Learned,
    /// The key differs from the expected one.
    Mismatch { expected: String, presented: String },
}

/// The remembered target keys, shared by every session.
#[derive(Clone, Debug)]
pub struct KnownTargets {
    path: PathBuf,
    // Serialises check-and-append so two first connections cannot both "learn" a key.
    lock: Arc<Mutex<()>>,
}

impl KnownTargets {
    pub fn new(path: PathBuf) -> KnownTargets {
        KnownTargets {
            path,
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks `presented` for target `name`, against `pinned` when the config pins a key.
    pub async fn check(
        &self,
        name: &str,
        pinned: Option<&PublicKey>,
        presented: &PublicKey,
    ) -> std::io::Result<HostKeyCheck> {
        let presented_text = key_text(presented);
        if let Some(pinned) = pinned {
            return Ok(if pinned.key_data() == presented.key_data() {
                HostKeyCheck::Known
            } else {
                HostKeyCheck::Mismatch {
                    expected: key_text(pinned),
                    presented: presented_text,
                }
            });
        }
        let _guard = self.lock.lock().await;
        let existing = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        for line in existing.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some(name) {
                continue;
            }
            let known: Vec<&str> = words.take(2).collect();
            let known = known.join(" ");
            return Ok(if known == presented_text {
                HostKeyCheck::Known
            } else {
                HostKeyCheck::Mismatch {
                    expected: known,
                    presented: presented_text,
                }
            });
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(format!("{name} {presented_text}\n").as_bytes())?;
        file.sync_all()?;
        Ok(HostKeyCheck::Learned)
    }
}

/// `ALGORITHM BASE64`, without a comment, as in known_hosts.
fn key_text(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| key.fingerprint(Default::default()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn key() -> PublicKey {
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    #[tokio::test]
    async fn learns_then_enforces() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownTargets::new(dir.path().join("known_targets"));
        let (a, b) = (key(), key());
        assert_eq!(
            known.check("db-1", None, &a).await.unwrap(),
            HostKeyCheck::Learned
        );
        assert_eq!(
            known.check("db-1", None, &a).await.unwrap(),
            HostKeyCheck::Known
        );
        assert!(matches!(
            known.check("db-1", None, &b).await.unwrap(),
            HostKeyCheck::Mismatch { .. }
        ));
        assert_eq!(
            known.check("db-2", None, &b).await.unwrap(),
            HostKeyCheck::Learned
        );
        // A fresh instance reads what the first one remembered.
        let again = KnownTargets::new(dir.path().join("known_targets"));
        assert_eq!(
            again.check("db-1", None, &a).await.unwrap(),
            HostKeyCheck::Known
        );
    }

    #[tokio::test]
    async fn pinned_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownTargets::new(dir.path().join("known_targets"));
        let (a, b) = (key(), key());
        assert_eq!(
            known.check("db-1", Some(&a), &a).await.unwrap(),
            HostKeyCheck::Known
        );
        assert!(matches!(
            known.check("db-1", Some(&a), &b).await.unwrap(),
            HostKeyCheck::Mismatch { .. }
        ));
        assert!(!known.path().exists(), "pinned targets are not remembered");
    }
}
