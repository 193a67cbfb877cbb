//! The live sessions, by grant: how the grant watcher reaches the sessions a grant allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::GrantState;
use crate::grants::GrantId;

#[derive(Default)]
struct Entries {
    next: u64,
    by_key: HashMap<u64, (GrantId, watch::Sender<GrantState>)>,
}

/// Every live session's grant id and the channel its supervisor watches.
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

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // operation is a single insert/remove/iterate), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session of `grant`; its supervisor watches the returned receiver.
    pub fn register(
        &self,
        grant: GrantId,
        state: GrantState,
    ) -> (Registration, watch::Receiver<GrantState>) {
        let (tx, rx) = watch::channel(state);
        let mut entries = self.lock();
        entries.next += 1;
        let key = entries.next;
        entries.by_key.insert(key, (grant, tx));
        drop(entries);
        (
            Registration {
                registry: self.clone(),
                key,
            },
            rx,
        )
    }

    /// The distinct grants that live sessions depend on.
    pub fn grant_ids(&self) -> Vec<GrantId> {
        let mut ids: Vec<GrantId> = self.lock().by_key.values().map(|(g, _)| *g).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Tells every session of `grant` its new state (only sessions whose state changed wake).
    pub fn update(&self, grant: GrantId, state: &GrantState) {
        for (g, tx) in self.lock().by_key.values() {
            if *g == grant {
                tx.send_if_modified(|current| {
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
        for (_, tx) in self.lock().by_key.values() {
            tx.send_if_modified(|current| !std::mem::replace(&mut current.unverifiable, true));
        }
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
        let (reg_a, mut rx_a) = registry.register(1, state());
        let (_reg_b, mut rx_b) = registry.register(2, state());
        assert_eq!(registry.grant_ids(), vec![1, 2]);
        let revoked = GrantState {
            revoked: Some(Revocation {
                at: OffsetDateTime::UNIX_EPOCH,
                by: "bob".into(),
            }),
            ..state()
        };
        registry.update(1, &revoked);
        assert!(rx_a.has_changed().unwrap());
        assert_eq!(*rx_a.borrow_and_update(), revoked);
        assert!(!rx_b.has_changed().unwrap());
        registry.update(1, &revoked);
        assert!(!rx_a.has_changed().unwrap(), "same state wakes nobody");
        drop(reg_a);
        assert_eq!(registry.grant_ids(), vec![2]);
        registry.mark_all_unverifiable();
        assert!(rx_b.borrow_and_update().unverifiable);
    }
}
