//! Live sessions: one proxied channel from a user to a target, recorded, supervised, killed.
//!
//! A session starts once a grant allowed it and the target accepted the bastion's login.
//! It joins two legs, seen only through the traits of [`leg`]: this module knows nothing of
//! SSH or of any other protocol. From then on three parts cooperate:
//! - [`input`]: the user's bytes, window changes and EOF, recorded and passed to the target
//!   (driven by the user's connection, so backpressure reaches it);
//! - the [`pump`]: the target's output, recorded first, then passed to the user;
//! - the [`supervisor`]: warns before expiry, ends the session at expiry, revocation, shutdown
//!   or a recording failure, and writes the session's end to the database and audit log.
//!
//! [`facts`] are the session's facts, built once. The [`registry`] lets the [`watch`]er reach
//! every live session of a grant.

pub mod facts;
pub mod input;
pub mod leg;
mod pump;
pub mod registry;
pub mod supervisor;
pub mod watch;

use std::fmt;

use time::OffsetDateTime;

/// The grant facts a live session depends on, refreshed by the grant watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantState {
    pub expires_at: OffsetDateTime,
    pub revoked: Option<Revocation>,
    /// The grant could not be re-checked for too long: fail closed.
    pub unverifiable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub at: OffsetDateTime,
    pub by: String,
}

/// Why a session ended; `code()` is what the database and `recordings list` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The target's command or shell exited with this status.
    Exit(u32),
    /// The target's command was killed by a signal.
    Signal(String),
    /// The target closed the channel without an exit status.
    TargetClosed,
    /// The user closed the channel or the connection.
    ClientClosed,
    Expired,
    Revoked {
        by: String,
    },
    /// The grant could not be re-checked (database unreachable).
    GrantUnverifiable,
    /// The recording could not be kept safe, and the target is not fail-open.
    RecordingFailed(String),
    /// The bastion is shutting down.
    Shutdown,
    /// Someone with access to the admin CLI (or the replay UI) ended it.
    Terminated {
        by: String,
    },
}

impl EndReason {
    pub fn code(&self) -> &'static str {
        match self {
            EndReason::Exit(_) => "exit",
            EndReason::Signal(_) => "signal",
            EndReason::TargetClosed => "target_closed",
            EndReason::ClientClosed => "client_closed",
            EndReason::Expired => "expired",
            EndReason::Revoked { .. } => "revoked",
            EndReason::GrantUnverifiable => "grant_unverifiable",
            EndReason::RecordingFailed(_) => "recording_failed",
            EndReason::Shutdown => "shutdown",
            EndReason::Terminated { .. } => "terminated",
        }
    }

    /// Whether the bastion ended the session (rather than either peer).
    pub fn is_forced(&self) -> bool {
        matches!(
            self,
            EndReason::Expired
                | EndReason::Revoked { .. }
                | EndReason::GrantUnverifiable
                | EndReason::RecordingFailed(_)
                | EndReason::Shutdown
                | EndReason::Terminated { .. }
        )
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Exit(code) => write!(f, "exit {code}"),
            EndReason::Signal(sig) => write!(f, "killed by signal {sig}"),
            EndReason::TargetClosed => write!(f, "target closed the session"),
            EndReason::ClientClosed => write!(f, "client closed the session"),
            EndReason::Expired => write!(f, "grant expired"),
            EndReason::Revoked { by } => write!(f, "grant revoked by {by}"),
            EndReason::GrantUnverifiable => write!(f, "grant could not be re-checked"),
            EndReason::RecordingFailed(why) => write!(f, "recording failed: {why}"),
            EndReason::Shutdown => write!(f, "bastion shutting down"),
            EndReason::Terminated { by } => write!(f, "ended by {by}"),
        }
    }
}
