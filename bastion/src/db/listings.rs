//! Bounded listings for the HTTP API: requests in any state (`GET /v1/requests?state=`),
//! recent grants and recent sessions, newest first. Each reads at most `limit` rows, so a
//! long history never makes one call hold it all.

use sqlx::AssertSqlSafe;

use super::requests::{REQUEST_COLUMNS, RequestRecord};
use super::sessions::{SESSION_COLUMNS, SessionRecord};
use super::store::{Database, GRANT_COLUMNS, GrantRecord, on_pool};
use super::{AccessRequest, DbError, Grant, RequestState, SessionRow};

/// The most rows one listing reads.
pub const MAX_LISTING: u32 = 10_000;

impl Database {
    /// The newest `limit` requests in `state` (every state with `None`), newest first.
    pub async fn recent_requests(
        &self,
        state: Option<RequestState>,
        limit: u32,
    ) -> Result<Vec<AccessRequest>, DbError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE ($1 IS NULL OR state = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let records: Vec<RequestRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(state.map(RequestState::code))
            .bind(i64::from(limit.min(MAX_LISTING)))
            .fetch_all(pool)
            .await?);
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let approvals = self.approvals(&ids).await?;
        records
            .into_iter()
            .map(|record| {
                let mine = approvals
                    .iter()
                    .filter(|(id, _)| *id == record.id)
                    .map(|(_, a)| a.clone())
                    .collect();
                record.into_request(mine)
            })
            .collect()
    }

    /// The newest `limit` grants (with `active_only`, those usable now), newest first.
    pub async fn recent_grants(
        &self,
        active_only: bool,
        limit: u32,
    ) -> Result<Vec<Grant>, DbError> {
        let filter = if active_only {
            "WHERE revoked_at IS NULL AND starts_at <= clock.now_ms AND clock.now_ms < expires_at"
        } else {
            ""
        };
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             SELECT {GRANT_COLUMNS} FROM grants CROSS JOIN clock {filter} ORDER BY id DESC LIMIT $1"
        ));
        let records: Vec<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(i64::from(limit.min(MAX_LISTING)))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(GrantRecord::into_grant).collect()
    }

    /// The newest `limit` sessions (with `live_only`, those with no end yet), newest first.
    pub async fn recent_sessions(
        &self,
        live_only: bool,
        limit: u32,
    ) -> Result<Vec<SessionRow>, DbError> {
        let filter = if live_only {
            "WHERE ended_at IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions {filter} ORDER BY started_at DESC, id DESC LIMIT $1"
        );
        let records: Vec<SessionRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(i64::from(limit.min(MAX_LISTING)))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(SessionRecord::into_row).collect()
    }
}
