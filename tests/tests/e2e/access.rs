//! Who gets in: without an active grant for the target and login, the user sees one
//! "access denied" line with a hint, ssh exits non-zero and nothing runs on the target; with no
//! command at all the user gets a menu of her grants, never a shell on the bastion.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bastion_tests::{GrantSpec, TestBed, Tmux};

use crate::{Marker, bed, ensure_contains, hour_grant};

/// Runs `ssh alice@bastion DESTINATION -- touch MARKER` and checks that it was denied.
fn ensure_denied(bed: &TestBed, destination: &str, case: &str) -> Result<()> {
    let marker = Marker::new()?;
    let out = bed
        .bastion
        .alice()
        .args([destination, "--", &marker.touch_command()])
        .run()?;
    let stderr = out.stderr_str();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        !out.status.success()
            && lines.len() == 1
            && lines[0].to_lowercase().contains("access denied")
            && lines[0].contains("grant"),
        "{case}: expected a non-zero exit and one stderr line with \"access denied\" and how to ask for a grant; \
         got exit {:?}, stderr {stderr:?}, stdout {:?}",
        out.code(),
        out.stdout_str()
    );
    // A command that slipped through would have created the marker before ssh returned.
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        !marker.exists(),
        "{case}: the command ran on the target although access was denied"
    );
    Ok(())
}

#[test]
fn denied_without_any_grant() -> Result<()> {
    let bed = bed!();
    ensure_denied(&bed, "db-1", "no grant")
}

#[test]
fn denied_after_the_grant_expired() -> Result<()> {
    let bed = bed!();
    let started = Instant::now();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1s"))?;
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed()));
    ensure_denied(&bed, "db-1", "expired grant")
}

#[test]
fn denied_before_the_grant_starts() -> Result<()> {
    let bed = bed!();
    bed.bastion
        .grant(&GrantSpec::new("alice", "db-1", "1h").starts_in("1h"))?;
    ensure_denied(&bed, "db-1", "grant starting in an hour")
}

#[test]
fn denied_after_the_grant_was_revoked() -> Result<()> {
    let bed = bed!();
    let id = bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    bed.bastion.revoke(&id)?;
    ensure_denied(&bed, "db-1", "revoked grant")
}

#[test]
fn denied_on_a_target_the_grant_does_not_cover() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-2", "1h"))?;
    ensure_denied(&bed, "db-1", "grant for db-2 only")
}

#[test]
fn denied_for_a_login_the_grant_does_not_cover() -> Result<()> {
    let bed = bed!();
    bed.bastion
        .grant(&GrantSpec::new("alice", "db-1", "1h").login("root"))?;
    ensure_denied(&bed, "app@db-1", "grant for login root only")
}

#[test]
fn denied_with_another_users_grant() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("bob", "db-1", "1h"))?;
    ensure_denied(&bed, "db-1", "grant belongs to bob")
}

/// Denial on a terminal (`ssh -t`) shows the message and ends the session as well.
#[test]
fn denied_interactive_session_shows_message_and_exits() -> Result<()> {
    let bed = bed!();
    let tmux = Tmux::start(&bed.bastion.alice().opt("-t").arg("db-1").shell_line())?;
    let status = tmux.wait_exit(Duration::from_secs(15))?;
    let screen = tmux.screen()?;
    ensure!(
        status != 0 && screen.to_lowercase().contains("access denied"),
        "expected \"access denied\" and a non-zero exit; got exit {status}, screen:\n{screen}"
    );
    Ok(())
}

/// A key the bastion does not know is rejected at authentication.
#[test]
fn unknown_key_is_rejected() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let dir = tempfile::tempdir()?;
    let stranger = bastion_tests::keys::KeyPair::generate(dir.path(), "mallory")?;
    let marker = Marker::new()?;
    let out = bed
        .bastion
        .ssh(&stranger, "alice")
        .args(["db-1", "--", &marker.touch_command()])
        .run()?;
    ensure!(
        out.code() == Some(255) && out.stderr_str().contains("Permission denied"),
        "alice's name with mallory's key: expected ssh's \"Permission denied\" and exit 255, got exit {:?}, stderr {:?}",
        out.code(),
        out.stderr_str()
    );
    ensure!(!marker.exists(), "a command ran with an unknown key");
    Ok(())
}

/// `ssh alice@bastion` with no command: a menu naming her grants, then exit, never a shell.
#[test]
fn menu_lists_grants_and_never_gives_a_shell() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    bed.bastion.grant(&GrantSpec::new("alice", "db-2", "1h"))?;
    let out = bed
        .bastion
        .alice()
        .stdin_bytes("echo SHELL_$((6*7)); uname -a\n")
        .timeout(Duration::from_secs(15))
        .run()?;
    let text = format!("{}{}", out.stdout_str(), out.stderr_str());
    ensure_contains("the menu", &text, "db-1")?;
    ensure_contains("the menu", &text, "db-2")?;
    ensure!(
        !text.contains("SHELL_42"),
        "the bastion ran a shell for input on stdin; output:\n{text}"
    );
    // bob has no grants: his menu must not show alice's.
    let bob = bed.bastion.ssh(&bed.bastion.bob, "bob").run()?;
    let bob_text = format!("{}{}", bob.stdout_str(), bob.stderr_str());
    ensure!(
        !bob_text.contains("db-1") && !bob_text.is_empty(),
        "bob's menu should be non-empty and must not list alice's grant on db-1; got:\n{bob_text}"
    );
    Ok(())
}

/// On a terminal the menu is shown and the session ends by itself.
#[test]
fn menu_on_a_terminal_exits_by_itself() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let tmux = Tmux::start(&bed.bastion.alice().opt("-t").shell_line())?;
    tmux.wait_exit(Duration::from_secs(15))?;
    let screen = tmux.screen()?;
    ensure_contains("the menu on the terminal", &screen, "db-1")?;
    Ok(())
}
