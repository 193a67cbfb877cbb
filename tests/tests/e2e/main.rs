//! End-to-end tests of bastion: the real daemon and CLI, a real OpenSSH sshd as the target and
//! the real OpenSSH client as the user. One test binary (one build), one module per area; every
//! test has its own sshd, bastion, ports and temp dirs, so they run in parallel.

mod access;
mod api;
mod api_edges;
mod audit;
mod clients;
mod ending;
mod exec;
mod expiry;
mod forwarding;
mod grants;
mod harness;
mod interactive;
mod lifecycle;
mod limits;
mod nodes;
mod notify;
mod recordings;
mod replay;
mod scoped_grants;
mod slack;
mod storage;
mod systemd;
mod workflow;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};
use bastion_tests::{GrantSpec, Options, TestBed, Tmux};

/// Starts a `TestBed`, or ends the test early when a prerequisite is missing outside CI
/// (a SKIP line has been printed; in CI the start panics instead).
macro_rules! bed {
    ($options:expr) => {
        match bastion_tests::TestBed::start($options)? {
            Some(bed) => bed,
            None => return Ok(()),
        }
    };
    () => {
        bed!(bastion_tests::Options::default())
    };
}
pub(crate) use bed;

/// A path on the target that a command would create if it ran; used to prove that a denied
/// session ran nothing. The directory is world-writable so that `app` could create it too.
pub struct Marker {
    dir: tempfile::TempDir,
}

impl Marker {
    pub fn new() -> Result<Marker> {
        let dir = tempfile::Builder::new()
            .prefix("bastion-marker-")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        Ok(Marker { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ran")
    }

    /// Shell command that creates the marker.
    pub fn touch_command(&self) -> String {
        format!("touch {}", self.path().display())
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }
}

/// A grant for alice on `target` lasting an hour.
pub fn hour_grant(bed: &TestBed, target: &str) -> Result<String> {
    bed.bastion.grant(&GrantSpec::new("alice", target, "1h"))
}

/// Options with the short warnings the expiry tests use against 6 s grants.
pub fn short_warnings() -> Options {
    Options {
        warn_before: vec!["4s".into(), "2s".into()],
        ..Options::default()
    }
}

/// Opens `ssh -t alice@bastion DESTINATION` in tmux and waits for the target's shell prompt.
pub fn interactive(bed: &TestBed, destination: &str) -> Result<Tmux> {
    let tmux = Tmux::start(&bed.bastion.alice().opt("-t").arg(destination).shell_line())?;
    wait_prompt(&tmux)?;
    Ok(tmux)
}

/// Waits for a bash prompt (`root@host:~# ` or `app@host:~$ `).
pub fn wait_prompt(tmux: &Tmux) -> Result<()> {
    tmux.wait_until(Duration::from_secs(15), "a shell prompt", |screen| {
        screen.lines().any(|l| {
            let l = l.trim_end();
            l.ends_with('#') || l.ends_with('$')
        })
    })
    .map(drop)
}

/// Fails with a readable message unless `haystack` contains `needle`.
pub fn ensure_contains(what: &str, haystack: &str, needle: &str) -> Result<()> {
    ensure!(
        haystack.contains(needle),
        "expected {what} to contain {needle:?}, got:\n{haystack}"
    );
    Ok(())
}
