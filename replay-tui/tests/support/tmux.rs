//! `bastion-replay` in a real terminal: a private tmux server runs it, the test presses keys with
//! `send-keys` and reads the screen with `capture-pane`, like a reviewer at a keyboard.
//! Reusable: [`Tmux::replay`] takes the command line arguments (a `--config` and a recording id,
//! or a file), whatever made the recording.
//!
//! A shell runs the program and stays in the pane afterwards, printing its exit status, so the
//! test can check that and that the program left the terminal usable (alternate screen off,
//! cursor visible) while the pane is still alive: tmux reports no cursor for a dead pane.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

const TARGET: &str = "replay";

/// What the shell prints after the program, followed by its exit status.
const EXITED: &str = "bastion-replay exited with";

pub struct Tmux {
    tmux: std::path::PathBuf,
    socket: String,
    _dir: TempDir,
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl Tmux {
    /// Starts `bastion-replay ARGS` in a `width` x `height` tmux window.
    pub fn replay(args: &[&str], width: u16, height: u16) -> Result<Tmux> {
        let binary = env!("CARGO_BIN_EXE_bastion-replay");
        let mut line = quote(binary);
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line.push_str(&format!("; echo \"{EXITED} $?\"; sleep 600"));
        Tmux::start(&line, width, height)
    }

    /// Starts `shell_line` in a new tmux server of its own.
    pub fn start(shell_line: &str, width: u16, height: u16) -> Result<Tmux> {
        let Some(tmux) = super::tool("tmux")? else {
            bail!("tmux is needed for the end-to-end test");
        };
        let dir = tempfile::Builder::new().prefix("replay-tmux-").tempdir()?;
        let config = dir.path().join("tmux.conf");
        std::fs::write(
            &config,
            "set -g default-terminal xterm-256color\nset -g escape-time 0\n",
        )?;
        let socket = format!("replay-test-{}-{}", std::process::id(), unique());
        let tmux = Tmux {
            tmux,
            socket,
            _dir: dir,
        };
        tmux.run(&[
            "-f",
            &config.display().to_string(),
            "new-session",
            "-d",
            "-s",
            TARGET,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            shell_line,
        ])?;
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.tmux)
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run tmux {args:?}"))?;
        ensure!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Presses keys by tmux name (`Enter`, `Escape`, `C-c`, `Space`, `q`...).
    pub fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", TARGET];
        args.extend_from_slice(keys);
        self.run(&args).map(drop)
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) -> Result<()> {
        self.run(&["send-keys", "-t", TARGET, "-l", text]).map(drop)
    }

    /// The visible screen as text.
    pub fn capture(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", TARGET])
    }

    fn format(&self, format: &str) -> Result<String> {
        Ok(self
            .run(&["display-message", "-p", "-t", TARGET, format])?
            .trim()
            .to_string())
    }

    /// Waits until the screen shows every one of `texts`; returns that screen.
    pub fn wait_for(&self, texts: &[&str]) -> Result<String> {
        let start = Instant::now();
        loop {
            let screen = self.capture()?;
            if texts.iter().all(|t| screen.contains(t)) {
                return Ok(screen);
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("timed out waiting for {texts:?}; the screen shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen no longer shows `text`.
    pub fn wait_gone(&self, text: &str) -> Result<()> {
        let start = Instant::now();
        while self.capture()?.contains(text) {
            if start.elapsed() > Duration::from_secs(20) {
                bail!("{text:?} stays on the screen:\n{}", self.capture()?);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits for the program to exit; returns its exit status.
    pub fn wait_exit(&self) -> Result<i32> {
        let start = Instant::now();
        loop {
            // The status line may wrap (the cursor was mid-line) or still be half written:
            // read it from the whole screen with the line breaks taken out.
            let screen = self.capture()?;
            let flat: String = screen.lines().map(str::trim_end).collect();
            if let Some(after) = flat.split(EXITED).nth(1) {
                let digits: String = after
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if !digits.is_empty() {
                    return digits.parse().context("exit status");
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("timed out waiting for the exit status; the screen shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the pane is in the alternate screen and whether its cursor is visible.
    pub fn terminal_state(&self) -> Result<(bool, bool)> {
        Ok((
            self.format("#{alternate_on}")? == "1",
            self.format("#{cursor_flag}")? == "1",
        ))
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new(&self.tmux)
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .stdin(std::process::Stdio::null())
            .output();
    }
}
