//! `bastion-replay` in a real terminal: testkit's tmux driver runs it, the test presses keys and
//! reads the visible screen, like a reviewer at a keyboard. [`Tmux::replay`] takes the command
//! line arguments (a `--config` and a recording id, or a file), whatever made the recording.
//!
//! A shell runs the program and stays in the pane afterwards, printing its exit status, so the
//! test can check that and that the program left the terminal usable (alternate screen off,
//! cursor visible) while the pane is still alive: tmux reports no cursor for a dead pane.

use std::ops::Deref;
use std::time::Duration;

use anyhow::Result;
use testkit::tmux::{Window, reporting_line};

/// How long a screen or the exit may take to show.
const WAIT: Duration = Duration::from_secs(20);

/// A tmux window running `bastion-replay`; keys, text and the terminal state come from
/// testkit's [`testkit::tmux::Tmux`].
pub struct Tmux(testkit::tmux::Tmux);

impl Deref for Tmux {
    type Target = testkit::tmux::Tmux;

    fn deref(&self) -> &testkit::tmux::Tmux {
        &self.0
    }
}

impl Tmux {
    /// Starts `bastion-replay ARGS` in a `width` x `height` xterm.
    pub fn replay(args: &[&str], width: u16, height: u16) -> Result<Tmux> {
        let mut argv = vec![env!("CARGO_BIN_EXE_bastion-replay")];
        argv.extend_from_slice(args);
        let window = Window {
            columns: width,
            rows: height,
            term: Some("xterm-256color"),
        };
        testkit::tmux::Tmux::start_in(&reporting_line(&argv), window).map(Tmux)
    }

    /// Waits until the screen shows every one of `texts`; returns that screen.
    pub fn wait_for(&self, texts: &[&str]) -> Result<String> {
        self.0.wait_visible(texts, WAIT)
    }

    /// Waits until the screen no longer shows `text`.
    pub fn wait_gone(&self, text: &str) -> Result<()> {
        self.0.wait_visible_gone(text, WAIT).map(drop)
    }

    /// Waits for the program to exit; returns its exit status.
    pub fn wait_exit(&self) -> Result<i32> {
        self.0.wait_reported_exit(WAIT)
    }
}
