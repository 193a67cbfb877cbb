//! `Database`: the connection pool for SQLite or PostgreSQL and the grant queries.
//!
//! Both dialects run the same SQL text (sqlx accepts `$1` placeholders on SQLite too); only the
//! expression for the database clock differs. Queries are checked at run time, not compile time,
//! because no database exists when the crate is built.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use sqlx::AssertSqlSafe;

use super::decide::decide;
use super::{
    DbError, Decision, Grant, GrantId, GrantOrigin, GrantSource, GrantStatus, MAX_GRANT_SPAN,
    NewGrant, Review,
};
use crate::config::redact_url;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The CLI and the daemon share one SQLite file: wait for the other's write instead of failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The grant and session store. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Database {
    pub(super) pool: Pool,
}

#[derive(Debug, Clone)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has; the body is the same text
/// for both dialects but is type-checked once per database.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::db::store::Pool::Sqlite($pool) => $body,
            $crate::db::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(super) use on_pool;

pub(super) const GRANT_COLUMNS: &str = "id, user_name, target, logins, starts_at, expires_at, \
    approved_by, reason, created_at, revoked_at, revoked_by, commands, pty, origin, request_id, \
    review_required, reviewed_at, reviewed_by, review_comment";

/// Binds a grant's values in the order of `Database::insert_grant_sql`.
macro_rules! bind_grant {
    ($query:expr, $g:expr, $encoded:expr, $source:expr) => {
        $query
            .bind(&$g.user)
            .bind(&$g.target)
            .bind(&$encoded.logins)
            .bind($encoded.starts_in_ms)
            .bind($encoded.duration_ms)
            .bind(&$g.approved_by)
            .bind(&$g.reason)
            .bind(&$encoded.commands)
            .bind($g.pty)
            .bind($source.origin.code())
            .bind(&$source.request)
            .bind($source.review_required)
    };
}
pub(super) use bind_grant;

/// A grant's checked and encoded values, ready to bind.
pub(super) struct EncodedGrant {
    pub logins: String,
    pub commands: String,
    pub starts_in_ms: i64,
    pub duration_ms: i64,
}

impl EncodedGrant {
    /// Checks the window and encodes the lists; the same rules whoever creates the grant.
    pub(super) fn new(g: &NewGrant) -> Result<EncodedGrant, DbError> {
        if g.logins.is_empty() {
            return Err(DbError::InvalidGrant(
                "a grant must allow at least one login".into(),
            ));
        }
        let span = g.starts_in.checked_add(g.duration).unwrap_or(Duration::MAX);
        if span > MAX_GRANT_SPAN {
            return Err(DbError::InvalidGrant(format!(
                "a grant must end within {} from now",
                humantime::format_duration(MAX_GRANT_SPAN)
            )));
        }
        let duration_ms = millis(g.duration);
        if duration_ms == 0 {
            return Err(DbError::InvalidGrant(
                "a grant must last at least 1ms".into(),
            ));
        }
        Ok(EncodedGrant {
            logins: serde_json::to_string(&g.logins)
                .map_err(|err| DbError::InvalidGrant(format!("cannot encode logins: {err}")))?,
            commands: serde_json::to_string(&g.commands)
                .map_err(|err| DbError::InvalidGrant(format!("cannot encode commands: {err}")))?,
            starts_in_ms: millis(g.starts_in),
            duration_ms,
        })
    }
}

/// The status computed by the database from one reading of its clock (`clock.now_ms`).
const STATUS_SQL: &str = "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' \
                          WHEN clock.now_ms < starts_at THEN 'pending' \
                          WHEN clock.now_ms >= expires_at THEN 'expired' \
                          ELSE 'active' END";

#[derive(sqlx::FromRow)]
pub(super) struct GrantRecord {
    id: i64,
    user_name: String,
    target: String,
    logins: String,
    starts_at: i64,
    expires_at: i64,
    approved_by: String,
    reason: String,
    created_at: i64,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    commands: String,
    pty: bool,
    origin: String,
    request_id: Option<String>,
    review_required: bool,
    reviewed_at: Option<i64>,
    reviewed_by: Option<String>,
    review_comment: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StatedGrantRecord {
    #[sqlx(flatten)]
    grant: GrantRecord,
    status: String,
}

impl Database {
    /// Connects to `database_url` (`sqlite://PATH` or `postgres://...`) and applies pending
    /// migrations. A SQLite file and its directory are created when missing.
    pub async fn open(database_url: &str) -> Result<Database, DbError> {
        let shown = redact_url(database_url);
        let connect = |source| DbError::Connect {
            url: shown.clone(),
            source,
        };
        let migrate = |source| DbError::Migrate {
            url: shown.clone(),
            source,
        };
        if database_url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(database_url)
                .map_err(connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            create_parent_dir(&options)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(connect)?;
            SQLITE_MIGRATIONS.run(&pool).await.map_err(migrate)?;
            Ok(Database {
                pool: Pool::Sqlite(pool),
            })
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            let options = PgConnectOptions::from_str(database_url).map_err(connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(connect)?;
            POSTGRES_MIGRATIONS.run(&pool).await.map_err(migrate)?;
            Ok(Database {
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(DbError::UnsupportedUrl(shown))
        }
    }

    /// Closes the pool, waiting for connections to be returned (lets SQLite checkpoint its WAL).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// SQL expression for the database clock, in epoch milliseconds.
    fn now_sql(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Pool::Postgres(_) => "(extract(epoch from clock_timestamp()) * 1000)::bigint",
        }
    }

    /// `template` with `{now}` replaced by this dialect's clock expression.
    pub(super) fn sql(&self, template: &str) -> String {
        template.replace("{now}", self.now_sql())
    }

    /// The database clock, against which grant windows are judged.
    pub async fn now(&self) -> Result<OffsetDateTime, DbError> {
        let sql = self.sql("SELECT {now}");
        let ms: i64 = on_pool!(self, |pool| sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(pool)
            .await?);
        from_millis(ms).ok_or_else(|| DbError::Corrupt {
            table: "clock",
            id: String::new(),
            reason: format!("database clock out of range: {ms}"),
        })
    }

    /// Stores a grant made by an administrator (`bastion grant add`) whose window starts
    /// `starts_in` after the database's now.
    pub async fn add_grant(&self, g: NewGrant) -> Result<Grant, DbError> {
        self.add_grant_from(g, &GrantSource::admin()).await
    }

    /// Stores a grant whose window starts `starts_in` after the database's now, saying where
    /// it came from.
    pub async fn add_grant_from(
        &self,
        g: NewGrant,
        source: &GrantSource,
    ) -> Result<Grant, DbError> {
        let encoded = EncodedGrant::new(&g)?;
        let sql = self.insert_grant_sql();
        let record: GrantRecord = on_pool!(self, |pool| bind_grant!(
            sqlx::query_as(AssertSqlSafe(sql)),
            g,
            encoded,
            source
        )
        .fetch_one(pool)
        .await?);
        record.into_grant()
    }

    /// The `INSERT ... RETURNING` of a grant, bound by `bind_grant!`.
    pub(super) fn insert_grant_sql(&self) -> String {
        self.sql(&format!(
            "INSERT INTO grants (user_name, target, logins, starts_at, expires_at, approved_by, \
             reason, created_at, commands, pty, origin, request_id, review_required, \
             start_reported_at) \
             SELECT $1, $2, $3, clock.now_ms + $4, clock.now_ms + $4 + $5, $6, $7, clock.now_ms, \
             $8, $9, $10, $11, $12, CASE WHEN $4 = 0 THEN clock.now_ms ELSE NULL END \
             FROM (SELECT {{now}} AS now_ms) AS clock \
             RETURNING {GRANT_COLUMNS}"
        ))
    }

    pub async fn grant(&self, id: GrantId) -> Result<Option<Grant>, DbError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1");
        let record: Option<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?);
        record.map(GrantRecord::into_grant).transpose()
    }

    /// All grants, oldest first; with `active_only`, those whose window contains the database's
    /// now and that are not revoked.
    pub async fn list_grants(&self, active_only: bool) -> Result<Vec<Grant>, DbError> {
        let filter = if active_only {
            "WHERE revoked_at IS NULL AND starts_at <= clock.now_ms AND clock.now_ms < expires_at"
        } else {
            ""
        };
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             SELECT {GRANT_COLUMNS} FROM grants CROSS JOIN clock {filter} ORDER BY id"
        ));
        let records: Vec<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(GrantRecord::into_grant).collect()
    }

    /// Revokes grant `id` by `by`. `None` if there is no such grant; revoking a revoked grant
    /// changes nothing and returns it with its first revocation.
    pub async fn revoke_grant(&self, id: GrantId, by: &str) -> Result<Option<Grant>, DbError> {
        let sql = self.sql(&format!(
            "UPDATE grants SET \
             revoked_by = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_by END, \
             revoked_at = COALESCE(revoked_at, {{now}}) \
             WHERE id = $1 RETURNING {GRANT_COLUMNS}"
        ));
        let record: Option<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(by)
            .fetch_optional(pool)
            .await?);
        if record.is_some() {
            self.notify_sessions().await;
        }
        record.map(GrantRecord::into_grant).transpose()
    }

    /// Decides whether `user` may reach `target` as `login` (`None`: the grant's default) now.
    pub async fn authorize(
        &self,
        user: &str,
        target: &str,
        login: Option<&str>,
    ) -> Result<Decision, DbError> {
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             SELECT {GRANT_COLUMNS}, {STATUS_SQL} AS status \
             FROM grants CROSS JOIN clock WHERE user_name = $1 AND target = $2 ORDER BY id"
        ));
        let records: Vec<StatedGrantRecord> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(user)
                .bind(target)
                .fetch_all(pool)
                .await?);
        let grants = records
            .into_iter()
            .map(|record| {
                let status = parse_status(&record.status, record.grant.id)?;
                Ok((record.grant.into_grant()?, status))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(decide(grants, login))
    }

    /// The grants with these ids (missing ids are skipped), for re-checking live sessions.
    pub async fn grants_by_id(&self, ids: &[GrantId]) -> Result<Vec<Grant>, DbError> {
        let mut grants = Vec::with_capacity(ids.len());
        // Chunks keep the statement under every database's bind-parameter limit.
        for chunk in ids.chunks(500) {
            let placeholders = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE id IN ({placeholders}) ORDER BY id"
            );
            let records: Vec<GrantRecord> = on_pool!(self, |pool| {
                let mut query = sqlx::query_as(AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            for record in records {
                grants.push(record.into_grant()?);
            }
        }
        Ok(grants)
    }

    /// Grants that have expired (not revoked) and were not yet reported, marking them reported.
    /// Each expiry is returned to exactly one caller, even with several daemons polling.
    pub async fn take_newly_expired(&self) -> Result<Vec<Grant>, DbError> {
        let sql = self.sql(&format!(
            "WITH clock AS (SELECT {{now}} AS now_ms) \
             UPDATE grants SET expiry_reported_at = (SELECT now_ms FROM clock) \
             WHERE expiry_reported_at IS NULL AND revoked_at IS NULL \
             AND expires_at <= (SELECT now_ms FROM clock) \
             RETURNING {GRANT_COLUMNS}"
        ));
        let records: Vec<GrantRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        let mut grants = records
            .into_iter()
            .map(GrantRecord::into_grant)
            .collect::<Result<Vec<_>, _>>()?;
        grants.sort_by_key(|g| g.id);
        Ok(grants)
    }
}

impl GrantRecord {
    pub(super) fn into_grant(self) -> Result<Grant, DbError> {
        let id = self.id;
        let corrupt = |reason: String| DbError::Corrupt {
            table: "grants",
            id: id.to_string(),
            reason,
        };
        let time = |ms: i64, column: &str| {
            from_millis(ms).ok_or_else(|| corrupt(format!("{column} out of range: {ms}")))
        };
        let logins: Vec<String> = serde_json::from_str(&self.logins)
            .map_err(|err| corrupt(format!("logins is not a JSON list of names: {err}")))?;
        let commands: Vec<String> = serde_json::from_str(&self.commands)
            .map_err(|err| corrupt(format!("commands is not a JSON list of patterns: {err}")))?;
        Ok(Grant {
            id,
            user: self.user_name,
            target: self.target,
            logins,
            starts_at: time(self.starts_at, "starts_at")?,
            expires_at: time(self.expires_at, "expires_at")?,
            approved_by: self.approved_by,
            reason: self.reason,
            created_at: time(self.created_at, "created_at")?,
            revoked_at: self
                .revoked_at
                .map(|ms| time(ms, "revoked_at"))
                .transpose()?,
            revoked_by: self.revoked_by,
            commands,
            pty: self.pty,
            origin: GrantOrigin::from_code(&self.origin)
                .ok_or_else(|| corrupt(format!("unknown origin {:?}", self.origin)))?,
            request: self.request_id,
            review_required: self.review_required,
            reviewed: match (self.reviewed_at, self.reviewed_by) {
                (Some(at), Some(by)) => Some(Review {
                    at: time(at, "reviewed_at")?,
                    by,
                    comment: self.review_comment.unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }
}

fn parse_status(text: &str, id: GrantId) -> Result<GrantStatus, DbError> {
    match text {
        "pending" => Ok(GrantStatus::Pending),
        "active" => Ok(GrantStatus::Active),
        "expired" => Ok(GrantStatus::Expired),
        "revoked" => Ok(GrantStatus::Revoked),
        other => Err(DbError::Corrupt {
            table: "grants",
            id: id.to_string(),
            reason: format!("unknown status {other:?}"),
        }),
    }
}

fn create_parent_dir(options: &SqliteConnectOptions) -> Result<(), DbError> {
    let file = options.get_filename();
    let name = file.to_string_lossy();
    // In-memory databases have pseudo names (":memory:", "file:sqlx-in-memory-N").
    if name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    match file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            dir: dir.display().to_string(),
            source,
        }),
        None => Ok(()),
    }
}

/// Durations are bounded by `MAX_GRANT_SPAN` before they get here, so this never saturates.
pub(super) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
