//! The grant watcher: re-checks the grants of live sessions so a revocation (made by any
//! process that shares the database) ends them promptly, and reports grants that expired.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::registry::Registry;
use super::{GrantState, Revocation};
use crate::audit::{AuditEvent, AuditLog};
use crate::grants::{Grant, Store};

/// How long live sessions may go on while their grants cannot be re-checked. Past this the
/// bastion fails closed: it can no longer tell whether a grant was revoked.
const UNVERIFIABLE_AFTER: Duration = Duration::from_secs(10);

impl From<&Grant> for GrantState {
    fn from(grant: &Grant) -> GrantState {
        GrantState {
            expires_at: grant.expires_at,
            revoked: grant.revoked_at.map(|at| Revocation {
                at,
                by: grant.revoked_by.clone().unwrap_or_else(|| "unknown".into()),
            }),
            unverifiable: false,
        }
    }
}

/// Polls every `poll` until `shutdown`.
pub async fn run(
    store: Store,
    registry: Registry,
    audit: AuditLog,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match check(&store, &registry, &audit).await {
            Ok(()) => failing_since = None,
            Err(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                tracing::error!(error = %e, "cannot re-check grants of live sessions");
                if since.elapsed() >= UNVERIFIABLE_AFTER {
                    registry.mark_all_unverifiable();
                }
            }
        }
    }
}

async fn check(
    store: &Store,
    registry: &Registry,
    audit: &AuditLog,
) -> Result<(), crate::grants::StoreError> {
    let ids = registry.grant_ids();
    if !ids.is_empty() {
        for grant in store.grants_by_id(&ids).await? {
            registry.update(grant.id, &GrantState::from(&grant));
        }
    }
    for grant in store.take_newly_expired().await? {
        audit.record(AuditEvent::GrantExpired {
            grant: grant.id,
            user: grant.user.clone(),
            target: grant.target.clone(),
        });
    }
    Ok(())
}
