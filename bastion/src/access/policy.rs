//! Which `[[policies]]` entry applies to a request and what it allows: the rules of the
//! request workflow that need only the configuration. Every refusal is a value naming the
//! policy and the rule, shown to the user as one line.

use std::fmt;
use std::time::Duration;

use crate::config::join_principals as join;
use crate::config::{Config, Policy, Target};

/// A rule refused the request; `Display` is the one line the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub rule: String,
    /// What sort of refusal, for faces that answer with a status (HTTP).
    pub kind: RefusalKind,
}

/// Why a step was refused, as a face with status codes needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A policy rule says no (or the caller lacks the right).
    Rule,
    /// What it names does not exist (or is not the caller's to see).
    NotFound,
    /// It exists but is past the step asked for (decided, already approved, duplicate).
    Conflict,
    /// A value given is malformed (too long, control characters).
    Invalid,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rule)
    }
}

impl Refused {
    pub fn new(rule: impl Into<String>) -> Refused {
        Refused {
            rule: rule.into(),
            kind: RefusalKind::Rule,
        }
    }

    /// The same refusal, of another kind.
    pub fn of_kind(self, kind: RefusalKind) -> Refused {
        Refused { kind, ..self }
    }
}

/// `1h 30m`, for people.
pub fn span(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// The configured target `name`.
pub fn target<'a>(config: &'a Config, name: &str) -> Result<&'a Target, Refused> {
    config.target(name).ok_or_else(|| {
        Refused::new(format!(
            "no target named {:?}",
            crate::text::escape_controls(name)
        ))
        .of_kind(RefusalKind::NotFound)
    })
}

/// The policy that applies to `user` asking for `target`: the first, in file order, whose
/// targets cover it and whose requesters name the user.
pub fn applicable<'a>(config: &'a Config, user: &str, target: &str) -> Result<&'a Policy, Refused> {
    let covering: Vec<&Policy> = config
        .policies
        .iter()
        .filter(|p| p.covers_target(target))
        .collect();
    if let Some(policy) = covering
        .iter()
        .find(|p| config.is_among(user, &p.requesters))
    {
        return Ok(policy);
    }
    match covering.as_slice() {
        [] => Err(Refused::new(format!(
            "no policy covers target {target}; only an administrator can grant it (bastion grant add)"
        ))),
        policies => Err(Refused::new(format!(
            "you may not request {target}: {}",
            policies
                .iter()
                .map(|p| format!(
                    "policy {} takes requests from {} only",
                    p.name,
                    join(&p.requesters)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

/// The policy under which `user` may break glass for `target`: the first whose targets cover
/// it and whose `break_glass` names the user.
pub fn break_glass<'a>(
    config: &'a Config,
    user: &str,
    target: &str,
) -> Result<&'a Policy, Refused> {
    config
        .policies
        .iter()
        .filter(|p| p.covers_target(target))
        .find(|p| config.is_among(user, &p.break_glass))
        .ok_or_else(|| {
            Refused::new(format!(
                "you may not break glass for {target}: no policy covering it names you in break_glass; file a request instead: ssh bastion request {target} --for 1h --reason '...'"
            ))
        })
}

/// The logins `policy` may grant on `target`, in the policy's order: its `logins` the target
/// offers, or (when the policy lists none) the target's default login.
pub fn grantable_logins(policy: &Policy, target: &Target) -> Vec<String> {
    if policy.logins.is_empty() {
        vec![target.default_login().to_string()]
    } else {
        policy
            .logins
            .iter()
            .filter(|l| target.logins.contains(l))
            .cloned()
            .collect()
    }
}

/// The login a request gets: the one asked for if the policy grants it, else the target's
/// default login if granted, else the policy's first.
pub fn login(policy: &Policy, target: &Target, asked: Option<&str>) -> Result<String, Refused> {
    let grantable = grantable_logins(policy, target);
    let chosen = match asked {
        Some(login) => grantable.iter().find(|l| *l == login).cloned(),
        None => grantable
            .iter()
            .find(|l| *l == target.default_login())
            .or(grantable.first())
            .cloned(),
    };
    chosen.ok_or_else(|| {
        Refused::new(format!(
            "login {:?} is not one policy {} grants on {} (logins: {})",
            crate::text::escape_controls(asked.unwrap_or_default()),
            policy.name,
            target.name,
            grantable.join(", ")
        ))
    })
}

/// The requested length against the policy's `max_duration`.
pub fn duration(policy: &Policy, duration: Duration) -> Result<(), Refused> {
    if duration.is_zero() {
        return Err(Refused::new("--for must be longer than zero"));
    }
    if duration > policy.max_duration {
        return Err(Refused::new(format!(
            "--for {} is longer than policy {} allows (max_duration = {})",
            span(duration),
            policy.name,
            span(policy.max_duration)
        )));
    }
    Ok(())
}

/// The reason to store: required when the policy says so; never with control characters
/// other than line breaks and tabs.
pub fn reason(policy: &Policy, reason: Option<&str>) -> Result<String, Refused> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(text) => {
            super::check_reason(super::Field::Reason, text)
                .map_err(|e| Refused::new(e.to_string()).of_kind(RefusalKind::Invalid))?;
            Ok(text.to_string())
        }
        None if policy.require_reason => Err(Refused::new(format!(
            "policy {} requires a reason: add --reason TEXT (a ticket, an incident)",
            policy.name
        ))),
        None => Ok("(no reason given)".to_string()),
    }
}

/// The first `auto_approve` rule of `policy` that approves `user` asking for `login` for
/// `duration`, named like `databases.auto_approve[0]`.
pub fn auto_rule(
    config: &Config,
    policy: &Policy,
    user: &str,
    logins: &[String],
    duration: Duration,
) -> Option<String> {
    policy
        .auto_approve
        .iter()
        .position(|rule| {
            config.is_among(user, &rule.who)
                && (rule.logins.is_empty() || logins.iter().all(|l| rule.logins.contains(l)))
                && duration <= rule.max_duration
        })
        .map(|i| format!("{}.auto_approve[{i}]", policy.name))
}

/// The policy under which `approver` may decide a request `requester` filed under
/// `policy_name`. Self-approval is never counted.
pub fn decider<'a>(
    config: &'a Config,
    policy_name: &str,
    approver: &str,
    requester: &str,
) -> Result<&'a Policy, Refused> {
    let policy = config.policy(policy_name).ok_or_else(|| {
        Refused::new(format!(
            "policy {policy_name} is no longer configured; only an administrator can decide this request"
        ))
    })?;
    if approver == requester {
        return Err(Refused::new(
            "you filed this request: self-approval is never counted; another approver must decide (withdraw it with cancel)",
        ));
    }
    if !config.is_among(approver, &policy.approvers) {
        return Err(Refused::new(format!(
            "you are not an approver of policy {} (approvers: {})",
            policy.name,
            policy.approvers_text()
        )));
    }
    Ok(policy)
}

/// Whether enough approvers other than `requester` exist for a request they file under
/// `policy` (self-approval never counts): a request nobody can complete is refused at once.
pub fn approvable(config: &Config, policy: &Policy, requester: &str) -> Result<(), Refused> {
    let others = approvers(config, policy, requester);
    if others.len() < policy.approvals as usize {
        return Err(Refused::new(format!(
            "policy {} needs {} distinct approvers besides you, and only {} exist ({}); ask an administrator",
            policy.name,
            policy.approvals,
            others.len(),
            policy.approvers_text()
        )));
    }
    Ok(())
}

/// The users who may approve a request of `requester` under `policy`.
pub fn approvers(config: &Config, policy: &Policy, requester: &str) -> Vec<String> {
    config
        .members(&policy.approvers)
        .into_iter()
        .filter(|name| *name != requester)
        .map(str::to_string)
        .collect()
}
