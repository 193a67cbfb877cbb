//! Interactive sessions on a real terminal (tmux): `ssh -t alice@bastion db-1` is a shell on
//! the target with a PTY of the user's size; how the session ended is recorded.

use std::time::Duration;

use anyhow::{Result, ensure};
use bastion_tests::{child, procs};

use crate::{bed, ensure_contains, hour_grant, interactive};

#[test]
fn interactive_shell_runs_on_the_target_with_a_pty() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    tmux.type_line("echo hello-$((6*7)); tty; id -un")?;
    // The last line of output, so the lines before it are on the screen too.
    let screen = tmux.wait_for("\nroot\n", Duration::from_secs(10))?;
    ensure_contains("the screen", &screen, "hello-42")?;
    ensure_contains("the screen", &screen, "/dev/pts/")?;
    tmux.type_line("exit")?;
    let status = tmux.wait_exit(Duration::from_secs(10))?;
    ensure!(
        status == 0,
        "ssh should exit 0 after the remote shell's `exit`, exited {status}"
    );
    let recording = bed.bastion.wait_recording(Duration::from_secs(10), |r| {
        r.user == "alice" && r.target == "db-1"
    })?;
    ensure!(
        recording.end_reason.as_deref() == Some("exit") && recording.login == "root",
        "expected a recording with end_reason \"exit\" and login root, got {recording:?}"
    );
    Ok(())
}

#[test]
fn interactive_login_at_target_gets_a_shell_as_that_login() -> Result<()> {
    let bed = bed!();
    bed.bastion
        .grant(&bastion_tests::GrantSpec::new("alice", "db-1", "1h").login("app"))?;
    let tmux = interactive(&bed, "app@db-1")?;
    tmux.type_line("echo who=$(id -un)")?;
    tmux.wait_for("who=app", Duration::from_secs(10))?;
    Ok(())
}

/// The target's PTY has the client's size, and follows when the terminal is resized.
#[test]
fn terminal_size_and_resizes_reach_the_target() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    tmux.type_line("echo size=$(stty size)")?;
    tmux.wait_for("size=40 120", Duration::from_secs(10))?;
    tmux.resize(100, 30)?;
    // The window-change request travels asynchronously; ask until the new size shows.
    let mut last = String::new();
    for _ in 0..20 {
        tmux.type_line("echo resized=$(stty size)")?;
        last = tmux.wait_for("resized=", Duration::from_secs(5))?;
        if last.contains("resized=30 100") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("after resizing to 100x30 the target never saw \"30 100\"; screen:\n{last}")
}

/// Killing the ssh client ends the session on the target too, recorded as client_closed.
#[test]
fn killed_client_ends_the_session_as_client_closed() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    let seconds = procs::unique_number().to_string();
    tmux.type_line(&format!("sleep {seconds}"))?;
    procs::wait_present(&["sleep", &seconds], Duration::from_secs(10))?;
    child::signal(tmux.pid()?, libc::SIGKILL);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    procs::wait_gone(&["sleep", &seconds], deadline).map_err(|e| {
        anyhow::anyhow!("the target-side command outlived the killed client by 10 s: {e}")
    })?;
    let recording = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;
    ensure!(
        recording.end_reason.as_deref() == Some("client_closed"),
        "expected end_reason \"client_closed\" after the client was killed, got {recording:?}"
    );
    Ok(())
}
