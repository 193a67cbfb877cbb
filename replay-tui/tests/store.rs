//! The browser and player over a real file store written by `recorder::RecordingWriter`:
//! listing, verification and search, playing through the seekable reader, live follow of a
//! recording still being written, ending a session through the `bastion` binary, export that
//! `asciinema` plays, and damaged recordings.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use crossterm::event::KeyCode;
use replay_tui::app::EndSessions;
use replay_tui::catalog::Verified;
use support::recordings::{self, SESSION_EVENTS, TestStore, finished, meta};
use support::{Harness, char_key, key, settings};

fn screen_text(harness: &Harness) -> String {
    harness
        .app
        .player
        .as_ref()
        .and_then(|p| p.frame.as_ref())
        .map(|f| {
            (0..f.screen.rows)
                .map(|r| f.screen.row_text(r))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn browser_lists_verifies_and_searches_the_store() -> Result<()> {
    let test = TestStore::new();
    let runtime = Harness::runtime();
    runtime.block_on(async {
        let store = test.writer(Duration::from_secs(1)).await;
        finished(
            &store,
            meta("rec-a", "alice", "db-1", recordings::START),
            SESSION_EVENTS,
            "client disconnected",
        )
        .await;
        finished(
            &store,
            meta("rec-b", "bob", "web-2", recordings::START + 3600),
            &SESSION_EVENTS[..3],
            "grant expired",
        )
        .await;
        // The recording pipeline's index for one of them (the other is indexed on the fly).
        let index = store.build_index("rec-a").await?;
        store.write_index("rec-a", &index).await?;
        // A session still running: one segment stored, no manifest.
        let running = store.begin(meta("rec-c", "carol", "db-1", recordings::START + 7200))?;
        recordings::record(&running, &SESSION_EVENTS[..2]).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ensure!(
            store.flush(Duration::from_secs(5)).await,
            "segments not uploaded"
        );
        std::mem::forget(running);
        anyhow::Ok(())
    })?;
    let mut harness = Harness::store(runtime, test.config(), settings(), None, "bastion".into());
    harness.wait_until("rows and verification", |app| {
        app.browser.as_ref().is_some_and(|b| {
            b.rows.len() == 3 && b.rows.iter().all(|r| r.verified != Verified::Pending)
        })
    })?;
    let browser = harness.app.browser.as_ref().context("browser")?;
    let row = |id: &str| browser.rows.iter().find(|r| r.id == id).context("row");
    assert_eq!(row("rec-a")?.verified, Verified::Intact { signed: false });
    assert_eq!(
        row("rec-a")?.end_reason.as_deref(),
        Some("client disconnected")
    );
    assert!(matches!(row("rec-c")?.verified, Verified::Truncated(_)));
    assert!(!row("rec-c")?.finished);
    assert_eq!(row("rec-c")?.user, "carol");
    // Newest first.
    let order: Vec<&str> = browser
        .visible
        .iter()
        .map(|&i| browser.rows[i].id.as_str())
        .collect();
    assert_eq!(order, vec!["rec-c", "rec-b", "rec-a"]);

    harness.press(char_key('/'));
    harness.type_keys("drop table");
    harness.press(key(KeyCode::Enter));
    harness.wait_until("search results", |app| {
        app.browser
            .as_ref()
            .and_then(|b| b.active_results())
            .is_some_and(|r| r.searched + r.missing == 3)
    })?;
    let browser = harness.app.browser.as_ref().context("browser")?;
    let results = browser.active_results().context("results")?;
    assert_eq!(
        results.counts.get("rec-a"),
        Some(&2),
        "typed line and echoed line"
    );
    assert_eq!(results.counts.get("rec-b"), None);
    assert_eq!(browser.visible.len(), 1);
    let hits = browser.selected_hits();
    assert!(hits[0].text.contains("DROP TABLE"), "{hits:?}");

    // Enter plays the recording at the first hit.
    harness.press(key(KeyCode::Enter));
    harness.settle()?;
    let player = harness.app.player.as_ref().context("player")?;
    assert_eq!(player.position, 3.0);
    assert_eq!(player.hits.len(), 2);
    assert!(screen_text(&harness).contains("psql -c 'DROP TABLE users'"));
    harness.press(char_key('q'));
    assert!(harness.app.player.is_none() && !harness.app.quit);
    Ok(())
}

#[test]
fn indexed_recording_plays_through_the_reader_and_exports_a_range() -> Result<()> {
    let test = TestStore::new();
    let runtime = Harness::runtime();
    runtime.block_on(async {
        let store = test.writer(Duration::from_millis(300)).await;
        finished(
            &store,
            meta("rec-a", "alice", "db-1", recordings::START),
            SESSION_EVENTS,
            "client disconnected",
        )
        .await;
        let index = store.build_index("rec-a").await?;
        store.write_index("rec-a", &index).await?;
        anyhow::Ok(())
    })?;
    let mut harness = Harness::store(
        runtime,
        test.config(),
        settings(),
        Some("rec-a"),
        "bastion".into(),
    );
    harness.settle()?;
    harness.press(char_key('c'));
    harness.press(char_key('c'));
    harness.settle()?;
    assert_eq!(harness.app.player.as_ref().map(|p| p.position), Some(3.0));
    assert!(screen_text(&harness).contains("psql -c 'DROP TABLE users'"));
    assert!(!screen_text(&harness).contains("permission denied"));
    harness.press(char_key('.'));
    harness.settle()?;
    assert!(
        screen_text(&harness).contains("permission denied"),
        "one event later"
    );

    // Export from the typed command to the end.
    harness.press(char_key('C'));
    assert_eq!(harness.app.player.as_ref().map(|p| p.position), Some(3.0));
    harness.press(char_key('['));
    harness.press(char_key('e'));
    let out = test.dir.path().join("range.cast");
    let field_len = harness
        .app
        .player
        .as_ref()
        .and_then(|p| p.export.as_ref())
        .map_or(0, |f| f.text.len());
    for _ in 0..field_len {
        harness.press(key(KeyCode::Backspace));
    }
    harness.type_keys(&out.display().to_string());
    harness.press(key(KeyCode::Enter));
    harness.wait_until("the export", |app| {
        app.status
            .as_deref()
            .is_some_and(|s| s.starts_with("exported"))
    })?;
    let text = std::fs::read(&out)?;
    let parsed = recorder::parse_cast(&text)?;
    assert!(parsed.errors.is_empty());
    assert_eq!(
        parsed.events[0].time, 0.0,
        "starts with the screen at the mark"
    );
    assert!(parsed.events[0].data.contains("psql -c 'DROP TABLE users'"));
    assert!(
        parsed
            .events
            .iter()
            .any(|e| e.data.contains("permission denied") && e.time > 0.0)
    );
    support::asciinema_cat_contains(&out, "permission denied")?;
    Ok(())
}

#[test]
fn a_running_session_is_followed_live_and_can_be_ended() -> Result<()> {
    let test = TestStore::new();
    let runtime = Harness::runtime();
    let store = runtime.block_on(test.writer(Duration::from_millis(200)));
    let writer = store.begin(meta("rec-live", "alice", "db-1", recordings::START))?;
    runtime.block_on(async {
        recordings::record(&writer, &SESSION_EVENTS[..3]).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    });
    // A stand-in for the bastion binary that records how it was called.
    let args_file = test.dir.path().join("args.txt");
    let fake = test.dir.path().join("fake-bastion");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\necho ended by test\n",
            args_file.display()
        ),
    )?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    // The configuration, not the command line, lets reviewers end sessions.
    test.allow_end_session();
    let config = test.config();
    let mut allowed = settings();
    allowed.end_sessions = EndSessions::decide(Some(&config), false);
    let mut harness = Harness::store(runtime, config, allowed, Some("rec-live"), fake);
    harness.wait_until("the live recording", |app| {
        app.player
            .as_ref()
            .is_some_and(|p| p.live && p.progress.done)
    })?;
    harness.press(char_key('F'));
    harness.settle()?;
    assert!(screen_text(&harness).contains("ls"));

    harness.runtime.block_on(async {
        recordings::record(&writer, &[(5.0, "o", "\r\nnew output while watching\r\n")]).await;
    });
    harness.wait_until("the new output", |app| {
        app.player
            .as_ref()
            .and_then(|p| p.frame.as_ref())
            .is_some_and(|f| {
                (0..f.screen.rows)
                    .any(|r| f.screen.row_text(r).contains("new output while watching"))
            })
    })?;
    let player = harness.app.player.as_ref().context("player")?;
    assert!(player.following && player.position >= 5.0);

    harness.press(char_key('E'));
    harness.press(char_key('y'));
    harness.wait_until("the end command", |app| {
        app.status.as_deref() == Some("ended by test")
    })?;
    let args = std::fs::read_to_string(&args_file)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    assert_eq!(
        args.trim(),
        format!(
            "sessions end --config {} rec-live --by {user}",
            test.config_path.display()
        )
    );

    // The session ends: the recording gets its manifest and stops being live.
    harness
        .runtime
        .block_on(writer.finish_at(Duration::from_secs(6), "ended by reviewer"))?;
    harness.wait_until("the end of the live recording", |app| {
        app.player.as_ref().is_some_and(|p| !p.live)
    })?;
    Ok(())
}

/// Without `[replay] allow_end_session = true`, `E` on a live session says what to set and
/// where, and nothing is asked of the bastion.
#[test]
fn ending_a_session_is_refused_unless_the_configuration_allows_it() -> Result<()> {
    let test = TestStore::new();
    let runtime = Harness::runtime();
    let store = runtime.block_on(test.writer(Duration::from_millis(200)));
    let writer = store.begin(meta("rec-live", "alice", "db-1", recordings::START))?;
    runtime.block_on(recordings::record(&writer, &SESSION_EVENTS[..3]));
    let config = test.config();
    let mut refused = settings();
    refused.end_sessions = EndSessions::decide(Some(&config), false);
    let bastion = test.dir.path().join("no-bastion-here");
    let mut harness = Harness::store(runtime, config, refused, Some("rec-live"), bastion);
    harness.wait_until("the live recording", |app| {
        app.player
            .as_ref()
            .is_some_and(|p| p.live && p.progress.done)
    })?;

    let effects = harness.app.handle_key(char_key('E'));
    let expected = format!(
        "ending sessions is off: set [replay] allow_end_session = true in {}",
        test.config_path.display()
    );
    ensure!(
        effects.is_empty()
            && harness.app.overlay.is_none()
            && harness.app.status.as_deref() == Some(expected.as_str()),
        "effects {effects:?}, overlay {:?}, status {:?}",
        harness.app.overlay,
        harness.app.status
    );
    let drawn = harness.render(120, 24);
    ensure!(
        drawn.contains("ending sessions is off: set [replay] allow_end_session = true in"),
        "the refusal is not on screen:\n{drawn}"
    );
    // A `y` after the refusal is just a key.
    let effects = harness.app.handle_key(char_key('y'));
    ensure!(effects.is_empty(), "effects after y: {effects:?}");
    harness
        .runtime
        .block_on(writer.finish_at(Duration::from_secs(6), "exit"))?;
    Ok(())
}

#[test]
fn damaged_recordings_play_up_to_the_damage_and_say_where() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A cut-off last line.
    let mut text = recordings::session();
    text.truncate(text.len() - 20);
    let path = recordings::write(dir.path(), "cut.cast", &text);
    let mut harness = Harness::file(path, settings());
    harness.settle()?;
    let player = harness.app.player.as_ref().context("player")?;
    let damage = player.damage.clone().context("damage")?;
    assert!(damage.contains("last line is cut off"), "{damage}");
    assert_eq!(player.duration, 62.2);
    harness.press(char_key('G'));
    harness.settle()?;
    assert!(screen_text(&harness).contains("remember to drop table users"));

    // Compressed, then cut in the middle of the zstd frame (big enough for several blocks).
    let mut long = recordings::session();
    for i in 0..20_000u32 {
        let line = format!(
            "line {i} of a long listing {}\r\n",
            "x".repeat(i as usize % 50)
        );
        long.push_str(&serde_json::to_string(&(
            71.0 + f64::from(i) * 0.01,
            "o",
            line,
        ))?);
        long.push('\n');
    }
    let compressed = zstd::encode_all(long.as_bytes(), 3)?;
    let path = dir.path().join("cut.cast.zst");
    std::fs::write(&path, &compressed[..compressed.len() * 2 / 3])?;
    let mut harness = Harness::file(path, settings());
    harness.settle()?;
    let player = harness.app.player.as_ref().context("player")?;
    let damage = player.damage.clone().context("damage")?;
    assert!(damage.contains("recording stops at"), "{damage}");

    // A store recording with a segment removed.
    let test = TestStore::new();
    let runtime = Harness::runtime();
    runtime.block_on(async {
        let store = test.writer(Duration::from_secs(1)).await;
        let writer = store.begin(meta("rec-gap", "alice", "db-1", recordings::START))?;
        for (i, event) in SESSION_EVENTS.iter().enumerate() {
            recordings::record(&writer, std::slice::from_ref(event)).await;
            if i == 1 || i == 3 {
                // Cut segments by time so the recording has several.
                tokio::time::sleep(Duration::from_millis(1200)).await;
            }
        }
        writer
            .finish_at(Duration::from_secs(22), "client disconnected")
            .await?;
        anyhow::Ok(())
    })?;
    let segment = test.dir.path().join("recordings/rec-gap/seg-00000001.zst");
    std::fs::remove_file(&segment)
        .with_context(|| format!("{} should exist", segment.display()))?;
    let mut harness = Harness::store(
        runtime,
        test.config(),
        settings(),
        Some("rec-gap"),
        "bastion".into(),
    );
    harness.settle()?;
    let player = harness.app.player.as_ref().context("player")?;
    let damage = player.damage.clone().context("damage")?;
    assert!(damage.contains("segment 1"), "{damage}");
    assert!(
        player.duration < 3.0,
        "stops before the missing segment: {}",
        player.duration
    );
    Ok(())
}
