//! The audit log (JSON lines at `audit_log`): every authentication, grant change, denial and
//! session start/end leaves an event an auditor can match to the user and grant.

use std::time::Duration;

use anyhow::{Result, ensure};
use bastion_tests::GrantSpec;
use bastion_tests::bastion::is_id;
use bastion_tests::keys::KeyPair;

use crate::bed;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn audit_log_records_auth_grants_denials_and_sessions() -> Result<()> {
    let bed = bed!();
    let b = &bed.bastion;
    let id = b.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    b.wait_audit("grant.created", WAIT, |e| {
        is_id(&e["grant"], &id) && e["user"] == "alice"
    })?;

    let out = b.alice().args(["db-1", "--", "true"]).run()?;
    ensure!(
        out.status.success(),
        "granted exec failed: {}",
        out.stderr_str()
    );
    b.wait_audit("auth.success", WAIT, |e| e["user"] == "alice")?;
    b.wait_audit("session.start", WAIT, |e| {
        e["user"] == "alice"
            && e["target"] == "db-1"
            && e["login"] == "root"
            && is_id(&e["grant"], &id)
    })?;
    b.wait_audit("session.end", WAIT, |e| {
        e["user"] == "alice" && e["target"] == "db-1"
    })?;

    let denied = b.alice().args(["db-2", "--", "true"]).run()?;
    ensure!(
        !denied.status.success(),
        "db-2 without a grant should be denied"
    );
    b.wait_audit("access.denied", WAIT, |e| {
        e["user"] == "alice" && e["target"] == "db-2"
    })?;

    let dir = tempfile::tempdir()?;
    let stranger = KeyPair::generate(dir.path(), "mallory")?;
    let rejected = b
        .ssh(&stranger, "alice")
        .args(["db-1", "--", "true"])
        .run()?;
    ensure!(
        !rejected.status.success(),
        "an unknown key should be rejected"
    );
    b.wait_audit("auth.failure", WAIT, |e| e["user"] == "alice")?;

    b.revoke(&id)?;
    b.wait_audit("grant.revoked", WAIT, |e| is_id(&e["grant"], &id))?;

    let events = b.audit_events()?;
    ensure!(
        events
            .iter()
            .all(|e| e["event"].is_string() && e["ts"].is_string()),
        "every audit line should carry \"event\" and \"ts\"; log:\n{}",
        events
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let text = std::fs::read_to_string(b.audit_log())?;
    ensure!(
        !text.contains(
            bed.bastion
                .alice
                .public
                .split_whitespace()
                .nth(1)
                .unwrap_or("-")
        ),
        "the audit log must not contain key material"
    );
    Ok(())
}
