//! The audit log: one JSON object per line, appended by both the daemon and the admin CLI.
//!
//! Each event is written with a single `write()` on a file opened with `O_APPEND`, so lines from
//! concurrent writers (several processes included) never interleave. Writing is best effort: an
//! I/O error is reported through `tracing` and never takes a session down. Events carry key
//! fingerprints, never key material or other secrets.
//!
//! Nobody needs to log in to make the bastion write a line, so what a client chose is bounded
//! here, not at each call site: every client-chosen string is capped (`text::capped`) when its
//! event is recorded, and repeated authentication failures from one source are counted and
//! written as one line per [`FAILURE_WINDOW`] ([`AuditLog::auth_failure`]).
//!
//! With a database attached ([`AuditLog::attach_database`]), every line also goes to the
//! database (`sink`), off the caller's path, so any node can export every node's events.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::text::{capped, escape_controls};

mod event;
mod failures;
mod sink;

pub use event::AuditEvent;

pub use failures::{FAILURE_WINDOW, MAX_FAILURE_SOURCES, MAX_USERS_PER_SOURCE};
use failures::{FailureWindows, Source};
use sink::DatabaseSink;
pub use sink::{COMPLAINT_INTERVAL, DatabaseCopy, QUEUE_CAPACITY};

/// The longest remote command kept whole in `session.start`: longer than a user name
/// ([`crate::text::MAX_CLIENT_TEXT`]) since one-liners are commonly a few hundred characters;
/// the whole command is in the session index and the recording.
pub const MAX_COMMAND_TEXT: usize = 4096;

/// A handle on the audit log file; cheap to clone. The last clone dropped writes the counts of
/// authentication failures still being counted.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    path: PathBuf,
    failures: Mutex<FailureWindows>,
    /// The database copy, once attached.
    sink: OnceLock<DatabaseSink>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

impl AuditLog {
    /// Opens (creating it and its parent directory if needed) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog, std::io::Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                file,
                path: path.to_path_buf(),
                failures: Mutex::new(FailureWindows::default()),
                sink: OnceLock::new(),
            }),
        })
    }

    /// Where this log is written.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends `event` as one line, stamped with the current time, its client-chosen strings
    /// (user names and targets a client asked for, reasons quoting them, remote commands)
    /// capped and their control characters escaped.
    pub fn record(&self, mut event: AuditEvent) {
        event.cap_client_text();
        self.inner.write(&event);
    }

    /// Records a failed authentication by `user` from `client`. The first failure from a
    /// source (its IPv4 address, or its IPv6 /64) is written in full; the ones after it during
    /// [`FAILURE_WINDOW`] are counted and written as one `auth.failure` line with `repeated`,
    /// the distinct `users` tried and `since`/`until`, once the window is over: on the
    /// source's next failure, or from [`AuditLog::flush_aggregated`].
    pub fn auth_failure(&self, client: SocketAddr, user: &str, reason: &str) {
        self.auth_failure_at(
            Instant::now(),
            OffsetDateTime::now_utc(),
            client,
            user,
            reason,
        );
    }

    /// Writes the count of every source whose window is over. The daemon calls it every few
    /// seconds (any period up to [`FAILURE_WINDOW`] is fine): without it, a source that stops
    /// failing has its count written only when the log is dropped.
    pub fn flush_aggregated(&self) {
        self.flush_aggregated_at(Instant::now());
    }

    fn auth_failure_at(
        &self,
        now: Instant,
        wall: OffsetDateTime,
        client: SocketAddr,
        user: &str,
        reason: &str,
    ) {
        let source = Source::of(client.ip());
        let mut closed = Vec::new();
        let first = {
            let mut windows = self.inner.failures();
            windows.count(source, now, wall, user, reason, &mut closed)
        };
        for event in closed {
            self.inner.write(&event);
        }
        if first {
            self.record(AuditEvent::AuthFailure {
                user: user.to_string(),
                client: client.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    fn flush_aggregated_at(&self, now: Instant) {
        let closed = self.inner.failures().close_ended(now);
        for event in closed {
            self.inner.write(&event);
        }
    }
}

impl Inner {
    fn failures(&self) -> MutexGuard<'_, FailureWindows> {
        // Nothing panics while holding it; if something did, the counts are still usable.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, event: &AuditEvent) {
        let now = OffsetDateTime::now_utc();
        let ts = now
            .format(&Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        let mut line = match serde_json::to_vec(&Line { ts, event }) {
            Ok(line) => line,
            Err(err) => {
                tracing::error!(error = %err, ?event, "cannot encode audit event");
                return;
            }
        };
        line.push(b'\n');
        // One write() call: with O_APPEND the kernel appends it whole, so concurrent writers never
        // interleave. A short write only happens when the disk is full; report it rather than
        // retry, since a retry would split the line.
        match (&self.file).write(&line) {
            Ok(n) if n == line.len() => {}
            Ok(n) => tracing::error!(
                path = %self.path.display(),
                written = n,
                expected = line.len(),
                "audit log write was cut short"
            ),
            Err(err) => tracing::error!(
                path = %self.path.display(),
                error = %err,
                "cannot write audit log"
            ),
        }
        // After the file: the file is the primary record, whatever the database does.
        if let Some(sink) = self.sink.get() {
            line.pop();
            sink.offer_line(now, line);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let closed = self.failures().close_all();
        for event in closed {
            self.write(&event);
        }
    }
}

impl AuditEvent {
    /// Caps every string a client chose (see the module doc). Values the admin CLI or the
    /// bastion itself wrote (grant reasons, `--by` names, session ids) stay whole: they are
    /// evidence, and their length is not up to a network peer.
    fn cap_client_text(&mut self) {
        fn cap(text: &mut String) {
            *text = capped(text);
        }
        match self {
            AuditEvent::AuthSuccess { user, .. } => cap(user),
            AuditEvent::AuthFailure { user, reason, .. } => {
                cap(user);
                cap(reason);
            }
            AuditEvent::AccessDenied {
                user,
                target,
                login,
                reason,
                ..
            } => {
                cap(user);
                cap(target);
                if let Some(login) = login {
                    cap(login);
                }
                cap(reason);
            }
            AuditEvent::SessionStart {
                command: Some(command),
                ..
            }
            | AuditEvent::CommandRefused {
                command: Some(command),
                ..
            } => *command = capped_command(command),
            _ => {}
        }
    }
}

/// Like `text::capped`, with room for a real command line.
fn capped_command(command: &str) -> String {
    let escaped = escape_controls(command);
    if escaped.chars().count() <= MAX_COMMAND_TEXT {
        return escaped;
    }
    let head: String = escaped.chars().take(MAX_COMMAND_TEXT).collect();
    let digest = Sha256::digest(command.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}...[{} bytes, sha256:{hex}]", command.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_timestamp_name_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        log.record(AuditEvent::GrantRevoked {
            grant: 7,
            user: "alice".into(),
            target: "db-1".into(),
            by: "carol".into(),
            client: None,
        });
        log.clone().record(AuditEvent::AccessDenied {
            user: "alice".into(),
            target: "db-1".into(),
            login: None,
            reason: "no grant".into(),
            client: "127.0.0.1:5555".into(),
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(text.starts_with("{\"ts\":"), "{text}");
        assert_eq!(lines[0]["event"], "grant.revoked");
        assert_eq!(lines[0]["grant"], 7);
        assert_eq!(lines[0]["by"], "carol");
        let ts = lines[0]["ts"].as_str().unwrap();
        assert!(OffsetDateTime::parse(ts, &Rfc3339).is_ok(), "{ts}");
        assert_eq!(lines[1]["event"], "access.denied");
        assert_eq!(lines[1]["login"], serde_json::Value::Null);
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // Two handles opened separately behave like two processes sharing the file.
        let logs = [
            AuditLog::open(&path).unwrap(),
            AuditLog::open(&path).unwrap(),
        ];
        std::thread::scope(|scope| {
            for (t, log) in logs.iter().enumerate() {
                scope.spawn(move || {
                    for i in 0..500 {
                        log.record(AuditEvent::AuthFailure {
                            user: format!("user-{t}-{i}"),
                            client: "x".repeat(300),
                            reason: "unknown key".into(),
                        });
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let mut count = 0;
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["event"], "auth.failure");
            count += 1;
        }
        assert_eq!(count, 1000);
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_30000_character_user_name_makes_a_short_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let huge = "a".repeat(30_000);
        let client: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        log.auth_failure(client, &huge, "key SHA256:abc is not allowed");
        // The way handler.rs records today, without aggregation, is capped all the same.
        log.record(AuditEvent::AuthFailure {
            user: huge.clone(),
            client: client.to_string(),
            reason: format!("unknown user {huge}"),
        });
        log.record(AuditEvent::AccessDenied {
            user: "alice".into(),
            target: format!("db-1\x1b[2J{huge}"),
            login: Some(huge.clone()),
            reason: format!("login {huge:?} is not offered on this target"),
            client: client.to_string(),
        });
        let lines = lines(&path);
        assert_eq!(lines.len(), 3);
        for line in &lines {
            assert!(line.len() < 1000, "{} bytes: {line}", line.len());
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value["user"].as_str().unwrap().len() <= 200);
        }
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["event"], "auth.failure");
        assert_eq!(first["client"], "203.0.113.9:40000");
        assert!(
            first["user"]
                .as_str()
                .unwrap()
                .contains("[30000 bytes, sha256:"),
            "{first}"
        );
        let denied: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        assert!(
            denied["target"]
                .as_str()
                .unwrap()
                .starts_with("db-1\\x1b[2J")
        );
    }

    #[test]
    fn a_thousand_failures_from_one_source_make_at_most_two_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let t0 = Instant::now();
        let wall = OffsetDateTime::now_utc();
        for i in 0..1000u16 {
            let client = SocketAddr::from(([203, 0, 113, 9], 40000 + i));
            let user = format!("user-{}", i % 7);
            let at = t0 + std::time::Duration::from_millis(u64::from(i) * 50);
            log.auth_failure_at(
                at,
                wall,
                client,
                &user,
                "password authentication is not offered",
            );
        }
        assert_eq!(lines(&path).len(), 1, "repeats are counted, not written");
        log.flush_aggregated_at(t0 + std::time::Duration::from_secs(30));
        assert_eq!(lines(&path).len(), 1, "the window is not over yet");
        log.flush_aggregated_at(t0 + FAILURE_WINDOW);
        let written = lines(&path);
        assert_eq!(written.len(), 2);
        let summary: serde_json::Value = serde_json::from_str(&written[1]).unwrap();
        assert_eq!(summary["event"], "auth.failure");
        assert_eq!(summary["repeated"], 999);
        assert_eq!(summary["client"], "203.0.113.9");
        assert_eq!(summary["user"], "user-1");
        assert_eq!(
            summary["users"].as_array().unwrap().len(),
            MAX_USERS_PER_SOURCE
        );
        assert_eq!(summary["users_truncated"], true);
        assert_eq!(summary["reason"], "password authentication is not offered");
        assert!(summary["since"].is_string() && summary["until"].is_string());
        log.flush_aggregated_at(t0 + FAILURE_WINDOW * 2);
        assert_eq!(lines(&path).len(), 2, "a count is written once");
    }

    #[test]
    fn counts_still_open_are_written_when_the_log_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let client: SocketAddr = "[2001:db8::1]:22".parse().unwrap();
        for _ in 0..3 {
            log.auth_failure(client, "root", "unknown key");
        }
        let clone = log.clone();
        drop(log);
        assert_eq!(lines(&path).len(), 1, "a clone keeps the log open");
        drop(clone);
        let lines = lines(&path);
        assert_eq!(lines.len(), 2);
        let summary: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(summary["repeated"], 2);
        assert_eq!(summary["client"], "2001:db8::/64");
    }

    #[test]
    fn remote_commands_keep_room_but_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let start = |command: String| AuditEvent::SessionStart {
            session: "s".into(),
            user: "alice".into(),
            target: "db-1".into(),
            login: "app".into(),
            grant: 1,
            request: None,
            client: "127.0.0.1:1".into(),
            interactive: false,
            command: Some(command),
            recorded: true,
        };
        let one_liner = format!("for i in $(seq 1 9); do {}; done", "echo x; ".repeat(40));
        log.record(start(one_liner.clone()));
        log.record(start("y".repeat(200_000)));
        let lines = lines(&path);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["command"], one_liner.as_str());
        assert!(
            lines[1].len() < MAX_COMMAND_TEXT + 500,
            "{}",
            lines[1].len()
        );
        assert!(lines[1].contains("[200000 bytes, sha256:"));
    }
}
