//! A private tmux server giving an ssh client a real terminal: the test types into it with
//! `send-keys` and reads the screen with `capture-pane`, like a person at a keyboard.
//!
//! `remain-on-exit` keeps the pane (and its last screen) after ssh exits, so a test can still
//! read the goodbye message and the exit status.

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
