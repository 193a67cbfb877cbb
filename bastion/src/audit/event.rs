//! The events of the audit trail: what happened, with who, what, when and from where. Each
//! serializes as one JSON object tagged with its `event` name; the names and fields are a
//! contract for log shippers and `bastion audit export`.

use serde::Serialize;
use time::OffsetDateTime;

use crate::db::GrantId;

/// Something that happened, for the audit trail. Serialized with its `event` name and fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum AuditEvent {
    /// A user proved possession of one of their keys.
    #[serde(rename = "auth.success")]
    AuthSuccess {
        user: String,
        /// The key's SHA256 fingerprint (`SHA256:...`).
        key: String,
        client: String,
    },
    /// One failed authentication. From a network peer, record it through
    /// [`AuditLog::auth_failure`], which writes repeats from one source as one line.
    #[serde(rename = "auth.failure")]
    AuthFailure {
        user: String,
        client: String,
        reason: String,
    },
    /// The failures from one source after its first within [`FAILURE_WINDOW`], counted instead
    /// of written one by one. Written only by `AuditLog` (its strings are already capped).
    #[serde(rename = "auth.failure")]
    AuthFailuresRepeated {
        /// The first user name among the repeats, so readers of `user` find one.
        user: String,
        /// The source: an IPv4 address or an IPv6 `/64` (ports and host bits are ignored).
        client: String,
        /// The last repeat's reason.
        reason: String,
        /// How many failures this line stands for.
        repeated: u64,
        /// Distinct user names among the repeats, at most [`MAX_USERS_PER_SOURCE`].
        users: Vec<String>,
        /// More distinct user names were tried than `users` lists.
        users_truncated: bool,
        /// When the source's first failure (written in full) happened.
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
        /// When the last counted failure happened.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    #[serde(rename = "grant.created")]
    GrantCreated {
        grant: GrantId,
        user: String,
        target: String,
        logins: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        approved_by: String,
        reason: String,
        /// Allowed command patterns; empty: any command.
        commands: Vec<String>,
        /// Whether a terminal is allowed.
        pty: bool,
    },
    #[serde(rename = "grant.revoked")]
    GrantRevoked {
        grant: GrantId,
        /// Whose grant, on which target: so a search by user or target finds the revocation.
        user: String,
        target: String,
        by: String,
    },
    #[serde(rename = "grant.expired")]
    GrantExpired {
        grant: GrantId,
        user: String,
        target: String,
    },
    #[serde(rename = "access.denied")]
    AccessDenied {
        user: String,
        target: String,
        /// The login asked for; `None` when the client asked for the default one.
        login: Option<String>,
        reason: String,
        client: String,
    },
    /// A channel asked a grant for more than its scope admits (a PTY, a shell, a command not
    /// on its allow-list); `rule` is the line the user saw.
    #[serde(rename = "command.refused")]
    CommandRefused {
        user: String,
        target: String,
        login: String,
        grant: GrantId,
        /// The command as the client sent it; `None` for an interactive shell.
        command: Option<String>,
        /// Whether the channel had a PTY.
        pty: bool,
        rule: String,
        client: String,
    },
    #[serde(rename = "session.start")]
    SessionStart {
        session: String,
        user: String,
        target: String,
        login: String,
        grant: GrantId,
        client: String,
        interactive: bool,
        /// The remote command; `None` for a shell.
        command: Option<String>,
        /// False when the target has `record = false`: nothing of the session is kept.
        recorded: bool,
    },
    #[serde(rename = "session.end")]
    SessionEnd {
        session: String,
        user: String,
        target: String,
        reason: String,
        bytes: u64,
        recording_complete: bool,
    },
    /// An admin asked for a live session to be ended (`bastion sessions end`).
    #[serde(rename = "session.end_requested")]
    SessionEndRequested { session: String, by: String },
    /// `bastion recordings verify` checked a recording.
    #[serde(rename = "recording.verified")]
    RecordingVerified {
        session: String,
        /// complete, truncated or tampered.
        status: String,
        segments_ok: u32,
        first_bad: Option<u32>,
        signed: bool,
        by: String,
    },
    /// A recording was deleted from the store and the search index by `recordings prune`.
    #[serde(rename = "recording.pruned")]
    RecordingPruned {
        session: String,
        /// Objects deleted from the store.
        objects: u64,
        older_than: String,
        by: String,
    },
    #[serde(rename = "recording.hold")]
    RecordingHold {
        session: String,
        reason: String,
        by: String,
    },
    #[serde(rename = "recording.release")]
    RecordingRelease { session: String, by: String },
}
