//! Clients other than a plain `ssh` per command: OpenSSH multiplexing (ControlMaster), paramiko
//! with many sessions over one connection, and PuTTY's plink, whose exit status depends on
//! the order of the end of a channel.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::child::{self, Input};
use bastion_tests::{GrantSpec, prereq};

use crate::bed;

/// 40 sequential commands through one OpenSSH master connection: none refused, each with its
/// output and exit status.
#[test]
fn forty_commands_through_one_controlmaster_connection() -> Result<()> {
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let dir = tempfile::tempdir()?;
    let control = dir.path().join("ctl");
    let control = control.display().to_string();
    let mut master = bed
        .bastion
        .alice()
        .opt("-M")
        .opt("-S")
        .opt(control.clone())
        .opt("-N")
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let result = (|| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&control).exists() {
            ensure!(
                Instant::now() < deadline,
                "the master connection never came up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for i in 0..40 {
            let out = bed
                .bastion
                .alice()
                .opt("-S")
                .opt(control.clone())
                .args(["db-1", "--", &format!("echo run-{i}; exit {}", i % 5)])
                .run()?;
            ensure!(
                out.stdout_str() == format!("run-{i}\n") && out.code() == Some(i % 5),
                "command {i} over the master: status {:?}, stdout {:?}, stderr {:?}\nbastion:\n{}",
                out.code(),
                out.stdout_str(),
                out.stderr_str(),
                bed.bastion.stderr()
            );
        }
        Ok(())
    })();
    child::terminate(&mut master, Duration::from_secs(1));
    result
}

const PARAMIKO_SCRIPT: &str = r#"
import sys, paramiko
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect("127.0.0.1", port=port, username="alice", key_filename=key,
               look_for_keys=False, allow_agent=False, timeout=10)
transport = client.get_transport()
for i in range(n):
    chan = transport.open_session(timeout=10)
    chan.exec_command("db-1 -- echo s-%d; exit %d" % (i, i % 7))
    out = chan.makefile("rb").read().decode()
    status = chan.recv_exit_status()
    chan.close()
    if out != "s-%d\n" % i or status != i % 7:
        print("session %d: status %d, output %r" % (i, status, out))
        sys.exit(1)
print("ok %d" % n)
"#;

/// True when python3 can import paramiko; otherwise SKIP outside CI, a failure in CI.
fn require_paramiko() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import paramiko"])
        .status()
        .is_ok_and(|s| s.success());
    ok || prereq::unavailable("python3 cannot import paramiko (tests/run installs it)")
}

/// 100 sessions, one after the other, over one paramiko connection.
#[test]
fn a_hundred_paramiko_sessions_over_one_connection() -> Result<()> {
    if !require_paramiko() {
        return Ok(());
    }
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("sessions.py");
    std::fs::write(&script, PARAMIKO_SCRIPT)?;
    let out = child::run(
        Command::new("python3")
            .arg(&script)
            .arg(bed.bastion.port.to_string())
            .arg(&bed.bastion.alice.private)
            .arg("100"),
        Input::Null,
        Duration::from_secs(120),
    )?;
    ensure!(
        out.code() == Some(0) && out.stdout_str().contains("ok 100"),
        "paramiko: status {:?}, stdout {:?}, stderr {:?}\nbastion:\n{}",
        out.code(),
        out.stdout_str(),
        out.stderr_str(),
        bed.bastion.stderr()
    );
    Ok(())
}

/// 30 plink runs of `db-1 -- echo p; exit 4`: every exit status is 4.
#[test]
fn plink_gets_every_exit_status() -> Result<()> {
    if !prereq::require(&["plink", "puttygen", "ssh-keygen"]) {
        return Ok(());
    }
    let bed = bed!();
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let dir = tempfile::tempdir()?;
    let ppk = dir.path().join("alice.ppk");
    let converted = child::run(
        Command::new("puttygen")
            .arg(&bed.bastion.alice.private)
            .args(["-O", "private", "-o"])
            .arg(&ppk),
        Input::Null,
        Duration::from_secs(20),
    )?;
    ensure!(
        converted.code() == Some(0),
        "puttygen: {}",
        converted.stderr_str()
    );
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, bed.bastion.scan_host_key()?)?;
    let listed = child::run(
        Command::new("ssh-keygen").arg("-lf").arg(&hosts),
        Input::Null,
        Duration::from_secs(10),
    )?;
    let fingerprint = listed
        .stdout_str()
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_string)
        .context("no SHA256 fingerprint for the bastion's host key")?;
    for run in 0..30 {
        let out = child::run(
            Command::new("plink")
                .args(["-batch", "-ssh", "-P", &bed.bastion.port.to_string(), "-i"])
                .arg(&ppk)
                .args(["-hostkey", &fingerprint, "alice@127.0.0.1"])
                .args(["db-1", "--", "echo p; exit 4"]),
            Input::Null,
            Duration::from_secs(30),
        )?;
        ensure!(
            out.code() == Some(4) && out.stdout_str() == "p\n",
            "plink run {run}: status {:?}, stdout {:?}, stderr {:?}",
            out.code(),
            out.stdout_str(),
            out.stderr_str()
        );
    }
    Ok(())
}

const HOSTILE_LOGINS: &str = r#"
import sys, paramiko
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pkey = paramiko.Ed25519Key.from_private_key_file(key)
refused = 0
for i in range(n):
    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=10)
    user = ("x" * 30000) if i == 0 else "mallory-%d" % i
    try:
        t.auth_publickey(user, pkey)
    except paramiko.ssh_exception.AuthenticationException:
        refused += 1
    t.close()
print("refused %d" % refused)
"#;

/// A 30,000-character user name and a run of failed logins from one source: the audit log
/// keeps short lines (the long name capped, with a hash) and aggregates the repeats.
#[test]
fn hostile_user_names_and_repeated_failures_do_not_grow_the_audit_log() -> Result<()> {
    if !require_paramiko() {
        return Ok(());
    }
    let bed = bed!();
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("hostile.py");
    std::fs::write(&script, HOSTILE_LOGINS)?;
    let before = std::fs::metadata(bed.bastion.audit_log())
        .map(|m| m.len())
        .unwrap_or(0);
    let out = child::run(
        Command::new("python3")
            .arg(&script)
            .arg(bed.bastion.port.to_string())
            // alice's key under other names: every attempt is refused.
            .arg(&bed.bastion.alice.private)
            .arg("40"),
        Input::Null,
        Duration::from_secs(180),
    )?;
    ensure!(
        out.stdout_str().contains("refused 40"),
        "expected 40 refused logins: {:?} {:?}",
        out.stdout_str(),
        out.stderr_str()
    );
    let text = std::fs::read_to_string(bed.bastion.audit_log())?;
    let grown = text.len() as u64 - before;
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"auth.failure\""))
        .collect();
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    ensure!(
        longest < 1024,
        "an audit line of {longest} bytes: client-chosen strings must be capped"
    );
    ensure!(
        text.contains("sha256:"),
        "the capped user name carries a hash of the whole:\n{text}"
    );
    ensure!(
        !failures.is_empty() && failures.len() <= 3,
        "40 failures from one source wrote {} auth.failure lines (want them aggregated):\n{}",
        failures.len(),
        failures.join("\n")
    );
    ensure!(grown < 16 * 1024, "the audit log grew {grown} bytes");
    Ok(())
}
