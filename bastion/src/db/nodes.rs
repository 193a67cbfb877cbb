//! The nodes sharing one database. Each daemon registers its `node_id`, host, pid and
//! recording-signing public key when it starts and says it is alive every `stale_after / 4`;
//! the keys of every node (old ones kept after a rotation) let any node verify any recording,
//! and the open sessions of a node that has gone silent are "stale". Target host keys learned
//! on first use live here too, so the first contact of one node binds all of them.
//!
//! SQLite stays single-node: `lock_sqlite` makes a second daemon on the same file refuse to
//! start instead of marking the first one's sessions interrupted.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;

use super::store::{Database, from_millis, millis, on_pool};
use super::{DbError, SessionRow};

/// What a daemon says about itself when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStart {
    pub node_id: String,
    /// The recording-signing public key, 64 hex digits (`recorder::VerifyingKey::to_hex`).
    pub signing_key: Option<String>,
    pub host: String,
    pub pid: u32,
}

/// A registered node, with how long it has been silent on the database clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub node_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    pub host: String,
    pub pid: u32,
    pub silent_for: Duration,
}

/// A recording-signing public key a node has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKey {
    pub node_id: String,
    /// 64 hex digits.
    pub key: String,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

/// An open session whose node has been silent longer than `stale_after` (or never registered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleSession {
    pub session: SessionRow,
    /// When its node last said it was alive; `None` when the node never registered.
    pub last_seen: Option<OffsetDateTime>,
    pub silent_for: Option<Duration>,
}

/// A target host key trusted on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHostKey {
    pub target: String,
    pub address: String,
    /// `ALGORITHM BASE64`, no comment.
    pub host_key: String,
    pub learned_at: OffsetDateTime,
    pub learned_by: String,
}

#[derive(sqlx::FromRow)]
struct NodeRecord {
    node_id: String,
    started_at: i64,
    last_seen: i64,
    host: String,
    pid: i64,
    silent_ms: i64,
}

#[derive(sqlx::FromRow)]
struct HostKeyRecord {
    target: String,
    address: String,
    host_key: String,
    learned_at: i64,
    learned_by: String,
}

const NODE_SQL: &str = "SELECT node_id, started_at, last_seen, host, pid, \
                        {now} - last_seen AS silent_ms FROM bastion_nodes";

impl Database {
    /// Registers the node (or refreshes its row) and its signing key; returns the row as it
    /// was before, so a daemon can tell that another live process has the same `node_id`.
    pub async fn register_node(&self, start: &NodeStart) -> Result<Option<Node>, DbError> {
        let previous = self.node(&start.node_id).await?;
        let upsert = self.sql(
            "INSERT INTO bastion_nodes (node_id, started_at, last_seen, host, pid) \
             VALUES ($1, {now}, {now}, $2, $3) ON CONFLICT (node_id) DO UPDATE SET \
             started_at = excluded.started_at, last_seen = excluded.last_seen, \
             host = excluded.host, pid = excluded.pid",
        );
        let key = self.sql(
            "INSERT INTO node_signing_keys (node_id, signing_key, first_seen, last_seen) \
             VALUES ($1, $2, {now}, {now}) ON CONFLICT (node_id, signing_key) DO UPDATE SET \
             last_seen = excluded.last_seen",
        );
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(AssertSqlSafe(upsert))
                .bind(&start.node_id)
                .bind(&start.host)
                .bind(i64::from(start.pid))
                .execute(&mut *tx)
                .await?;
            if let Some(signing_key) = &start.signing_key {
                sqlx::query(AssertSqlSafe(key))
                    .bind(&start.node_id)
                    .bind(signing_key.to_ascii_lowercase())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(previous)
    }

    /// Says node `node_id` is alive now; false when it is not registered.
    pub async fn node_heartbeat(&self, node_id: &str) -> Result<bool, DbError> {
        let sql = self.sql("UPDATE bastion_nodes SET last_seen = {now} WHERE node_id = $1");
        let updated = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(node_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated == 1)
    }

    pub async fn node(&self, node_id: &str) -> Result<Option<Node>, DbError> {
        let sql = self.sql(&format!("{NODE_SQL} WHERE node_id = $1"));
        let record: Option<NodeRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(node_id)
            .fetch_optional(pool)
            .await?);
        record.map(NodeRecord::into_node).transpose()
    }

    /// Every registered node, by id.
    pub async fn nodes(&self) -> Result<Vec<Node>, DbError> {
        let sql = self.sql(&format!("{NODE_SQL} ORDER BY node_id"));
        let records: Vec<NodeRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?);
        records.into_iter().map(NodeRecord::into_node).collect()
    }

    /// Every signing key any node registered, by node and age.
    pub async fn node_signing_keys(&self) -> Result<Vec<NodeKey>, DbError> {
        let sql = "SELECT node_id, signing_key, first_seen, last_seen FROM node_signing_keys \
                   ORDER BY node_id, first_seen, signing_key";
        let rows: Vec<(String, String, i64, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter()
            .map(|(node_id, key, first_seen, last_seen)| {
                let time = |ms: i64, column: &str| {
                    from_millis(ms).ok_or_else(|| DbError::Corrupt {
                        table: "node_signing_keys",
                        id: node_id.clone(),
                        reason: format!("{column} out of range: {ms}"),
                    })
                };
                Ok(NodeKey {
                    first_seen: time(first_seen, "first_seen")?,
                    last_seen: time(last_seen, "last_seen")?,
                    node_id,
                    key,
                })
            })
            .collect()
    }

    /// Open sessions whose node has not said it is alive for longer than `stale_after`, or
    /// never registered, oldest first.
    pub async fn stale_sessions(
        &self,
        stale_after: Duration,
    ) -> Result<Vec<StaleSession>, DbError> {
        let sql = self.sql(
            "WITH clock AS (SELECT {now} AS now_ms) \
             SELECT s.id, n.last_seen, clock.now_ms - n.last_seen AS silent_ms \
             FROM sessions s CROSS JOIN clock \
             LEFT JOIN bastion_nodes n ON n.node_id = s.node \
             WHERE s.ended_at IS NULL \
             AND (n.last_seen IS NULL OR n.last_seen < clock.now_ms - $1) \
             ORDER BY s.started_at, s.id",
        );
        let rows: Vec<(String, Option<i64>, Option<i64>)> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
                .bind(millis(stale_after))
                .fetch_all(pool)
                .await?);
        let mut stale = Vec::with_capacity(rows.len());
        for (id, last_seen, silent_ms) in rows {
            // Ended between the two reads: not stale any more.
            let Some(session) = self.session(&id).await? else {
                continue;
            };
            let last_seen = match last_seen {
                Some(ms) => Some(from_millis(ms).ok_or_else(|| DbError::Corrupt {
                    table: "bastion_nodes",
                    id: session.node.clone().unwrap_or_default(),
                    reason: format!("last_seen out of range: {ms}"),
                })?),
                None => None,
            };
            stale.push(StaleSession {
                session,
                last_seen,
                silent_for: silent_ms.map(positive_millis),
            });
        }
        Ok(stale)
    }

    /// The host key trusted on first use for `target`, if any node learned one.
    pub async fn target_host_key(&self, target: &str) -> Result<Option<TargetHostKey>, DbError> {
        let sql = "SELECT target, address, host_key, learned_at, learned_by \
                   FROM target_host_keys WHERE target = $1";
        let record: Option<HostKeyRecord> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(target)
            .fetch_optional(pool)
            .await?);
        record.map(HostKeyRecord::into_key).transpose()
    }

    /// Trusts `host_key` for `target` unless a key is already stored; returns the stored key
    /// and whether it is the one just learned. Two nodes racing on a first contact both get
    /// the one key the database kept.
    pub async fn learn_target_host_key(
        &self,
        target: &str,
        address: &str,
        host_key: &str,
        node_id: &str,
    ) -> Result<(TargetHostKey, bool), DbError> {
        let sql = self.sql(
            "INSERT INTO target_host_keys (target, address, host_key, learned_at, learned_by) \
             VALUES ($1, $2, $3, {now}, $4) ON CONFLICT (target) DO NOTHING",
        );
        let inserted = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql))
            .bind(target)
            .bind(address)
            .bind(host_key)
            .bind(node_id)
            .execute(pool)
            .await?
            .rows_affected())
            == 1;
        let stored = self
            .target_host_key(target)
            .await?
            .ok_or_else(|| DbError::Corrupt {
                table: "target_host_keys",
                id: target.to_string(),
                reason: "the key stored a moment ago is gone".to_string(),
            })?;
        Ok((stored, inserted))
    }
}

impl NodeRecord {
    fn into_node(self) -> Result<Node, DbError> {
        let id = self.node_id.clone();
        let corrupt = |reason: String| DbError::Corrupt {
            table: "bastion_nodes",
            id: id.clone(),
            reason,
        };
        let time = |ms: i64, column: &str| {
            from_millis(ms).ok_or_else(|| corrupt(format!("{column} out of range: {ms}")))
        };
        Ok(Node {
            started_at: time(self.started_at, "started_at")?,
            last_seen: time(self.last_seen, "last_seen")?,
            pid: u32::try_from(self.pid).map_err(|_| corrupt(format!("pid {}", self.pid)))?,
            node_id: self.node_id,
            host: self.host,
            silent_for: positive_millis(self.silent_ms),
        })
    }
}

impl HostKeyRecord {
    fn into_key(self) -> Result<TargetHostKey, DbError> {
        Ok(TargetHostKey {
            learned_at: from_millis(self.learned_at).ok_or_else(|| DbError::Corrupt {
                table: "target_host_keys",
                id: self.target.clone(),
                reason: format!("learned_at out of range: {}", self.learned_at),
            })?,
            target: self.target,
            address: self.address,
            host_key: self.host_key,
            learned_by: self.learned_by,
        })
    }
}

/// This machine's host name, as `hostname` prints it; empty when it cannot be read.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into a buffer this function owns.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A clock difference; a node's clock being ahead reads as "just now".
fn positive_millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The exclusive lock a daemon holds on its SQLite database for as long as it runs.
#[derive(Debug)]
pub struct SqliteLock {
    // Closing the descriptor releases the lock: it lives as long as this value.
    _file: std::fs::File,
    pub path: PathBuf,
}

/// Why a daemon may not use the SQLite database.
#[derive(Debug, thiserror::Error)]
pub enum NodeLockError {
    #[error(
        "another bastion daemon is using the SQLite database {database}; SQLite is single-node: \
         use PostgreSQL (database_url = \"postgres://...\") to run several nodes"
    )]
    Held { database: String },
    #[error("cannot lock the SQLite database with {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid database url: {0}")]
    Url(#[source] sqlx::Error),
}

/// On a SQLite database, takes an exclusive lock on `<database file>.lock` (created 0600)
/// without waiting; `Ok(None)` for PostgreSQL and in-memory databases. The admin CLI does not
/// call this: it runs beside the daemon.
pub fn lock_sqlite(database_url: &str) -> Result<Option<SqliteLock>, NodeLockError> {
    if !database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(database_url).map_err(NodeLockError::Url)?;
    let database = options.get_filename().to_path_buf();
    let name = database.to_string_lossy();
    if name == ":memory:" || name.starts_with("file:") {
        return Ok(None);
    }
    let mut path = database.clone().into_os_string();
    path.push(".lock");
    let path = PathBuf::from(path);
    let io = |source| NodeLockError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.kind() == std::io::ErrorKind::WouldBlock {
            NodeLockError::Held {
                database: database.display().to_string(),
            }
        } else {
            io(err)
        });
    }
    Ok(Some(SqliteLock { _file: file, path }))
}
