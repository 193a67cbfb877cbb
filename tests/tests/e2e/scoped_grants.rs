//! Least privilege inside a grant (`grant add --command PATTERN --no-pty`): only a command
//! matching a pattern whole runs; a shell, a terminal, another command or a command with a
//! shell metacharacter is refused with one line naming the rule, exit status 77, nothing run
//! on the target, and a `command.refused` audit event.

use std::time::Duration;

use anyhow::{Result, ensure};
use bastion_tests::bastion::is_id;
use bastion_tests::{GrantSpec, TestBed};

use crate::{Marker, bed};

const DENIED: i32 = 77;

/// A grant for alice on db-1 that admits only `echo allowed *`, without a terminal.
fn scoped_grant(bed: &TestBed) -> Result<String> {
    bed.bastion.grant(
        &GrantSpec::new("alice", "db-1", "1h")
            .command("echo allowed *")
            .no_pty(),
    )
}

/// Runs `ssh [OPTIONS] alice@bastion db-1 [-- COMMAND]`, expects exit 77 and exactly one stderr
/// line containing `rule` (besides OpenSSH's own "Connection ... closed." with a PTY); returns
/// the line.
fn ensure_refused(
    bed: &TestBed,
    options: &[&str],
    command: Option<&str>,
    rule: &str,
) -> Result<String> {
    let mut ssh = bed.bastion.alice();
    for option in options {
        ssh = ssh.opt(*option);
    }
    ssh = ssh.arg("db-1");
    if let Some(command) = command {
        ssh = ssh.args(["--", command]);
    }
    let out = ssh.run()?;
    let stderr = out.stderr_str();
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Connection to "))
        .collect();
    ensure!(
        out.code() == Some(DENIED)
            && lines.len() == 1
            && lines[0].starts_with("bastion: access denied to db-1: ")
            && lines[0].contains(rule)
            && out.stdout.is_empty(),
        "ssh {options:?} db-1 -- {command:?}: expected exit {DENIED} and one stderr line naming \
         {rule:?}; got exit {:?}, stderr {stderr:?}, stdout {:?}",
        out.code(),
        out.stdout_str()
    );
    Ok(lines[0].to_string())
}

#[test]
fn an_allowed_command_runs() -> Result<()> {
    let bed = bed!();
    scoped_grant(&bed)?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo allowed x"])
        .run()?;
    ensure!(
        out.code() == Some(0) && out.stdout_str() == "allowed x\n" && out.stderr.is_empty(),
        "expected exit 0 and \"allowed x\"; got exit {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(())
}

#[test]
fn other_commands_and_smuggled_ones_are_refused_and_nothing_runs() -> Result<()> {
    let bed = bed!();
    let id = scoped_grant(&bed)?;
    let marker = Marker::new()?;
    let other = marker.touch_command();
    let line = ensure_refused(
        &bed,
        &[],
        Some(&other),
        "command matches none of the grant's allowed commands: echo allowed *",
    )?;
    ensure!(
        !line.contains("grant add"),
        "a scope refusal does not suggest asking for a grant: {line}"
    );
    let smuggled = format!("echo allowed x; {}", marker.touch_command());
    ensure_refused(
        &bed,
        &[],
        Some(&smuggled),
        "command contains a shell metacharacter ';'",
    )?;
    let substituted = format!("echo allowed $({})", marker.touch_command());
    ensure_refused(
        &bed,
        &[],
        Some(&substituted),
        "command contains a shell metacharacter '$('",
    )?;
    // A command that slipped through would have created the marker before ssh returned.
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        !marker.exists(),
        "a refused command ran on the target (marker {} exists)",
        marker.path().display()
    );

    let refused = bed
        .bastion
        .audit_events()?
        .into_iter()
        .filter(|e| e["event"] == "command.refused")
        .collect::<Vec<_>>();
    ensure!(
        refused.len() == 3,
        "expected 3 command.refused events, got {refused:#?}"
    );
    let first = &refused[0];
    ensure!(
        is_id(&first["grant"], &id)
            && first["user"] == "alice"
            && first["target"] == "db-1"
            && first["login"] == "root"
            && first["command"] == other.as_str()
            && first["pty"] == false
            && first["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1:"))
            && first["rule"]
                == "command matches none of the grant's allowed commands: echo allowed *",
        "command.refused event: {first:#}"
    );
    ensure!(
        refused[1]["command"] == smuggled.as_str()
            && refused[1]["rule"] == "command contains a shell metacharacter ';'",
        "the smuggle's event: {:#}",
        refused[1]
    );
    ensure!(
        bed.bastion
            .audit_events()?
            .iter()
            .all(|e| e["event"] != "session.start"),
        "no session started"
    );
    Ok(())
}

#[test]
fn a_terminal_and_an_interactive_shell_are_refused() -> Result<()> {
    let bed = bed!();
    scoped_grant(&bed)?;
    let no_terminal = "this grant allows no terminal (pty = false); run a command: \
                       ssh bastion db-1 -- COMMAND";
    // `ssh -t bastion db-1`; -tt because the test's stdin is not a terminal.
    ensure_refused(&bed, &["-tt"], None, no_terminal)?;
    // Even an allowed command may not have a terminal.
    ensure_refused(&bed, &["-tt"], Some("echo allowed x"), no_terminal)?;
    // No terminal, no command: an interactive shell.
    ensure_refused(
        &bed,
        &["-T"],
        None,
        "this grant allows no interactive shell, only the commands echo allowed *; \
         run one: ssh bastion db-1 -- COMMAND",
    )?;
    let refused: Vec<serde_json::Value> = bed
        .bastion
        .audit_events()?
        .into_iter()
        .filter(|e| e["event"] == "command.refused")
        .collect();
    ensure!(
        refused.len() == 3
            && refused[0]["pty"] == true
            && refused[0]["command"].is_null()
            && refused[1]["command"] == "echo allowed x"
            && refused[2]["pty"] == false
            && refused[2]["command"].is_null(),
        "expected three command.refused events (PTY shell, PTY command, shell); got {refused:#?}"
    );
    Ok(())
}

/// A grant without a scope still admits what it always did, including metacharacters.
#[test]
fn an_unscoped_grant_admits_any_command() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo one; echo two | cat"])
        .run()?;
    ensure!(
        out.code() == Some(0) && out.stdout_str() == "one\ntwo\n",
        "expected exit 0 and two lines; got exit {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(())
}
