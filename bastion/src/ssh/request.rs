//! What a user asked for with `ssh bastion <words>`: a target to reach, or a bastion command.
//!
//! OpenSSH joins the words after the host with single spaces into one exec string, so
//! `ssh bastion app@db-1 -- tar x` arrives as `"app@db-1 -- tar x"`. The remote command is
//! passed on verbatim (quoting intact): the target's shell parses it, exactly as with plain ssh.

use std::fmt;

/// A parsed exec request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Reach a target: an interactive shell when `command` is `None`.
    Connect {
        target: String,
        login: Option<String>,
        command: Option<String>,
    },
    /// A command of the bastion itself (never a shell).
    Builtin(Builtin),
    /// A step of the access workflow (`request db-1 --for 1h ...`): the whole exec string,
    /// for `verbs::parse_ssh`.
    Verb(String),
}

/// Commands the bastion answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Usage text and the caller's grants.
    Help,
}

/// Why an exec string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    NotUtf8,
    Empty,
    BadTarget(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotUtf8 => write!(f, "the command is not valid UTF-8"),
            RequestError::Empty => write!(f, "no target given"),
            RequestError::BadTarget(t) => write!(
                f,
                "invalid target {t:?} (expected TARGET or LOGIN@TARGET, letters, digits, '.', '_', '-')"
            ),
        }
    }
}

/// Parses the exec string of a session channel.
pub fn parse(exec: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(exec).map_err(|_| RequestError::NotUtf8)?;
    let text = text.trim_start();
    let (first, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    if first.is_empty() {
        return Err(RequestError::Empty);
    }
    match first {
        "help" | "--help" | "-h" if rest.is_empty() => return Ok(Request::Builtin(Builtin::Help)),
        verb if crate::verbs::is_verb(verb) => return Ok(Request::Verb(text.to_string())),
        _ => {}
    }
    let (login, target) = match first.split_once('@') {
        Some((login, target)) => (Some(login), target),
        None => (None, first),
    };
    if !is_name(target) || login.is_some_and(|l| !is_name(l)) {
        return Err(RequestError::BadTarget(first.to_string()));
    }
    let command = strip_separator(rest);
    Ok(Request::Connect {
        target: target.to_string(),
        login: login.map(str::to_string),
        command: (!command.trim().is_empty()).then(|| command.to_string()),
    })
}

/// Drops a leading `--` word, which only separates the target from its command.
fn strip_separator(rest: &str) -> &str {
    match rest.strip_prefix("--") {
        Some(after) if after.is_empty() || after.starts_with(char::is_whitespace) => {
            after.trim_start()
        }
        _ => rest,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(target: &str, login: Option<&str>, command: Option<&str>) -> Request {
        Request::Connect {
            target: target.into(),
            login: login.map(Into::into),
            command: command.map(Into::into),
        }
    }

    #[test]
    fn parses_what_openssh_sends() {
        let cases: &[(&str, Request)] = &[
            ("db-1", connect("db-1", None, None)),
            ("  db-1  ", connect("db-1", None, None)),
            ("app@db-1", connect("db-1", Some("app"), None)),
            ("db-1 -- uname -a", connect("db-1", None, Some("uname -a"))),
            ("db-1 uname -a", connect("db-1", None, Some("uname -a"))),
            ("db-1 --", connect("db-1", None, None)),
            (
                "db-1 -- sh -c 'echo \"a  b\"'",
                connect("db-1", None, Some("sh -c 'echo \"a  b\"'")),
            ),
            ("db-1 --version", connect("db-1", None, Some("--version"))),
            (
                "root@db-1 -- tar x",
                connect("db-1", Some("root"), Some("tar x")),
            ),
            ("help", Request::Builtin(Builtin::Help)),
            ("grants", Request::Verb("grants".into())),
            (
                "request db-1 --for 1h --reason x",
                Request::Verb("request db-1 --for 1h --reason x".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(input.as_bytes()).as_ref(),
                Ok(expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_target() {
        assert_eq!(parse(b""), Err(RequestError::Empty));
        assert_eq!(parse(b"   "), Err(RequestError::Empty));
        assert_eq!(parse(b"\xff\xfe"), Err(RequestError::NotUtf8));
        for bad in [
            "db/1",
            "@db-1",
            "app@",
            "a@b@c",
            "-oProxyCommand=x",
            "db;rm",
        ] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(RequestError::BadTarget(_))),
                "{bad:?} should be rejected"
            );
        }
    }
}
