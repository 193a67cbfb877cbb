//! The events of the audit trail: what happened, with who, what, when and from where. Each
//! serializes as one JSON object tagged with its `event` name; the names and fields are a
//! contract for log shippers and `bastion audit export`.

use serde::Serialize;
use time::OffsetDateTime;

use crate::db::{GrantId, GrantOrigin, RequestKind};

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
        /// `admin` for `bastion grant add` (outside every policy), else how a request became
        /// this grant.
        origin: GrantOrigin,
        /// The request it came from.
        request: Option<String>,
    },
    /// A grant's window opened (at once for most grants; later with `--starts-in`).
    #[serde(rename = "grant.started")]
    GrantStarted {
        grant: GrantId,
        request: Option<String>,
        user: String,
        target: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// An approved extension moved a grant's end; live sessions go on.
    #[serde(rename = "grant.extended")]
    GrantExtended {
        grant: GrantId,
        request: String,
        user: String,
        target: String,
        #[serde(with = "time::serde::rfc3339")]
        previous_expires_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        /// The approvers, or the auto-approval rule.
        approved_by: String,
    },
    /// Access taken in an emergency: live at once, waiting for an approver's review.
    #[serde(rename = "break_glass")]
    BreakGlass {
        grant: GrantId,
        request: String,
        user: String,
        target: String,
        logins: Vec<String>,
        policy: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        client: String,
    },
    /// An approver acknowledged a break-glass grant.
    #[serde(rename = "grant.reviewed")]
    GrantReviewed {
        grant: GrantId,
        request: Option<String>,
        user: String,
        target: String,
        by: String,
        comment: String,
    },
    /// A user asked for access, an extension or break glass.
    #[serde(rename = "request.filed")]
    RequestFiled {
        request: String,
        kind: RequestKind,
        user: String,
        target: String,
        logins: Vec<String>,
        /// How long the grant would last (for an extension: the time added).
        duration: String,
        starts_in: String,
        reason: String,
        policy: String,
        approvals_needed: u32,
        /// Who may approve it.
        approvers: Vec<String>,
        /// For an extension: the grant.
        grant: Option<GrantId>,
        client: String,
    },
    /// A request a rule refused before it was filed; `rule` is the line the user saw.
    #[serde(rename = "request.refused")]
    RequestRefused {
        kind: RequestKind,
        user: String,
        target: String,
        rule: String,
        client: String,
    },
    /// One approver said yes.
    #[serde(rename = "request.approval")]
    RequestApproval {
        request: String,
        user: String,
        target: String,
        by: String,
        comment: Option<String>,
        /// Distinct approvals so far, and how many are needed.
        approvals: u32,
        needed: u32,
        client: String,
    },
    /// Enough approvers said yes.
    #[serde(rename = "request.approved")]
    RequestApproved {
        request: String,
        user: String,
        target: String,
        approved_by: String,
        grant: GrantId,
    },
    /// A policy's `auto_approve` rule approved the request at once.
    #[serde(rename = "request.auto_approved")]
    RequestAutoApproved {
        request: String,
        user: String,
        target: String,
        policy: String,
        /// The rule, e.g. `databases.auto_approve[0]`.
        rule: String,
        grant: GrantId,
        client: String,
    },
    #[serde(rename = "request.denied")]
    RequestDenied {
        request: String,
        user: String,
        target: String,
        by: String,
        reason: String,
        client: String,
    },
    #[serde(rename = "request.cancelled")]
    RequestCancelled {
        request: String,
        user: String,
        target: String,
        client: String,
    },
    /// Undecided until its TTL passed, or an approved extension whose grant had ended.
    #[serde(rename = "request.expired")]
    RequestExpired {
        request: String,
        user: String,
        target: String,
        reason: String,
    },
    #[serde(rename = "grant.revoked")]
    GrantRevoked {
        grant: GrantId,
        /// Whose grant, on which target: so a search by user or target finds the revocation.
        user: String,
        target: String,
        by: String,
        /// Where the revocation came from, when not the admin command (`api token ci from ...`).
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// An API token was created (`bastion token create`); the token itself is never logged.
    #[serde(rename = "token.created")]
    TokenCreated {
        token: String,
        name: String,
        user: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        by: String,
    },
    #[serde(rename = "token.revoked")]
    TokenRevoked {
        token: String,
        name: String,
        user: String,
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
        /// The request the grant came from.
        request: Option<String>,
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
    SessionEndRequested {
        session: String,
        by: String,
        /// Where the request came from, when not the admin command (`api token ci from ...`).
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
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
