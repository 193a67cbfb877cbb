//! Time limits: warnings before a grant expires, and sessions cut at expiry or revocation,
//! with the target-side processes gone, even when the client is stopped and cannot cooperate.
//!
//! Grants last 6 s with warnings at 4 s and 2 s. Deadlines are measured from the moment
//! `grant add` returned, which is no earlier than the grant's real start.

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::bastion::is_id;
use bastion_tests::{GrantSpec, child, procs};

use crate::{Marker, bed, interactive, short_warnings};

const GRANT: Duration = Duration::from_secs(6);
/// tmux capture and process polling run every 25 ms; allow a little for that.
const POLL_SLACK: Duration = Duration::from_millis(150);

fn until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[test]
fn warns_before_expiry_then_closes_the_session_at_expiry() -> Result<()> {
    let bed = bed!(short_warnings());
    let id = bed.bastion.grant(&GrantSpec::new("alice", "db-1", "6s"))?;
    let expiry = Instant::now() + GRANT;
    let tmux = interactive(&bed, "db-1")?;
    let seconds = procs::unique_number().to_string();
    tmux.type_line(&format!("sleep {seconds}"))?;
    procs::wait_present(&["sleep", &seconds], Duration::from_secs(5))?;

    tmux.wait_until(
        until(expiry),
        "two \"expires in\" warnings (4s and 2s) before expiry",
        |s| s.matches("expires in").count() >= 2,
    )?;
    tmux.wait_until(
        until(expiry + Duration::from_secs(1) + POLL_SLACK),
        "\"expired\" within 1 s of expiry",
        |s| s.contains("expired"),
    )?;
    procs::wait_gone(&["sleep", &seconds], expiry + Duration::from_secs(2))
        .context("the target-side command must die within 2 s of expiry")?;
    let status = tmux.wait_exit(until(expiry + Duration::from_secs(2)).max(POLL_SLACK))?;
    ensure!(
        status != 0,
        "ssh should exit non-zero when the bastion cuts the session, exited {status}"
    );

    let recording = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;
    ensure!(
        recording.end_reason.as_deref() == Some("expired"),
        "expected end_reason \"expired\", got {recording:?}"
    );
    bed.bastion
        .wait_audit("grant.expired", Duration::from_secs(5), |e| {
            is_id(&e["grant"], &id)
        })?;
    Ok(())
}

/// The client is SIGSTOPped: it cannot read or react, yet the target side still dies on time.
#[test]
fn expiry_kills_the_target_side_even_if_the_client_is_stopped() -> Result<()> {
    let bed = bed!(short_warnings());
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "6s"))?;
    let expiry = Instant::now() + GRANT;
    let logs = tempfile::tempdir()?;
    let seconds = procs::unique_number().to_string();
    let mut ssh = bed
        .bastion
        .alice()
        .opt("-tt")
        .args(["db-1", "--", "sleep", &seconds])
        .command()
        .stdin(Stdio::piped())
        .stdout(File::create(logs.path().join("stdout"))?)
        .stderr(File::create(logs.path().join("stderr"))?)
        .spawn()?;
    let result = (|| -> Result<()> {
        procs::wait_present(&["sleep", &seconds], Duration::from_secs(5))?;
        child::signal(ssh.id(), libc::SIGSTOP);
        procs::wait_gone(&["sleep", &seconds], expiry + Duration::from_secs(2)).context(
            "with the client stopped, the target-side command must still die within 2 s of expiry",
        )?;
        child::signal(ssh.id(), libc::SIGCONT);
        let status = child::wait_deadline(&mut ssh, Instant::now() + Duration::from_secs(5))?
            .context("ssh did not exit within 5 s of SIGCONT after the session expired")?;
        let said = format!(
            "{}{}",
            std::fs::read_to_string(logs.path().join("stdout"))?,
            std::fs::read_to_string(logs.path().join("stderr"))?
        );
        ensure!(
            !status.success() && said.contains("expired"),
            "expected a non-zero exit and a message with \"expired\"; got {status}, output {said:?}"
        );
        Ok(())
    })();
    child::signal(ssh.id(), libc::SIGCONT);
    child::terminate(&mut ssh, Duration::from_secs(1));
    result
}

/// Without a PTY the remote command is cut as well: a loop ticking on the target stops.
#[test]
fn expiry_ends_a_command_session_without_a_pty() -> Result<()> {
    let bed = bed!(short_warnings());
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "6s"))?;
    let expiry = Instant::now() + GRANT;
    let marker = Marker::new()?;
    let tick = format!(
        "while echo tick; do touch {}; sleep 0.2; done",
        marker.path().display()
    );
    let mut ssh = bed
        .bastion
        .alice()
        .args(["db-1", "--", &tick])
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let result = (|| -> Result<()> {
        let status = child::wait_deadline(&mut ssh, expiry + Duration::from_secs(1) + POLL_SLACK)?
            .context("ssh was still running 1 s after the grant expired")?;
        ensure!(
            !status.success(),
            "ssh should exit non-zero when the session is cut, got {status}"
        );
        ensure!(marker.exists(), "the loop never ran on the target");
        std::thread::sleep(until(expiry + Duration::from_secs(2)));
        let last_tick = std::fs::metadata(marker.path())?.modified()?;
        std::thread::sleep(Duration::from_secs(1));
        ensure!(
            std::fs::metadata(marker.path())?.modified()? == last_tick,
            "the loop on the target kept ticking more than 2 s after expiry"
        );
        Ok(())
    })();
    child::terminate(&mut ssh, Duration::from_secs(1));
    result
}

#[test]
fn revoking_a_grant_kills_its_live_session_within_2s() -> Result<()> {
    let bed = bed!();
    let id = bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let tmux = interactive(&bed, "db-1")?;
    let seconds = procs::unique_number().to_string();
    tmux.type_line(&format!("sleep {seconds}"))?;
    procs::wait_present(&["sleep", &seconds], Duration::from_secs(5))?;
    bed.bastion.revoke(&id)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    tmux.wait_until(
        until(deadline + POLL_SLACK),
        "\"revoked\" within 2 s of grant revoke",
        |s| s.contains("revoked"),
    )?;
    procs::wait_gone(&["sleep", &seconds], deadline + POLL_SLACK)
        .context("the target-side command must die within 2 s of the revocation")?;
    let recording = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;
    ensure!(
        recording.end_reason.as_deref() == Some("revoked"),
        "expected end_reason \"revoked\", got {recording:?}"
    );
    Ok(())
}
