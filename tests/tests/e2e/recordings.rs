//! Recordings as an auditor sees them: `recordings list --json`, `recordings export` to an
//! asciicast v2 file that `asciinema cat` replays, and the stored zstd segments, which decode
//! and concatenate to exactly the export.

use std::time::Duration;

use anyhow::{Result, ensure};
use bastion_tests::bastion::is_id;
use bastion_tests::cast::{self, Cast};
use bastion_tests::{GrantSpec, Options};

use crate::{bed, ensure_contains, hour_grant, interactive};

#[test]
fn command_session_is_listed_with_its_metadata() -> Result<()> {
    let bed = bed!();
    hour_grant(&bed, "db-1")?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo listed-$((6*7))"])
        .run()?;
    ensure!(out.status.success(), "exec failed: {}", out.stderr_str());
    let rec = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;
    ensure!(
        rec.target == "db-1"
            && rec.login == "root"
            && rec.end_reason.as_deref() == Some("exit")
            && rec.bytes.is_some_and(|b| b > 0)
            && !rec.start.is_null()
            && rec.end.as_ref().is_some_and(|e| !e.is_null()),
        "expected alice/db-1/root, end_reason \"exit\", bytes > 0, start and end set; got {rec:?}"
    );
    Ok(())
}

#[test]
fn export_is_an_asciicast_that_replays_what_the_user_saw() -> Result<()> {
    let bed = bed!();
    let grant_id = hour_grant(&bed, "db-1")?;
    let tmux = interactive(&bed, "db-1")?;
    tmux.type_line("echo recorded-$((6*7))")?;
    tmux.wait_for("recorded-42", Duration::from_secs(10))?;
    tmux.type_line("exit")?;
    tmux.wait_exit(Duration::from_secs(10))?;
    let rec = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("session.cast");
    bed.bastion.export(&rec.id, &file)?;
    let cast = Cast::read(&file)?;
    let meta = &cast.header["bastion"];
    ensure!(
        meta["user"] == "alice"
            && meta["target"] == "db-1"
            && meta["login"] == "root"
            && is_id(&meta["grant_id"], &grant_id),
        "header \"bastion\" should be {{user: alice, target: db-1, login: root, grant_id: {grant_id}}}, header was {}",
        cast.header
    );
    ensure!(
        cast.events.iter().any(|e| e.code == "i"),
        "an interactive session should record input (\"i\") events; codes seen: {:?}",
        cast.events
            .iter()
            .map(|e| e.code.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    );
    ensure_contains(
        "the recorded input",
        &cast.stream("i"),
        "echo recorded-$((6*7))",
    )?;
    ensure!(
        cast.events.windows(2).all(|w| w[0].time <= w[1].time),
        "event times must not go backwards"
    );
    ensure_contains(
        "`asciinema cat` of the export",
        &cast::asciinema_cat(&file)?,
        "recorded-42",
    )?;
    Ok(())
}

/// With small segments a session spans several files; `zstd -dc seg-*` (name order) rebuilds
/// the export byte for byte.
#[test]
fn stored_segments_concatenate_to_the_export() -> Result<()> {
    let bed = bed!(Options {
        segment_bytes: 4096,
        segment_interval: "1s".into(),
        ..Options::default()
    });
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "seq 1 20000; sleep 1.5; echo last-line"])
        .run()?;
    ensure!(out.status.success(), "exec failed: {}", out.stderr_str());
    let rec = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.user == "alice")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("export.cast");
    bed.bastion.export(&rec.id, &file)?;
    let exported = std::fs::read(&file)?;

    let segments = cast::segment_files(&bed.bastion.recordings_dir(), &rec.id)?;
    ensure!(
        segments.len() >= 2,
        "~110 KB of output with segment_bytes = 4096 should give several segments, found {segments:?}"
    );
    let decoded = cast::decode_segments(&segments)?;
    ensure!(
        decoded == exported,
        "zstd -dc of {} segments gave {} bytes, the export has {} (first difference at byte {:?})",
        segments.len(),
        decoded.len(),
        exported.len(),
        decoded.iter().zip(&exported).position(|(a, b)| a != b)
    );
    let cast = Cast::parse(&String::from_utf8_lossy(&exported))?;
    let output = cast.stream("o");
    ensure_contains("the recorded output", &output, "\n19999\n20000\n")?;
    ensure_contains("the recorded output", &output, "last-line")?;
    Ok(())
}

/// A target with `record = false` works, is announced as unrecorded when the daemon starts and
/// in the session's audit record, and leaves nothing in the store; verify and export say why.
#[test]
fn an_unrecorded_target_works_and_leaves_no_recording() -> Result<()> {
    let bed = bed!(Options {
        db2_unrecorded: true,
        ..Options::default()
    });
    let log = bed.bastion.stderr();
    ensure!(
        log.lines()
            .any(|l| l.contains("recording is OFF for this target") && l.contains("db-2")),
        "the daemon warns about db-2 at start:\n{log}"
    );
    hour_grant(&bed, "db-2")?;
    let out = bed
        .bastion
        .alice()
        .args(["db-2", "--", "echo unrecorded-$((6*7))"])
        .run()?;
    ensure!(
        out.status.success() && out.stdout_str() == "unrecorded-42\n",
        "the session works: status {:?}, stdout {:?}, stderr {:?}",
        out.code(),
        out.stdout_str(),
        out.stderr_str()
    );
    let rec = bed
        .bastion
        .wait_recording(Duration::from_secs(10), |r| r.target == "db-2")?;
    ensure!(
        !rec.recorded && rec.end_reason.as_deref() == Some("exit"),
        "listed as an unrecorded session that ended: {rec:?}"
    );
    let stored = bed.bastion.recordings_dir().join(&rec.id);
    ensure!(!stored.exists(), "{} exists", stored.display());

    let starts: Vec<_> = bed
        .bastion
        .audit_events()?
        .into_iter()
        .filter(|e| e["event"] == "session.start" && e["session"] == rec.id.as_str())
        .collect();
    ensure!(
        starts.len() == 1 && starts[0]["recorded"] == false,
        "session.start says recorded: false: {starts:?}"
    );
    for action in ["verify", "export"] {
        let file = bed.bastion.data_dir().join("unrecorded.cast");
        let file = file.display().to_string();
        let args: Vec<&str> = match action {
            "verify" => vec![rec.id.as_str()],
            _ => vec![rec.id.as_str(), "-o", file.as_str()],
        };
        let out = bed.bastion.cli("recordings", action, &args)?;
        ensure!(out.code() == Some(1), "{action} exits 1: {:?}", out.code());
        ensure_contains(
            &format!("recordings {action}"),
            &out.stderr_str(),
            "was not recorded: target db-2 has record = false",
        )?;
    }
    Ok(())
}
