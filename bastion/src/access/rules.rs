//! The rules a grant request and the names of the people acting must pass before anything is
//! written: checked against the configuration only, so a caller can apply them before it opens
//! the database or the audit log.

use std::fmt;
use std::time::Duration;

use super::commands::METACHARACTERS;
use crate::config::Config;
use crate::db::{MAX_GRANT_SPAN, NewGrant};

pub use crate::wildcard::{MAX_COMMAND_PATTERN_CHARS, MAX_COMMAND_PATTERNS};

/// The longest reason, comment or other free text, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// A grant somebody asks for, as the admin CLI (or the SSH commands, or the HTTP API) received
/// it. Nothing in it has been checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    /// A `[[users]]` name.
    pub user: String,
    /// A `[[targets]]` name.
    pub target: String,
    /// Logins on the target; empty means the target's default login. Duplicates are dropped.
    pub logins: Vec<String>,
    /// Delay before the window opens, from the database's now.
    pub starts_in: Duration,
    pub duration: Duration,
    /// Why access is needed; must not be blank.
    pub reason: String,
    /// Who approved it.
    pub approved_by: String,
    /// Glob patterns the remote command must match whole; empty admits any command and an
    /// interactive shell. Duplicates are dropped.
    pub commands: Vec<String>,
    /// False: no PTY on any channel the grant admits.
    pub pty: bool,
}

/// A piece of free text a person supplies, named as the admin CLI flag that carries it (other
/// front ends can match on the variant to name their own field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Why a grant or a hold is needed.
    Reason,
    /// Who approved a grant.
    ApprovedBy,
    /// Who revokes a grant, ends a session, holds, releases or prunes a recording.
    By,
    /// A command pattern a grant admits.
    Command,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Reason => "--reason",
            Field::ApprovedBy => "--approved-by",
            Field::By => "--by",
            Field::Command => "--command",
        })
    }
}

/// A rule refused the request; `Display` is one line naming the rule and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("unknown user {user:?} (not a [[users]] entry in {config})")]
    UnknownUser { user: String, config: String },
    #[error("unknown target {target:?} (not a [[targets]] entry in {config})")]
    UnknownTarget { target: String, config: String },
    #[error("login {login:?} is not allowed on target {target:?} (allowed: {})", .allowed.join(", "))]
    LoginNotAllowed {
        login: String,
        target: String,
        allowed: Vec<String>,
    },
    #[error("{0} must not be empty")]
    Empty(Field),
    /// Stored text is printed to terminals and read in logs: escape sequences have no place
    /// in it. `found` is the first offending character, escaped.
    #[error("{field} must not contain control characters (found {found})")]
    ControlCharacter { field: Field, found: String },
    /// Free text is stored whole and shown to people: a few paragraphs, not a file.
    #[error("{field} is {chars} characters long (at most {MAX_REASON_CHARS})")]
    TooLongText { field: Field, chars: usize },
    #[error("a grant must last at least 1ms")]
    TooShort,
    #[error(
        "a grant must end within {} from now",
        humantime::format_duration(MAX_GRANT_SPAN)
    )]
    TooLong,
    #[error("a grant may allow at most {MAX_COMMAND_PATTERNS} --command patterns (got {0})")]
    TooManyCommands(usize),
    #[error(
        "--command pattern {pattern:?} is {chars} characters long (at most {MAX_COMMAND_PATTERN_CHARS})"
    )]
    CommandTooLong { pattern: String, chars: usize },
    /// Commands with a metacharacter are refused before matching, so such a pattern would
    /// never admit anything.
    #[error(
        "--command pattern {pattern:?} contains the shell metacharacter {found:?}, which no admitted command may contain"
    )]
    CommandMetacharacter {
        pattern: String,
        found: &'static str,
    },
}

impl GrantRequest {
    /// Applies every rule that needs only the configuration and returns the grant to store:
    /// user and target known, logins offered by the target (de-duplicated, or the target's
    /// default login), a reason, an approver, a window the database accepts.
    pub fn validate(&self, config: &Config) -> Result<NewGrant, Rejection> {
        if config.user(&self.user).is_none() {
            return Err(Rejection::UnknownUser {
                user: self.user.clone(),
                config: config.source.clone(),
            });
        }
        let Some(target) = config.target(&self.target) else {
            return Err(Rejection::UnknownTarget {
                target: self.target.clone(),
                config: config.source.clone(),
            });
        };
        let logins = if self.logins.is_empty() {
            vec![target.default_login().to_string()]
        } else {
            let mut unique: Vec<String> = Vec::with_capacity(self.logins.len());
            for login in &self.logins {
                if !target.logins.contains(login) {
                    return Err(Rejection::LoginNotAllowed {
                        login: login.clone(),
                        target: self.target.clone(),
                        allowed: target.logins.clone(),
                    });
                }
                if !unique.contains(login) {
                    unique.push(login.clone());
                }
            }
            unique
        };
        check_reason(Field::Reason, &self.reason)?;
        check_name(Field::ApprovedBy, &self.approved_by)?;
        let commands = check_commands(&self.commands)?;
        if self.duration < Duration::from_millis(1) {
            return Err(Rejection::TooShort);
        }
        let span = self.starts_in.checked_add(self.duration);
        if span.is_none_or(|span| span > MAX_GRANT_SPAN) {
            return Err(Rejection::TooLong);
        }
        Ok(NewGrant {
            user: self.user.clone(),
            target: self.target.clone(),
            logins,
            starts_in: self.starts_in,
            duration: self.duration,
            approved_by: self.approved_by.clone(),
            reason: self.reason.clone(),
            commands,
            pty: self.pty,
        })
    }
}

/// The allowed command patterns, de-duplicated: each not blank, without control characters
/// or shell metacharacters, at most [`MAX_COMMAND_PATTERN_CHARS`] long, at most
/// [`MAX_COMMAND_PATTERNS`] of them.
fn check_commands(patterns: &[String]) -> Result<Vec<String>, Rejection> {
    let mut unique: Vec<String> = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        check_name(Field::Command, pattern)?;
        let chars = pattern.chars().count();
        if chars > MAX_COMMAND_PATTERN_CHARS {
            return Err(Rejection::CommandTooLong {
                pattern: pattern.chars().take(40).collect::<String>() + "...",
                chars,
            });
        }
        if let Some(found) = METACHARACTERS.iter().find(|m| pattern.contains(**m)) {
            return Err(Rejection::CommandMetacharacter {
                pattern: pattern.clone(),
                found,
            });
        }
        if !unique.contains(pattern) {
            unique.push(pattern.clone());
        }
    }
    if unique.len() > MAX_COMMAND_PATTERNS {
        return Err(Rejection::TooManyCommands(unique.len()));
    }
    Ok(unique)
}

/// A person's name (an approver, whoever revokes or ends something): not blank, and no
/// control characters at all.
pub fn check_name(field: Field, name: &str) -> Result<(), Rejection> {
    if name.trim().is_empty() {
        return Err(Rejection::Empty(field));
    }
    match name.chars().find(|c| c.is_control()) {
        Some(c) => Err(control(field, c)),
        None => Ok(()),
    }
}

/// A reason: not blank; line breaks and tabs are allowed (a ticket pasted in), every other
/// control character is refused.
pub fn check_reason(field: Field, reason: &str) -> Result<(), Rejection> {
    if reason.trim().is_empty() {
        return Err(Rejection::Empty(field));
    }
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(Rejection::TooLongText { field, chars });
    }
    match reason
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some(c) => Err(control(field, c)),
        None => Ok(()),
    }
}

fn control(field: Field, c: char) -> Rejection {
    Rejection::ControlCharacter {
        field,
        found: crate::text::escape_controls(&c.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[users]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP"]

[[targets]]
name = "db-1"
address = "127.0.0.1:2200"
logins = ["app", "root"]
identity = "target_key"
"#;

    fn request() -> GrantRequest {
        GrantRequest {
            user: "alice".into(),
            target: "db-1".into(),
            logins: Vec::new(),
            starts_in: Duration::ZERO,
            duration: Duration::from_secs(3600),
            reason: "INC-7".into(),
            approved_by: "carol".into(),
            commands: Vec::new(),
            pty: true,
        }
    }

    #[test]
    fn logins_default_and_deduplicate() {
        let config = Config::parse(CONFIG, "test.toml").unwrap();
        assert_eq!(request().validate(&config).unwrap().logins, ["app"]);
        let mut r = request();
        r.logins = vec!["root".into(), "app".into(), "root".into()];
        assert_eq!(r.validate(&config).unwrap().logins, ["root", "app"]);
    }

    #[test]
    fn each_rule_names_what_was_wrong() {
        let config = Config::parse(CONFIG, "test.toml").unwrap();
        type Case = (fn(&mut GrantRequest), &'static str);
        let cases: [Case; 8] = [
            (
                |r| r.user = "mallory".into(),
                "unknown user \"mallory\" (not a [[users]] entry in test.toml)",
            ),
            (
                |r| r.target = "db-9".into(),
                "unknown target \"db-9\" (not a [[targets]] entry in test.toml)",
            ),
            (
                |r| r.logins = vec!["postgres".into()],
                "login \"postgres\" is not allowed on target \"db-1\" (allowed: app, root)",
            ),
            (|r| r.reason = " \n".into(), "--reason must not be empty"),
            (
                |r| r.reason = "x\x1b]0;pwned\x07".into(),
                "--reason must not contain control characters (found \\x1b)",
            ),
            (
                |r| r.approved_by = "car\u{9b}ol".into(),
                "--approved-by must not contain control characters (found \\u{9b})",
            ),
            (
                |r| r.duration = Duration::ZERO,
                "a grant must last at least 1ms",
            ),
            (
                |r| r.starts_in = Duration::MAX,
                "a grant must end within 100years 2months 14days 2h 52m 48s from now",
            ),
        ];
        for (change, want) in cases {
            let mut r = request();
            change(&mut r);
            let err = r.validate(&config).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn command_patterns_are_checked_and_deduplicated() {
        let config = Config::parse(CONFIG, "test.toml").unwrap();
        let mut r = request();
        r.commands = vec![
            "systemctl status *".into(),
            "uptime".into(),
            "systemctl status *".into(),
        ];
        r.pty = false;
        let grant = r.validate(&config).unwrap();
        assert_eq!(grant.commands, ["systemctl status *", "uptime"]);
        assert!(!grant.pty);

        type Case = (Vec<String>, String);
        let cases: [Case; 5] = [
            (vec![" ".into()], "--command must not be empty".into()),
            (
                vec!["ls\x1b[2J".into()],
                "--command must not contain control characters (found \\x1b)".into(),
            ),
            (
                vec!["x".repeat(257)],
                format!(
                    "--command pattern \"{}...\" is 257 characters long (at most 256)",
                    "x".repeat(40)
                ),
            ),
            (
                vec!["uptime; id".into()],
                "--command pattern \"uptime; id\" contains the shell metacharacter \";\", \
                 which no admitted command may contain"
                    .into(),
            ),
            (
                (0..65).map(|i| format!("cmd{i}")).collect(),
                "a grant may allow at most 64 --command patterns (got 65)".into(),
            ),
        ];
        for (commands, want) in cases {
            let mut r = request();
            r.commands = commands;
            assert_eq!(r.validate(&config).unwrap_err().to_string(), want);
        }
        let mut r = request();
        r.commands = (0..64).map(|i| format!("cmd{i} *")).collect();
        assert_eq!(r.validate(&config).unwrap().commands.len(), 64);
    }

    #[test]
    fn reasons_may_span_lines_names_may_not() {
        assert!(check_reason(Field::Reason, "INC-7\r\n\tdisk full").is_ok());
        assert!(check_reason(Field::Reason, &"x".repeat(MAX_REASON_CHARS)).is_ok());
        assert_eq!(
            check_reason(Field::Reason, &"x".repeat(MAX_REASON_CHARS + 1))
                .unwrap_err()
                .to_string(),
            "--reason is 2001 characters long (at most 2000)"
        );
        assert_eq!(
            check_name(Field::By, "erin\n"),
            Err(Rejection::ControlCharacter {
                field: Field::By,
                found: "\\n".into()
            })
        );
        assert_eq!(check_name(Field::By, ""), Err(Rejection::Empty(Field::By)));
    }
}
