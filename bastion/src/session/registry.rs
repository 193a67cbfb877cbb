//! The live sessions: how the grant watcher reaches the sessions a grant allows, and how
//! storage trouble or a reviewer's end request reaches one session or all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::GrantState;
use crate::db::GrantId;

/// Something a live session must act on besides its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Recordings cannot be kept safe (spool over its limit): warn, then end the session.
    StorageDegraded,
    /// The spool drained again: the pending end is called off.
    StorageRecovered,
    /// Someone asked (through the database) for this session to end.
    EndRequested { by: String },
}

struct Entry {
    grant: GrantId,
    session: String,
    user: String,
    fail_open: bool,
    state: watch::Sender<GrantState>,
    notices: mpsc::UnboundedSender<Notice>,
}

#[derive(Default)]
struct Entries {
    next: u64,
    by_key: HashMap<u64, Entry>,
}

/// Every live session, by grant and by id.
#[derive(Clone, Default)]
pub struct Registry {
    // A plain mutex: held only for map operations, never across an await.
    inner: Arc<Mutex<Entries>>,
}

/// Removes the session from the registry when dropped.
pub struct Registration {
    registry: Registry,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().by_key.remove(&self.key);
    }
}

/// What a supervisor listens to.
pub struct Subscription {
    pub registration: Registration,
    pub state: watch::Receiver<GrantState>,
    pub notices: mpsc::UnboundedReceiver<Notice>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // operation is a single insert/remove/iterate), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers live session `session` of `user` under `grant`.
    pub fn register(
        &self,
        grant: GrantId,
        session: &str,
        user: &str,
        fail_open: bool,
        state: GrantState,
    ) -> Subscription {
        let (state_tx, state_rx) = watch::channel(state);
        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let mut entries = self.lock();
        entries.next += 1;
        let key = entries.next;
        entries.by_key.insert(
            key,
            Entry {
                grant,
                session: session.to_string(),
                user: user.to_string(),
                fail_open,
                state: state_tx,
                notices: notice_tx,
            },
        );
        drop(entries);
        Subscription {
            registration: Registration {
                registry: self.clone(),
                key,
            },
            state: state_rx,
            notices: notice_rx,
        }
    }

    /// The distinct grants that live sessions depend on.
    pub fn grant_ids(&self) -> Vec<GrantId> {
        let mut ids: Vec<GrantId> = self.lock().by_key.values().map(|e| e.grant).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The ids of the live sessions.
    pub fn session_ids(&self) -> Vec<String> {
        self.lock()
            .by_key
            .values()
            .map(|e| e.session.clone())
            .collect()
    }

    /// Tells every session of `grant` its new state (only sessions whose state changed wake).
    pub fn update(&self, grant: GrantId, state: &GrantState) {
        for entry in self.lock().by_key.values() {
            if entry.grant == grant {
                entry.state.send_if_modified(|current| {
                    let changed = current != state;
                    if changed {
                        *current = state.clone();
                    }
                    changed
                });
            }
        }
    }

    /// Marks every live session's grant as unverifiable (the store is unreachable).
    pub fn mark_all_unverifiable(&self) {
        for entry in self.lock().by_key.values() {
            entry
                .state
                .send_if_modified(|current| !std::mem::replace(&mut current.unverifiable, true));
        }
    }

    /// Sends `notice` to session `session`, if it is live.
    pub fn notify_session(&self, session: &str, notice: Notice) {
        for entry in self.lock().by_key.values() {
            if entry.session == session {
                let _ = entry.notices.send(notice.clone());
            }
        }
    }

    /// Sends `notice` to every live session whose target is not fail-open.
    pub fn notify_fail_closed(&self, notice: Notice) {
        for entry in self.lock().by_key.values() {
            if !entry.fail_open {
                let _ = entry.notices.send(notice.clone());
            }
        }
    }

    /// How many live sessions `user` has on this node.
    pub fn count_for_user(&self, user: &str) -> usize {
        self.lock()
            .by_key
            .values()
            .filter(|e| e.user == user)
            .count()
    }

    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Revocation;
    use time::OffsetDateTime;

    fn state() -> GrantState {
        GrantState {
            expires_at: OffsetDateTime::UNIX_EPOCH,
            revoked: None,
            unverifiable: false,
        }
    }

    #[test]
    fn updates_reach_only_the_grants_sessions_and_registration_drops_out() {
        let registry = Registry::default();
        let mut a = registry.register(1, "a", "alice", false, state());
        let mut b = registry.register(2, "b", "bob", false, state());
        assert_eq!(registry.grant_ids(), vec![1, 2]);
        let revoked = GrantState {
            revoked: Some(Revocation {
                at: OffsetDateTime::UNIX_EPOCH,
                by: "bob".into(),
            }),
            ..state()
        };
        registry.update(1, &revoked);
        assert!(a.state.has_changed().unwrap());
        assert_eq!(*a.state.borrow_and_update(), revoked);
        assert!(!b.state.has_changed().unwrap());
        registry.update(1, &revoked);
        assert!(!a.state.has_changed().unwrap(), "same state wakes nobody");
        drop(a.registration);
        assert_eq!(registry.grant_ids(), vec![2]);
        registry.mark_all_unverifiable();
        assert!(b.state.borrow_and_update().unverifiable);
    }

    #[test]
    fn notices_reach_the_named_session_or_every_fail_closed_one() {
        let registry = Registry::default();
        let mut closed = registry.register(1, "closed", "alice", false, state());
        let mut open = registry.register(1, "open", "alice", true, state());
        registry.notify_fail_closed(Notice::StorageDegraded);
        assert_eq!(
            closed.notices.try_recv().ok(),
            Some(Notice::StorageDegraded)
        );
        assert!(open.notices.try_recv().is_err(), "fail-open sessions go on");
        registry.notify_session("open", Notice::EndRequested { by: "rev".into() });
        assert_eq!(
            open.notices.try_recv().ok(),
            Some(Notice::EndRequested { by: "rev".into() })
        );
        assert!(closed.notices.try_recv().is_err());
        assert_eq!(registry.count_for_user("alice"), 2);
        assert_eq!(registry.count_for_user("bob"), 0);
        let mut ids = registry.session_ids();
        ids.sort();
        assert_eq!(ids, vec!["closed".to_string(), "open".to_string()]);
    }
}
