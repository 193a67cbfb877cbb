//! The recording index: one row per session, written when it starts and when it ends, read by
//! `bastion recordings list`.

use sqlx::AssertSqlSafe;

use super::store::{Store, from_millis, on_pool};
use super::{SessionEnd, SessionRow, SessionStart, StoreError};

const SESSION_COLUMNS: &str = "id, user_name, target, login, grant_id, command, interactive, client, \
                               recording, started_at, ended_at, end_reason, bytes, recording_complete";

#[derive(sqlx::FromRow)]
struct SessionRecord {
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
}

impl Store {
    /// Records that a session started now (database clock).
    pub async fn session_started(&self, s: &SessionStart) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO sessions (id, user_name, target, login, grant_id, command, interactive, \
             client, recording, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {now})",
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
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Records that session `id` ended now. A second call keeps the first end; an unknown id is
    /// an error.
    pub async fn session_ended(&self, id: &str, end: &SessionEnd) -> Result<(), StoreError> {
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
            return Err(StoreError::NoSuchSession(id.to_string()));
        }
        Ok(())
    }

    /// Every session, newest first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_at DESC, id DESC");
        let records: Vec<SessionRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(SessionRecord::into_row).collect()
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let record: Option<SessionRecord> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?);
        record.map(SessionRecord::into_row).transpose()
    }
}

impl SessionRecord {
    fn into_row(self) -> Result<SessionRow, StoreError> {
        let id = self.id;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "sessions",
            id: id.clone(),
            reason,
        };
        let started_at = from_millis(self.started_at)
            .ok_or_else(|| corrupt(format!("started_at out of range: {}", self.started_at)))?;
        let ended_at = match self.ended_at {
            Some(ms) => Some(
                from_millis(ms).ok_or_else(|| corrupt(format!("ended_at out of range: {ms}")))?,
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
            started_at,
            ended_at,
            end_reason: self.end_reason,
            bytes,
            recording_complete: self.recording_complete,
        })
    }
}
