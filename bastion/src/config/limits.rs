//! `login_grace` and the `[limits]` table: what a stranger, a connection and a user may hold
//! of the daemon, so that nobody can lock everybody else out by opening connections.

use std::time::Duration;

use super::ConfigError;
use super::check::Checker;
use super::raw::RawLimits;

/// How much of the daemon connections may hold. Every number is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections that have not authenticated yet, in total (`unauthenticated`).
    pub unauthenticated: usize,
    /// Connections that have not authenticated yet, from one source address.
    pub unauthenticated_per_source: usize,
    /// Connections in total, authenticated or not (`connections`).
    pub connections: usize,
    /// Live sessions one user may have on this node (`sessions_per_user`).
    pub sessions_per_user: usize,
    /// An authenticated connection with no session open for this long is closed (`idle`).
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // OpenSSH's MaxStartups starts refusing at 10 and refuses all at 100; a bastion
            // sees more legitimate parallel logins (automation), hence a larger total, but a
            // single address gets a small share of it.
            unauthenticated: 256,
            unauthenticated_per_source: 32,
            connections: 4096,
            sessions_per_user: 128,
            idle: Duration::from_secs(5 * 60),
        }
    }
}

pub(super) fn validate(check: &Checker<'_>, raw: RawLimits) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let count = |key: &str, value: Option<i64>, default: usize| -> Result<usize, ConfigError> {
        match value {
            None => Ok(default),
            Some(n) if n >= 1 => usize::try_from(n)
                .map_err(|_| check.err(format!("limits.{key}"), format!("{n} is too large"))),
            Some(n) => Err(check.err(
                format!("limits.{key}"),
                format!("must be at least 1 (got {n})"),
            )),
        }
    };
    let limits = Limits {
        unauthenticated: count(
            "unauthenticated",
            raw.unauthenticated,
            defaults.unauthenticated,
        )?,
        unauthenticated_per_source: count(
            "unauthenticated_per_source",
            raw.unauthenticated_per_source,
            defaults.unauthenticated_per_source,
        )?,
        connections: count("connections", raw.connections, defaults.connections)?,
        sessions_per_user: count(
            "sessions_per_user",
            raw.sessions_per_user,
            defaults.sessions_per_user,
        )?,
        idle: match raw.idle.as_deref() {
            Some(text) => check.duration("limits.idle", text)?,
            None => defaults.idle,
        },
    };
    if limits.unauthenticated_per_source > limits.unauthenticated {
        return Err(check.err(
            "limits.unauthenticated_per_source",
            format!(
                "{} is more than limits.unauthenticated ({})",
                limits.unauthenticated_per_source, limits.unauthenticated
            ),
        ));
    }
    if limits.unauthenticated > limits.connections {
        return Err(check.err(
            "limits.unauthenticated",
            format!(
                "{} is more than limits.connections ({})",
                limits.unauthenticated, limits.connections
            ),
        ));
    }
    Ok(limits)
}
