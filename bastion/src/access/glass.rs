//! Break glass and its review: access taken at once by a user a policy names in
//! `break_glass`, capped at the policy's `max_duration`, announced loudly (a warning in the
//! log, a `break_glass` audit event) and listed by `bastion reviews` until an approver of the
//! policy acknowledges it.

use std::time::Duration;

use super::policy::{self, Refused};
use super::requests::Decided;
use super::{Access, AccessError};
use crate::audit::AuditEvent;
use crate::db::{Filed, Filing, Grant, GrantId, NewRequest, RequestKind};

/// A user taking emergency access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassAsk {
    pub user: String,
    pub target: String,
    pub login: Option<String>,
    /// Capped at the policy's `max_duration`; `None` takes all of it.
    pub duration: Option<Duration>,
    pub reason: Option<String>,
    pub client: String,
}

impl Access {
    /// Break glass: a grant live at once for `ask.user`, capped at the policy's
    /// `max_duration`, marked for review and announced loudly.
    pub async fn break_glass(&self, ask: BreakGlassAsk) -> Decided<Filed> {
        let config = self.config.clone();
        let checked = (|| {
            let target = policy::target(&config, &ask.target)?;
            let policy = policy::break_glass(&config, &ask.user, &target.name)?;
            let login = policy::login(policy, target, ask.login.as_deref())?;
            let duration = ask
                .duration
                .unwrap_or(policy.max_duration)
                .min(policy.max_duration);
            if duration.is_zero() {
                return Err(Refused::new("--for must be longer than zero"));
            }
            // Break glass always needs a reason: it is what the reviewer reads.
            let reason = match ask
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
            {
                Some(reason) => {
                    super::check_reason(super::Field::Reason, reason)
                        .map_err(|e| Refused::new(e.to_string()))?;
                    reason.to_string()
                }
                None => {
                    return Err(Refused::new(
                        "break glass needs a reason: add --reason TEXT (what is on fire)",
                    ));
                }
            };
            Ok((policy, login, duration, reason))
        })();
        let (policy, login, duration, reason) = match checked {
            Ok(checked) => checked,
            Err(refused) => {
                return Ok(Err(self.refuse(
                    RequestKind::BreakGlass,
                    &ask.user,
                    &ask.target,
                    &ask.client,
                    refused,
                )));
            }
        };
        let new = NewRequest {
            kind: RequestKind::BreakGlass,
            user: ask.user.clone(),
            target: ask.target.clone(),
            logins: vec![login],
            duration,
            starts_in: Duration::ZERO,
            reason: reason.clone(),
            policy: policy.name.clone(),
            approvals_needed: 0,
            commands: policy.commands.clone(),
            pty: policy.pty,
            client: ask.client.clone(),
            ttl: Duration::ZERO,
            grant: None,
        };
        let filed = self.db.file_request(&new, &Filing::BreakGlass).await?;
        self.record_filed(&filed.request);
        if let Some(grant) = &filed.grant {
            tracing::warn!(
                user = %grant.user,
                target = %grant.target,
                grant = grant.id,
                request = %filed.request.id,
                policy = %policy.name,
                reason = %crate::text::capped(&reason),
                "BREAK GLASS: access taken without approval; an approver must review it (bastion reviews)"
            );
            self.audit.record(AuditEvent::BreakGlass {
                grant: grant.id,
                request: filed.request.id.clone(),
                user: grant.user.clone(),
                target: grant.target.clone(),
                logins: grant.logins.clone(),
                policy: policy.name.clone(),
                reason,
                expires_at: grant.expires_at,
                client: ask.client.clone(),
            });
            self.record_created(grant);
        }
        Ok(Ok(filed))
    }

    /// The break-glass grants waiting for a review.
    pub async fn reviews(&self) -> Result<Vec<Grant>, AccessError> {
        Ok(self.db.unreviewed_grants().await?)
    }

    /// An approver (`admin`: the administrator at the bastion's shell, for whom the policy's
    /// approver list does not apply) acknowledges break-glass grant `id`.
    pub async fn review(
        &self,
        id: GrantId,
        by: &str,
        comment: &str,
        admin: bool,
    ) -> Decided<Grant> {
        let Some(grant) = self.db.grant(id).await? else {
            return Ok(Err(Refused::new(format!("no grant with id {id}"))));
        };
        if !grant.review_required {
            return Ok(Err(Refused::new(format!(
                "grant {id} was not taken by break glass; there is nothing to review"
            ))));
        }
        if let Some(review) = &grant.reviewed {
            return Ok(Err(Refused::new(format!(
                "grant {id} was already reviewed by {} at {}",
                review.by,
                crate::db::human_time(review.at)
            ))));
        }
        if !admin {
            let policy = match &grant.request {
                Some(request) => self.db.request(request).await?.map(|r| r.policy),
                None => None,
            };
            if let Err(refused) = policy::decider(
                &self.config,
                policy.as_deref().unwrap_or(""),
                by,
                &grant.user,
            ) {
                return Ok(Err(refused));
            }
        }
        if let Err(e) = super::check_reason(super::Field::Reason, comment) {
            return Ok(Err(Refused::new(
                e.to_string().replace("--reason", "--comment"),
            )));
        }
        let Some(reviewed) = self.db.review_grant(id, by, comment.trim()).await? else {
            return Ok(Err(Refused::new(format!(
                "grant {id} was reviewed by someone else just now"
            ))));
        };
        self.audit.record(AuditEvent::GrantReviewed {
            grant: reviewed.id,
            request: reviewed.request.clone(),
            user: reviewed.user.clone(),
            target: reviewed.target.clone(),
            by: by.to_string(),
            comment: comment.trim().to_string(),
        });
        Ok(Ok(reviewed))
    }
}
