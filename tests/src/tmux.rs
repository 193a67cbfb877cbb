//! A private tmux server giving an ssh client a real terminal: the test types into it with
//! `send-keys` and reads the screen with `capture-pane`, like a person at a keyboard.
//!
//! `remain-on-exit` keeps the pane (and its last screen) after ssh exits, so a test can still
//! read the goodbye message and the exit status.
//!
//! Full-screen programs (bastion-replay) are checked on the visible screen only
//! ([`Tmux::visible`], [`Tmux::wait_visible`]), keys go in by tmux name ([`Tmux::keys`]), and
//! [`Tmux::terminal_state`] tells whether the program left the terminal usable.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::child::{self, Input};
use crate::prereq;
use crate::procs;

pub struct Tmux {
    socket: String,
    _dir: TempDir,
}

const TARGET: &str = "main";

impl Tmux {
    /// Starts a 120x40 tmux session running `shell_line` (see `Ssh::shell_line`).
    pub fn start(shell_line: &str) -> Result<Tmux> {
        let dir = tempfile::Builder::new().prefix("bastion-tmux-").tempdir()?;
        let config = dir.path().join("tmux.conf");
        std::fs::write(
            &config,
            "set -g remain-on-exit on\nset -g history-limit 20000\n",
        )?;
        let socket = format!(
            "bastion-test-{}-{}",
            std::process::id(),
            procs::unique_number()
        );
        let tmux = Tmux { socket, _dir: dir };
        tmux.tmux_in(&[
            "-f",
            &config.display().to_string(),
            "new-session",
            "-d",
            "-s",
            TARGET,
            "-x",
            "120",
            "-y",
            "40",
            shell_line,
        ])?;
        Ok(tmux)
    }

    fn tmux_in(&self, args: &[&str]) -> Result<String> {
        let out = child::run(
            Command::new(prereq::tool("tmux"))
                .arg("-L")
                .arg(&self.socket)
                .args(args),
            Input::Null,
            Duration::from_secs(10),
        )?;
        ensure!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            out.stderr_str()
        );
        Ok(out.stdout_str())
    }

    /// Types `text` literally (no key names interpreted).
    pub fn type_text(&self, text: &str) -> Result<()> {
        self.tmux_in(&["send-keys", "-t", TARGET, "-l", text])
            .map(drop)
    }

    /// Types `line` and presses Enter.
    pub fn type_line(&self, line: &str) -> Result<()> {
        self.type_text(line)?;
        self.tmux_in(&["send-keys", "-t", TARGET, "Enter"])
            .map(drop)
    }

    /// Resizes the terminal, as a user dragging the window edge would.
    pub fn resize(&self, columns: u16, rows: u16) -> Result<()> {
        let (x, y) = (columns.to_string(), rows.to_string());
        self.tmux_in(&["resize-window", "-t", TARGET, "-x", &x, "-y", &y])
            .map(drop)
    }

    /// The whole pane: scrollback plus visible screen, wrapped lines joined.
    pub fn screen(&self) -> Result<String> {
        self.tmux_in(&[
            "capture-pane",
            "-p",
            "-J",
            "-t",
            TARGET,
            "-S",
            "-",
            "-E",
            "-",
        ])
    }

    /// Waits until `needle` appears on screen; the error shows the screen.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_until(timeout, &format!("{needle:?} on screen"), |screen| {
            screen.contains(needle)
        })
    }

    /// Waits until `ready(screen)` holds; the error names `what` and shows the screen.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen()?;
            if ready(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                bail!(
                    "expected {what} within {timeout:?}; screen was:\n{}",
                    screen.trim_end()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Exit status of the program in the pane once it has exited (128 + signal if a signal
    /// killed it), else `None`.
    pub fn exit_status(&self) -> Result<Option<i32>> {
        let out = self.tmux_in(&[
            "display-message",
            "-p",
            "-t",
            TARGET,
            "#{pane_pid}:#{pane_dead}:#{pane_dead_status}",
        ])?;
        let mut fields = out.trim().split(':');
        let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
        let dead = fields.next() == Some("1");
        if let Some(status) = fields.next().and_then(|s| s.parse().ok()).filter(|_| dead) {
            return Ok(Some(status));
        }
        // Under parallel load tmux 3.3a sometimes never reaps the pane's process (it stays a
        // zombie, pane_dead_status stays empty), so read the zombie's exit code from /proc.
        Ok(pid.and_then(procs::zombie_exit_status))
    }

    /// Waits until the program in the pane exits; returns its exit status.
    pub fn wait_exit(&self, timeout: Duration) -> Result<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "ssh in tmux still running after {timeout:?}; screen was:\n{}",
                    self.screen()?.trim_end()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Presses keys by tmux name (`Enter`, `Escape`, `Space`, `Tab`, `C-c`, `q`...).
    pub fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", TARGET];
        args.extend_from_slice(keys);
        self.tmux_in(&args).map(drop)
    }

    /// The visible screen only, as text (no scrollback).
    pub fn visible(&self) -> Result<String> {
        self.tmux_in(&["capture-pane", "-p", "-t", TARGET])
    }

    /// The visible screen with its colours and attributes as SGR escape sequences.
    pub fn visible_styled(&self) -> Result<String> {
        self.tmux_in(&["capture-pane", "-p", "-e", "-t", TARGET])
    }

    /// Waits until the visible screen shows every one of `texts`; the error shows the screen.
    pub fn wait_visible(&self, texts: &[&str], timeout: Duration) -> Result<String> {
        self.wait_visible_until(timeout, &format!("{texts:?} on screen"), |screen| {
            texts.iter().all(|t| screen.contains(t))
        })
    }

    /// Waits until the visible screen no longer shows `text`.
    pub fn wait_visible_gone(&self, text: &str, timeout: Duration) -> Result<String> {
        self.wait_visible_until(
            timeout,
            &format!("{text:?} gone from the screen"),
            |screen| !screen.contains(text),
        )
    }

    /// Waits until `ready(visible screen)` holds; the error names `what` and shows the screen.
    pub fn wait_visible_until(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.visible()?;
            if ready(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                bail!(
                    "expected {what} within {timeout:?}; screen was:\n{}",
                    screen.trim_end()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the pane is in the alternate screen and whether its cursor is visible. tmux
    /// reports no cursor for a dead pane, so ask while something still runs in it.
    pub fn terminal_state(&self) -> Result<(bool, bool)> {
        let out = self.tmux_in(&[
            "display-message",
            "-p",
            "-t",
            TARGET,
            "#{alternate_on}:#{cursor_flag}",
        ])?;
        let (alternate, cursor) = out.trim().split_once(':').unwrap_or(("", ""));
        Ok((alternate == "1", cursor == "1"))
    }

    /// Pid of the program in the pane (ssh itself: the command line `exec`s it).
    pub fn pid(&self) -> Result<u32> {
        let out = self.tmux_in(&["display-message", "-p", "-t", TARGET, "#{pane_pid}"])?;
        out.trim()
            .parse()
            .with_context(|| format!("tmux pane_pid {out:?}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux_in(&["kill-server"]);
    }
}
