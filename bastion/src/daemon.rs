//! What every connection and session of a running daemon shares. Each field is a handle that
//! is cheap to clone and safe to use from any task; there is no lock around the whole.
//!
//! This module only holds state: building it is `serve`'s job, using it the SSH face's and
//! the sessions'. Sessions get a narrower view of it ([`SessionContext`]).

use std::sync::Arc;

use recorder::RecordingStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::Access;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::db::Database;
use crate::session::registry::Registry;
use crate::session::supervisor::SessionContext;
use crate::targets::known_hosts::KnownTargets;

pub struct Daemon {
    pub config: Arc<Config>,
    /// The grant service: every grant decision goes through it.
    pub access: Access,
    pub db: Database,
    pub recordings: RecordingStore,
    pub audit: AuditLog,
    /// Live sessions by grant, user and id, for the watcher and the limits.
    pub sessions: Registry,
    pub known_targets: KnownTargets,
    /// Cancelled when the daemon starts shutting down; every connection and session task
    /// watches it.
    pub shutdown: CancellationToken,
    /// Every connection and session task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl Daemon {
    /// What a session needs of the daemon.
    pub fn session_context(&self) -> SessionContext {
        SessionContext {
            index: Arc::new(self.db.clone()),
            audit: self.audit.clone(),
            registry: self.sessions.clone(),
            warn_before: self.config.warn_before.clone().into(),
            shutdown: self.shutdown.clone(),
            tracker: self.tracker.clone(),
        }
    }

    /// Whether recordings cannot be kept safe right now (the spool is over its limit).
    pub fn storage_degraded(&self) -> bool {
        crate::session::watch::storage_degraded(
            &self.recordings,
            self.config.recording.spool_max_bytes,
        )
    }
}
