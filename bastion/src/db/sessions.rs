//! The recording index: one row per session, written when it starts and when it ends, read by
//! `bastion recordings list`; plus what admins do to a session afterwards (legal hold, prune,
//! verification outcome) and end requests for live ones.
//!
//! Every change that must not race another process (a hold against a prune, two prunes) is a
//! single conditional `UPDATE`, so the database decides who wins.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::store::{Database, from_millis, millis, on_pool};
use super::{DbError, SessionEnd, SessionRow, SessionStart};

pub(super) const SESSION_COLUMNS: &str = "id, user_name, target, login, grant_id, command, interactive, client, \
                               recording, started_at, ended_at, end_reason, bytes, recording_complete, \
                               indexed_at, legal_hold, hold_reason, held_by, held_at, pruned_at, \
                               pruned_by, end_requested_at, end_requested_by, verify_status, verified_at, \
                               recorded, node";

/// The end reason of a session its daemon did not live to end (see `interrupt_open_sessions`).
pub const INTERRUPTED: &str = "interrupted";

/// What the last `recordings verify` found (the recorder's verdict, kept in the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyState {
    /// Every segment and the signed manifest are there and intact.
    Complete,
    /// Intact as far as it goes, but segments or the manifest are missing (e.g. a crash).
    Truncated,
    /// A segment or the manifest does not match its hash chain or signature.
    Tampered,
}

impl VerifyState {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyState::Complete => "complete",
            VerifyState::Truncated => "truncated",
            VerifyState::Tampered => "tampered",
        }
    }

    fn parse(text: &str) -> Option<VerifyState> {
        match text {
            "complete" => Some(VerifyState::Complete),
            "truncated" => Some(VerifyState::Truncated),
            "tampered" => Some(VerifyState::Tampered),
            _ => None,
        }
    }
}

impl fmt::Display for VerifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `Database::hold` or `Database::release` did: the row after the change, and whether the
/// session was held before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldOutcome {
    pub was_held: bool,
    pub row: SessionRow,
}

/// What `Database::request_end` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndRequestOutcome {
    /// The request is recorded; the daemon ends the session within its poll interval.
    Requested(SessionRow),
    /// Someone asked before; their request stands.
    AlreadyRequested(SessionRow),
    /// The session is not running any more.
    AlreadyEnded(SessionRow),
}

/// A live session an admin asked to end, for the daemon to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    pub session: String,
    pub by: String,
    pub at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRecord {
    id: String,
    user_name: String,
    target: String,
    login: String,
    grant_id: i64,
    command: Option<String>,
    interactive: bool,
    client: String,
    recording: String,
    started_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    bytes: Option<i64>,
    recording_complete: Option<bool>,
    indexed_at: Option<i64>,
    legal_hold: bool,
    hold_reason: Option<String>,
    held_by: Option<String>,
    held_at: Option<i64>,
    pruned_at: Option<i64>,
    pruned_by: Option<String>,
    end_requested_at: Option<i64>,
    end_requested_by: Option<String>,
    verify_status: Option<String>,
    verified_at: Option<i64>,
    recorded: bool,
    node: Option<String>,
}

impl Database {
    /// Records that a session started now (database clock).
    pub async fn session_started(&self, s: &SessionStart) -> Result<(), DbError> {
        let sql = self.sql(
            "INSERT INTO sessions (id, user_name, target, login, grant_id, command, interactive, \
             client, recording, recorded, node, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {now})",
        );
        on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(&s.id)
            .bind(&s.user)
            .bind(&s.target)
            .bind(&s.login)
            .bind(s.grant_id)
            .bind(&s.command)
            .bind(s.interactive)
            .bind(&s.client)
            .bind(&s.recording)
            .bind(s.recorded)
            .bind(&s.node)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Records that session `id` ended now. A second call keeps the first end; an unknown id is
    /// an error.
    pub async fn session_ended(&self, id: &str, end: &SessionEnd) -> Result<(), DbError> {
        let sql = self.sql(
            "UPDATE sessions SET ended_at = {now}, end_reason = $2, bytes = $3, \
             recording_complete = $4 WHERE id = $1 AND ended_at IS NULL",
        );
        let bytes = i64::try_from(end.bytes).unwrap_or(i64::MAX);
        let updated = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(&end.reason)
            .bind(bytes)
            .bind(end.recording_complete)
            .execute(pool)
            .await?
            .rows_affected());
        if updated == 0 && self.session(id).await?.is_none() {
            return Err(DbError::NoSuchSession(id.to_string()));
        }
        Ok(())
    }

    /// Every session, newest first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionRow>, DbError> {
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_at DESC, id DESC");
        let records: Vec<SessionRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(SessionRecord::into_row).collect()
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, DbError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let record: Option<SessionRecord> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?);
        record.map(SessionRecord::into_row).transpose()
    }
    /// Puts session `id` under legal hold. Holding a held session replaces reason and holder;
    /// a pruned session cannot be held (there is nothing left to keep).
    pub async fn hold(&self, id: &str, reason: &str, by: &str) -> Result<HoldOutcome, DbError> {
        let before = self.existing_session(id).await?;
        let sql = self.sql(
            "UPDATE sessions SET legal_hold = TRUE, hold_reason = $2, held_by = $3, \
             held_at = {now} WHERE id = $1 AND pruned_at IS NULL",
        );
        let updated = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(reason)
            .bind(by)
            .execute(pool)
            .await?
            .rows_affected());
        if updated == 0 {
            return Err(DbError::SessionPruned(id.to_string()));
        }
        Ok(HoldOutcome {
            was_held: before.legal_hold,
            row: self.existing_session(id).await?,
        })
    }

    /// Lifts the legal hold on session `id` (the audit log keeps who held it and why).
    pub async fn release(&self, id: &str) -> Result<HoldOutcome, DbError> {
        let before = self.existing_session(id).await?;
        let sql = "UPDATE sessions SET legal_hold = FALSE, hold_reason = NULL, held_by = NULL, \
                   held_at = NULL WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(HoldOutcome {
            was_held: before.legal_hold,
            row: self.existing_session(id).await?,
        })
    }

    /// Records that `by` asked for live session `id` to be ended; the daemon polls
    /// `pending_end_requests` and acts on it (woken at once on PostgreSQL).
    pub async fn request_end(&self, id: &str, by: &str) -> Result<EndRequestOutcome, DbError> {
        let sql = self.sql(
            "UPDATE sessions SET end_requested_at = {now}, end_requested_by = $2 \
             WHERE id = $1 AND ended_at IS NULL AND end_requested_at IS NULL",
        );
        let updated = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(by)
            .execute(pool)
            .await?
            .rows_affected());
        if updated == 1 {
            self.notify_sessions().await;
        }
        let row = self.existing_session(id).await?;
        Ok(if updated == 1 {
            EndRequestOutcome::Requested(row)
        } else if row.ended_at.is_some() {
            EndRequestOutcome::AlreadyEnded(row)
        } else {
            EndRequestOutcome::AlreadyRequested(row)
        })
    }

    /// Sessions that are still running (no end recorded) and that an admin asked to end,
    /// oldest request first.
    pub async fn pending_end_requests(&self) -> Result<Vec<EndRequest>, DbError> {
        let sql = "SELECT id, end_requested_by, end_requested_at FROM sessions \
                   WHERE ended_at IS NULL AND end_requested_at IS NOT NULL \
                   ORDER BY end_requested_at, id";
        let rows: Vec<(String, Option<String>, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter()
            .map(|(session, by, at)| {
                let at = from_millis(at).ok_or_else(|| DbError::Corrupt {
                    table: "sessions",
                    id: session.clone(),
                    reason: format!("end_requested_at out of range: {at}"),
                })?;
                Ok(EndRequest {
                    session,
                    by: by.unwrap_or_default(),
                    at,
                })
            })
            .collect()
    }

    /// Ended sessions whose end is more than `older_than` ago (database clock) and whose
    /// recording is not pruned yet, held ones included, oldest first.
    pub async fn prune_candidates(&self, older_than: Duration) -> Result<Vec<SessionRow>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE pruned_at IS NULL \
             AND ended_at IS NOT NULL AND ended_at < {{now}} - $1 ORDER BY ended_at, id"
        ));
        let records: Vec<SessionRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(millis(older_than))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(SessionRecord::into_row).collect()
    }

    /// Marks session `id` pruned by `by` and deletes its search text, if it still qualifies
    /// (ended more than `older_than` ago, not held, not pruned): false otherwise. The caller
    /// deletes the recording's objects next, and calls `unclaim_prune` if that fails. Claiming
    /// first means a hold placed at the same moment either wins (nothing is deleted) or fails.
    pub async fn claim_prune(
        &self,
        id: &str,
        by: &str,
        older_than: Duration,
    ) -> Result<bool, DbError> {
        let claim = self.sql(
            "UPDATE sessions SET pruned_at = {now}, pruned_by = $2 WHERE id = $1 \
             AND pruned_at IS NULL AND legal_hold = FALSE AND ended_at IS NOT NULL \
             AND ended_at < {now} - $3",
        );
        let forget = "DELETE FROM recording_text WHERE session_id = $1";
        let claimed = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(AssertSqlSafe(claim))
                .bind(id)
                .bind(by)
                .bind(millis(older_than))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if claimed {
                sqlx::query(forget).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            claimed
        });
        Ok(claimed)
    }

    /// Undoes `claim_prune` after the recording could not be deleted, so a later prune retries;
    /// the text is indexed again by the next `index_pending`.
    pub async fn unclaim_prune(&self, id: &str) -> Result<(), DbError> {
        let sql = "UPDATE sessions SET pruned_at = NULL, pruned_by = NULL, indexed_at = NULL \
                   WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Stores the outcome of verifying session `id`'s recording; false when there is no such
    /// session (a recording can be verified without an index row).
    pub async fn record_verification(&self, id: &str, state: VerifyState) -> Result<bool, DbError> {
        let sql =
            self.sql("UPDATE sessions SET verify_status = $2, verified_at = {now} WHERE id = $1");
        let updated = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(state.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated == 1)
    }

    /// Marks the sessions of `node` that have no end as ended now with reason `interrupted`
    /// and an incomplete recording, and returns them. Called by a daemon when it starts: any
    /// session of its own still open was cut off when the previous process died.
    pub async fn interrupt_open_sessions(&self, node: &str) -> Result<Vec<SessionRow>, DbError> {
        let sql = self.sql(&format!(
            "UPDATE sessions SET ended_at = {{now}}, end_reason = '{INTERRUPTED}', \
             recording_complete = FALSE WHERE node = $1 AND ended_at IS NULL \
             RETURNING {SESSION_COLUMNS}"
        ));
        let mut records: Vec<SessionRecord> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(node)
                .fetch_all(pool)
                .await?);
        records.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        records.into_iter().map(SessionRecord::into_row).collect()
    }

    /// Ended, recorded sessions whose recording is not indexed yet (and not pruned), oldest
    /// end first.
    pub async fn sessions_to_index(&self) -> Result<Vec<String>, DbError> {
        let sql = "SELECT id FROM sessions WHERE ended_at IS NOT NULL AND indexed_at IS NULL \
                   AND pruned_at IS NULL AND recorded ORDER BY ended_at, id";
        let ids: Vec<String> =
            on_pool!(self, |pool| sqlx::query_scalar(sql).fetch_all(pool).await?);
        Ok(ids)
    }

    async fn existing_session(&self, id: &str) -> Result<SessionRow, DbError> {
        self.session(id)
            .await?
            .ok_or_else(|| DbError::NoSuchSession(id.to_string()))
    }
}

impl SessionRecord {
    pub(super) fn into_row(self) -> Result<SessionRow, DbError> {
        let id = self.id;
        let corrupt = |reason: String| DbError::Corrupt {
            table: "sessions",
            id: id.clone(),
            reason,
        };
        let started_at = from_millis(self.started_at)
            .ok_or_else(|| corrupt(format!("started_at out of range: {}", self.started_at)))?;
        let time = |ms: Option<i64>, column: &str| match ms {
            Some(ms) => from_millis(ms)
                .map(Some)
                .ok_or_else(|| corrupt(format!("{column} out of range: {ms}"))),
            None => Ok(None),
        };
        let ended_at = time(self.ended_at, "ended_at")?;
        let indexed_at = time(self.indexed_at, "indexed_at")?;
        let held_at = time(self.held_at, "held_at")?;
        let pruned_at = time(self.pruned_at, "pruned_at")?;
        let end_requested_at = time(self.end_requested_at, "end_requested_at")?;
        let verified_at = time(self.verified_at, "verified_at")?;
        let verify_status = match self.verify_status.as_deref() {
            Some(text) => Some(
                VerifyState::parse(text)
                    .ok_or_else(|| corrupt(format!("unknown verify_status {text:?}")))?,
            ),
            None => None,
        };
        let bytes = match self.bytes {
            Some(n) => {
                Some(u64::try_from(n).map_err(|_| corrupt(format!("negative byte count {n}")))?)
            }
            None => None,
        };
        Ok(SessionRow {
            id,
            user: self.user_name,
            target: self.target,
            login: self.login,
            grant_id: self.grant_id,
            command: self.command,
            interactive: self.interactive,
            client: self.client,
            recording: self.recording,
            recorded: self.recorded,
            node: self.node,
            started_at,
            ended_at,
            end_reason: self.end_reason,
            bytes,
            recording_complete: self.recording_complete,
            indexed_at,
            legal_hold: self.legal_hold,
            hold_reason: self.hold_reason,
            held_by: self.held_by,
            held_at,
            pruned_at,
            pruned_by: self.pruned_by,
            end_requested_at,
            end_requested_by: self.end_requested_by,
            verify_status,
            verified_at,
        })
    }
}
