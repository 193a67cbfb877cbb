//! A private tmux server giving a program a real terminal: the test types into it with
//! `send-keys` and reads the screen with `capture-pane`, like a person at a keyboard.
//!
//! Two ways to learn how the program ended:
//! - `remain-on-exit` keeps the pane (and its last screen) after the program exits, so
//!   [`Tmux::wait_exit`] reads the exit status from tmux (an ssh client's goodbye stays readable);
//! - a [`reporting_line`] runs the program under a shell that stays in the pane and prints the
//!   status ([`Tmux::wait_reported_exit`]): the pane stays alive, so [`Tmux::terminal_state`]
//!   (which tmux does not answer for a dead pane) tells whether the program left the terminal
//!   usable.
//!
//! Line-oriented programs are read from the whole pane, scrollback included ([`Tmux::screen`],
//! [`Tmux::wait_for`]); full-screen ones from the visible screen only ([`Tmux::visible`],
//! [`Tmux::wait_visible`]). Keys go in by tmux name ([`Tmux::keys`]) or as literal text.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

use crate::tool;

const TARGET: &str = "main";

/// How long one tmux command may take: a hung tmux fails the test instead of stalling it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the shell of a [`reporting_line`] prints after the program, before its exit status.
pub const EXITED: &str = "program exited with";

/// The terminal a program gets: its size and, when set, the `TERM` it sees (tmux's own default,
/// `screen`, otherwise).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub columns: u16,
    pub rows: u16,
    pub term: Option<&'static str>,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            columns: 120,
            rows: 40,
            term: None,
        }
    }
}

pub struct Tmux {
    program: PathBuf,
    socket: PathBuf,
    dir: TempDir,
}

/// Quotes `word` for a POSIX shell.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A shell line that runs `argv`, then prints `EXITED <status>` and stays in the pane.
pub fn reporting_line(argv: &[&str]) -> String {
    let words: Vec<String> = argv.iter().map(|word| quote(word)).collect();
    format!("{}; echo \"{EXITED} $?\"; exec sleep 600", words.join(" "))
}

impl Tmux {
    /// Starts `shell_line` in a 120x40 window of a tmux server of its own.
    pub fn start(shell_line: &str) -> Result<Tmux> {
        Tmux::start_in(shell_line, Window::default())
    }

    /// Starts `shell_line` in `window`, in a tmux server of its own.
    pub fn start_in(shell_line: &str, window: Window) -> Result<Tmux> {
        let program = tool::find("tmux").context("tmux is needed but not installed")?;
        let dir = tempfile::Builder::new().prefix("testkit-tmux-").tempdir()?;
        let config = dir.path().join("tmux.conf");
        let mut settings = String::from(
            "set -g remain-on-exit on\nset -g history-limit 20000\nset -g escape-time 0\n",
        );
        if let Some(term) = window.term {
            settings.push_str(&format!("set -g default-terminal {term}\n"));
        }
        std::fs::write(&config, settings)?;
        let tmux = Tmux {
            program,
            socket: dir.path().join("socket"),
            dir,
        };
        tmux.run(&[
            "-f",
            &config.display().to_string(),
            "new-session",
            "-d",
            "-s",
            TARGET,
            "-x",
            &window.columns.to_string(),
            "-y",
            &window.rows.to_string(),
            shell_line,
        ])?;
        Ok(tmux)
    }

    /// Runs one tmux command on this server; returns its output. Output goes through files, so
    /// a large capture cannot fill a pipe while the command is waited for with a deadline.
    fn run(&self, args: &[&str]) -> Result<String> {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let out_path = self.dir.path().join(format!("out-{n}"));
        let err_path = self.dir.path().join(format!("err-{n}"));
        let mut child = Command::new(&self.program)
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .with_context(|| format!("cannot run tmux {args:?}"))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("tmux {args:?} did not finish within {COMMAND_TIMEOUT:?}");
            }
            // A tmux command takes a few milliseconds; polling more often only costs CPU that
            // parallel tests share (and hurries screen reads past half-arrived output).
            std::thread::sleep(Duration::from_millis(10));
        };
        let read = |path: &PathBuf| {
            let text =
                String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
            let _ = std::fs::remove_file(path);
            text
        };
        let (stdout, stderr) = (read(&out_path), read(&err_path));
        ensure!(status.success(), "tmux {args:?} failed: {stderr}");
        Ok(stdout)
    }

    /// Types `text` literally (no key names interpreted).
    pub fn type_text(&self, text: &str) -> Result<()> {
        self.run(&["send-keys", "-t", TARGET, "-l", text]).map(drop)
    }

    /// Types `line` and presses Enter.
    pub fn type_line(&self, line: &str) -> Result<()> {
        self.type_text(line)?;
        self.keys(&["Enter"])
    }

    /// Presses keys by tmux name (`Enter`, `Escape`, `Space`, `Tab`, `C-c`, `q`...).
    pub fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", TARGET];
        args.extend_from_slice(keys);
        self.run(&args).map(drop)
    }

    /// Resizes the terminal, as a user dragging the window edge would.
    pub fn resize(&self, columns: u16, rows: u16) -> Result<()> {
        let (x, y) = (columns.to_string(), rows.to_string());
        self.run(&["resize-window", "-t", TARGET, "-x", &x, "-y", &y])
            .map(drop)
    }

    /// The whole pane: scrollback plus visible screen, wrapped lines joined.
    pub fn screen(&self) -> Result<String> {
        self.run(&[
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

    /// The visible screen only, as text (no scrollback).
    pub fn visible(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-t", TARGET])
    }

    /// The visible screen with its colours and attributes as SGR escape sequences.
    pub fn visible_styled(&self) -> Result<String> {
        self.run(&["capture-pane", "-p", "-e", "-t", TARGET])
    }

    /// Waits until `needle` appears in the whole pane; the error shows it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_until(timeout, &format!("{needle:?} on screen"), |screen| {
            screen.contains(needle)
        })
    }

    /// Waits until `ready(whole pane)` holds; the error names `what` and shows the pane.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Result<String> {
        poll(timeout, what, || self.screen(), ready)
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
        poll(timeout, what, || self.visible(), ready)
    }

    /// Exit status of the program in the pane once it has exited (128 + signal if a signal
    /// killed it), else `None`.
    pub fn exit_status(&self) -> Result<Option<i32>> {
        let out = self.format("#{pane_pid}:#{pane_dead}:#{pane_dead_status}")?;
        let mut fields = out.split(':');
        let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
        let dead = fields.next() == Some("1");
        if let Some(status) = fields.next().and_then(|s| s.parse().ok()).filter(|_| dead) {
            return Ok(Some(status));
        }
        // Under parallel load tmux 3.3a sometimes never reaps the pane's process (it stays a
        // zombie, pane_dead_status stays empty), so read the zombie's exit code from /proc.
        Ok(pid.and_then(zombie_exit_status))
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
                    "the program in tmux is still running after {timeout:?}; screen was:\n{}",
                    self.screen()?.trim_end()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the shell of a [`reporting_line`] has printed the program's exit status;
    /// returns it.
    pub fn wait_reported_exit(&self, timeout: Duration) -> Result<i32> {
        let what = format!("\"{EXITED} <status>\" on screen");
        let screen =
            self.wait_visible_until(timeout, &what, |screen| reported_status(screen).is_some())?;
        reported_status(&screen).context("no exit status on the screen")
    }

    /// Whether the pane is in the alternate screen and whether its cursor is visible. tmux
    /// reports no cursor for a dead pane, so ask while something still runs in it.
    pub fn terminal_state(&self) -> Result<(bool, bool)> {
        let out = self.format("#{alternate_on}:#{cursor_flag}")?;
        let (alternate, cursor) = out.split_once(':').unwrap_or(("", ""));
        Ok((alternate == "1", cursor == "1"))
    }

    /// Pid of the program in the pane (the shell line's process, or what it `exec`ed).
    pub fn pid(&self) -> Result<u32> {
        let out = self.format("#{pane_pid}")?;
        out.parse()
            .with_context(|| format!("tmux pane_pid {out:?}"))
    }

    /// A tmux format (`#{...}`) expanded for the pane.
    fn format(&self, format: &str) -> Result<String> {
        Ok(self
            .run(&["display-message", "-p", "-t", TARGET, format])?
            .trim()
            .to_string())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Calls `capture` until `ready` holds on what it returns or `timeout` passes.
fn poll(
    timeout: Duration,
    what: &str,
    capture: impl Fn() -> Result<String>,
    ready: impl Fn(&str) -> bool,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let screen = capture()?;
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

/// The status after [`EXITED`] on `screen`. The line may wrap (the cursor was mid-line) or be
/// half written, so it is read with the line breaks taken out, and only once digits follow.
fn reported_status(screen: &str) -> Option<i32> {
    let flat: String = screen.lines().map(str::trim_end).collect();
    let after = flat.split(EXITED).nth(1)?;
    let digits: String = after
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Exit status of `pid` if it is a zombie (exited, not yet reaped): the code it passed to
/// exit(), or 128 + the signal that killed it, as a shell reports it.
fn zombie_exit_status(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() != Some(&"Z") {
        return None;
    }
    // Field 52 of stat (the last one) is the wait status, as waitpid() would return it.
    let status: i32 = fields.last()?.parse().ok()?;
    Some(if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_reporting_line_keeps_the_pane_and_prints_the_status() -> Result<()> {
        let tmux = Tmux::start_in(
            &reporting_line(&["sh", "-c", "printf 'it'\"'\"'s %s\\n' \"$TERM\"; exit 3"]),
            Window {
                columns: 60,
                rows: 10,
                term: Some("xterm-256color"),
            },
        )?;
        assert_eq!(tmux.wait_reported_exit(WAIT)?, 3);
        assert!(tmux.visible()?.contains("it's xterm-256color"));
        assert_eq!(tmux.terminal_state()?, (false, true));
        assert_eq!(tmux.exit_status()?, None, "the shell still runs");
        Ok(())
    }

    #[test]
    fn typed_lines_reach_the_program_and_its_exit_status_is_kept() -> Result<()> {
        let tmux = Tmux::start("exec sh -c 'read line; echo \"got $line\"; exit 7'")?;
        tmux.type_line("hello")?;
        tmux.wait_for("got hello", WAIT)?;
        assert_eq!(tmux.wait_exit(WAIT)?, 7);
        assert!(
            tmux.screen()?.contains("got hello"),
            "remain-on-exit keeps the screen"
        );
        Ok(())
    }

    #[test]
    fn a_wrapped_status_line_is_read_whole() {
        assert_eq!(reported_status(&format!("x\n{EXITED} 1\n2\n")), Some(12));
        assert_eq!(reported_status(&format!("{EXITED} ")), None);
        assert_eq!(reported_status("nothing yet"), None);
    }
}
