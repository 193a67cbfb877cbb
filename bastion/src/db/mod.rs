//! The database: time-boxed grants, the session index, the recordings' search index, legal
//! holds and end requests, kept in SQLite or PostgreSQL (`Database`).
//!
//! A grant lets one user reach one target as one of a few logins during the window
//! `[starts_at, expires_at)`. Every "is it now inside the window" question is answered by the
//! database with the database's clock, so the daemon, the CLI and several daemons sharing a
//! PostgreSQL server agree on it. A denial is a value (`Decision::Deny`), not an error: errors
//! are reserved for the store itself failing.

mod audit;
mod changes;
mod decide;
mod decisions;
mod listings;
mod nodes;
mod notifications;
mod requests;
mod search;
mod sessions;
mod store;
mod tokens;

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

pub use audit::{AuditCursor, AuditFilter, AuditRecord, MAX_AUDIT_PAGE, NewAuditEvent};
pub use changes::{Changes, SESSIONS_CHANNEL};
pub use decisions::{ApprovalOutcome, Closing};
pub use listings::MAX_LISTING;
pub use nodes::{
    Node, NodeKey, NodeLockError, NodeStart, SqliteLock, StaleSession, TargetHostKey, host_name,
    lock_sqlite,
};
pub use notifications::MAX_NOTIFY_PAGE;
pub use requests::{
    AccessRequest, Approval, Filed, Filing, NewRequest, RequestKind, RequestState, is_request_id,
};
pub use search::{SearchMatch, TextKind, TextLine};
pub use sessions::{EndRequest, EndRequestOutcome, HoldOutcome, INTERRUPTED, VerifyState};
pub use store::Database;
pub use tokens::{
    ApiToken, CreatedToken, MAX_TOKEN_LIFETIME, TOKEN_PREFIX, TokenRefusal, TokenRevocation,
    is_token_id, token_hash,
};

/// A grant's id: stable, never reused, shown to admins and written to the audit log.
pub type GrantId = i64;

/// The longest `starts_in + duration` a grant may have; beyond it timestamps stop being useful.
pub const MAX_GRANT_SPAN: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: GrantId,
    pub user: String,
    pub target: String,
    /// Logins this grant allows; the first is the default.
    pub logins: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub approved_by: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    /// Glob patterns a remote command must match whole (`access::commands`); empty admits any
    /// command and an interactive shell.
    pub commands: Vec<String>,
    /// False: no channel this grant admits may have a PTY.
    pub pty: bool,
    /// Who made it: an administrator, an approved request, an auto-approval, break glass.
    pub origin: GrantOrigin,
    /// The access request it came from (`r-7f3k`), linking request, approvals, grant and
    /// sessions in the audit trail.
    pub request: Option<String>,
    /// A break-glass grant waits for an approver's review.
    pub review_required: bool,
    pub reviewed: Option<Review>,
}

/// Where a grant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantOrigin {
    /// `bastion grant add`: the administrator's path, outside every policy.
    Admin,
    /// A request approved by enough approvers.
    Request,
    /// A request a policy's `auto_approve` rule approved at once.
    Auto,
    /// `break-glass`: live at once, reviewed afterwards.
    BreakGlass,
}

impl GrantOrigin {
    /// The value stored and written to the audit log.
    pub fn code(self) -> &'static str {
        match self {
            GrantOrigin::Admin => "admin",
            GrantOrigin::Request => "request",
            GrantOrigin::Auto => "auto",
            GrantOrigin::BreakGlass => "break_glass",
        }
    }

    pub fn from_code(code: &str) -> Option<GrantOrigin> {
        [
            GrantOrigin::Admin,
            GrantOrigin::Request,
            GrantOrigin::Auto,
            GrantOrigin::BreakGlass,
        ]
        .into_iter()
        .find(|o| o.code() == code)
    }
}

/// How a grant came to be, stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSource {
    pub origin: GrantOrigin,
    pub request: Option<String>,
    pub review_required: bool,
}

impl GrantSource {
    pub fn admin() -> GrantSource {
        GrantSource {
            origin: GrantOrigin::Admin,
            request: None,
            review_required: false,
        }
    }
}

/// An approver's acknowledgement of a break-glass grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: String,
    pub comment: String,
}

/// Where a grant stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// Its window has not begun.
    Pending,
    Active,
    Expired,
    Revoked,
}

impl Grant {
    /// The status at `now`, which should come from `Database::now` (the database clock).
    pub fn status_at(&self, now: OffsetDateTime) -> GrantStatus {
        if self.revoked_at.is_some() {
            GrantStatus::Revoked
        } else if now < self.starts_at {
            GrantStatus::Pending
        } else if now >= self.expires_at {
            GrantStatus::Expired
        } else {
            GrantStatus::Active
        }
    }
}

impl fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Active => "active",
            GrantStatus::Expired => "expired",
            GrantStatus::Revoked => "revoked",
        })
    }
}

/// A grant to create. Its window starts `starts_in` after the database's now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub user: String,
    pub target: String,
    pub logins: Vec<String>,
    pub starts_in: Duration,
    pub duration: Duration,
    pub approved_by: String,
    pub reason: String,
    /// Allowed command patterns; empty admits any command.
    pub commands: Vec<String>,
    /// Whether a PTY is allowed.
    pub pty: bool,
}

/// The answer to "may this user reach this target as this login, now?".
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per channel open and moved once; a box would only add an allocation"
)]
pub enum Decision {
    /// Allowed by `grant`, as `login` (the requested one, or the grant's default).
    Allow {
        grant: Grant,
        login: String,
    },
    Deny(Denial),
}

/// Why access was refused; `Display` gives one short clause for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    NoGrant,
    NotYetStarted {
        starts_at: OffsetDateTime,
    },
    Expired {
        expired_at: OffsetDateTime,
    },
    Revoked {
        revoked_at: OffsetDateTime,
    },
    /// An active grant exists, but none of the active grants allow `login`.
    LoginNotAllowed {
        login: String,
        allowed: Vec<String>,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NoGrant => f.write_str("you have no grant for this target"),
            Denial::NotYetStarted { starts_at } => {
                write!(f, "your grant starts at {}", human_time(*starts_at))
            }
            Denial::Expired { expired_at } => {
                write!(f, "your grant expired at {}", human_time(*expired_at))
            }
            Denial::Revoked { revoked_at } => {
                write!(f, "your grant was revoked at {}", human_time(*revoked_at))
            }
            Denial::LoginNotAllowed { login, allowed } => write!(
                f,
                "your grant does not allow login {login:?} (allowed: {})",
                allowed.join(", ")
            ),
        }
    }
}

/// `2026-11-24 10:00:00 UTC`: how times are shown to people.
pub fn human_time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// A session as it starts, for the recording index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant_id: GrantId,
    /// The remote command; `None` for a shell.
    pub command: Option<String>,
    pub interactive: bool,
    /// The client's address.
    pub client: String,
    /// Where the recording is stored (its id or URL in the recording store); empty when the
    /// session is not recorded.
    pub recording: String,
    /// False when the target has `record = false`.
    pub recorded: bool,
    /// The daemon's `node_id`.
    pub node: String,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub reason: String,
    pub bytes: u64,
    pub recording_complete: bool,
}

/// A row of the recording index; the `end` fields are `None` while the session runs (a daemon
/// that died before recording the end fills them in with `interrupted` when it starts again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant_id: GrantId,
    pub command: Option<String>,
    pub interactive: bool,
    pub client: String,
    /// Where the recording is stored; empty when `recorded` is false.
    pub recording: String,
    /// False when the target had `record = false`: there is no recording.
    pub recorded: bool,
    /// The node that ran the session (`None` for rows older than the column).
    pub node: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub end_reason: Option<String>,
    pub bytes: Option<u64>,
    pub recording_complete: Option<bool>,
    /// When the recording's text was indexed for search; `None` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub indexed_at: Option<OffsetDateTime>,
    /// Under legal hold: never pruned.
    pub legal_hold: bool,
    pub hold_reason: Option<String>,
    pub held_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub held_at: Option<OffsetDateTime>,
    /// When the recording was deleted by `recordings prune`; the row itself stays.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pruned_at: Option<OffsetDateTime>,
    pub pruned_by: Option<String>,
    /// An admin asked for the session to be ended (`bastion sessions end`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_requested_at: Option<OffsetDateTime>,
    pub end_requested_by: Option<String>,
    /// Outcome of the last `recordings verify`.
    pub verify_status: Option<VerifyState>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database url {0:?} (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    #[error("cannot open database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create directory {dir} for database: {source}")]
    CreateDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    #[error("corrupt {table} row {id}: {reason}")]
    Corrupt {
        table: &'static str,
        id: String,
        reason: String,
    },
    #[error("no session {0:?}")]
    NoSuchSession(String),
    #[error("the recording of session {0:?} has been pruned")]
    SessionPruned(String),
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_window_includes_its_start_and_excludes_its_end() {
        let starts_at = datetime!(2026-11-24 10:00 UTC);
        let expires_at = datetime!(2026-11-24 11:00 UTC);
        let mut grant = Grant {
            id: 1,
            user: "alice".into(),
            target: "db-1".into(),
            logins: vec!["app".into()],
            starts_at,
            expires_at,
            approved_by: "carol".into(),
            reason: "incident 7".into(),
            created_at: starts_at,
            revoked_at: None,
            revoked_by: None,
            commands: Vec::new(),
            pty: true,
            origin: GrantOrigin::Admin,
            request: None,
            review_required: false,
            reviewed: None,
        };
        let ms = time::Duration::milliseconds(1);
        assert_eq!(grant.status_at(starts_at - ms), GrantStatus::Pending);
        assert_eq!(grant.status_at(starts_at), GrantStatus::Active);
        assert_eq!(grant.status_at(expires_at - ms), GrantStatus::Active);
        assert_eq!(grant.status_at(expires_at), GrantStatus::Expired);
        grant.revoked_at = Some(starts_at);
        assert_eq!(grant.status_at(starts_at), GrantStatus::Revoked);
    }

    #[test]
    fn denials_read_as_one_clause() {
        let at = datetime!(2026-11-24 10:00 +02:00);
        assert_eq!(
            Denial::Expired { expired_at: at }.to_string(),
            "your grant expired at 2026-11-24 08:00:00 UTC"
        );
        assert_eq!(
            Denial::LoginNotAllowed {
                login: "root".into(),
                allowed: vec!["app".into(), "deploy".into()]
            }
            .to_string(),
            "your grant does not allow login \"root\" (allowed: app, deploy)"
        );
        assert_eq!(
            Denial::NoGrant.to_string(),
            "you have no grant for this target"
        );
    }
}
