//! bastion-replay, the reviewers' terminal UI, on recordings made through the real bastion:
//! it runs in tmux on the bastion's own configuration file, the test presses keys and checks
//! what `tmux capture-pane` shows. A finished session is found in the browser, searched and
//! replayed; a running session is followed live and ended from the player, which only the
//! configuration (`[replay] allow_end_session = true`) permits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bastion_tests::{Options, TestBed, Tmux, prereq};

use crate::{bed, ensure_contains, hour_grant, interactive};

/// What the shell in the replay pane prints after bastion-replay, followed by its exit status.
const EXITED: &str = "bastion-replay exited with";
/// `$USER` of the reviewer; bastion-replay passes it to `bastion sessions end --by`.
const REVIEWER: &str = "rita-reviewer";
/// How long the UI may take to show something that is already in the store.
const SHOWN: Duration = Duration::from_secs(15);

/// Sessions cut into 1 s segments, so a live session reaches the store (and the player) soon.
fn options() -> Options {
    Options {
        segment_interval: "1s".into(),
        ..Options::default()
    }
}

/// `$BASTION_REPLAY_BIN`, else `bastion-replay` next to the bastion binary the harness runs
/// (`cargo build --release` puts both in one target dir). Missing is a mistake, never a skip.
fn replay_bin() -> PathBuf {
    let bin = std::env::var_os("BASTION_REPLAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| prereq::bastion_bin().with_file_name("bastion-replay"));
    assert!(
        bin.is_file(),
        "bastion-replay binary not found at {}: run tests/run, or cargo build --release -p \
         replay-tui (or point BASTION_REPLAY_BIN at it)",
        bin.display()
    );
    bin
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Starts `bastion-replay --config <the bastion's config> ARGS` in its own tmux, from the
/// daemon's directory, as the reviewer. A shell stays in the pane afterwards, so the exit status
/// and the terminal's state can still be read.
fn replay(bed: &TestBed, args: &[&str]) -> Result<Tmux> {
    let mut line = format!(
        "cd {dir} && USER={REVIEWER} {bin} --config {config} --bastion-bin {bastion}",
        dir = quote(&bed.bastion.dir().display().to_string()),
        bin = quote(&replay_bin().display().to_string()),
        config = quote(&bed.bastion.config.display().to_string()),
        bastion = quote(&prereq::bastion_bin().display().to_string()),
    );
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line.push_str(&format!("; echo \"{EXITED} $?\"; exec sleep 600"));
    let tmux = Tmux::start(&line)?;
    // Room for the recorded 120x40 terminal beside the command panel.
    tmux.resize(160, 50)?;
    Ok(tmux)
}

/// Appends `[replay] allow_end_session = true` to the bastion's config, as an admin letting
/// reviewers end sessions would. The daemon does not read `[replay]`; bastion-replay does.
fn allow_end_session(bed: &TestBed) -> Result<()> {
    let mut text = std::fs::read_to_string(&bed.bastion.config)?;
    text.push_str("\n[replay]\nallow_end_session = true\n");
    std::fs::write(&bed.bastion.config, text).context("writing the bastion config")
}

/// The id of alice's one running session.
fn running_session(bed: &TestBed) -> Result<String> {
    let rows = bed.bastion.recordings()?;
    rows.iter()
        .find(|r| r.user == "alice" && r.end_reason.is_none())
        .map(|r| r.id.clone())
        .with_context(|| format!("no running session for alice: {rows:?}"))
}

/// `q` (the last one, where bastion-replay quits); checks it exited 0 and left the terminal
/// usable.
fn quit(replay: &Tmux) -> Result<()> {
    replay.keys(&["q"])?;
    replay.wait_for(&format!("{EXITED} 0"), SHOWN)?;
    let (alternate, cursor) = replay.terminal_state()?;
    ensure!(
        !alternate && cursor,
        "bastion-replay left the terminal in the alternate screen ({alternate}) or without a \
         cursor ({})",
        !cursor
    );
    Ok(())
}

/// The SGR parameters (`1`, `38;5;1`...) of the escape sequences right before `text` on a
/// screen captured with its styles: tmux writes one sequence per attribute that changes.
fn style_before(styled: &str, text: &str) -> Vec<String> {
    let Some((head, _)) = styled.split_once(text) else {
        return Vec::new();
    };
    let mut params = Vec::new();
    let mut rest = head;
    while let Some(start) = rest.strip_suffix('m').and_then(|r| r.rfind("\x1b[")) {
        let param = &rest[start + 2..rest.len() - 1];
        if !param.chars().all(|c| c.is_ascii_digit() || c == ';') {
            break;
        }
        params.push(param.to_string());
        rest = &rest[..start];
    }
    params
}

/// The text of the status line's position ("0:05.0 / 0:09"), for error messages and checks.
fn position_line(screen: &str) -> &str {
    screen
        .lines()
        .find(|l| l.contains(" / ") && l.contains("? help"))
        .unwrap_or("")
}

#[test]
fn a_recorded_session_is_found_searched_and_replayed() -> Result<()> {
    let bed = bed!(options());
    hour_grant(&bed, "db-1")?;
    let ssh = interactive(&bed, "db-1")?;
    ssh.type_line("echo replay-e2e-$((6*7))")?;
    ssh.wait_for("replay-e2e-42", Duration::from_secs(10))?;
    ssh.type_line("printf '\\033[1;31mcolour-%s\\033[0m\\n' red")?;
    ssh.wait_for("colour-red", Duration::from_secs(10))?;
    // A pause longer than the 2 s idle cap, which seeking by 5 s can land in.
    ssh.type_line("sleep 5")?;
    ssh.wait_until(Duration::from_secs(15), "the prompt after sleep", |s| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| {
                let l = l.trim_end();
                (l.ends_with('#') || l.ends_with('$')) && !l.contains("sleep")
            })
    })?;
    ssh.type_line("exit")?;
    ssh.wait_exit(Duration::from_secs(10))?;
    let rec = bed
        .bastion
        .wait_recording(Duration::from_secs(15), |r| r.user == "alice")?;
    ensure!(
        rec.end_reason.as_deref() == Some("exit"),
        "the session should have ended by exit: {rec:?}"
    );

    // The browser lists the session with its user, target, login and end reason.
    let replay = replay(&bed, &[])?;
    let screen = replay.wait_visible(&["1 of 1 recordings", "alice"], SHOWN)?;
    let row = screen
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_default();
    for column in ["db-1", "root", "exit"] {
        ensure_contains("the recording's row", row, column)?;
    }

    // Incremental search over the recorded text shows the hit in context.
    replay.keys(&["/"])?;
    replay.type_text("replay-e2e")?;
    replay.keys(&["Enter"])?;
    replay.wait_visible(
        &[
            "search: replay-e2e",
            "hits in this recording: ",
            "typed  echo replay-e2e-$((6*7))",
        ],
        SHOWN,
    )?;

    // Enter plays at the first hit: the typed command, before its output.
    replay.keys(&["Enter"])?;
    let screen = replay.wait_visible(
        &[
            "alice → db-1 as root",
            "echo replay-e2e-$((6*7))",
            "/replay-e2e (",
            "⏸",
        ],
        SHOWN,
    )?;
    ensure!(
        !screen.contains("replay-e2e-42"),
        "at the typed command its output should not show yet:\n{screen}"
    );

    // The next typed command is the printf: the echo's output is there, the printf's is not.
    replay.keys(&["c"])?;
    let screen = replay.wait_visible(&["replay-e2e-42"], SHOWN)?;
    ensure!(
        !screen.contains("colour-red"),
        "`c` should stop at the printf command, before its output:\n{screen}"
    );

    // The end: the coloured output, bold red as recorded.
    replay.keys(&["G"])?;
    replay.wait_visible(&["colour-red", "exit"], SHOWN)?;
    let style = style_before(&replay.visible_styled()?, "colour-red");
    ensure!(
        style.iter().any(|p| p == "1")
            && style
                .iter()
                .any(|p| ["31", "91", "38;5;1", "38;5;9"].contains(&p.as_str())),
        "colour-red should be drawn bold red; the escape sequences before it set {style:?}"
    );

    // Seeking: 0 jumps to 0 %, → forward 5 s, ← back.
    replay.keys(&["0"])?;
    let screen = replay.wait_visible(&["0:00.0 / "], SHOWN)?;
    ensure!(
        !screen.contains("replay-e2e-42"),
        "at 0:00 nothing was typed yet:\n{}",
        position_line(&screen)
    );
    replay.keys(&["l"])?;
    replay.wait_visible(&["0:05.0 / "], SHOWN)?;
    replay.keys(&["h"])?;
    replay.wait_visible(&["0:00.0 / "], SHOWN)?;

    // Play and pause, slowed down to a quarter.
    replay.keys(&["-", "-", "-"])?;
    replay.wait_visible(&["0.25x"], SHOWN)?;
    replay.keys(&["Space"])?;
    replay.wait_visible(&["▶ 0.25x"], SHOWN)?;
    replay.wait_visible_until(SHOWN, "the position to move while playing", |s| {
        !position_line(s).contains("0:00.0 / ")
    })?;
    replay.keys(&["Space"])?;
    let paused = replay.wait_visible(&["⏸ 0.25x"], SHOWN)?;
    std::thread::sleep(Duration::from_millis(500));
    let still = replay.visible()?;
    ensure!(
        position_line(&paused) == position_line(&still),
        "paused, the position moved: {:?} then {:?}",
        position_line(&paused),
        position_line(&still)
    );

    // The command panel lists the typed commands; picking the second seeks to it.
    replay.wait_visible(
        &["commands (4)", "echo replay-e2e-$((6*7))", "sleep 5"],
        SHOWN,
    )?;
    replay.keys(&["Tab"])?;
    replay.keys(&["g"])?;
    replay.keys(&["j"])?;
    replay.keys(&["Enter"])?;
    let screen = replay.wait_visible(&["replay-e2e-42"], SHOWN)?;
    ensure!(
        !screen.contains("colour-red"),
        "the panel's second command is the printf, before its output:\n{screen}"
    );
    replay.keys(&["Tab"])?;

    // ? lists every key; any key closes it.
    replay.keys(&["?"])?;
    replay.wait_visible(
        &[
            "keys (any key closes)",
            "play / pause",
            "next typed command",
            "end this live session",
        ],
        SHOWN,
    )?;
    replay.keys(&["?"])?;
    replay.wait_visible_gone("keys (any key closes)", SHOWN)?;

    // q: back to the browser (search kept), q clears the search, q leaves.
    replay.keys(&["q"])?;
    replay.wait_visible(&["search: replay-e2e", "alice"], SHOWN)?;
    replay.keys(&["q"])?;
    replay.wait_visible_gone("search: replay-e2e", SHOWN)?;
    quit(&replay)
}

#[test]
fn a_live_session_is_followed_and_ended_from_the_player() -> Result<()> {
    let bed = bed!(options());
    hour_grant(&bed, "db-1")?;
    let ssh = interactive(&bed, "db-1")?;
    ssh.type_line("echo before-$((6*7))")?;
    ssh.wait_for("before-42", Duration::from_secs(10))?;
    let id = running_session(&bed)?;
    allow_end_session(&bed)?;

    let replay = replay(&bed, &[&id])?;
    replay.wait_visible(&["alice → db-1 as root", "LIVE"], SHOWN)?;
    replay.keys(&["F"])?;
    replay.wait_visible(&["LIVE ● following", "before-42"], SHOWN)?;

    // New output reaches the player within a few 1 s segments.
    ssh.type_line("echo during-$((6*7))")?;
    ssh.wait_for("during-42", Duration::from_secs(10))?;
    replay.wait_visible(&["during-42"], Duration::from_secs(10))?;

    replay.keys(&["E"])?;
    replay.wait_visible(&[&format!("End session {id} now?"), "y: end it"], SHOWN)?;
    replay.keys(&["y"])?;
    replay.wait_visible(&[&format!("asked to end session {id}")], SHOWN)?;

    // The bastion ends it: the user is told who did, the index and audit log say so.
    ssh.wait_exit(Duration::from_secs(10))?;
    ensure_contains("the user's screen", &ssh.screen()?, REVIEWER)?;
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
    ensure!(event["by"] == REVIEWER, "audit event {event}");

    // The player sees the recording finish.
    replay.wait_visible_gone("LIVE", SHOWN)?;
    quit(&replay)
}

#[test]
fn ending_a_live_session_is_refused_unless_the_configuration_allows_it() -> Result<()> {
    let bed = bed!(options());
    hour_grant(&bed, "db-1")?;
    let ssh = interactive(&bed, "db-1")?;
    ssh.type_line("echo before-$((6*7))")?;
    ssh.wait_for("before-42", Duration::from_secs(10))?;
    let id = running_session(&bed)?;
    let config = bed.bastion.config.display().to_string();

    // No `[replay]` in the config: E says what to set where, and asks nothing.
    let replay_off = replay(&bed, &[&id])?;
    replay_off.wait_visible(&["alice → db-1 as root", "LIVE"], SHOWN)?;
    replay_off.keys(&["E"])?;
    replay_off.wait_visible(
        &[&format!(
            "ending sessions is off: set [replay] allow_end_session = true in {config}"
        )],
        SHOWN,
    )?;
    replay_off.keys(&["y"])?;
    quit(&replay_off)?;

    // The config allows it, but --no-end-session takes it back.
    allow_end_session(&bed)?;
    let replay_flag = replay(&bed, &["--no-end-session", &id])?;
    replay_flag.wait_visible(&["alice → db-1 as root", "LIVE"], SHOWN)?;
    replay_flag.keys(&["E"])?;
    let screen = replay_flag.wait_visible(
        &["ending sessions is off: bastion-replay was started with --no-end-session"],
        SHOWN,
    )?;
    ensure!(
        !screen.contains("End session"),
        "no confirmation should be asked:\n{screen}"
    );
    replay_flag.keys(&["y"])?;
    quit(&replay_flag)?;

    // The session goes on, unended.
    ssh.type_line("echo still-$((6*7))")?;
    ssh.wait_for("still-42", Duration::from_secs(10))?;
    ensure!(
        running_session(&bed)? == id,
        "the session should still be running"
    );
    let requested = bed
        .bastion
        .audit_events()?
        .into_iter()
        .filter(|e| e["event"] == "session.end_requested")
        .count();
    ensure!(requested == 0, "no end should have been requested");
    Ok(())
}
