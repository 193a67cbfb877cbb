//! The real OpenSSH client, configured from scratch (`-F /dev/null`) for one key, one server and
//! one known_hosts file, run to completion with a deadline or spawned for interactive use.
//!
//! Host keys are checked strictly against a known_hosts file the harness writes, instead of
//! `StrictHostKeyChecking=no`: that way ssh prints no "Permanently added" warning, so a test can
//! compare stderr byte for byte with what the remote command wrote.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::child::{self, Finished, Input};
use crate::prereq;

pub type SshOutput = Finished;

#[derive(Debug, Clone)]
pub struct Ssh {
    options: Vec<String>,
    destination: String,
    remote: Vec<String>,
    input: Input,
    timeout: Duration,
}

impl Ssh {
    /// `ssh` as `user` to 127.0.0.1:`port` with `key`, trusting the hosts in `known_hosts`.
    pub fn new(key: &Path, known_hosts: &Path, port: u16, user: &str) -> Ssh {
        let options = [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "CheckHostIP=no",
            "-o",
            "ControlPath=none",
            "-o",
            "ConnectTimeout=10",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "-o".to_string(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-i".to_string(),
            key.display().to_string(),
            "-p".to_string(),
            port.to_string(),
        ])
        .collect();
        Ssh {
            options,
            destination: format!("{user}@127.0.0.1"),
            remote: Vec::new(),
            input: Input::Null,
            timeout: Duration::from_secs(30),
        }
    }

    /// An extra ssh option (before the destination), e.g. `-tt`, `-L ...`.
    pub fn opt(mut self, option: impl Into<String>) -> Ssh {
        self.options.push(option.into());
        self
    }

    /// Remote command words (after the destination); ssh joins them with spaces.
    pub fn arg(mut self, word: impl Into<String>) -> Ssh {
        self.remote.push(word.into());
        self
    }

    pub fn args<I, S>(mut self, words: I) -> Ssh
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.remote.extend(words.into_iter().map(Into::into));
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Ssh {
        self.input = Input::Bytes(bytes.into());
        self
    }

    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Ssh {
        self.input = Input::File(path.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Ssh {
        self.timeout = timeout;
        self
    }

    fn argv(&self) -> Vec<String> {
        let mut argv = self.options.clone();
        argv.push(self.destination.clone());
        argv.extend(self.remote.iter().cloned());
        argv
    }

    /// The ssh process, not yet started, for callers that wire its stdio themselves.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(prereq::tool("ssh"));
        cmd.args(self.argv()).env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// Runs to completion (fails only on spawn errors or the timeout, not on a non-zero exit).
    pub fn run(&self) -> Result<SshOutput> {
        child::run(&mut self.command(), self.input.clone(), self.timeout)
    }

    /// Starts ssh with piped stdin/stdout/stderr for the caller to drive.
    pub fn spawn(&self) -> Result<Child> {
        self.command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning ssh")
    }

    /// The whole invocation as one shell command line (for tmux, which runs it via `sh -c`).
    pub fn shell_line(&self) -> String {
        let mut line = String::from("exec ");
        line.push_str(&shell_quote(&prereq::tool("ssh").display().to_string()));
        for word in self.argv() {
            line.push(' ');
            line.push_str(&shell_quote(&word));
        }
        line
    }
}

/// Quotes `word` for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
