//! The request workflow of the grant service: file, approve, deny, cancel, extend, break
//! glass and review, each step checked against the policy and written to the audit log.
//!
//! Every method answers `Ok(Err(Refused))` when a rule says no (a value, shown to the user
//! as one line and audited where it matters) and `Err` only when the database fails.

use std::time::Duration;

use super::policy::{self, RefusalKind, Refused, span};
use super::{Access, AccessError};
use crate::audit::AuditEvent;
use crate::db::{
    AccessRequest, ApprovalOutcome, Closing, Filed, Filing, Grant, GrantId, GrantStatus,
    NewRequest, RequestKind, RequestState, is_request_id,
};

/// The answer of a workflow step: a refusal is a value, the database failing an error.
pub type Decided<T> = Result<Result<T, Refused>, AccessError>;

/// A user asking for access to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub user: String,
    pub target: String,
    pub login: Option<String>,
    pub duration: Duration,
    pub starts_in: Duration,
    pub reason: Option<String>,
    /// Where the user is: `ip:port` over SSH, `cli` for the admin command.
    pub client: String,
}

/// A user asking for more time on one of their grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendAsk {
    pub user: String,
    /// A grant id, or the id of a session that ran under the grant.
    pub what: String,
    pub duration: Duration,
    pub reason: Option<String>,
    pub client: String,
}

/// Who decides, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decider<'a> {
    pub user: &'a str,
    pub client: &'a str,
}

impl Access {
    /// Files a request for access; the policy's `auto_approve` may approve it at once.
    pub async fn request_access(&self, ask: Ask) -> Decided<Filed> {
        let config = self.config.clone();
        let checked = (|| {
            let target = policy::target(&config, &ask.target)?;
            let policy = policy::applicable(&config, &ask.user, &target.name)?;
            let login = policy::login(policy, target, ask.login.as_deref())?;
            policy::duration(policy, ask.duration)?;
            let reason = policy::reason(policy, ask.reason.as_deref())?;
            if ask
                .starts_in
                .checked_add(ask.duration)
                .is_none_or(|s| s > crate::db::MAX_GRANT_SPAN)
            {
                return Err(Refused::new("--starts-in is too far ahead"));
            }
            Ok((policy, login, reason))
        })();
        let (policy, login, reason) = match checked {
            Ok(checked) => checked,
            Err(refused) => {
                return Ok(Err(self.refuse(
                    RequestKind::Access,
                    &ask.user,
                    &ask.target,
                    &ask.client,
                    refused,
                )));
            }
        };
        if let Some(existing) = self
            .db
            .pending_requests(Some(&ask.user))
            .await?
            .into_iter()
            .find(|r| r.target == ask.target && r.kind == RequestKind::Access)
        {
            let refused = Refused::new(format!(
                "you already have a pending request for {} ({}); wait for it, or withdraw it with: ssh bastion cancel {}",
                ask.target, existing.id, existing.id
            ))
            .of_kind(RefusalKind::Conflict);
            let (user, target) = (&ask.user, &ask.target);
            return Ok(Err(self.refuse(
                RequestKind::Access,
                user,
                target,
                &ask.client,
                refused,
            )));
        }
        let logins = vec![login];
        let filing = match policy::auto_rule(&config, policy, &ask.user, &logins, ask.duration) {
            Some(rule) => Filing::AutoApproved { rule },
            None => match policy::approvable(&config, policy, &ask.user) {
                Ok(()) => Filing::Pending,
                Err(refused) => {
                    let (user, target) = (&ask.user, &ask.target);
                    return Ok(Err(self.refuse(
                        RequestKind::Access,
                        user,
                        target,
                        &ask.client,
                        refused,
                    )));
                }
            },
        };
        let new = NewRequest {
            kind: RequestKind::Access,
            user: ask.user.clone(),
            target: ask.target.clone(),
            logins,
            duration: ask.duration,
            starts_in: ask.starts_in,
            reason,
            policy: policy.name.clone(),
            approvals_needed: policy.approvals,
            commands: policy.commands.clone(),
            pty: policy.pty,
            client: ask.client.clone(),
            ttl: policy.request_ttl,
            grant: None,
        };
        let filed = self.db.file_request(&new, &filing).await?;
        self.record_filed(&filed.request);
        if let (Filing::AutoApproved { rule }, Some(grant)) = (&filing, &filed.grant) {
            self.audit.record(AuditEvent::RequestAutoApproved {
                request: filed.request.id.clone(),
                user: grant.user.clone(),
                target: grant.target.clone(),
                policy: policy.name.clone(),
                rule: rule.clone(),
                grant: grant.id,
                client: ask.client.clone(),
            });
            self.record_created(grant);
        }
        Ok(Ok(filed))
    }

    /// Files a request for `ask.duration` more on one of the user's live grants, under the
    /// policy that covers the grant's target now.
    pub async fn request_extension(&self, ask: ExtendAsk) -> Decided<Filed> {
        let grant = match self.own_grant(&ask.user, &ask.what).await? {
            Ok(grant) => grant,
            Err(refused) => {
                // No grant of theirs to name: the rule names what they typed.
                return Ok(Err(self.refuse(
                    RequestKind::Extend,
                    &ask.user,
                    "",
                    &ask.client,
                    refused,
                )));
            }
        };
        let config = self.config.clone();
        let checked = (|| {
            let target = policy::target(&config, &grant.target)?;
            let policy = policy::applicable(&config, &ask.user, &target.name)?;
            let grantable = policy::grantable_logins(policy, target);
            if let Some(login) = grant.logins.iter().find(|l| !grantable.contains(l)) {
                return Err(Refused::new(format!(
                    "grant {} allows login {login}, which policy {} does not grant; ask for a new grant instead",
                    grant.id, policy.name
                )));
            }
            policy::duration(policy, ask.duration)?;
            let reason = policy::reason(policy, ask.reason.as_deref())?;
            Ok((policy, reason))
        })();
        let total = Duration::try_from(grant.expires_at - grant.starts_at)
            .unwrap_or(Duration::MAX)
            .saturating_add(ask.duration);
        let (policy, reason) = match checked {
            Ok(checked) => checked,
            Err(refused) => {
                return Ok(Err(self.refuse(
                    RequestKind::Extend,
                    &ask.user,
                    &grant.target,
                    &ask.client,
                    refused,
                )));
            }
        };
        if let Some(existing) = self
            .db
            .pending_requests(Some(&ask.user))
            .await?
            .into_iter()
            .find(|r| r.kind == RequestKind::Extend && r.grant == Some(grant.id))
        {
            let refused = Refused::new(format!(
                "grant {} already has a pending extension ({}); wait for it, or withdraw it with: ssh bastion cancel {}",
                grant.id, existing.id, existing.id
            ))
            .of_kind(RefusalKind::Conflict);
            let (user, target) = (&ask.user, &grant.target);
            return Ok(Err(self.refuse(
                RequestKind::Extend,
                user,
                target,
                &ask.client,
                refused,
            )));
        }
        let filing =
            // An auto-approval holds for the grant's whole length, extensions included: a
            // chain of small extensions never outgrows the rule without a person's yes.
            match policy::auto_rule(&config, policy, &ask.user, &grant.logins, total) {
                Some(rule) => Filing::AutoApproved { rule },
                None => match policy::approvable(&config, policy, &ask.user) {
                    Ok(()) => Filing::Pending,
                    Err(refused) => {
                        let (user, target) = (&ask.user, &grant.target);
                        return Ok(Err(self.refuse(
                            RequestKind::Extend,
                            user,
                            target,
                            &ask.client,
                            refused,
                        )));
                    }
                },
            };
        let new = NewRequest {
            kind: RequestKind::Extend,
            user: ask.user.clone(),
            target: grant.target.clone(),
            logins: grant.logins.clone(),
            duration: ask.duration,
            starts_in: Duration::ZERO,
            reason,
            policy: policy.name.clone(),
            approvals_needed: policy.approvals,
            commands: grant.commands.clone(),
            pty: grant.pty,
            client: ask.client.clone(),
            ttl: policy.request_ttl,
            grant: Some(grant.id),
        };
        let filed = self.db.file_request(&new, &filing).await?;
        self.record_filed(&filed.request);
        if let Filing::AutoApproved { rule } = &filing {
            match (&filed.grant, filed.previous_expires_at) {
                (Some(extended), Some(previous)) => {
                    self.audit.record(AuditEvent::RequestAutoApproved {
                        request: filed.request.id.clone(),
                        user: extended.user.clone(),
                        target: extended.target.clone(),
                        policy: policy.name.clone(),
                        rule: rule.clone(),
                        grant: extended.id,
                        client: ask.client.clone(),
                    });
                    self.record_extended(&filed.request, extended, previous, rule);
                }
                _ => self.record_request_expired(&filed.request),
            }
        }
        Ok(Ok(filed))
    }

    /// One approver's yes to request `id`, with an optional comment.
    pub async fn approve(
        &self,
        id: &str,
        by: Decider<'_>,
        comment: Option<&str>,
    ) -> Decided<ApprovalOutcome> {
        let request = match self.decidable(id, by.user).await? {
            Ok(request) => request,
            Err(refused) => return Ok(Err(refused)),
        };
        if let Some(comment) = comment
            && let Err(e) = super::check_reason(super::Field::Reason, comment)
        {
            return Ok(Err(Refused::new(
                e.to_string().replace("--reason", "--comment"),
            )
            .of_kind(RefusalKind::Invalid)));
        }
        let outcome = self
            .db
            .approve_request(&request.id, by.user, comment, by.client)
            .await?;
        let approval = |request: &AccessRequest| AuditEvent::RequestApproval {
            request: request.id.clone(),
            user: request.user.clone(),
            target: request.target.clone(),
            by: by.user.to_string(),
            comment: comment.map(str::to_string),
            approvals: u32::try_from(request.approvals.len()).unwrap_or(u32::MAX),
            needed: request.approvals_needed,
            client: by.client.to_string(),
        };
        match &outcome {
            ApprovalOutcome::NotFound => return Ok(Err(no_such_request(id))),
            ApprovalOutcome::NotPending(request) => return Ok(Err(not_pending(request))),
            ApprovalOutcome::AlreadyApproved(request) => {
                return Ok(Err(Refused::new(format!(
                    "you already approved {}; it needs {} distinct approvers ({} so far)",
                    request.id,
                    request.approvals_needed,
                    request.approvals.len()
                ))
                .of_kind(RefusalKind::Conflict)));
            }
            ApprovalOutcome::Recorded(request) => self.audit.record(approval(request)),
            ApprovalOutcome::Granted { request, grant } => {
                self.audit.record(approval(request));
                self.audit.record(AuditEvent::RequestApproved {
                    request: request.id.clone(),
                    user: request.user.clone(),
                    target: request.target.clone(),
                    approved_by: grant.approved_by.clone(),
                    grant: grant.id,
                });
                self.record_created(grant);
            }
            ApprovalOutcome::Extended {
                request,
                grant,
                previous_expires_at,
            } => {
                self.audit.record(approval(request));
                let approvers = approvers_of(request);
                self.audit.record(AuditEvent::RequestApproved {
                    request: request.id.clone(),
                    user: request.user.clone(),
                    target: request.target.clone(),
                    approved_by: approvers.clone(),
                    grant: grant.id,
                });
                self.record_extended(request, grant, *previous_expires_at, &approvers);
            }
            ApprovalOutcome::GrantEnded(request) => {
                self.audit.record(approval(request));
                self.record_request_expired(request);
            }
        }
        Ok(Ok(outcome))
    }

    /// An approver's no: request `id` ends, whatever approvals it had.
    pub async fn deny(&self, id: &str, by: Decider<'_>, reason: &str) -> Decided<AccessRequest> {
        let request = match self.decidable(id, by.user).await? {
            Ok(request) => request,
            Err(refused) => return Ok(Err(refused)),
        };
        let reason = reason.trim();
        if let Err(e) = super::check_reason(super::Field::Reason, reason) {
            return Ok(Err(
                Refused::new(e.to_string()).of_kind(RefusalKind::Invalid)
            ));
        }
        match self
            .db
            .close_request(&request.id, RequestState::Denied, by.user, Some(reason))
            .await?
        {
            Closing::NotFound => Ok(Err(no_such_request(id))),
            Closing::NotPending(request) => Ok(Err(not_pending(&request))),
            Closing::Closed(request) => {
                self.audit.record(AuditEvent::RequestDenied {
                    request: request.id.clone(),
                    user: request.user.clone(),
                    target: request.target.clone(),
                    by: by.user.to_string(),
                    reason: reason.to_string(),
                    client: by.client.to_string(),
                });
                Ok(Ok(request))
            }
        }
    }

    /// The requester withdraws their own pending request `id`.
    pub async fn cancel(&self, id: &str, by: Decider<'_>) -> Decided<AccessRequest> {
        if !is_request_id(id) {
            return Ok(Err(no_such_request(id)));
        }
        match self.db.request(id).await? {
            None => return Ok(Err(no_such_request(id))),
            Some(request) if request.user != by.user => {
                return Ok(Err(Refused::new(format!(
                    "{} is not your request; only {} can cancel it",
                    request.id, request.user
                ))));
            }
            Some(_) => {}
        }
        match self
            .db
            .close_request(id, RequestState::Cancelled, by.user, None)
            .await?
        {
            Closing::NotFound => Ok(Err(no_such_request(id))),
            Closing::NotPending(request) => Ok(Err(not_pending(&request))),
            Closing::Closed(request) => {
                self.audit.record(AuditEvent::RequestCancelled {
                    request: request.id.clone(),
                    user: request.user.clone(),
                    target: request.target.clone(),
                    client: by.client.to_string(),
                });
                Ok(Ok(request))
            }
        }
    }

    /// The pending requests `approver` may decide (not their own), oldest first.
    pub async fn decidable_by(&self, approver: &str) -> Result<Vec<AccessRequest>, AccessError> {
        Ok(self
            .db
            .pending_requests(None)
            .await?
            .into_iter()
            .filter(|r| policy::decider(&self.config, &r.policy, approver, &r.user).is_ok())
            .collect())
    }

    /// Writes `request.expired` for every request whose TTL passed since any caller last
    /// asked, and `grant.started` for every grant whose window opened later than its creation.
    pub(super) async fn record_request_changes(&self) -> Result<(), AccessError> {
        for request in self.db.take_expired_requests().await? {
            self.record_request_expired(&request);
        }
        for grant in self.db.take_newly_started().await? {
            self.record_started(&grant);
        }
        Ok(())
    }

    /// Request `id` if `by` may decide it now.
    async fn decidable(&self, id: &str, by: &str) -> Decided<AccessRequest> {
        if !is_request_id(id) {
            return Ok(Err(no_such_request(id)));
        }
        let Some(request) = self.db.request(id).await? else {
            return Ok(Err(no_such_request(id)));
        };
        if request.kind == RequestKind::BreakGlass {
            return Ok(Err(Refused::new(format!(
                "{} is a break-glass grant: review it with bastion review {}",
                request.id,
                request.grant.unwrap_or_default()
            ))));
        }
        if let Err(refused) = policy::decider(&self.config, &request.policy, by, &request.user) {
            return Ok(Err(refused));
        }
        Ok(Ok(request))
    }

    /// The live grant `what` (a grant id or a session id) of `user`.
    async fn own_grant(&self, user: &str, what: &str) -> Decided<Grant> {
        let id = match what.parse::<GrantId>() {
            Ok(id) => Some(id),
            Err(_) if uuid::Uuid::try_parse(what).is_ok() => self.db.session_grant(what).await?,
            Err(_) => None,
        };
        let grant = match id {
            Some(id) => self.db.grant(id).await?,
            None => None,
        };
        let Some(grant) = grant.filter(|g| g.user == user) else {
            return Ok(Err(Refused::new(format!(
                "no grant or session of yours is {:?}; see yours with: ssh bastion grants",
                crate::text::escape_controls(&crate::text::capped(what))
            ))
            .of_kind(RefusalKind::NotFound)));
        };
        let now = self.db.now().await?;
        match grant.status_at(now) {
            GrantStatus::Active | GrantStatus::Pending => Ok(Ok(grant)),
            status => Ok(Err(Refused::new(format!(
                "grant {} is {status}; ask for a new one: ssh bastion request {} --for 1h --reason '...'",
                grant.id, grant.target
            ))
            .of_kind(RefusalKind::Conflict))),
        }
    }

    pub(super) fn refuse(
        &self,
        kind: RequestKind,
        user: &str,
        target: &str,
        client: &str,
        refused: Refused,
    ) -> Refused {
        self.audit.record(AuditEvent::RequestRefused {
            kind,
            user: user.to_string(),
            target: crate::text::capped(target),
            rule: refused.rule.clone(),
            client: client.to_string(),
        });
        refused
    }

    pub(super) fn record_filed(&self, request: &AccessRequest) {
        let approvers = match self.config.policy(&request.policy) {
            Some(policy) if request.kind != RequestKind::BreakGlass => {
                policy::approvers(&self.config, policy, &request.user)
            }
            _ => Vec::new(),
        };
        self.audit.record(AuditEvent::RequestFiled {
            request: request.id.clone(),
            kind: request.kind,
            user: request.user.clone(),
            target: request.target.clone(),
            logins: request.logins.clone(),
            duration: span(request.duration),
            starts_in: span(request.starts_in),
            reason: request.reason.clone(),
            policy: request.policy.clone(),
            approvals_needed: request.approvals_needed,
            approvers,
            grant: (request.kind == RequestKind::Extend)
                .then_some(request.grant)
                .flatten(),
            client: request.client.clone(),
        });
    }

    pub(super) fn record_created(&self, grant: &Grant) {
        self.audit.record(AuditEvent::GrantCreated {
            grant: grant.id,
            user: grant.user.clone(),
            target: grant.target.clone(),
            logins: grant.logins.clone(),
            starts_at: grant.starts_at,
            expires_at: grant.expires_at,
            approved_by: grant.approved_by.clone(),
            reason: grant.reason.clone(),
            commands: grant.commands.clone(),
            pty: grant.pty,
            origin: grant.origin,
            request: grant.request.clone(),
        });
        if grant.starts_at <= grant.created_at {
            self.record_started(grant);
        }
    }

    pub(super) fn record_started(&self, grant: &Grant) {
        self.audit.record(AuditEvent::GrantStarted {
            grant: grant.id,
            request: grant.request.clone(),
            user: grant.user.clone(),
            target: grant.target.clone(),
            expires_at: grant.expires_at,
        });
    }

    fn record_extended(
        &self,
        request: &AccessRequest,
        grant: &Grant,
        previous: time::OffsetDateTime,
        approved_by: &str,
    ) {
        tracing::info!(grant = grant.id, request = %request.id, user = %grant.user, target = %grant.target, "grant extended");
        self.audit.record(AuditEvent::GrantExtended {
            grant: grant.id,
            request: request.id.clone(),
            user: grant.user.clone(),
            target: grant.target.clone(),
            previous_expires_at: previous,
            expires_at: grant.expires_at,
            approved_by: approved_by.to_string(),
        });
    }

    fn record_request_expired(&self, request: &AccessRequest) {
        self.audit.record(AuditEvent::RequestExpired {
            request: request.id.clone(),
            user: request.user.clone(),
            target: request.target.clone(),
            reason: request
                .decision_note
                .clone()
                .unwrap_or_else(|| "no decision before its request_ttl".to_string()),
        });
    }
}

fn approvers_of(request: &AccessRequest) -> String {
    request
        .approvals
        .iter()
        .map(|a| a.approver.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_such_request(id: &str) -> Refused {
    Refused::new(format!(
        "no request {:?}; see the pending ones with: ssh bastion requests",
        crate::text::escape_controls(&crate::text::capped(id))
    ))
    .of_kind(RefusalKind::NotFound)
}

fn not_pending(request: &AccessRequest) -> Refused {
    let state = match request.state {
        RequestState::Pending => "expired (its request_ttl passed)".to_string(),
        other => other.to_string(),
    };
    Refused::new(format!(
        "{} is no longer pending: it is {state}",
        request.id
    ))
    .of_kind(RefusalKind::Conflict)
}
