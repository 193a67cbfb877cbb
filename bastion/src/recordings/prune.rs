//! Retention: deleting recordings whose session ended long ago from the store and the search
//! index, never one under legal hold.
//!
//! The session row stays, marked `pruned_at`/`pruned_by`: who reached which target, when and why
//! the session ended is small and remains part of the access record; only the recording and its
//! searchable text go. Each recording is first claimed in the database (a conditional update
//! that a concurrent `hold` or `prune` cannot also win), then its objects are deleted; if that
//! fails the claim is undone so the next prune retries it.

use std::time::Duration;

use recorder::RecordingStore;

use crate::audit::{AuditEvent, AuditLog};
use crate::db::{Database, DbError, SessionRow};

/// What `prune` is asked to do.
#[derive(Debug, Clone)]
pub struct PruneRequest {
    /// Recordings whose session ended longer ago than this go.
    pub older_than: Duration,
    /// Who runs it, for the database and the audit log.
    pub by: String,
    /// Report what would happen, change nothing.
    pub dry_run: bool,
}

/// What happened to one old recording.
#[derive(Debug)]
pub enum PruneOutcome {
    /// Deleted: `objects` objects removed from the store.
    Pruned { session: SessionRow, objects: u64 },
    /// `dry_run`: would have been deleted.
    WouldPrune { session: SessionRow },
    /// Kept because it is under legal hold (also in a dry run).
    Held { session: SessionRow },
    /// Held or pruned by someone else between listing and claiming: left alone.
    Raced { session: SessionRow },
    /// The store refused to delete it; the claim was undone and a later prune retries.
    Failed { session: SessionRow, error: String },
}

/// Prunes every recording older than `request.older_than`, oldest first.
pub async fn prune(
    store: &Database,
    recordings: &RecordingStore,
    audit: &AuditLog,
    request: &PruneRequest,
) -> Result<Vec<PruneOutcome>, DbError> {
    let candidates = store.prune_candidates(request.older_than).await?;
    let mut outcomes = Vec::with_capacity(candidates.len());
    for session in candidates {
        if session.legal_hold {
            outcomes.push(PruneOutcome::Held { session });
            continue;
        }
        if request.dry_run {
            outcomes.push(PruneOutcome::WouldPrune { session });
            continue;
        }
        if !store
            .claim_prune(&session.id, &request.by, request.older_than)
            .await?
        {
            outcomes.push(PruneOutcome::Raced { session });
            continue;
        }
        match recordings.delete(&session.id).await {
            Ok(objects) => {
                audit.record(AuditEvent::RecordingPruned {
                    session: session.id.clone(),
                    objects,
                    older_than: age_text(request.older_than),
                    by: request.by.clone(),
                });
                outcomes.push(PruneOutcome::Pruned { session, objects });
            }
            Err(err) => {
                store.unclaim_prune(&session.id).await?;
                outcomes.push(PruneOutcome::Failed {
                    session,
                    error: err.to_string(),
                });
            }
        }
    }
    Ok(outcomes)
}

/// A retention age as written on the command line: `90d`, `36h`, `90m`, `45s`.
pub fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0 => format!("{}ms", age.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_typed() {
        let cases = [
            (90 * 86_400, "90d"),
            (36 * 3600, "36h"),
            (90 * 60, "90m"),
            (45, "45s"),
        ];
        for (secs, text) in cases {
            assert_eq!(age_text(Duration::from_secs(secs)), text);
        }
    }
}
