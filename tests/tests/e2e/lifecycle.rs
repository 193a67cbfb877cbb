//! The daemon's life: first start (data dir, host key, "listening on"), crash and restart on
//! the same data (same host key, grants kept), PostgreSQL instead of SQLite, and pinned target
//! host keys.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bastion_tests::keys::KeyPair;
use bastion_tests::{Options, Pin, prereq};

use crate::{Marker, bed, ensure_contains, hour_grant};

#[test]
fn first_start_creates_data_dir_and_logs_the_listen_address() -> Result<()> {
    let bed = bed!();
    let stderr = bed.bastion.stderr();
    ensure_contains("bastion serve's stderr", &stderr, "listening on")?;
    ensure_contains(
        "bastion serve's stderr",
        &stderr,
        &format!("127.0.0.1:{}", bed.bastion.port),
    )?;
    let data = bed.bastion.data_dir();
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&data)
        .with_context(|| format!("data_dir {} was not created", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    ensure!(
        files.iter().any(|f| is_sqlite(f)),
        "data_dir {} should hold the SQLite database after the first start; it holds {files:?}",
        data.display()
    );
    ensure!(
        bed.bastion.scan_host_key()?.contains("ssh-ed25519 "),
        "the bastion should present an ed25519 host key"
    );
    Ok(())
}

fn is_sqlite(path: &std::path::Path) -> bool {
    let mut magic = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| &magic == b"SQLite format 3\0")
}

#[test]
fn restart_after_a_crash_keeps_the_host_key_and_grants() -> Result<()> {
    let mut bed = bed!();
    hour_grant(&bed, "db-1")?;
    let key_before = bed.bastion.scan_host_key()?;
    bed.bastion.kill9()?;
    bed.bastion.restart()?;
    let key_after = bed.bastion.scan_host_key()?;
    ensure!(
        key_before == key_after,
        "host key changed across restart:\nbefore: {key_before}after:  {key_after}"
    );
    // Strict host key checking against the first key: a changed key would fail here too.
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo still-granted"])
        .run()?;
    ensure!(
        out.status.success() && out.stdout_str() == "still-granted\n",
        "the grant made before the crash should still work; exit {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(())
}

#[test]
fn sigterm_without_sessions_exits_cleanly() -> Result<()> {
    let mut bed = bed!();
    let status = bed.bastion.stop(Duration::from_secs(10))?;
    ensure!(
        status.success(),
        "bastion serve should exit 0 on SIGTERM when idle, got {status}; stderr:\n{}",
        bed.bastion.stderr()
    );
    Ok(())
}

#[test]
fn grants_and_sessions_work_with_postgresql() -> Result<()> {
    if !(prereq::require(&["psql", "pg_isready"]) && bastion_tests::postgres::is_up()) {
        return Ok(());
    }
    let database = format!("bastion_e2e_{}", bastion_tests::procs::unique_number());
    bastion_tests::postgres::psql(&format!("CREATE DATABASE {database}"))?;
    let result = (|| -> Result<()> {
        let bed = bed!(Options {
            database_url: Some(format!("postgres://postgres@127.0.0.1:5432/{database}")),
            ..Options::default()
        });
        hour_grant(&bed, "db-1")?;
        let out = bed
            .bastion
            .alice()
            .args(["db-1", "--", "echo via-postgres"])
            .run()?;
        ensure!(
            out.stdout_str() == "via-postgres\n",
            "exec with a PostgreSQL database: exit {:?}, stdout {:?}, stderr {:?}",
            out.code(),
            out.stdout_str(),
            out.stderr_str()
        );
        let rec = bed
            .bastion
            .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;
        ensure!(
            rec.end_reason.as_deref() == Some("exit"),
            "recording in PostgreSQL: {rec:?}"
        );
        Ok(())
    })();
    let dropped =
        bastion_tests::postgres::psql(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
    result.and(dropped)
}

#[test]
fn pinned_target_host_key_that_matches_lets_sessions_through() -> Result<()> {
    let bed = bed!(Options {
        db1_host_key: Pin::TargetsOwn,
        ..Options::default()
    });
    hour_grant(&bed, "db-1")?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo pinned-ok"])
        .run()?;
    ensure!(
        out.status.success() && out.stdout_str() == "pinned-ok\n",
        "with db-1's real host key pinned: exit {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    Ok(())
}

/// A target presenting a different key than the pinned one is not logged in to.
#[test]
fn pinned_target_host_key_mismatch_runs_nothing() -> Result<()> {
    if !prereq::require(prereq::TOOLS) {
        return Ok(());
    }
    let keys = tempfile::tempdir()?;
    let other = KeyPair::generate(keys.path(), "impostor")?;
    let bed = bed!(Options {
        db1_host_key: Pin::Key(other.public_without_comment()),
        ..Options::default()
    });
    hour_grant(&bed, "db-1")?;
    let marker = Marker::new()?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", &marker.touch_command()])
        .run()?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        !out.status.success() && !marker.exists() && !out.stderr.is_empty(),
        "with a wrong pinned host key the session must fail with a message and run nothing; \
         exit {:?}, stderr {:?}, command ran: {}",
        out.code(),
        out.stderr_str(),
        marker.exists()
    );
    Ok(())
}
