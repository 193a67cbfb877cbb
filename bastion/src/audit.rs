//! The audit log: one JSON object per line, appended by both the daemon and the admin CLI.
//!
//! Each event is written with a single `write()` on a file opened with `O_APPEND`, so lines from
//! concurrent writers (several processes included) never interleave. Writing is best effort: an
//! I/O error is reported through `tracing` and never takes a session down. Events carry key
//! fingerprints, never key material or other secrets.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::GrantId;

/// A handle on the audit log file; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: Arc<File>,
    path: Arc<PathBuf>,
}

/// Something that happened, for the audit trail. Serialized with its `event` name and fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum AuditEvent {
    /// A user proved possession of one of their keys.
    #[serde(rename = "auth.success")]
    AuthSuccess {
        user: String,
        /// The key's SHA256 fingerprint (`SHA256:...`).
        key: String,
        client: String,
    },
    #[serde(rename = "auth.failure")]
    AuthFailure {
        user: String,
        client: String,
        reason: String,
    },
    #[serde(rename = "grant.created")]
    GrantCreated {
        grant: GrantId,
        user: String,
        target: String,
        logins: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        approved_by: String,
        reason: String,
    },
    #[serde(rename = "grant.revoked")]
    GrantRevoked { grant: GrantId, by: String },
    #[serde(rename = "grant.expired")]
    GrantExpired {
        grant: GrantId,
        user: String,
        target: String,
    },
    #[serde(rename = "access.denied")]
    AccessDenied {
        user: String,
        target: String,
        /// The login asked for; `None` when the client asked for the default one.
        login: Option<String>,
        reason: String,
        client: String,
    },
    #[serde(rename = "session.start")]
    SessionStart {
        session: String,
        user: String,
        target: String,
        login: String,
        grant: GrantId,
        client: String,
        interactive: bool,
        /// The remote command; `None` for a shell.
        command: Option<String>,
        /// False when the target has `record = false`: nothing of the session is kept.
        recorded: bool,
    },
    #[serde(rename = "session.end")]
    SessionEnd {
        session: String,
        user: String,
        target: String,
        reason: String,
        bytes: u64,
        recording_complete: bool,
    },
    /// An admin asked for a live session to be ended (`bastion sessions end`).
    #[serde(rename = "session.end_requested")]
    SessionEndRequested { session: String, by: String },
    /// `bastion recordings verify` checked a recording.
    #[serde(rename = "recording.verified")]
    RecordingVerified {
        session: String,
        /// complete, truncated or tampered.
        status: String,
        segments_ok: u32,
        first_bad: Option<u32>,
        signed: bool,
        by: String,
    },
    /// A recording was deleted from the store and the search index by `recordings prune`.
    #[serde(rename = "recording.pruned")]
    RecordingPruned {
        session: String,
        /// Objects deleted from the store.
        objects: u64,
        older_than: String,
        by: String,
    },
    #[serde(rename = "recording.hold")]
    RecordingHold {
        session: String,
        reason: String,
        by: String,
    },
    #[serde(rename = "recording.release")]
    RecordingRelease { session: String, by: String },
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
            file: Arc::new(file),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Where this log is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` as one line, stamped with the current time.
    pub fn record(&self, event: AuditEvent) {
        let ts = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        let mut line = match serde_json::to_vec(&Line { ts, event: &event }) {
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
        match (&*self.file).write(&line) {
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
    }
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
            by: "carol".into(),
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
}
