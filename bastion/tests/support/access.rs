//! The grant service over a test database (`support/db.rs`), with a real audit log file in a
//! temp dir, for the tests that drive `bastion::access::Access` directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bastion::access::Access;
use bastion::audit::AuditLog;
use bastion::config::Config;
use serde_json::Value;

use super::db::TestDb;

pub struct Service {
    pub access: Access,
    pub audit_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    /// The service over `db`, configured by the TOML text `config`.
    pub fn new(db: &TestDb, config: &str) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let audit_path = dir.path().join("audit.jsonl");
        let config = Config::parse(config, "test.toml").unwrap();
        let audit = AuditLog::open(&audit_path).unwrap();
        Service {
            access: Access::new(Arc::new(config), db.store.clone(), audit),
            audit_path,
            _dir: dir,
        }
    }

    /// Every audit record written so far.
    pub fn audit(&self) -> Vec<Value> {
        audit_lines(&self.audit_path)
    }
}

/// The JSON objects of an audit log file (none if it does not exist yet).
pub fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
