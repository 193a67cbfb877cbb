//! The session watcher: what live sessions must learn from outside their own connection.
//! Every `grant_poll`, and at once when the database says something changed (PostgreSQL
//! `LISTEN/NOTIFY`: a revocation, an extension decided, an end request, made on any node), it
//! re-checks the grants of live sessions (a revocation made by any process sharing the
//! database ends them), reports grants that expired, passes on end requests made with
//! `bastion sessions end`, and watches the recording spool: over its limit, sessions on
//! fail-closed targets are warned and then ended.

use std::time::Duration;

use recorder::RecordingStore;

use super::registry::{Notice, Registry};
use super::supervisor::SessionContext;
use super::{GrantState, Revocation};
use crate::access::{Access, AccessError};
use crate::db::{Changes, Grant};

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

/// Whether the recording spool is over its limit: new sessions on fail-closed targets are
/// refused and running ones are ended after a grace period.
pub fn storage_degraded(recordings: &RecordingStore, spool_max_bytes: u64) -> bool {
    recordings.spool_bytes() > spool_max_bytes
}

/// Polls every `grant_poll`, and whenever another node says something changed, until
/// `ctx.shutdown`.
pub async fn run(
    ctx: SessionContext,
    access: Access,
    recordings: RecordingStore,
    grant_poll: Duration,
    spool_max_bytes: u64,
) {
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut degraded = false;
    let mut ticker = tokio::time::interval(grant_poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = access.db().changes().await;
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            _ = next_change(&mut changes) => {}
        }
        match check(&access, &ctx.registry).await {
            Ok(()) => failing_since = None,
            Err(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                tracing::error!(error = %e, "cannot re-check grants of live sessions");
                if since.elapsed() >= UNVERIFIABLE_AFTER {
                    ctx.registry.mark_all_unverifiable();
                }
            }
        }
        let now_degraded = storage_degraded(&recordings, spool_max_bytes);
        if now_degraded != degraded {
            degraded = now_degraded;
            let spool = recordings.spool_bytes();
            if degraded {
                tracing::error!(
                    spool,
                    limit = spool_max_bytes,
                    "recording spool over its limit: fail-closed sessions will end"
                );
                ctx.registry.notify_fail_closed(Notice::StorageDegraded);
            } else {
                tracing::info!(spool, "recording spool back under its limit");
                ctx.registry.notify_fail_closed(Notice::StorageRecovered);
            }
        }
    }
}

/// The next change another node announced; never, without a listener (SQLite).
async fn next_change(changes: &mut Option<Changes>) {
    match changes {
        Some(listening) => {
            if listening.next().await.is_none() {
                // The listener is gone for good: polling alone from here on.
                *changes = None;
            }
        }
        None => std::future::pending().await,
    }
}

async fn check(access: &Access, registry: &Registry) -> Result<(), AccessError> {
    let store = access.db();
    let ids = registry.grant_ids();
    if !ids.is_empty() {
        for grant in store.grants_by_id(&ids).await? {
            registry.update(grant.id, &GrantState::from(&grant));
        }
        for request in store.pending_end_requests().await? {
            registry.notify_session(&request.session, Notice::EndRequested { by: request.by });
        }
    }
    access.record_expired().await?;
    Ok(())
}
