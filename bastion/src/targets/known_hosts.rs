//! Target host keys: pinned in the config, or trusted on first use and remembered in the
//! database, where every node sharing it finds them.
//!
//! A target without `host_key` in the config is trusted the first time any bastion node
//! reaches it; its key is stored (`target_host_keys`) and every later connection, from any
//! node, must present the same key. A mismatch refuses the connection (a possible man in the
//! middle). Keys an older version remembered in `<data_dir>/known_targets` are imported on
//! first use; a key another node stored first wins over the file's, loudly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PublicKey;
use tokio::sync::OnceCell;

use crate::db::{Database, DbError};

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

/// Why a host key could not be checked (the connection is refused).
#[derive(Debug, thiserror::Error)]
pub enum KnownTargetsError {
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
}

/// The remembered target keys, shared by every session of this node and every node.
#[derive(Clone, Debug)]
pub struct KnownTargets {
    db: Database,
    node: String,
    /// The file older versions kept; imported once per process.
    legacy: PathBuf,
    imported: Arc<OnceCell<()>>,
}

impl KnownTargets {
    /// Keys in `db`, learned as node `node`; `legacy` is the `known_targets` file to import.
    pub fn new(db: Database, node: &str, legacy: PathBuf) -> KnownTargets {
        KnownTargets {
            db,
            node: node.to_string(),
            legacy,
            imported: Arc::new(OnceCell::new()),
        }
    }

    pub fn legacy_path(&self) -> &Path {
        &self.legacy
    }

    /// Checks `presented` for target `name` at `address`, against `pinned` when the config
    /// pins a key.
    pub async fn check(
        &self,
        name: &str,
        address: &str,
        pinned: Option<&PublicKey>,
        presented: &PublicKey,
    ) -> Result<HostKeyCheck, KnownTargetsError> {
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
        self.imported.get_or_try_init(|| self.import()).await?;
        // The database decides a race between two first contacts: both get the stored key.
        let (stored, learned) = self
            .db
            .learn_target_host_key(name, address, &presented_text, &self.node)
            .await?;
        Ok(if stored.host_key != presented_text {
            HostKeyCheck::Mismatch {
                expected: stored.host_key,
                presented: presented_text,
            }
        } else if learned {
            HostKeyCheck::Learned
        } else {
            HostKeyCheck::Known
        })
    }

    /// Copies the keys of `known_targets` (`NAME ALGORITHM BASE64` lines) into the database.
    async fn import(&self) -> Result<(), KnownTargetsError> {
        let text = match tokio::fs::read_to_string(&self.legacy).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(KnownTargetsError::File {
                    path: self.legacy.display().to_string(),
                    source,
                });
            }
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(algorithm), Some(base64)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let key = format!("{algorithm} {base64}");
            let (stored, learned) = self
                .db
                .learn_target_host_key(name, "", &key, &self.node)
                .await?;
            if learned {
                tracing::info!(target_name = %name, file = %self.legacy.display(), "imported a remembered target host key into the database");
            } else if stored.host_key != key {
                tracing::warn!(
                    target_name = %name,
                    file = %self.legacy.display(),
                    stored = %stored.host_key,
                    learned_by = %stored.learned_by,
                    "this node's remembered host key differs from the one in the database; the database's key is enforced"
                );
            }
        }
        Ok(())
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

    async fn database(dir: &Path) -> Database {
        Database::open(&format!("sqlite://{}/bastion.db", dir.display()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn learns_then_enforces_for_every_node() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let known = KnownTargets::new(db.clone(), "a", dir.path().join("known_targets"));
        let (a, b) = (key(), key());
        let check = |known: &KnownTargets, name: &'static str, key: &PublicKey| {
            let (known, key) = (known.clone(), key.clone());
            async move { known.check(name, "10.0.0.1:22", None, &key).await.unwrap() }
        };
        assert_eq!(check(&known, "db-1", &a).await, HostKeyCheck::Learned);
        assert_eq!(check(&known, "db-1", &a).await, HostKeyCheck::Known);
        assert!(matches!(
            check(&known, "db-1", &b).await,
            HostKeyCheck::Mismatch { .. }
        ));
        assert_eq!(check(&known, "db-2", &b).await, HostKeyCheck::Learned);
        // Another node sharing the database is bound by what the first one learned.
        let other = KnownTargets::new(db.clone(), "b", dir.path().join("elsewhere"));
        assert_eq!(check(&other, "db-1", &a).await, HostKeyCheck::Known);
        assert_eq!(
            check(&other, "db-1", &b).await,
            HostKeyCheck::Mismatch {
                expected: key_text(&a),
                presented: key_text(&b)
            }
        );
        let stored = db.target_host_key("db-1").await.unwrap().unwrap();
        assert_eq!(
            (stored.learned_by.as_str(), stored.address.as_str()),
            ("a", "10.0.0.1:22")
        );
    }

    #[tokio::test]
    async fn keys_remembered_in_the_old_file_are_imported_and_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let (a, b) = (key(), key());
        let file = dir.path().join("known_targets");
        std::fs::write(&file, format!("db-1 {}\n\ngarbage\n", key_text(&a))).unwrap();
        let known = KnownTargets::new(db.clone(), "a", file);
        assert!(matches!(
            known.check("db-1", "h:22", None, &b).await.unwrap(),
            HostKeyCheck::Mismatch { .. }
        ));
        assert_eq!(
            known.check("db-1", "h:22", None, &a).await.unwrap(),
            HostKeyCheck::Known
        );
        assert_eq!(db.target_host_key("garbage").await.unwrap(), None);
    }

    #[tokio::test]
    async fn pinned_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let known = KnownTargets::new(db.clone(), "a", dir.path().join("known_targets"));
        let (a, b) = (key(), key());
        assert_eq!(
            known.check("db-1", "h:22", Some(&a), &a).await.unwrap(),
            HostKeyCheck::Known
        );
        assert!(matches!(
            known.check("db-1", "h:22", Some(&a), &b).await.unwrap(),
            HostKeyCheck::Mismatch { .. }
        ));
        assert_eq!(
            db.target_host_key("db-1").await.unwrap(),
            None,
            "pinned targets are not remembered"
        );
    }
}
