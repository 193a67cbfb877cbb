//! What a user's connection task and its SSH handler share: whether the user authenticated,
//! and how many session channels are open (for the per-connection channel limit and the
//! idle timeout).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Shared by the connection task (`accept`) and the handler (`handler`, `user_side`).
#[derive(Default)]
pub struct ConnectionState {
    /// Notified once, when authentication succeeds.
    pub authenticated: Notify,
    /// Notified whenever the number of open session channels changes.
    pub changed: Notify,
    is_authenticated: AtomicBool,
    open: AtomicUsize,
    /// Since when no session channel has been open; `None` while one is.
    idle_since: Mutex<Option<Instant>>,
}

impl ConnectionState {
    pub fn set_authenticated(&self) {
        if !self.is_authenticated.swap(true, Ordering::AcqRel) {
            *self.lock() = Some(Instant::now());
            self.authenticated.notify_one();
        }
    }

    /// Session channels open now.
    pub fn open_channels(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Since when the connection has had no session channel open (`None`: one is open).
    pub fn idle_since(&self) -> Option<Instant> {
        *self.lock()
    }

    pub(super) fn channel_opened(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
        *self.lock() = None;
        self.changed.notify_one();
    }

    pub(super) fn channel_finished(&self) {
        let before = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .unwrap_or(0);
        if before == 1 {
            *self.lock() = Some(Instant::now());
        }
        self.changed.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}
