//! Shared fixtures for the recorder integration tests: a temp store on the local filesystem,
//! a signing key, and (in `moto`) a real S3-compatible server.

#![allow(dead_code)]

pub mod moto;

use std::path::{Path, PathBuf};
use std::time::Duration;

use recorder::{RecordingMeta, RecordingStore, SigningKey, StoreConfig};
use tempfile::TempDir;

pub struct Fixture {
    pub dir: TempDir,
    pub cfg: StoreConfig,
    pub store: RecordingStore,
}

impl Fixture {
    pub async fn new(adjust: impl FnOnce(&mut StoreConfig)) -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let mut cfg = config(dir.path());
        adjust(&mut cfg);
        let store = RecordingStore::open(cfg.clone()).await?;
        Ok(Fixture { dir, cfg, store })
    }

    pub fn store_root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn spool_root(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Stored segment objects of a recording, read straight from disk in name order.
    pub fn stored_segments(&self, id: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        files_named(&self.store_root().join(id), |name| {
            recorder::parse_segment_name(name).is_some()
        })
    }
}

pub fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        url: format!("file://{}", dir.join("store").display()),
        spool_dir: dir.join("spool"),
        segment_interval: Duration::from_secs(3600),
        segment_bytes: 1024 * 1024,
        finish_timeout: Duration::from_secs(10),
        ..StoreConfig::default()
    }
}

/// The bastion's signing key in tests (a fixed seed, so failures reproduce).
pub fn signing_key() -> SigningKey {
    SigningKey::from_seed([42; 32])
}

pub fn meta(id: &str) -> RecordingMeta {
    RecordingMeta {
        id: id.to_string(),
        user: "alice".to_string(),
        target: "db-1".to_string(),
        login: "postgres".to_string(),
        grant_id: Some(42),
        command: None,
        width: 80,
        height: 24,
        term: Some("xterm-256color".to_string()),
        started_at: time::macros::datetime!(2025-01-02 03:04:05 UTC),
    }
}

/// Files in `dir` whose names pass `keep`, sorted by name, with their contents.
pub fn files_named(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            files.push((name, std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
