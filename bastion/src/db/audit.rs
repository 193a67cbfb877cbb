//! The database copy of the audit log: every node's events in one table (`audit_events`), so
//! any node can export them (`bastion audit export`).
//!
//! A row is the line the node wrote to its audit log file, kept whole, plus the few columns an
//! export filters on. Reading goes page by page in `(at, id)` order, so exporting a huge table
//! never holds more than one page in memory.

use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::DbError;
use super::store::{Database, from_millis, on_pool};

/// Rows per `INSERT`: five parameters each keeps a statement far below every database's
/// bind-parameter limit.
const INSERT_CHUNK: usize = 500;

/// The most rows one page may ask for.
pub const MAX_AUDIT_PAGE: u32 = 10_000;

/// An audit event to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// The event's `ts`.
    pub at: OffsetDateTime,
    /// Its name, e.g. `grant.created`.
    pub event: String,
    /// The user it names, if any.
    pub user: Option<String>,
    /// The target it names, if any.
    pub target: Option<String>,
    /// The whole JSON line as written to the audit log file, without its newline.
    pub json: String,
}

/// An audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Never reused; orders events recorded in the same millisecond.
    pub id: i64,
    pub at: OffsetDateTime,
    pub event: String,
    pub user: Option<String>,
    pub target: Option<String>,
    pub json: String,
}

/// Which events to read. `since` is inclusive, `until` exclusive; `user` and `target` match
/// the names an event carries (an event naming no user never matches a `user` filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub user: Option<String>,
    pub target: Option<String>,
}

/// Where a page ends: the next page starts after this event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    at_ms: i64,
    id: i64,
}

impl AuditCursor {
    /// The cursor as an opaque token for a client to send back (`1733150000000.42`).
    pub fn to_token(self) -> String {
        format!("{}.{}", self.at_ms, self.id)
    }

    /// A token made by [`AuditCursor::to_token`]; `None` if it is not one.
    pub fn from_token(token: &str) -> Option<AuditCursor> {
        let (at, id) = token.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(at) || !digits(id) {
            return None;
        }
        Some(AuditCursor {
            at_ms: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

impl AuditRecord {
    /// The cursor for the page after this event.
    pub fn cursor(&self) -> AuditCursor {
        AuditCursor {
            at_ms: unix_millis(self.at),
            id: self.id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: i64,
    event: String,
    user_name: Option<String>,
    target: Option<String>,
    event_json: String,
}

impl Database {
    /// Stores `events` in one transaction: all of them or, on error, none.
    pub async fn insert_audit_events(&self, events: &[NewAuditEvent]) -> Result<(), DbError> {
        if events.is_empty() {
            return Ok(());
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in events.chunks(INSERT_CHUNK) {
                let values = (0..chunk.len())
                    .map(|i| {
                        let p = i * 5;
                        format!(
                            "(${}, ${}, ${}, ${}, ${})",
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4,
                            p + 5
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO audit_events (at, event, user_name, target, event_json) \
                     VALUES {values}"
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for event in chunk {
                    query = query
                        .bind(unix_millis(event.at))
                        .bind(&event.event)
                        .bind(&event.user)
                        .bind(&event.target)
                        .bind(&event.json);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Up to `limit` events matching `filter`, in `(at, id)` order, starting after `after`
    /// (from the start when `None`). An empty page means there are no more.
    pub async fn audit_events_page(
        &self,
        filter: &AuditFilter,
        after: Option<AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, DbError> {
        let mut conditions = Vec::new();
        let mut next = 1;
        let mut placeholder = || {
            let p = format!("${next}");
            next += 1;
            p
        };
        if filter.since.is_some() {
            conditions.push(format!("at >= {}", placeholder()));
        }
        if filter.until.is_some() {
            conditions.push(format!("at < {}", placeholder()));
        }
        if filter.user.is_some() {
            conditions.push(format!("user_name = {}", placeholder()));
        }
        if filter.target.is_some() {
            conditions.push(format!("target = {}", placeholder()));
        }
        if after.is_some() {
            let (at, id) = (placeholder(), placeholder());
            conditions.push(format!("(at > {at} OR (at = {at} AND id > {id}))"));
        }
        let limit_param = placeholder();
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, event, user_name, target, event_json FROM audit_events \
             {filter_sql} ORDER BY at, id LIMIT {limit_param}"
        );
        let rows: Vec<AuditRow> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            if let Some(since) = filter.since {
                query = query.bind(unix_millis(since));
            }
            if let Some(until) = filter.until {
                query = query.bind(unix_millis(until));
            }
            if let Some(user) = &filter.user {
                query = query.bind(user);
            }
            if let Some(target) = &filter.target {
                query = query.bind(target);
            }
            if let Some(after) = after {
                query = query.bind(after.at_ms).bind(after.id);
            }
            query
                .bind(i64::from(limit.min(MAX_AUDIT_PAGE)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditRow::into_record).collect()
    }
}

impl AuditRow {
    pub(super) fn into_record(self) -> Result<AuditRecord, DbError> {
        let at = from_millis(self.at).ok_or_else(|| DbError::Corrupt {
            table: "audit_events",
            id: self.id.to_string(),
            reason: format!("at out of range: {}", self.at),
        })?;
        Ok(AuditRecord {
            id: self.id,
            at,
            event: self.event,
            user: self.user_name,
            target: self.target,
            json: self.event_json,
        })
    }
}

/// Epoch milliseconds, saturating far outside any audit timestamp's range.
fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(if at.unix_timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}
