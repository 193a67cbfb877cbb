//! The command allow-list of a grant: which remote commands a grant with `commands` admits.
//!
//! A pattern matches the *whole* command string: `*` matches any run of characters (spaces and
//! `/` included, so `journalctl -u app *` admits `journalctl -u app --since /tmp`), `?` one
//! character, everything else itself. The target runs the command through the login's shell,
//! so before any pattern is tried a command containing a shell metacharacter is refused: that
//! is how `systemctl status app; id` cannot ride on `systemctl status *`.
//!
//! The matcher is our own: the `glob` and `globset` crates match paths (their `*` stops at
//! `/`, and they know `[...]` classes and `**`), which is not what an admin writing a command
//! line expects.

use std::fmt;

use crate::audit::MAX_COMMAND_TEXT;
use crate::text::escape_controls;
use crate::wildcard::matches;

// One list for the configuration and the access layer; `rules` takes it from here.
pub(super) use crate::wildcard::METACHARACTERS;

/// Why a command was not admitted; `Display` is the rule, one line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRefusal {
    /// The command contains `found`, one of [`METACHARACTERS`].
    Metacharacter { found: &'static str },
    /// Longer than any allow-listed grant admits (bounds the matching work and keeps the whole
    /// command in the audit record).
    TooLong { bytes: usize },
    /// No pattern matches the whole command.
    NoMatch { patterns: Vec<String> },
}

impl fmt::Display for CommandRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandRefusal::Metacharacter { found } => write!(
                f,
                "command contains a shell metacharacter '{}'",
                escape_controls(found)
            ),
            CommandRefusal::TooLong { bytes } => write!(
                f,
                "command is {bytes} bytes long, over the {MAX_COMMAND_TEXT} a grant with allowed commands admits"
            ),
            CommandRefusal::NoMatch { patterns } => write!(
                f,
                "command matches none of the grant's allowed commands: {}",
                escape_controls(&patterns.join(", "))
            ),
        }
    }
}

/// Admits `command` when `patterns` is empty (the grant does not restrict commands), or when it
/// contains no shell metacharacter and one pattern matches it whole.
pub fn check(patterns: &[String], command: &str) -> Result<(), CommandRefusal> {
    if patterns.is_empty() {
        return Ok(());
    }
    if let Some(found) = METACHARACTERS.iter().find(|m| command.contains(**m)) {
        return Err(CommandRefusal::Metacharacter { found });
    }
    if command.len() > MAX_COMMAND_TEXT {
        return Err(CommandRefusal::TooLong {
            bytes: command.len(),
        });
    }
    if patterns.iter().any(|p| matches(p, command)) {
        Ok(())
    } else {
        Err(CommandRefusal::NoMatch {
            patterns: patterns.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_pattern_matches_the_whole_command() {
        let allowed = patterns(&["systemctl status *", "journalctl -u app *", "uptime"]);
        for ok in [
            "systemctl status app",
            "systemctl status ",
            "journalctl -u app --since /var/log -n 5",
            "uptime",
        ] {
            assert_eq!(check(&allowed, ok), Ok(()), "{ok:?}");
        }
        for refused in [
            "systemctl restart app",
            "systemctl status",
            "uptime -p",
            " uptime",
            "sudo systemctl status app",
            "journalctl -u apps x",
        ] {
            assert_eq!(
                check(&allowed, refused),
                Err(CommandRefusal::NoMatch {
                    patterns: allowed.clone()
                }),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", ""));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a*b*c", "a-b-b-c"));
        assert!(!matches("a*b*c", "a-b-b-"));
        assert!(matches("ls /var/*/app", "ls /var/log/nested dir/app"));
        assert!(matches("é?", "éü"), "characters, not bytes");
        assert!(!matches("abc", "abcd"));
    }

    #[test]
    fn metacharacters_are_refused_before_matching() {
        let allowed = patterns(&["systemctl status *", "*"]);
        for (command, found) in [
            ("systemctl status app; id", ";"),
            ("systemctl status $(id)", "$("),
            ("systemctl status ${IFS}", "${"),
            ("systemctl status `id`", "`"),
            ("systemctl status app\nid", "\n"),
            ("systemctl status app\rid", "\r"),
            ("systemctl status app\0id", "\0"),
            ("systemctl status app && id", "&"),
            ("systemctl status app & id", "&"),
            ("systemctl status app | sh", "|"),
            ("systemctl status app > /etc/passwd", ">"),
            ("systemctl status app < /dev/zero", "<"),
        ] {
            assert_eq!(
                check(&allowed, command),
                Err(CommandRefusal::Metacharacter { found }),
                "{command:?}"
            );
        }
        assert_eq!(
            check(&allowed, "systemctl status app; id")
                .unwrap_err()
                .to_string(),
            "command contains a shell metacharacter ';'"
        );
        assert_eq!(
            check(&allowed, "systemctl status app\nid")
                .unwrap_err()
                .to_string(),
            "command contains a shell metacharacter '\\n'"
        );
        // A plain `$` expands a variable but runs nothing.
        assert_eq!(check(&allowed, "systemctl status $HOME"), Ok(()));
    }

    #[test]
    fn no_patterns_admit_anything() {
        assert_eq!(check(&[], "rm -rf /tmp/x; id | tee y"), Ok(()));
    }

    #[test]
    fn refusals_name_the_rule() {
        let allowed = patterns(&["systemctl status *", "uptime"]);
        assert_eq!(
            check(&allowed, "id").unwrap_err().to_string(),
            "command matches none of the grant's allowed commands: systemctl status *, uptime"
        );
        let long = format!("systemctl status {}", "a".repeat(MAX_COMMAND_TEXT));
        assert_eq!(
            check(&allowed, &long).unwrap_err().to_string(),
            format!(
                "command is {} bytes long, over the {MAX_COMMAND_TEXT} a grant with allowed commands admits",
                long.len()
            )
        );
    }

    #[test]
    fn matching_work_is_bounded() {
        // The classic blow-up for recursive matchers; the iterative one stays linear-ish.
        let pattern = format!("{}b", "*a".repeat(100));
        let text = "a".repeat(MAX_COMMAND_TEXT);
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
