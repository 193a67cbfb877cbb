//! The shipped systemd unit passes `systemd-analyze verify` without a single warning (unknown
//! keys, bad values and typos only warn, so the test treats any output as failure).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bastion_tests::{child, prereq};

#[test]
fn systemd_unit_verifies_cleanly() -> Result<()> {
    if !prereq::require(&["systemd-analyze"]) {
        return Ok(());
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/bastion.service");
    let text =
        std::fs::read_to_string(&unit).with_context(|| format!("reading {}", unit.display()))?;
    let installed = "/usr/local/bin/bastion";
    ensure!(
        text.contains(&format!("ExecStart={installed} serve")),
        "the unit should run {installed} serve"
    );
    // verify checks that ExecStart exists; point it at the binary under test instead.
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("bastion.service");
    std::fs::write(
        &copy,
        text.replace(installed, &prereq::bastion_bin().display().to_string()),
    )?;
    let out = child::run(
        Command::new(prereq::tool("systemd-analyze"))
            .arg("verify")
            .arg(&copy),
        child::Input::Null,
        Duration::from_secs(60),
    )?;
    ensure!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify {}: exit {:?}\n{}{}",
        unit.display(),
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    for directive in [
        "User=bastion",
        "StateDirectory=bastion",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "TimeoutStopSec=30s",
    ] {
        ensure!(
            text.lines().any(|l| l.trim() == directive),
            "the unit should set {directive}"
        );
    }
    Ok(())
}
