//! The access workflow's verbs as people type them: `request`, `requests`, `approve`, `deny`,
//! `grants`, `cancel`, `extend`, `break-glass`, `reviews`, `review`. One definition serves
//! both faces: `ssh bastion VERB ...` and the admin command's `bastion VERB --as USER ...`,
//! and one runner ([`run`]) calls the grant service for both, so the two cannot drift.
//!
//! Over SSH the words arrive joined into one string by the client, after the user's shell
//! removed their quotes: `ssh bastion request db-1 --reason 'disk full'` arrives as
//! `request db-1 --reason disk full`. So the free-text options (`--reason`, `--comment`) take
//! every word up to the next option; one pair of quotes around the whole value, if it
//! survived, is removed.

mod run;
mod show;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use run::{Reply, WaitFor, run, wait};

use crate::db::GrantId;

/// Exit status of a request decided `denied` or `cancelled` while waiting, and of a refusal.
pub const DENIED_STATUS: u32 = 77;
/// Exit status when the bastion itself failed (the grant store unavailable).
pub const UNAVAILABLE_STATUS: u32 = 69;
/// Exit status of a request that expired undecided while waiting (try again).
pub const EXPIRED_STATUS: u32 = 75;
/// Exit status of words that are not a verb's usage.
pub const USAGE_STATUS: u32 = 2;

/// `ssh bastion VERB ...`.
#[derive(Debug, Parser)]
#[command(
    name = "ssh bastion",
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct SshLine {
    #[command(subcommand)]
    verb: Verb,
}

/// One step of the access workflow.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Verb {
    /// Ask for access to a target
    Request(RequestArgs),
    /// List the pending requests you may decide
    Requests,
    /// Approve a pending request
    Approve(ApproveArgs),
    /// Deny a pending request; it ends at once
    Deny(DenyArgs),
    /// Your active and pending access, with the time left, and your pending requests
    Grants,
    /// Withdraw one of your pending requests
    Cancel(CancelArgs),
    /// Ask for more time on one of your grants; live sessions go on
    Extend(ExtendArgs),
    /// Take access at once in an emergency (only users a policy names); it is reviewed later
    #[command(name = "break-glass")]
    BreakGlass(BreakGlassArgs),
    /// List break-glass grants waiting for an approver's review
    Reviews,
    /// Acknowledge a break-glass grant as its reviewer
    Review(ReviewArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RequestArgs {
    /// The target to reach
    pub target: String,
    /// How long the access lasts once approved, e.g. 30m, 1h
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    /// Why (a ticket, an incident); the rest of the words up to the next option
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The login on the target (default: the target's default login)
    #[arg(long, value_name = "LOGIN")]
    pub login: Option<String>,
    /// Start this long after the approval, e.g. 10m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub starts_in: Option<Duration>,
    /// Block until the request is decided or expires (exit 0 approved, 77 denied, 75 expired)
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ApproveArgs {
    /// The request id, e.g. r-7f3k
    pub id: String,
    /// A note for the audit trail
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DenyArgs {
    /// The request id, e.g. r-7f3k
    pub id: String,
    /// Why it is denied (the requester sees it)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CancelArgs {
    /// The request id, e.g. r-7f3k
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ExtendArgs {
    /// A grant id, or the id of a session running under the grant
    pub what: String,
    /// How much longer, e.g. 30m
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    /// Why more time is needed
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Block until the extension is decided or expires
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct BreakGlassArgs {
    /// The target to reach
    pub target: String,
    /// What is on fire (required)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The login on the target
    #[arg(long, value_name = "LOGIN")]
    pub login: Option<String>,
    /// How long (default and cap: the policy's max_duration)
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ReviewArgs {
    /// The break-glass grant's id
    pub grant: GrantId,
    /// What the reviewer found
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
}

/// Options whose value is free text: over SSH they take every word up to the next option.
const FREE_TEXT: &[&str] = &["--reason", "--comment"];
/// Every long option a verb knows: where free text stops.
const OPTIONS: &[&str] = &[
    "--for",
    "--reason",
    "--comment",
    "--login",
    "--starts-in",
    "--wait",
    "--help",
];

/// Whether the first word of an exec string names a verb (the names no target may have).
pub fn is_verb(first_word: &str) -> bool {
    first_word != "help" && crate::config::RESERVED_NAMES.contains(&first_word)
}

/// What the words of an SSH exec string are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Verb(Verb),
    /// `--help` (status 0) or a usage error (status 2): the text to show.
    Usage {
        text: String,
        status: u32,
    },
}

/// Parses `ssh bastion VERB ...` (the exec string as the client sent it).
pub fn parse_ssh(line: &str) -> Parsed {
    let words = collapse_free_text(split_words(line));
    match SshLine::try_parse_from(std::iter::once("ssh bastion".to_string()).chain(words)) {
        Ok(parsed) => Parsed::Verb(parsed.verb),
        Err(err) => {
            let status = if err.use_stderr() { USAGE_STATUS } else { 0 };
            // clap echoes what the client typed: no escape sequence of theirs reaches a
            // terminal.
            let text = err
                .render()
                .to_string()
                .lines()
                .map(crate::text::escape_controls)
                .collect::<Vec<_>>()
                .join("\n");
            Parsed::Usage {
                text: text.trim_end().to_string(),
                status,
            }
        }
    }
}

/// The words, split at white space. No shell parsing: the user's own shell already removed
/// their quotes, and an apostrophe in a reason ("don't") is text, not a quote.
fn split_words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// A free-text value without the one pair of quotes around it that survived the user's shell
/// (`ssh bastion "deny r-7f3k --reason 'not now'"`).
fn unquote(value: String) -> String {
    for quote in ['\'', '"'] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_string();
        }
    }
    value
}

/// Joins the words after a free-text option, up to the next known option, into its value.
fn collapse_free_text(words: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut words = words.into_iter().peekable();
    while let Some(word) = words.next() {
        let (option, first) = match word.split_once('=') {
            Some((option, value)) if FREE_TEXT.contains(&option) => {
                (option.to_string(), Some(value.to_string()))
            }
            _ if FREE_TEXT.contains(&word.as_str()) => (word.clone(), None),
            _ => {
                out.push(word);
                continue;
            }
        };
        let mut value: Vec<String> = first.into_iter().collect();
        while let Some(next) = words.peek() {
            let name = next.split_once('=').map_or(next.as_str(), |(n, _)| n);
            if OPTIONS.contains(&name) {
                break;
            }
            value.extend(words.next());
        }
        out.push(option);
        if !value.is_empty() {
            out.push(unquote(value.join(" ")));
        }
    }
    out
}

/// A duration such as `30m` or `1h30m`, greater than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration {text:?}: {err} (expected e.g. 30m, 1h, 2h30m)")
    })?;
    if duration.is_zero() {
        return Err("duration must be greater than zero".to_string());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(line: &str) -> Verb {
        match parse_ssh(line) {
            Parsed::Verb(verb) => verb,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn reasons_survive_the_lost_quotes() {
        let Verb::Request(args) =
            verb("request db-1 --for 1h --reason disk full on db-1 --login app")
        else {
            panic!()
        };
        assert_eq!(args.reason.as_deref(), Some("disk full on db-1"));
        assert_eq!(args.login.as_deref(), Some("app"));
        assert_eq!(args.duration, Duration::from_secs(3600));
        let Verb::Request(args) =
            verb("request db-1 --reason='INC-7: it is down' --for 30m --wait")
        else {
            panic!()
        };
        assert_eq!(args.reason.as_deref(), Some("INC-7: it is down"));
        assert!(args.wait);
        let Verb::Deny(args) = verb("deny r-7f3k --reason don't, it's prod") else {
            panic!()
        };
        assert_eq!(args.reason, "don't, it's prod");
        let Verb::Deny(args) = verb("deny r-7f3k --reason 'not during the freeze'") else {
            panic!()
        };
        assert_eq!(args.reason, "not during the freeze");
        let Verb::Approve(args) = verb("approve r-7f3k --comment ok -- go") else {
            panic!()
        };
        assert_eq!(args.comment.as_deref(), Some("ok -- go"));
    }

    #[test]
    fn every_verb_parses() {
        assert_eq!(verb("requests"), Verb::Requests);
        assert_eq!(verb("grants"), Verb::Grants);
        assert_eq!(verb("reviews"), Verb::Reviews);
        assert!(matches!(verb("cancel r-7f3k"), Verb::Cancel(_)));
        assert!(matches!(
            verb("extend 12 --for 30m --reason more"),
            Verb::Extend(_)
        ));
        assert!(matches!(
            verb("break-glass db-1 --reason fire --login app"),
            Verb::BreakGlass(_)
        ));
        assert!(matches!(verb("review 12 --comment fine"), Verb::Review(_)));
        for verb in crate::config::RESERVED_NAMES
            .iter()
            .filter(|v| **v != "help")
        {
            assert!(is_verb(verb), "{verb}");
            let line = format!("{verb} --help");
            assert!(
                matches!(parse_ssh(&line), Parsed::Usage { status: 0, .. }),
                "{verb} is a reserved name but not a verb"
            );
        }
    }

    #[test]
    fn usage_errors_are_text_with_status_2_and_help_is_0() {
        match parse_ssh("request db-1 --reason x") {
            Parsed::Usage { text, status } => {
                assert_eq!(status, USAGE_STATUS);
                assert!(text.contains("--for"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        match parse_ssh("request --help") {
            Parsed::Usage { text, status } => {
                assert_eq!(status, 0);
                assert!(text.contains("Usage: ssh bastion request"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        match parse_ssh("request db-1 --for 1h --bogus \u{1b}[2J") {
            Parsed::Usage { text, .. } => assert!(!text.contains('\u{1b}'), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}
