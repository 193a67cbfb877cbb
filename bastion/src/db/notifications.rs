//! What the webhook notifier reads and writes: the recent audit events it may post, and the
//! claims (`notification_claims`) that make each event posted by one node only.
//!
//! Every face and every node writes its audit events to `audit_events`, so a notifier reading
//! that table sees every request and decision, wherever it was made. Before posting an event a
//! node inserts a claim for it; the insert that loses the race inserts nothing, and that node
//! leaves the event to the winner.

use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::audit::AuditRow;
use super::store::{Database, millis, on_pool};
use super::{AuditRecord, DbError};

/// The events a notifier asks for at most per poll.
pub const MAX_NOTIFY_PAGE: u32 = 500;

impl Database {
    /// Audit events named in `events`, recorded at or after `since`, that no node has claimed
    /// yet, oldest first (`(at, id)` order), at most `limit` (capped at [`MAX_NOTIFY_PAGE`]).
    pub async fn unclaimed_audit_events(
        &self,
        events: &[&str],
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, DbError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let names = (0..events.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let limit_param = events.len() + 2;
        let sql = format!(
            "SELECT e.id, e.at, e.event, e.user_name, e.target, e.event_json \
             FROM audit_events e \
             WHERE e.at >= $1 AND e.event IN ({names}) \
             AND NOT EXISTS (SELECT 1 FROM notification_claims c WHERE c.event_id = e.id) \
             ORDER BY e.at, e.id LIMIT ${limit_param}"
        );
        let since_ms = i64::try_from(since.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let rows: Vec<AuditRow> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(since_ms);
            for event in events {
                query = query.bind(*event);
            }
            query
                .bind(i64::from(limit.min(MAX_NOTIFY_PAGE)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditRow::into_record).collect()
    }

    /// Claims audit event `event_id` for `node`: true when this call made the claim, false
    /// when some node (this one included) had claimed it before.
    pub async fn claim_notification(&self, event_id: i64, node: &str) -> Result<bool, DbError> {
        let sql = self.sql(
            "INSERT INTO notification_claims (event_id, node_id, claimed_at) \
             VALUES ($1, $2, {now}) ON CONFLICT (event_id) DO NOTHING",
        );
        let inserted = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(event_id)
            .bind(node)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(inserted == 1)
    }

    /// Deletes claims made more than `older_than` ago (database clock); returns how many. A
    /// claim only matters while its event is recent enough for a notifier to read.
    pub async fn forget_notification_claims(
        &self,
        older_than: std::time::Duration,
    ) -> Result<u64, DbError> {
        let sql = self.sql("DELETE FROM notification_claims WHERE claimed_at < {now} - $1");
        let deleted = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(millis(older_than))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted)
    }
}
