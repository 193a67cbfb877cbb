//! `[[policies]]` and user groups: who may ask for which targets, who approves, for how long.
//!
//! The questions the access workflow asks of a policy live here, next to the types, with the
//! checks of the file's `users[].groups` and `[[policies]]` keys. A policy that loads can be
//! met: every pattern matches a target, every principal names somebody, enough approvers exist.

use std::fmt;
use std::time::Duration;

use super::check::{Checker, is_valid_name};
use super::raw::{RawAutoApprove, RawPolicy};
use super::validate::is_valid_login;
use super::{AutoApprove, Config, ConfigError, Policy, Principal, Target, User};
use crate::wildcard::{self, MAX_COMMAND_PATTERN_CHARS, MAX_COMMAND_PATTERNS, METACHARACTERS};

const DEFAULT_APPROVALS: i64 = 1;
const DEFAULT_REQUEST_TTL: &str = "1h";
/// Error messages list at most this many targets or users, so one line stays one line.
const LISTED_NAMES: usize = 5;

impl Principal {
    /// Whether `user` is this principal: the user itself, or a member of the group.
    pub fn includes(&self, user: &User) -> bool {
        match self {
            Principal::User(name) => *name == user.name,
            Principal::Group(group) => user.groups.iter().any(|g| g == group),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(name) => f.write_str(name),
            Principal::Group(group) => write!(f, "group:{group}"),
        }
    }
}

impl Policy {
    /// Whether one of the policy's target patterns matches `target`.
    pub fn covers_target(&self, target: &str) -> bool {
        self.targets
            .iter()
            .any(|pattern| crate::wildcard::matches(pattern, target))
    }

    /// `group:dba, bob`: the approvers as written, for people.
    pub fn approvers_text(&self) -> String {
        join(&self.approvers)
    }
}

/// Principals as written in the file, comma-separated.
pub fn join(principals: &[Principal]) -> String {
    principals
        .iter()
        .map(Principal::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Config {
    /// Whether the configured user `user` is one of `principals`.
    pub fn is_among(&self, user: &str, principals: &[Principal]) -> bool {
        self.user(user)
            .is_some_and(|u| principals.iter().any(|p| p.includes(u)))
    }

    /// The configured users who are one of `principals`, in file order.
    pub fn members(&self, principals: &[Principal]) -> Vec<&str> {
        self.users
            .iter()
            .filter(|u| principals.iter().any(|p| p.includes(u)))
            .map(|u| u.name.as_str())
            .collect()
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// User names and `group:NAME` outside a policy (`api.admins`), checked as `approvers` are.
pub(super) fn principals(
    check: &Checker<'_>,
    key: &str,
    raw: Vec<String>,
    users: &[User],
) -> Result<Vec<Principal>, ConfigError> {
    let known = Known {
        check,
        users,
        targets: &[],
    };
    known.principals(key, raw, false)
}

/// A user's `groups` (`key` is `users[i].groups`), duplicates dropped.
pub(super) fn groups(
    check: &Checker<'_>,
    key: &str,
    raw: Vec<String>,
) -> Result<Vec<String>, ConfigError> {
    let mut groups: Vec<String> = Vec::with_capacity(raw.len());
    for (g, group) in raw.into_iter().enumerate() {
        group_name(check, &format!("{key}[{g}]"), &group)?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(groups)
}

/// A bare group name, as in `users[].groups` and `auto_approve[].groups`.
fn group_name(check: &Checker<'_>, key: &str, name: &str) -> Result<(), ConfigError> {
    if let Some(bare) = name.strip_prefix("group:")
        && is_valid_name(bare)
    {
        return Err(check.err(
            key,
            format!("write the group as {bare:?}: this list holds group names, without \"group:\""),
        ));
    }
    check.name(key, name)
}

/// The `[[policies]]` entries, checked against the users and targets already validated.
pub(super) fn policies(
    check: &Checker<'_>,
    raw: Vec<RawPolicy>,
    users: &[User],
    targets: &[Target],
) -> Result<Vec<Policy>, ConfigError> {
    let known = Known {
        check,
        users,
        targets,
    };
    let mut policies: Vec<Policy> = Vec::with_capacity(raw.len());
    for (i, policy) in raw.into_iter().enumerate() {
        let policy = known.policy(&format!("policies[{i}]"), policy)?;
        if policies.iter().any(|p| p.name == policy.name) {
            return Err(check.err(
                format!("policies[{i}].name"),
                format!("duplicate policy name {:?}", policy.name),
            ));
        }
        policies.push(policy);
    }
    Ok(policies)
}

/// What a policy may refer to.
struct Known<'a> {
    check: &'a Checker<'a>,
    users: &'a [User],
    targets: &'a [Target],
}

impl Known<'_> {
    fn policy(&self, key: &str, raw: RawPolicy) -> Result<Policy, ConfigError> {
        let check = self.check;
        let name = raw.name.ok_or_else(|| {
            check.err(
                format!("{key}.name"),
                "is required: give the policy a name (letters, digits, '.', '_', '-')",
            )
        })?;
        check.name(&format!("{key}.name"), &name)?;
        let targets = self.target_patterns(&format!("{key}.targets"), raw.targets)?;
        let matched: Vec<&Target> = self
            .targets
            .iter()
            .filter(|t| targets.iter().any(|p| wildcard::matches(p, &t.name)))
            .collect();
        let requesters = self.principals(&format!("{key}.requesters"), raw.requesters, true)?;
        let approvers = self.principals(&format!("{key}.approvers"), raw.approvers, true)?;
        let approvals = self.approvals(&format!("{key}.approvals"), raw.approvals, &approvers)?;
        let max_text = raw.max_duration.ok_or_else(|| {
            check.err(
                format!("{key}.max_duration"),
                "is required: how long a grant from this policy may last, e.g. \"4h\"",
            )
        })?;
        let max_duration = check.duration(&format!("{key}.max_duration"), &max_text)?;
        let logins = self.logins(&format!("{key}.logins"), raw.logins, &matched)?;
        let request_ttl = check.duration(
            &format!("{key}.request_ttl"),
            raw.request_ttl.as_deref().unwrap_or(DEFAULT_REQUEST_TTL),
        )?;
        let limit = Limit {
            logins: &logins,
            matched: &matched,
            max_duration,
            max_text: &max_text,
        };
        let auto_approve = raw
            .auto_approve
            .into_iter()
            .enumerate()
            .map(|(a, rule)| self.auto_approve(&format!("{key}.auto_approve[{a}]"), rule, &limit))
            .collect::<Result<_, _>>()?;
        let break_glass = self.principals(&format!("{key}.break_glass"), raw.break_glass, false)?;
        let commands = commands(check, &format!("{key}.commands"), raw.commands)?;
        Ok(Policy {
            name,
            targets,
            requesters,
            approvers,
            approvals,
            max_duration,
            logins,
            require_reason: raw.require_reason,
            request_ttl,
            auto_approve,
            break_glass,
            commands,
            pty: raw.pty,
        })
    }

    /// Target names and patterns, each matching at least one configured target.
    fn target_patterns(&self, key: &str, raw: Vec<String>) -> Result<Vec<String>, ConfigError> {
        if raw.is_empty() {
            return Err(self.check.err(
                key,
                "must list at least one target name or pattern, e.g. [\"db-*\"]",
            ));
        }
        let mut patterns: Vec<String> = Vec::with_capacity(raw.len());
        for (t, pattern) in raw.into_iter().enumerate() {
            let key = format!("{key}[{t}]");
            if !is_valid_pattern(&pattern) {
                return Err(self.check.err(
                    key,
                    format!(
                        "invalid target pattern {pattern:?} (allowed: letters, digits, '.', '_', '-' and the wildcards '*' and '?')"
                    ),
                ));
            }
            if !self
                .targets
                .iter()
                .any(|target| wildcard::matches(&pattern, &target.name))
            {
                return Err(self.check.err(
                    key,
                    format!(
                        "pattern {pattern:?} matches no [[targets]] entry; fix it or add the target"
                    ),
                ));
            }
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        Ok(patterns)
    }

    /// `requesters`, `approvers`, `break_glass`: user names and `group:NAME`, duplicates dropped.
    fn principals(
        &self,
        key: &str,
        raw: Vec<String>,
        required: bool,
    ) -> Result<Vec<Principal>, ConfigError> {
        if required && raw.is_empty() {
            return Err(self
                .check
                .err(key, "must list at least one user or group:NAME"));
        }
        let mut principals: Vec<Principal> = Vec::with_capacity(raw.len());
        for (p, text) in raw.iter().enumerate() {
            let key = format!("{key}[{p}]");
            let principal = match text.strip_prefix("group:") {
                Some(group) if is_valid_name(group) => self.group(&key, group)?,
                None if is_valid_name(text) => self.user(&key, text)?,
                _ => {
                    return Err(self.check.err(
                        key,
                        format!(
                            "invalid principal {text:?} (expected a user name or group:NAME; names use letters, digits, '.', '_', '-')"
                        ),
                    ));
                }
            };
            if !principals.contains(&principal) {
                principals.push(principal);
            }
        }
        Ok(principals)
    }

    fn user(&self, key: &str, name: &str) -> Result<Principal, ConfigError> {
        if self.users.iter().any(|user| user.name == name) {
            Ok(Principal::User(name.to_string()))
        } else {
            Err(self.check.err(
                key,
                format!(
                    "unknown user {name:?}: add a [[users]] entry or write group:NAME for a group"
                ),
            ))
        }
    }

    fn group(&self, key: &str, group: &str) -> Result<Principal, ConfigError> {
        if self
            .users
            .iter()
            .any(|user| user.groups.iter().any(|g| g == group))
        {
            Ok(Principal::Group(group.to_string()))
        } else {
            Err(self.check.err(
                key,
                format!("no user is in group {group:?}; add it to the groups of its members"),
            ))
        }
    }

    /// `approvals`: at least one, and no more than the approvers can ever give.
    fn approvals(
        &self,
        key: &str,
        raw: Option<i64>,
        approvers: &[Principal],
    ) -> Result<u32, ConfigError> {
        let wanted = raw.unwrap_or(DEFAULT_APPROVALS);
        if wanted < 1 {
            return Err(self
                .check
                .err(key, format!("must be at least 1 (got {wanted})")));
        }
        let people: Vec<&str> = self
            .users
            .iter()
            .filter(|user| approvers.iter().any(|p| p.includes(user)))
            .map(|user| user.name.as_str())
            .collect();
        match u32::try_from(wanted) {
            Ok(n) if usize::try_from(n).is_ok_and(|n| n <= people.len()) => Ok(n),
            _ => Err(self.check.err(
                key,
                format!(
                    "{wanted} approvals can never be met: the approvers are {} ({}); lower approvals or add approvers",
                    count(people.len(), "user", "users"),
                    listed(&people)
                ),
            )),
        }
    }

    /// A policy's `logins`: unix names that at least one matched target offers.
    fn logins(
        &self,
        key: &str,
        raw: Vec<String>,
        matched: &[&Target],
    ) -> Result<Vec<String>, ConfigError> {
        let mut logins: Vec<String> = Vec::with_capacity(raw.len());
        for (l, login) in raw.into_iter().enumerate() {
            let key = format!("{key}[{l}]");
            if !is_valid_login(&login) {
                return Err(self
                    .check
                    .err(key, format!("invalid unix user name {login:?}")));
            }
            if !matched.iter().any(|t| t.logins.contains(&login)) {
                return Err(self.check.err(
                    key,
                    format!(
                        "login {login:?} is offered by none of this policy's targets ({}); add it to their logins or remove it here",
                        target_names(matched)
                    ),
                ));
            }
            if !logins.contains(&login) {
                logins.push(login);
            }
        }
        Ok(logins)
    }

    fn auto_approve(
        &self,
        key: &str,
        raw: RawAutoApprove,
        limit: &Limit<'_>,
    ) -> Result<AutoApprove, ConfigError> {
        let check = self.check;
        if raw.users.is_empty() && raw.groups.is_empty() {
            return Err(check.err(
                key,
                "must name whose requests are approved at once: users = [...] and/or groups = [...]",
            ));
        }
        let mut who: Vec<Principal> = Vec::with_capacity(raw.users.len() + raw.groups.len());
        for (u, name) in raw.users.iter().enumerate() {
            let key = format!("{key}.users[{u}]");
            if name.starts_with("group:") {
                return Err(check.err(
                    key,
                    format!("{name:?} is a group: list it in groups = [...], without \"group:\""),
                ));
            }
            check.name(&key, name)?;
            let principal = self.user(&key, name)?;
            if !who.contains(&principal) {
                who.push(principal);
            }
        }
        for (g, group) in raw.groups.iter().enumerate() {
            let key = format!("{key}.groups[{g}]");
            group_name(check, &key, group)?;
            let principal = self.group(&key, group)?;
            if !who.contains(&principal) {
                who.push(principal);
            }
        }
        let mut logins: Vec<String> = Vec::with_capacity(raw.logins.len());
        for (l, login) in raw.logins.into_iter().enumerate() {
            let key = format!("{key}.logins[{l}]");
            if !is_valid_login(&login) {
                return Err(check.err(key, format!("invalid unix user name {login:?}")));
            }
            if !limit.logins.is_empty() && !limit.logins.contains(&login) {
                return Err(check.err(
                    key,
                    format!(
                        "login {login:?} is not among the policy's logins ({}); the policy never grants it",
                        limit.logins.join(", ")
                    ),
                ));
            }
            if limit.logins.is_empty() && !limit.matched.iter().any(|t| t.default_login() == login)
            {
                return Err(check.err(
                    key,
                    format!(
                        "login {login:?} is the default login of none of this policy's targets ({}); without policy logins only default logins are granted",
                        target_names(limit.matched)
                    ),
                ));
            }
            if !logins.contains(&login) {
                logins.push(login);
            }
        }
        let max_duration = match raw.max_duration {
            Some(text) => {
                let key = format!("{key}.max_duration");
                let value = check.duration(&key, &text)?;
                if value > limit.max_duration {
                    return Err(check.err(
                        key,
                        format!(
                            "{text:?} is longer than the policy's max_duration {:?}; shorten it",
                            limit.max_text
                        ),
                    ));
                }
                value
            }
            None => limit.max_duration,
        };
        Ok(AutoApprove {
            who,
            logins,
            max_duration,
        })
    }
}

/// What a policy's `auto_approve` rules must stay within.
struct Limit<'a> {
    logins: &'a [String],
    matched: &'a [&'a Target],
    max_duration: Duration,
    max_text: &'a str,
}

/// A policy's `commands`, by the rules of a grant's `--command` patterns (duplicates dropped).
fn commands(check: &Checker<'_>, key: &str, raw: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut patterns: Vec<String> = Vec::with_capacity(raw.len());
    for (c, pattern) in raw.into_iter().enumerate() {
        let key = format!("{key}[{c}]");
        if pattern.trim().is_empty() {
            return Err(check.err(key, "command pattern must not be blank"));
        }
        if let Some(control) = pattern.chars().find(|c| c.is_control()) {
            return Err(check.err(
                key,
                format!("command pattern contains the control character {control:?}"),
            ));
        }
        let chars = pattern.chars().count();
        if chars > MAX_COMMAND_PATTERN_CHARS {
            return Err(check.err(
                key,
                format!(
                    "command pattern is {chars} characters long (at most {MAX_COMMAND_PATTERN_CHARS})"
                ),
            ));
        }
        // Commands with a metacharacter are refused before matching: such a pattern would
        // never admit anything.
        if let Some(found) = METACHARACTERS.iter().find(|m| pattern.contains(**m)) {
            return Err(check.err(
                key,
                format!(
                    "command pattern {pattern:?} contains the shell metacharacter {found:?}, which no admitted command may contain"
                ),
            ));
        }
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    if patterns.len() > MAX_COMMAND_PATTERNS {
        return Err(check.err(
            key,
            format!(
                "at most {MAX_COMMAND_PATTERNS} command patterns (got {})",
                patterns.len()
            ),
        ));
    }
    Ok(patterns)
}

/// A target name with the wildcards `*` and `?`.
fn is_valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*' | b'?'))
}

fn target_names(targets: &[&Target]) -> String {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    listed(&names)
}

/// `a, b, c`, or `a, b, c, d, e and 7 more`.
fn listed(names: &[&str]) -> String {
    let shown = names
        .iter()
        .take(LISTED_NAMES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().checked_sub(LISTED_NAMES) {
        Some(rest) if rest > 0 => format!("{shown} and {rest} more"),
        _ => shown,
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_patterns_allow_name_characters_and_wildcards() {
        for ok in ["db-1", "db-*", "db-?", "*", "web.prod_*"] {
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in ["", "db 1", "db-[12]", "db/1", "db,web"] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn long_lists_are_cut() {
        assert_eq!(listed(&[]), "");
        assert_eq!(listed(&["a", "b"]), "a, b");
        let many = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(listed(&many), "a, b, c, d, e and 2 more");
        assert_eq!(listed(&many[..5]), "a, b, c, d, e");
        assert_eq!(count(1, "user", "users"), "1 user");
        assert_eq!(count(0, "user", "users"), "0 users");
    }

    #[test]
    fn principals_display_as_written() {
        assert_eq!(Principal::Group("dba".into()).to_string(), "group:dba");
        assert_eq!(
            join(&[
                Principal::Group("dba".into()),
                Principal::User("bob".into())
            ]),
            "group:dba, bob"
        );
    }
}
