//! Shared test support: sample recordings (literal asciicast text and store recordings written
//! with `recorder::RecordingWriter` at explicit times), golden screen files, and a harness that
//! drives the real state machine and background workers the way `main` does, minus the
//! terminal.

#![allow(dead_code)]

pub mod golden;
pub mod recordings;
pub mod tmux;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use recorder::RecordingStore;
use replay_tui::app::{App, Effect, EndSessions, Message, OpenTarget, Settings};
use replay_tui::config::ReplayConfig;
use replay_tui::wiring::{Wiring, carry_out};
use tokio::sync::mpsc::{self, UnboundedReceiver};

/// Settings as without `--config`: ending sessions refused.
pub fn settings() -> Settings {
    Settings {
        idle_cap: Some(2.0),
        end_sessions: EndSessions::decide(None, false),
    }
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn char_key(c: char) -> KeyEvent {
    let modifiers = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    KeyEvent::new(KeyCode::Char(c), modifiers)
}

/// The application with its background machinery, driven by hand.
pub struct Harness {
    pub app: App,
    wiring: Wiring,
    inbox: UnboundedReceiver<Message>,
    pub runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn start(
        app: App,
        effects: Vec<Effect>,
        store: Option<RecordingStore>,
        config: Option<ReplayConfig>,
        runtime: tokio::runtime::Runtime,
        bastion_bin: PathBuf,
    ) -> Harness {
        let (messages, inbox) = mpsc::unbounded_channel();
        let wiring = {
            let _guard = runtime.enter();
            Wiring::new(store, config, None, bastion_bin, messages)
        };
        let mut harness = Harness {
            app,
            wiring,
            inbox,
            runtime,
        };
        harness.carry_out(effects);
        harness
    }

    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    }

    /// The player on a local file.
    pub fn file(path: PathBuf, settings: Settings) -> Harness {
        let (app, effects) = App::single(settings, OpenTarget::File(path));
        Harness::start(
            app,
            effects,
            None,
            None,
            Harness::runtime(),
            PathBuf::from("bastion"),
        )
    }

    /// The browser (or, with `id`, the player) over the store of `config`.
    pub fn store(
        runtime: tokio::runtime::Runtime,
        config: ReplayConfig,
        settings: Settings,
        id: Option<&str>,
        bastion_bin: PathBuf,
    ) -> Harness {
        let store = runtime
            .block_on(RecordingStore::open_reader(config.store_config()))
            .expect("open reader store");
        let (app, effects) = match id {
            Some(id) => App::single(settings, OpenTarget::Store(id.to_string())),
            None => (App::browser(settings), vec![Effect::ReloadCatalog]),
        };
        Harness::start(
            app,
            effects,
            Some(store),
            Some(config),
            runtime,
            bastion_bin,
        )
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        let _guard = self.runtime.enter();
        for effect in effects {
            carry_out(effect, &mut self.wiring);
        }
    }

    pub fn press(&mut self, key: KeyEvent) {
        let effects = self.app.handle_key(key);
        self.carry_out(effects);
    }

    /// Types each character as a key press.
    pub fn type_keys(&mut self, keys: &str) {
        for c in keys.chars() {
            self.press(char_key(c));
        }
    }

    /// Seeks the player to exactly `t` (keys seek in steps) and waits for the frame.
    pub fn seek(&mut self, t: f64) -> Result<()> {
        let player = self.app.player.as_mut().expect("player");
        let generation = player.generation;
        let effects = player
            .seek(t)
            .into_iter()
            .map(|request| Effect::Player {
                generation,
                request,
            })
            .collect();
        self.carry_out(effects);
        self.settle()
    }

    pub fn tick(&mut self, elapsed: Duration) {
        let effects = self.app.tick(elapsed);
        self.carry_out(effects);
    }

    /// Applies the messages that arrive within `wait`.
    pub fn pump(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = self
                .runtime
                .block_on(async { tokio::time::timeout_at(deadline, self.inbox.recv()).await });
            match message {
                Ok(Some(message)) => {
                    let effects = self.app.handle_message(message);
                    self.carry_out(effects);
                }
                _ => return,
            }
        }
    }

    /// Pumps messages until `done(app)`, failing after 20 s with `what`.
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&App) -> bool) -> Result<()> {
        let start = Instant::now();
        while !done(&self.app) {
            if start.elapsed() > Duration::from_secs(20) {
                let player = self.app.player.as_ref().map(|p| {
                    format!(
                        "position {} frame {:?} progress {:?} pending {:?} error {:?} damage {:?}",
                        p.position,
                        p.frame.as_ref().map(|f| f.t),
                        p.progress,
                        p.pending_seek,
                        p.error,
                        p.damage
                    )
                });
                bail!(
                    "timed out waiting for {what}; player: {player:?}; status {:?}",
                    self.app.status
                );
            }
            self.pump(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until the player is fully loaded and shows the frame of its position.
    pub fn settle(&mut self) -> Result<()> {
        self.wait_until("the player to settle", |app| {
            app.player.as_ref().is_some_and(|p| {
                p.progress.done
                    && p.pending_seek.is_none()
                    && p.frame
                        .as_ref()
                        .is_some_and(|f| f.t == p.position && f.with_input == p.show_input)
            })
        })
    }

    pub fn render(&self, width: u16, height: u16) -> String {
        render(&self.app, width, height)
    }
}

/// Draws `app` on a `width` x `height` test terminal and returns the golden text form.
pub fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| replay_tui::ui::render(app, frame))
        .expect("draw");
    golden::buffer_text(terminal.backend().buffer())
}

/// A tool the tests need: its path, or an error (in CI a missing tool fails the test).
pub fn tool(name: &str) -> Result<Option<PathBuf>> {
    match testkit::tool::find(name) {
        Some(path) => Ok(Some(path)),
        None if std::env::var_os("CI").is_some() => {
            bail!("{name} is required in CI but not on PATH")
        }
        None => {
            eprintln!("note: {name} not on PATH, that check is left out");
            Ok(None)
        }
    }
}

/// `asciinema cat FILE` prints `text`: the export plays in asciinema. asciinema 2.x opens
/// /dev/tty, so it runs under `script`, which gives it a terminal.
pub fn asciinema_cat_contains(path: &std::path::Path, text: &str) -> Result<()> {
    let (Some(asciinema), Some(script)) = (tool("asciinema")?, tool("script")?) else {
        return Ok(());
    };
    let line = format!("'{}' cat '{}'", asciinema.display(), path.display());
    let out = std::process::Command::new(script)
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success() && stdout.contains(text),
        "asciinema cat {} (status {}) did not print {text:?}: {stdout}{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
