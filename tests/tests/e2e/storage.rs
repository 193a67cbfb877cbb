//! Recordings under failure, against a real S3-compatible server (`moto_server`): a full session
//! streamed to S3 while it runs, `kill -9` of the bastion mid-session (the recording is kept up
//! to its last closed segment and verifies as truncated), a frozen store for ~10 s (nothing is
//! lost), and a full spool (new sessions on fail-closed targets are refused, fail-open targets
//! still work). Verification, export and search go through the real CLI.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bastion_tests::moto::{BUCKET, Moto};
use bastion_tests::{GrantSpec, Options, TestBed};

use crate::{bed, ensure_contains, hour_grant, interactive};

const PREFIX: &str = "e2e";

/// Starts moto, or ends the test when it is missing outside CI.
macro_rules! moto {
    () => {
        match Moto::start()? {
            Some(moto) => moto,
            None => return Ok(()),
        }
    };
}

/// Segments close every second, so a closed segment is never far behind the terminal.
fn fast_segments() -> Options {
    Options {
        segment_interval: "1s".into(),
        ..Options::default()
    }
}

/// Restarts the bed's bastion with its recordings in `moto`, plus `spool_max_bytes` and
/// `fail_open = true` on db-2 when asked.
fn use_s3(
    bed: &mut TestBed,
    moto: &Moto,
    spool_max: Option<&str>,
    fail_open_db2: bool,
) -> Result<()> {
    bed.bastion.stop(Duration::from_secs(15))?;
    let text = std::fs::read_to_string(&bed.bastion.config)?;
    let (recordings, s3_table) = moto.bastion_config(PREFIX);
    let mut config = String::new();
    for line in text.lines() {
        if line.starts_with("recordings = ") {
            config.push_str(&recordings);
        } else {
            config.push_str(line);
        }
        config.push('\n');
        if let (Some(max), "[recording]") = (spool_max, line) {
            let _ = writeln!(config, "spool_max_bytes = {max:?}");
        }
        if fail_open_db2 && line == "name = \"db-2\"" {
            config.push_str("fail_open = true\n");
        }
    }
    config.push('\n');
    config.push_str(&s3_table);
    std::fs::write(&bed.bastion.config, config)?;
    bed.bastion.restart()
}

/// `bastion recordings verify ID`: exit code and stdout.
fn verify(bed: &TestBed, id: &str) -> Result<(i32, String)> {
    let out = bed.bastion.cli("recordings", "verify", &[id])?;
    let code = out.code().context("verify killed by a signal")?;
    Ok((code, out.stdout_str() + &out.stderr_str()))
}

/// Polls `recordings verify ID` until it exits with `code` (uploads may still be catching up).
fn wait_verify(bed: &TestBed, id: &str, code: i32, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let (got, out) = verify(bed, id)?;
        if got == code {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            bail!(
                "recordings verify {id} still exits {got} (want {code}) after {timeout:?}:\n{out}\nbastion stderr:\n{}",
                bed.bastion.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The recording as exported by the CLI (what is in the store, in order).
fn exported(bed: &TestBed, id: &str) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("session.cast");
    bed.bastion.export(id, &file)?;
    Ok(std::fs::read_to_string(file)?)
}

/// The id of alice's only session (running or not).
fn alice_session(bed: &TestBed) -> Result<String> {
    let rows = bed.bastion.recordings()?;
    let mut ids = rows
        .iter()
        .filter(|r| r.user == "alice")
        .map(|r| r.id.clone());
    let id = ids.next().context("alice has no session")?;
    ensure!(ids.next().is_none(), "alice has several sessions: {rows:?}");
    Ok(id)
}

/// Polls until the export of session `id` contains `needle`: proof that the segment holding it
/// is in the store.
fn wait_stored(bed: &TestBed, id: &str, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = exported(bed, id)
            && text.contains(needle)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{needle:?} did not reach the store within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_session_streams_to_s3_while_it_runs_and_verifies_signed() -> Result<()> {
    let moto = moto!();
    let mut bed = bed!(fast_segments());
    use_s3(&mut bed, &moto, None, false)?;
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    tmux.type_line("echo streamed-$((6*7))")?;
    tmux.wait_for("streamed-42", Duration::from_secs(10))?;
    let id = alice_session(&bed)?;
    // Streamed, not uploaded at the end: the session is still open.
    wait_stored(&bed, &id, "streamed-42", Duration::from_secs(15))?;
    let keys = moto.keys(&format!("{PREFIX}/{id}/"))?;
    ensure!(
        keys.iter().any(|k| k.ends_with("/seg-00000000.zst"))
            && !keys.iter().any(|k| k.ends_with("/manifest.json")),
        "a running session should have segments but no manifest in s3://{BUCKET}/{PREFIX}/{id}/, found {keys:?}"
    );
    tmux.type_line("exit")?;
    tmux.wait_exit(Duration::from_secs(10))?;
    bed.bastion
        .wait_recording(Duration::from_secs(15), |r| r.id == id)?;

    let out = wait_verify(&bed, &id, 0, Duration::from_secs(30))?;
    ensure_contains("verify output", &out, "complete and intact")?;
    ensure_contains("verify output", &out, "signed: yes, by key ")?;
    let keys = moto.keys(&format!("{PREFIX}/{id}/"))?;
    ensure!(
        keys.contains(&format!("{PREFIX}/{id}/manifest.json")),
        "the finished recording has a manifest in S3: {keys:?}"
    );
    ensure_contains("the export", &exported(&bed, &id)?, "streamed-42")?;

    // The daemon indexes finished sessions for search (every 30 s at the latest).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = bed
            .bastion
            .cli_ok("recordings", "search", &["--json", "streamed-42"])?;
        let rows = bastion_tests::bastion::json_rows(&out.stdout_str())?;
        if let Some(row) = rows.iter().find(|r| r["id"] == id.as_str()) {
            let hit = &row["hits"][0];
            ensure!(
                hit["kind"] == "output" && hit["t"].as_f64().is_some_and(|t| t > 0.0),
                "the hit is the output line with its offset: {row}"
            );
            break;
        }
        if Instant::now() >= deadline {
            bail!("search never found the session: {rows:?}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

#[test]
fn kill_9_mid_session_keeps_the_closed_segments_and_verifies_truncated() -> Result<()> {
    let moto = moto!();
    let mut bed = bed!(fast_segments());
    use_s3(&mut bed, &moto, None, false)?;
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    tmux.type_line("echo before-kill-$((6*7))")?;
    tmux.wait_for("before-kill-42", Duration::from_secs(10))?;
    let id = alice_session(&bed)?;
    wait_stored(&bed, &id, "before-kill-42", Duration::from_secs(15))?;

    bed.bastion.kill9()?;
    drop(tmux);
    bed.bastion.restart()?;

    let out = wait_verify(&bed, &id, 3, Duration::from_secs(30))?;
    ensure_contains("verify output", &out, "intact but truncated")?;
    ensure_contains(
        "the export after the crash",
        &exported(&bed, &id)?,
        "before-kill-42",
    )?;

    // The restarted daemon closed the session the crash left open, in the index and the
    // audit log, so it is searchable like any other.
    let row = bed
        .bastion
        .recordings()?
        .into_iter()
        .find(|r| r.id == id)
        .context("the session is still listed")?;
    ensure!(
        row.end_reason.as_deref() == Some("interrupted") && row.end.is_some(),
        "the crashed session is marked interrupted: {row:?}"
    );
    let ends: Vec<_> = bed
        .bastion
        .audit_events()?
        .into_iter()
        .filter(|e| e["event"] == "session.end" && e["session"] == id.as_str())
        .collect();
    ensure!(
        ends.len() == 1 && ends[0]["reason"] == "interrupted",
        "one session.end with reason interrupted in the audit log: {ends:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = bed
            .bastion
            .cli_ok("recordings", "search", &["--json", "before-kill-42"])?;
        let rows = bastion_tests::bastion::json_rows(&out.stdout_str())?;
        if rows.iter().any(|r| r["id"] == id.as_str()) {
            break;
        }
        if Instant::now() >= deadline {
            bail!("search never found the interrupted session: {rows:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

#[test]
fn a_frozen_store_for_ten_seconds_loses_nothing() -> Result<()> {
    let moto = moto!();
    let mut bed = bed!(fast_segments());
    use_s3(&mut bed, &moto, None, false)?;
    hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    tmux.type_line("echo before-outage")?;
    tmux.wait_for("before-outage", Duration::from_secs(10))?;

    moto.pause();
    let paused = Instant::now();
    for i in 1..=5 {
        tmux.type_line(&format!("echo during-outage-$(({i}*11))"))?;
        tmux.wait_for(
            &format!("during-outage-{}", i * 11),
            Duration::from_secs(10),
        )?;
        std::thread::sleep(Duration::from_secs(2));
    }
    let outage = paused.elapsed();
    moto.resume();
    ensure!(
        outage >= Duration::from_secs(10),
        "outage lasted {outage:?}"
    );

    tmux.type_line("echo after-outage")?;
    tmux.wait_for("after-outage", Duration::from_secs(10))?;
    tmux.type_line("exit")?;
    tmux.wait_exit(Duration::from_secs(10))?;
    let id = alice_session(&bed)?;
    bed.bastion
        .wait_recording(Duration::from_secs(30), |r| r.id == id)?;

    wait_verify(&bed, &id, 0, Duration::from_secs(90))?;
    let cast = exported(&bed, &id)?;
    for i in 1..=5 {
        ensure_contains("the export", &cast, &format!("during-outage-{}", i * 11))?;
    }
    ensure_contains("the export", &cast, "after-outage")?;
    Ok(())
}

#[test]
fn a_full_spool_refuses_fail_closed_sessions_but_not_fail_open_ones() -> Result<()> {
    let moto = moto!();
    let mut bed = bed!(fast_segments());
    use_s3(&mut bed, &moto, Some("4KiB"), true)?;
    hour_grant(&bed, "db-1")?;
    bed.bastion.grant(&GrantSpec::new("alice", "db-2", "1h"))?;

    moto.pause();
    // Random text does not compress: ~40 KiB of segments pile up in the spool.
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "head -c 30000 /dev/urandom | base64"])
        .run()?;
    ensure!(
        out.status.success(),
        "filling session failed: {}",
        out.stderr_str()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refused = bed
            .bastion
            .alice()
            .args(["db-1", "--", "echo should-not-run"])
            .run()?;
        if !refused.status.success() {
            ensure!(
                !refused.stdout_str().contains("should-not-run"),
                "a refused session must not run its command"
            );
            ensure_contains("the refusal", &refused.stderr_str(), "spool full")?;
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "sessions on fail-closed db-1 are still accepted with a full spool; bastion stderr:\n{}",
                bed.bastion.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let open = bed
        .bastion
        .alice()
        .args(["db-2", "--", "echo fail-open-$((6*7))"])
        .run()?;
    ensure!(
        open.status.success() && open.stdout_str().contains("fail-open-42"),
        "fail-open db-2 should still work with a full spool: {} {}",
        open.stdout_str(),
        open.stderr_str()
    );

    // Once the store is back and the spool drains, db-1 is open again.
    moto.resume();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = bed
            .bastion
            .alice()
            .args(["db-1", "--", "echo back-$((6*7))"])
            .run()?;
        if out.status.success() && out.stdout_str().contains("back-42") {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "db-1 still refused after the store came back: {}",
                out.stderr_str()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}
