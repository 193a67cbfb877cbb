//! Self-tests of the harness against plain OpenSSH (no bastion involved): if these fail, the
//! environment is broken, not bastion.

use std::time::Duration;

use anyhow::{Result, ensure};
use bastion_tests::{Sshd, Tmux, keys::KeyPair, prereq};

use crate::ensure_contains;

/// sshd up, direct exec works as root and as app, with stdout, stderr and status intact.
#[test]
fn harness_direct_ssh_reaches_target_as_root_and_app() -> Result<()> {
    if !(prereq::require_root() && prereq::require(prereq::TOOLS) && prereq::require_login("app")) {
        return Ok(());
    }
    let sshd = Sshd::start()?;
    let dir = tempfile::tempdir()?;
    let key = KeyPair::generate(dir.path(), "direct")?;
    sshd.authorize(&key)?;
    let known_hosts = sshd.known_hosts()?;
    for login in ["root", "app"] {
        let out = bastion_tests::Ssh::new(&key.private, &known_hosts, sshd.port, login)
            .arg("id -un; echo to-stderr >&2; exit 3")
            .run()?;
        ensure!(
            out.stdout_str() == format!("{login}\n")
                && out.stderr_str() == "to-stderr\n"
                && out.code() == Some(3),
            "direct ssh as {login}: status {:?}, stdout {:?}, stderr {:?}\nsshd log:\n{}",
            out.code(),
            out.stdout_str(),
            out.stderr_str(),
            sshd.log()
        );
    }
    Ok(())
}

/// tmux gives ssh a terminal; typed text reaches the remote shell and its output the screen.
#[test]
fn harness_tmux_drives_a_direct_terminal_session() -> Result<()> {
    if !(prereq::require_root() && prereq::require(prereq::TOOLS)) {
        return Ok(());
    }
    let sshd = Sshd::start()?;
    let dir = tempfile::tempdir()?;
    let key = KeyPair::generate(dir.path(), "direct")?;
    sshd.authorize(&key)?;
    let ssh =
        bastion_tests::Ssh::new(&key.private, &sshd.known_hosts()?, sshd.port, "root").opt("-t");
    let tmux = Tmux::start(&ssh.shell_line())?;
    crate::wait_prompt(&tmux)?;
    tmux.type_line("echo harness-$((6*7)); tty")?;
    let screen = tmux.wait_for("harness-42", Duration::from_secs(10))?;
    ensure_contains("the screen", &screen, "/dev/pts/")?;
    tmux.type_line("exit 5")?;
    let status = tmux.wait_exit(Duration::from_secs(10))?;
    ensure!(
        status == 5,
        "ssh exit status after `exit 5` should be 5, got {status}"
    );
    Ok(())
}
