//! Snapshot tests: the state machine driven with keys over real sample recordings (through the
//! real worker), drawn on ratatui's `TestBackend` and compared with golden screens in
//! `tests/golden` (`UPDATE_GOLDEN=1` rewrites them).

mod support;

use anyhow::Result;
use crossterm::event::KeyCode;
use replay_tui::app::Message;
use replay_tui::catalog::{CatalogEvent, CatalogRow, Verified};
use replay_tui::search::{HitKind, SearchHit, SearchResults};
use support::recordings::{self, START};
use support::{Harness, char_key, golden, key, settings};
use time::OffsetDateTime;

fn open(text: &str, name: &str) -> Result<(Harness, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let path = recordings::write(dir.path(), name, text);
    let mut harness = Harness::file(path, settings());
    harness.settle()?;
    Ok((harness, dir))
}

fn seek(harness: &mut Harness, t: f64) -> Result<()> {
    harness.seek(t)
}

#[test]
fn colours_and_attributes_are_drawn_faithfully() -> Result<()> {
    let (mut harness, _dir) = open(&recordings::colours(), "colours.cast")?;
    seek(&mut harness, 5.0)?;
    golden::check("player_colours", &harness.render(80, 16));
    Ok(())
}

#[test]
fn vim_in_the_alternate_screen_and_back() -> Result<()> {
    let (mut harness, _dir) = open(&recordings::vim(), "vim.cast")?;
    seek(&mut harness, 1.5)?;
    let frame = harness
        .app
        .player
        .as_ref()
        .and_then(|p| p.frame.as_ref())
        .expect("frame");
    assert!(frame.screen.alternate);
    golden::check("player_vim_alternate", &harness.render(80, 16));
    seek(&mut harness, 3.0)?;
    let frame = harness
        .app
        .player
        .as_ref()
        .and_then(|p| p.frame.as_ref())
        .expect("frame");
    assert!(!frame.screen.alternate);
    golden::check("player_vim_after_exit", &harness.render(80, 16));
    Ok(())
}

#[test]
fn a_resize_mid_recording_changes_the_drawn_terminal() -> Result<()> {
    let (mut harness, _dir) = open(&recordings::resize(), "resize.cast")?;
    seek(&mut harness, 0.5)?;
    golden::check("player_resize_before", &harness.render(90, 14));
    seek(&mut harness, 2.0)?;
    golden::check("player_resize_after", &harness.render(90, 14));
    Ok(())
}

#[test]
fn session_with_commands_markers_search_and_input_overlay() -> Result<()> {
    let (mut harness, _dir) = open(&recordings::session(), "session.cast")?;
    // Search the recording, jump to the first hit, show typed keys.
    harness.press(char_key('/'));
    harness.type_keys("drop table");
    harness.press(key(KeyCode::Enter));
    harness.settle()?;
    harness.press(char_key('i'));
    harness.settle()?;
    let player = harness.app.player.as_ref().expect("player");
    assert_eq!(
        player.hits.len(),
        3,
        "typed line, echoed line and cat output"
    );
    assert_eq!(player.position, 3.0);
    golden::check("player_session_search", &harness.render(100, 18));
    Ok(())
}

#[test]
fn help_lists_every_key_even_on_a_small_terminal() -> Result<()> {
    let (mut harness, _dir) = open(&recordings::colours(), "colours.cast")?;
    harness.press(char_key('?'));
    let screen = harness.render(130, 30);
    golden::check("player_help", &screen);
    for binding in replay_tui::app::keys::BINDINGS {
        if matches!(
            binding.context,
            replay_tui::app::Context::Player | replay_tui::app::Context::Panel
        ) && !binding.help.is_empty()
        {
            assert!(
                screen.contains(binding.help),
                "help misses {:?}",
                binding.help
            );
        }
    }
    let mut app = browser_with_rows();
    app.handle_key(char_key('?'));
    golden::check("browser_help", &support::render(&app, 110, 30));
    Ok(())
}

fn row(
    id: &str,
    user: &str,
    target: &str,
    day: i64,
    reason: Option<&str>,
    verified: Verified,
) -> CatalogRow {
    CatalogRow {
        id: id.to_string(),
        user: user.to_string(),
        target: target.to_string(),
        login: "app".to_string(),
        started_at: Some(OffsetDateTime::from_unix_timestamp(START + day * 86_400).expect("time")),
        duration: reason.map(|_| 125.0 + day as f64),
        end_reason: reason.map(str::to_string),
        stored_bytes: reason.map(|_| 20_000 * (day as u64 + 1)),
        finished: reason.is_some(),
        complete: reason.is_some(),
        verified,
        error: None,
    }
}

fn browser_with_rows() -> replay_tui::app::App {
    let mut app = replay_tui::app::App::browser(settings());
    let rows = vec![
        row(
            "r1",
            "alice",
            "db-1",
            0,
            Some("client disconnected"),
            Verified::Intact { signed: true },
        ),
        row(
            "r2",
            "bob",
            "db-1",
            1,
            Some("grant expired"),
            Verified::Intact { signed: false },
        ),
        row(
            "r3",
            "alice",
            "web-2",
            2,
            Some("ended by carol"),
            Verified::Tampered("segment 3 hash".into()),
        ),
        row(
            "r4",
            "carol",
            "db-2",
            3,
            None,
            Verified::Truncated("no manifest".into()),
        ),
        row(
            "r5",
            "alice",
            "db-1",
            4,
            Some("grant expired"),
            Verified::Pending,
        ),
    ];
    app.handle_message(Message::Catalog(CatalogEvent::Listed { total: 5 }));
    app.handle_message(Message::Catalog(CatalogEvent::Rows(rows)));
    app
}

#[test]
fn browser_lists_sorts_and_filters() {
    let mut app = browser_with_rows();
    golden::check("browser_all", &support::render(&app, 110, 12));

    app.handle_key(char_key('s'));
    app.handle_key(char_key('S'));
    golden::check("browser_sorted_by_user", &support::render(&app, 110, 12));

    app.handle_key(char_key('f'));
    for c in "alice".chars() {
        app.handle_key(char_key(c));
    }
    app.handle_key(key(KeyCode::Tab));
    for c in "db".chars() {
        app.handle_key(char_key(c));
    }
    app.handle_key(key(KeyCode::Tab));
    for c in "2024-05-02".chars() {
        app.handle_key(char_key(c));
    }
    golden::check("browser_filter_form", &support::render(&app, 110, 14));
    app.handle_key(key(KeyCode::Enter));
    let browser = app.browser.as_ref().expect("browser");
    let shown: Vec<&str> = browser
        .visible
        .iter()
        .map(|&i| browser.rows[i].id.as_str())
        .collect();
    assert_eq!(shown, vec!["r5"], "alice on db-* from 2024-05-02");
    golden::check("browser_filtered", &support::render(&app, 110, 12));

    // Reopen: drop the user, add an end reason.
    app.handle_key(char_key('f'));
    for _ in 0.."alice".len() {
        app.handle_key(key(KeyCode::Backspace));
    }
    for _ in 0..4 {
        app.handle_key(key(KeyCode::Tab));
    }
    for c in "expired".chars() {
        app.handle_key(char_key(c));
    }
    app.handle_key(key(KeyCode::Enter));
    let browser = app.browser.as_ref().expect("browser");
    let shown: Vec<&str> = browser
        .visible
        .iter()
        .map(|&i| browser.rows[i].id.as_str())
        .collect();
    assert_eq!(
        shown,
        vec!["r5", "r2"],
        "grant expired on db-* from 2024-05-02, by user"
    );

    // Esc in a reopened form restores the filters it started with.
    app.handle_key(char_key('f'));
    app.handle_key(char_key('x'));
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.browser.as_ref().map(|b| b.visible.len()), Some(2));
    // Esc in the browser clears all filters, then q quits.
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.browser.as_ref().map(|b| b.visible.len()), Some(5));
    assert!(!app.quit);
    app.handle_key(char_key('q'));
    assert!(app.quit);
}

#[test]
fn browser_search_shows_hits_in_context() {
    let mut app = browser_with_rows();
    app.handle_key(char_key('/'));
    let mut generation = 0;
    for c in "drop".chars() {
        for effect in app.handle_key(char_key(c)) {
            if let replay_tui::app::Effect::Search(query) = effect {
                generation = query.generation;
            }
        }
    }
    app.handle_key(key(KeyCode::Enter));
    let hit =
        |id: &str, t: f64, kind, text: &str, before: Option<&str>, after: Option<&str>| SearchHit {
            id: id.to_string(),
            t,
            kind,
            text: text.to_string(),
            before: before.map(str::to_string),
            after: after.map(str::to_string),
        };
    let results = SearchResults {
        generation,
        query: "drop".to_string(),
        hits: vec![
            hit(
                "r3",
                65.0,
                HitKind::Command,
                "psql -c 'DROP TABLE users'",
                Some("app@db-1:~$"),
                Some("ERROR:  permission denied"),
            ),
            hit(
                "r3",
                66.0,
                HitKind::Output,
                "DROP TABLE",
                Some("psql -c 'DROP TABLE users'"),
                Some("app@db-1:~$"),
            ),
            hit("r1", 3.0, HitKind::Command, "dropdb test", None, None),
        ],
        counts: [("r3".to_string(), 2), ("r1".to_string(), 1)]
            .into_iter()
            .collect(),
        searched: 4,
        missing: 1,
    };
    app.handle_message(Message::Search(results));
    let browser = app.browser.as_ref().expect("browser");
    assert_eq!(browser.visible.len(), 2);
    assert_eq!(browser.selected_row().map(|r| r.id.as_str()), Some("r3"));
    golden::check("browser_search", &support::render(&app, 110, 20));

    // Tab to the hits, pick the second, Enter opens the recording there with the query.
    app.handle_key(key(KeyCode::Tab));
    app.handle_key(char_key('j'));
    let effects = app.handle_key(key(KeyCode::Enter));
    assert!(matches!(
        &effects[0],
        replay_tui::app::Effect::Open { target: replay_tui::app::OpenTarget::Store(id), .. } if id == "r3"
    ));
    let player = app.player.as_ref().expect("player");
    assert_eq!(player.pending_seek, Some(66.0));
    assert_eq!(player.query, "drop");
}
