//! `bastion sessions end`: an admin ends a live session through the database; the daemon ends it
//! within `grant_poll`, tells the user, and the recording and audit log say who did it.

use std::time::Duration;

use anyhow::{Result, ensure};

use crate::{bed, ensure_contains, hour_grant, interactive};

#[test]
fn an_admin_ends_a_live_session_from_the_cli() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    let rows = bed.bastion.recordings()?;
    let id = rows
        .iter()
        .find(|r| r.user == "alice" && r.end_reason.is_none())
        .map(|r| r.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no running session for alice: {rows:?}"))?;

    let out = bed
        .bastion
        .cli_ok("sessions", "end", &[&id, "--by", "carol"])?;
    ensure_contains(
        "sessions end output",
        &out.stdout_str(),
        &format!("asked to end session {id} (alice on db-1 as root)"),
    )?;
    tmux.wait_exit(Duration::from_secs(10))?;
    ensure_contains("the user's screen", &tmux.screen()?, "ended by carol")?;
    let rec = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.id == id)?;
    ensure!(
        rec.end_reason.as_deref() == Some("terminated"),
        "end reason should be \"terminated\", got {rec:?}"
    );
    let event = bed
        .bastion
        .wait_audit("session.end_requested", Duration::from_secs(5), |e| {
            e["session"] == id.as_str()
        })?;
    ensure!(event["by"] == "carol", "audit event {event}");

    let again = bed.bastion.cli_ok("sessions", "end", &[&id])?;
    ensure_contains(
        "a second end",
        &again.stdout_str(),
        &format!("session {id} already ended at "),
    )?;
    Ok(())
}
