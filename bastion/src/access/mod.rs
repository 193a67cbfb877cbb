//! The grant service: every rule for creating, revoking and deciding on grants, and the audit
//! events they leave.
//!
//! The admin CLI, the SSH commands and the HTTP API all go through [`Access`], so a rule holds
//! whichever door a request comes in by. An `Access` cannot exist without an open audit log:
//! the log is opened before any grant is written, so a grant never exists unaudited because the
//! log was unwritable. A denial is a value ([`Verdict::Deny`]); errors are for a rule refusing a
//! request an admin made ([`AccessError::Rejected`]) or the database failing.
//!
//! A grant may also narrow what it admits (issue 9): an allow-list of commands and no PTY.
//! [`Access::check_command`] holds every channel to that, after [`Access::decide`].

pub mod commands;
mod glass;
pub mod policy;
mod requests;
mod rules;

use std::sync::Arc;

pub use commands::{CommandRefusal, check};
pub use glass::BreakGlassAsk;
pub use policy::{RefusalKind, Refused};
pub use requests::{Ask, Decided, Decider, ExtendAsk};
pub use rules::{
    Field, GrantRequest, MAX_COMMAND_PATTERN_CHARS, MAX_COMMAND_PATTERNS, Rejection, check_name,
    check_reason,
};

use crate::audit::{AuditEvent, AuditLog};
use crate::config::{Config, Target};
use crate::db::{Database, DbError, Decision, Grant, GrantId};

/// The grant service over one configuration, database and audit log; cheap to clone.
#[derive(Debug, Clone)]
pub struct Access {
    config: Arc<Config>,
    db: Database,
    audit: AuditLog,
}

/// Why a grant operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A rule refused the request; the message names the rule.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("no grant with id {0}")]
    NoSuchGrant(GrantId),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// What `revoke_grant` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// This call revoked the grant (and wrote `grant.revoked`).
    Revoked(Grant),
    /// The grant was revoked before, by this caller or another (a concurrent revoke that won
    /// the race included); nothing was written. `revoked_at`/`revoked_by` say by whom.
    AlreadyRevoked(Grant),
}

/// The connect-time answer to "may this user reach this target as this login, now?".
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per channel open and moved once; a box would only add an allocation"
)]
pub enum Verdict<'a> {
    Allow(Allowed<'a>),
    /// Refused; already written to the audit log as `access.denied`.
    Deny(Denied),
}

/// Access granted: the configured target, the grant that allows it, the login to use (the one
/// asked for, or the grant's default).
#[derive(Debug, Clone, PartialEq)]
pub struct Allowed<'a> {
    pub target: &'a Target,
    pub grant: Grant,
    pub login: String,
}

/// Access refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// One clause for the user, e.g. `no such target` or `your grant expired at ...`; values the
    /// client chose appear in it quoted and escaped.
    pub reason: String,
}

impl Access {
    /// The service over `config`, `db` and an already opened `audit` log.
    pub fn new(config: Arc<Config>, db: Database, audit: AuditLog) -> Access {
        Access { config, db, audit }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Checks `request` against every rule ([`GrantRequest::validate`]), stores the grant on
    /// the database clock and writes `grant.created`. Returns the grant as stored.
    pub async fn create_grant(&self, request: GrantRequest) -> Result<Grant, AccessError> {
        let new = request.validate(&self.config)?;
        let grant = self.db.add_grant(new).await?;
        self.record_created(&grant);
        Ok(grant)
    }

    /// Revokes grant `id` on behalf of `by` (a name: not blank, no control characters). Writes
    /// `grant.revoked` only for the revocation that took effect: revoking a revoked grant, or
    /// losing a race to a concurrent revoke, answers [`Revocation::AlreadyRevoked`].
    pub async fn revoke_grant(&self, id: GrantId, by: &str) -> Result<Revocation, AccessError> {
        self.revoke_grant_from(id, by, None).await
    }

    /// [`Access::revoke_grant`] from a face that says where the caller is (`client`).
    pub async fn revoke_grant_from(
        &self,
        id: GrantId,
        by: &str,
        client: Option<&str>,
    ) -> Result<Revocation, AccessError> {
        check_name(Field::By, by)?;
        let before = self
            .db
            .grant(id)
            .await?
            .ok_or(AccessError::NoSuchGrant(id))?;
        if before.revoked_at.is_some() {
            return Ok(Revocation::AlreadyRevoked(before));
        }
        let after = self
            .db
            .revoke_grant(id, by)
            .await?
            .ok_or(AccessError::NoSuchGrant(id))?;
        // The store keeps the first revocation; if another revoker got there between our read
        // and our write, the row names them. Two revokers with the same name racing are
        // indistinguishable here, and both are audited.
        if after.revoked_by.as_deref() != Some(by) {
            return Ok(Revocation::AlreadyRevoked(after));
        }
        self.audit.record(AuditEvent::GrantRevoked {
            grant: after.id,
            user: after.user.clone(),
            target: after.target.clone(),
            by: by.to_string(),
            client: client.map(str::to_string),
        });
        Ok(Revocation::Revoked(after))
    }

    /// Asks for live session `id` to end on whichever node runs it, on behalf of `by` from
    /// `client`; writes `session.end_requested` when this call made the request.
    pub async fn end_session(
        &self,
        id: &str,
        by: &str,
        client: Option<&str>,
    ) -> Result<crate::db::EndRequestOutcome, AccessError> {
        check_name(Field::By, by)?;
        let outcome = self.db.request_end(id, by).await?;
        if let crate::db::EndRequestOutcome::Requested(row) = &outcome {
            self.audit.record(AuditEvent::SessionEndRequested {
                session: row.id.clone(),
                by: by.to_string(),
                client: client.map(str::to_string),
            });
        }
        Ok(outcome)
    }

    /// Writes `grant.expired` for every grant whose window closed (unrevoked) since any caller
    /// last asked, and returns those grants. Each expiry is reported once, even with several
    /// daemons sharing the database; the daemon's watcher calls this every `grant_poll`.
    pub async fn record_expired(&self) -> Result<Vec<Grant>, AccessError> {
        // Starts first: a grant that opened and closed within one poll reads in order.
        self.record_request_changes().await?;
        let expired = self.db.take_newly_expired().await?;
        for grant in &expired {
            self.audit.record(AuditEvent::GrantExpired {
                grant: grant.id,
                user: grant.user.clone(),
                target: grant.target.clone(),
            });
        }
        Ok(expired)
    }

    /// The decision when `user` (authenticated) connected from `client` asks for `target` as
    /// `login` (`None`: the grant's default): the target must be configured, the login offered
    /// by it, and an active grant must allow it on the database clock. Every denial is written
    /// to the audit log as `access.denied`. `Err` only when the database fails (callers must
    /// then refuse: no grant check, no session).
    pub async fn decide(
        &self,
        user: &str,
        target: &str,
        login: Option<&str>,
        client: &str,
    ) -> Result<Verdict<'_>, AccessError> {
        let Some(configured) = self.config.target(target) else {
            return Ok(self.refuse_access(
                user,
                target,
                login,
                client,
                "no such target".to_string(),
            ));
        };
        if let Some(login) = login
            && !configured.logins.iter().any(|l| l == login)
        {
            let reason = format!(
                "login {login:?} is not offered on this target (offered: {})",
                configured.logins.join(", ")
            );
            return Ok(self.refuse_access(user, target, Some(login), client, reason));
        }
        match self.db.authorize(user, &configured.name, login).await? {
            Decision::Allow { grant, login } => Ok(Verdict::Allow(Allowed {
                target: configured,
                grant,
                login,
            })),
            Decision::Deny(denial) => {
                Ok(self.refuse_access(user, target, login, client, denial.to_string()))
            }
        }
    }

    /// Holds one channel that [`Access::decide`] allowed by `grant` (as `login`, from
    /// `client`) to the grant's scope: no PTY when the grant has `pty = false`; with allowed
    /// commands, no interactive shell (`command` is `None`) and only a command that passes
    /// [`check`]. Every refusal is written to the audit log as `command.refused`; its reason
    /// names the rule.
    pub fn check_command(
        &self,
        grant: &Grant,
        login: &str,
        command: Option<&str>,
        pty: bool,
        client: &str,
    ) -> Result<(), Denied> {
        let how = format!("ssh bastion {} -- COMMAND", grant.target);
        let rule = if pty && !grant.pty {
            Some(format!(
                "this grant allows no terminal (pty = false); run a command: {how}"
            ))
        } else {
            match command {
                None if !grant.commands.is_empty() => Some(format!(
                    "this grant allows no interactive shell, only the commands {}; run one: {how}",
                    crate::text::escape_controls(&grant.commands.join(", "))
                )),
                None => None,
                Some(command) => check(&grant.commands, command)
                    .err()
                    .map(|refusal| refusal.to_string()),
            }
        };
        let Some(rule) = rule else {
            return Ok(());
        };
        self.audit.record(AuditEvent::CommandRefused {
            user: grant.user.clone(),
            target: grant.target.clone(),
            login: login.to_string(),
            grant: grant.id,
            command: command.map(str::to_string),
            pty,
            rule: rule.clone(),
            client: client.to_string(),
        });
        Err(Denied { reason: rule })
    }

    fn refuse_access(
        &self,
        user: &str,
        target: &str,
        login: Option<&str>,
        client: &str,
        reason: String,
    ) -> Verdict<'_> {
        self.audit.record(AuditEvent::AccessDenied {
            user: user.to_string(),
            target: target.to_string(),
            login: login.map(str::to_string),
            reason: reason.clone(),
            client: client.to_string(),
        });
        Verdict::Deny(Denied { reason })
    }
}
