//! The state machine on its own: keys, ticks and worker messages in, state and effects out.
//! No worker runs here; its answers are written by hand, which pins down exactly what the
//! player does with them (idle cap, stepping, follow, stale answers).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use replay_tui::app::{App, Effect, EndSessions, Message, OpenTarget, Overlay, Settings, View};
use replay_tui::config::ReplayConfig;
use replay_tui::screen::Screen;
use replay_tui::source::{IndexDelta, Neighbours, Progress, RecordingInfo, TimedText};
use replay_tui::worker::{Frame, PlayerEvent, PlayerRequest};
use support::{char_key, key};

fn settings(can_end: bool) -> Settings {
    Settings {
        idle_cap: Some(2.0),
        end_sessions: if can_end {
            EndSessions::Allowed
        } else {
            EndSessions::Refused("ending sessions is off: test".to_string())
        },
    }
}

fn line(t: f64, text: &str) -> TimedText {
    TimedText {
        t,
        text: text.to_string(),
    }
}

/// A player on a 100 s recording with commands at 10, 30 and 70 s.
fn player(target: OpenTarget, live: bool, can_end: bool) -> App {
    let (mut app, effects) = App::single(settings(can_end), target);
    assert!(matches!(effects[0], Effect::Open { generation: 1, .. }));
    let info = RecordingInfo {
        id: Some("rec-1".to_string()),
        user: Some("alice".to_string()),
        live,
        ..RecordingInfo::default()
    };
    send(&mut app, PlayerEvent::Opened(info));
    send(
        &mut app,
        PlayerEvent::Index(IndexDelta {
            duration: 100.0,
            commands: vec![line(10.0, "ls"), line(30.0, "psql"), line(70.0, "exit")],
            output: vec![line(31.0, "DROP TABLE users"), line(80.0, "drop it")],
            progress: Progress {
                fraction: 1.0,
                done: true,
                detail: String::new(),
            },
            live,
            ..IndexDelta::default()
        }),
    );
    app
}

fn send(app: &mut App, event: PlayerEvent) -> Vec<Effect> {
    app.handle_message(Message::Player {
        generation: 1,
        event,
    })
}

fn frame(t: f64, previous: Option<f64>, next: Option<f64>) -> PlayerEvent {
    PlayerEvent::Frame(Frame {
        t,
        screen: Screen::default(),
        neighbours: Neighbours { previous, next },
        input: Vec::new(),
        with_input: false,
    })
}

fn position(app: &App) -> f64 {
    app.player.as_ref().expect("player").position
}

fn file() -> OpenTarget {
    OpenTarget::File(PathBuf::from("/tmp/x.cast"))
}

#[test]
fn playback_follows_speed_and_skips_idle_time_beyond_the_cap() {
    let mut app = player(file(), false, false);
    send(&mut app, frame(0.0, Some(0.0), Some(50.0)));
    app.handle_key(char_key(' '));
    assert!(app.is_playing());
    let effects = app.tick(Duration::from_secs(1));
    assert_eq!(position(&app), 1.0);
    assert_eq!(
        effects,
        vec![Effect::Player {
            generation: 1,
            request: PlayerRequest::Frame {
                t: 1.0,
                with_input: false
            }
        }]
    );
    app.handle_key(char_key('+'));
    app.tick(Duration::from_secs(1));
    assert_eq!(
        position(&app),
        50.0,
        "past 2 s of a 50 s pause: skip to its end"
    );

    // With the cap off the pause plays in full.
    let mut app = player(file(), false, false);
    send(&mut app, frame(0.0, Some(0.0), Some(50.0)));
    app.handle_key(char_key('I'));
    app.handle_key(char_key(' '));
    app.tick(Duration::from_secs(3));
    assert_eq!(position(&app), 3.0);

    // The end stops playback.
    app.tick(Duration::from_secs(500));
    assert_eq!(position(&app), 100.0);
    assert!(!app.is_playing());
}

#[test]
fn speed_stays_between_a_quarter_and_sixteen() {
    let mut app = player(file(), false, false);
    for _ in 0..10 {
        app.handle_key(char_key('+'));
    }
    assert_eq!(app.player.as_ref().map(|p| p.speed()), Some(16.0));
    for _ in 0..10 {
        app.handle_key(char_key('-'));
    }
    assert_eq!(app.player.as_ref().map(|p| p.speed()), Some(0.25));
}

#[test]
fn seeking_by_steps_percentages_commands_and_hits() {
    let mut app = player(file(), false, false);
    app.handle_key(key(KeyCode::Right));
    assert_eq!(position(&app), 5.0);
    app.handle_key(char_key('h'));
    app.handle_key(char_key('h'));
    assert_eq!(position(&app), 0.0, "clamped at the start");
    app.handle_key(KeyEvent::new(KeyCode::Right, KeyModifiers::SHIFT));
    assert_eq!(position(&app), 60.0);
    app.handle_key(char_key('k'));
    assert_eq!(position(&app), 0.0);
    app.handle_key(char_key('7'));
    assert_eq!(position(&app), 70.0);
    app.handle_key(char_key('G'));
    assert_eq!(position(&app), 100.0);
    app.handle_key(key(KeyCode::Home));
    assert_eq!(position(&app), 0.0);

    app.handle_key(char_key('c'));
    assert_eq!(position(&app), 10.0);
    app.handle_key(char_key('c'));
    assert_eq!(position(&app), 30.0);
    app.handle_key(char_key('C'));
    assert_eq!(position(&app), 10.0);
    app.handle_key(char_key('C'));
    assert_eq!(position(&app), 10.0, "no command before the first");

    app.handle_key(char_key('/'));
    for c in "drop".chars() {
        app.handle_key(char_key(c));
    }
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(position(&app), 31.0, "Enter jumps to the next hit");
    app.handle_key(char_key('n'));
    assert_eq!(position(&app), 80.0);
    app.handle_key(char_key('N'));
    assert_eq!(position(&app), 31.0);
    assert_eq!(
        app.player.as_ref().map(|p| p.hits.clone()),
        Some(vec![31.0, 80.0])
    );
}

#[test]
fn command_panel_selects_and_seeks() {
    let mut app = player(file(), false, false);
    app.handle_key(char_key('G'));
    assert_eq!(
        app.player.as_ref().map(|p| p.panel_selected),
        Some(2),
        "follows playback"
    );
    app.handle_key(key(KeyCode::Tab));
    app.handle_key(char_key('k'));
    app.handle_key(char_key('k'));
    app.handle_key(key(KeyCode::Enter));
    assert_eq!(position(&app), 10.0);
    // Keys the panel does not use still control playback.
    app.handle_key(char_key(' '));
    assert!(app.is_playing());
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.player.as_ref().map(|p| p.panel_focused), Some(false));
}

#[test]
fn frame_steps_only_while_paused() {
    let mut app = player(file(), false, false);
    app.handle_key(char_key('c'));
    send(&mut app, frame(10.0, Some(9.5), Some(10.25)));
    app.handle_key(char_key('.'));
    assert_eq!(position(&app), 10.25);
    send(&mut app, frame(10.25, Some(10.25), Some(11.0)));
    app.handle_key(char_key(','));
    assert!(
        (position(&app) - 10.249999).abs() < 1e-9,
        "just before the event shown"
    );
    app.handle_key(char_key(' '));
    let before = position(&app);
    app.handle_key(char_key('.'));
    assert_eq!(position(&app), before, "ignored while playing");
}

#[test]
fn export_of_the_marked_range_or_everything() {
    let mut app = player(OpenTarget::Store("rec-1".to_string()), false, false);
    app.handle_key(char_key('e'));
    let field = app
        .player
        .as_ref()
        .and_then(|p| p.export.clone())
        .expect("export field");
    assert_eq!(field.text, "rec-1.cast");
    app.handle_key(key(KeyCode::Esc));
    app.handle_key(char_key('1'));
    app.handle_key(char_key('['));
    app.handle_key(char_key('2'));
    app.handle_key(char_key(']'));
    app.handle_key(char_key('e'));
    for _ in 0.."rec-1-10-20.cast".len() {
        app.handle_key(key(KeyCode::Backspace));
    }
    for c in "/tmp/out.cast".chars() {
        app.handle_key(char_key(c));
    }
    let effects = app.handle_key(key(KeyCode::Enter));
    assert_eq!(
        effects,
        vec![Effect::Player {
            generation: 1,
            request: PlayerRequest::Export {
                path: PathBuf::from("/tmp/out.cast"),
                range: Some((10.0, 20.0))
            }
        }]
    );
}

#[test]
fn ending_a_live_session_asks_first() {
    let mut app = player(OpenTarget::Store("rec-1".to_string()), true, true);
    app.handle_key(char_key('E'));
    assert_eq!(
        app.overlay,
        Some(Overlay::ConfirmEnd {
            id: "rec-1".to_string()
        })
    );
    assert!(app.handle_key(char_key('n')).is_empty());
    assert_eq!(app.overlay, None);
    app.handle_key(char_key('E'));
    let effects = app.handle_key(char_key('y'));
    assert_eq!(
        effects,
        vec![Effect::EndSession {
            id: "rec-1".to_string()
        }]
    );
    app.handle_message(Message::SessionEnded {
        id: "rec-1".to_string(),
        result: Ok(String::new()),
    });
    assert_eq!(app.status.as_deref(), Some("session rec-1 ended"));

    let mut finished = player(OpenTarget::Store("rec-1".to_string()), false, true);
    finished.handle_key(char_key('E'));
    assert_eq!(finished.overlay, None);
    assert_eq!(
        finished.status.as_deref(),
        Some("only a live session can be ended")
    );

    let mut not_allowed = player(OpenTarget::Store("rec-1".to_string()), true, false);
    not_allowed.handle_key(char_key('E'));
    assert_eq!(not_allowed.overlay, None);
}

/// The refusal names what to change: the configuration key and file, or the command line flag.
#[test]
fn refused_ending_says_why() {
    let path = std::path::Path::new("/etc/bastion/bastion.toml");
    let press_end = |config: &ReplayConfig, flag: bool| {
        let mut app = player(OpenTarget::Store("rec-1".to_string()), true, false);
        app.settings.end_sessions = EndSessions::decide(Some(config), flag);
        let effects = app.handle_key(char_key('E'));
        assert!(effects.is_empty());
        assert_eq!(app.overlay, None);
        // `y` is not a confirmation when nothing was asked.
        assert!(app.handle_key(char_key('y')).is_empty());
        app.handle_key(char_key('E'));
        app.status.unwrap_or_default()
    };
    let silent = ReplayConfig::parse("[recording]\nsegment_interval = \"1s\"\n", path).unwrap();
    assert_eq!(
        press_end(&silent, false),
        "ending sessions is off: set [replay] allow_end_session = true in /etc/bastion/bastion.toml"
    );
    let allowing = ReplayConfig::parse("[replay]\nallow_end_session = true\n", path).unwrap();
    assert_eq!(
        press_end(&allowing, true),
        "ending sessions is off: bastion-replay was started with --no-end-session"
    );
}

#[test]
fn live_recordings_follow_their_end() {
    let mut app = player(OpenTarget::Store("rec-1".to_string()), true, false);
    app.handle_key(char_key('F'));
    assert_eq!(position(&app), 100.0);
    let player = app.player.as_ref().expect("player");
    assert!(player.following && player.playing);
    let effects = send(
        &mut app,
        PlayerEvent::Index(IndexDelta {
            duration: 104.0,
            progress: Progress {
                fraction: 1.0,
                done: true,
                detail: String::new(),
            },
            live: true,
            ..IndexDelta::default()
        }),
    );
    assert_eq!(position(&app), 104.0);
    assert_eq!(effects.len(), 1);
    // Seeking back leaves follow mode; playing to the end enters it again.
    app.handle_key(char_key('h'));
    assert!(!app.player.as_ref().expect("player").following);
    app.tick(Duration::from_secs(10));
    assert!(app.player.as_ref().expect("player").following);
}

#[test]
fn stale_worker_answers_are_ignored_and_a_pending_seek_waits_for_data() {
    let mut app = App::browser(settings(false));
    app.handle_message(Message::Catalog(replay_tui::catalog::CatalogEvent::Rows(
        vec![replay_tui::catalog::CatalogRow {
            id: "rec-1".to_string(),
            user: "alice".to_string(),
            target: "db-1".to_string(),
            login: "app".to_string(),
            started_at: None,
            duration: Some(100.0),
            end_reason: Some("done".to_string()),
            stored_bytes: Some(10),
            finished: true,
            complete: true,
            verified: replay_tui::catalog::Verified::Pending,
            error: None,
        }],
    )));
    let effects = app.handle_key(key(KeyCode::Enter));
    assert!(matches!(&effects[0], Effect::Open { generation: 1, .. }));
    assert_eq!(app.view, View::Player);
    app.handle_key(char_key('q'));
    assert_eq!(app.view, View::Browser);
    assert!(!app.quit);
    app.handle_key(key(KeyCode::Enter));
    // An answer from the first player arrives late: ignored.
    app.handle_message(Message::Player {
        generation: 1,
        event: frame(5.0, None, None),
    });
    assert!(app.player.as_ref().expect("player").frame.is_none());

    let player = app.player.as_mut().expect("player");
    player.pending_seek = Some(50.0);
    let mut partial = IndexDelta {
        duration: 20.0,
        ..IndexDelta::default()
    };
    app.handle_message(Message::Player {
        generation: 2,
        event: PlayerEvent::Index(partial.clone()),
    });
    assert_eq!(
        app.player.as_ref().expect("player").pending_seek,
        Some(50.0)
    );
    partial.duration = 60.0;
    app.handle_message(Message::Player {
        generation: 2,
        event: PlayerEvent::Index(partial),
    });
    let player = app.player.as_ref().expect("player");
    assert_eq!((player.pending_seek, player.position), (None, 50.0));
}

#[test]
fn help_closes_on_any_key_and_ctrl_c_quits() {
    let mut app = player(file(), false, false);
    app.handle_key(char_key('?'));
    assert_eq!(app.overlay, Some(Overlay::Help));
    app.handle_key(char_key('x'));
    assert_eq!(app.overlay, None);
    assert!(!app.quit);
    app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
    let mut app = player(file(), false, false);
    app.handle_key(char_key('q'));
    assert!(app.quit, "q leaves a player that was opened directly");
}
