//! The facts of one session, fixed when it starts: built once, then turned into every shape
//! that records them (the recording's header and manifest, the session index row, the audit
//! records), so those can never disagree.

use recorder::RecordingMeta;
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::db::{GrantId, SessionStart};

/// The terminal a user asked for, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub term: String,
    pub cols: u16,
    pub rows: u16,
}

/// Who reached what, how and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// The session id (a UUIDv7: sortable by start).
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant: GrantId,
    /// The access request the grant came from, linking the session to it in the audit trail.
    pub request: Option<String>,
    /// The remote command; `None` for an interactive shell.
    pub command: Option<String>,
    /// `Some` when the user asked for a terminal.
    pub terminal: Option<Terminal>,
    /// The user's address, as `ip:port`.
    pub client: String,
    /// The bastion node that runs the session (`node_id`).
    pub node: String,
    /// Whether the session is recorded (`record = false` targets are not).
    pub recorded: bool,
    /// Whether the session goes on when its recording fails (`fail_open`, or not recorded).
    pub fail_open: bool,
    pub started_at: OffsetDateTime,
}

impl SessionFacts {
    pub fn interactive(&self) -> bool {
        self.terminal.is_some()
    }

    /// The recording's header and manifest facts.
    pub fn recording_meta(&self) -> RecordingMeta {
        let (width, height, term) = match &self.terminal {
            Some(t) => (t.cols, t.rows, Some(t.term.clone())),
            // asciicast needs a size even for a command's output; 80x24 is what players assume.
            None => (80, 24, None),
        };
        RecordingMeta {
            id: self.id.clone(),
            user: self.user.clone(),
            target: self.target.clone(),
            login: self.login.clone(),
            grant_id: Some(self.grant),
            command: self.command.clone(),
            width,
            height,
            term,
            started_at: self.started_at,
        }
    }

    /// The session index row; `recording` is where the recording is stored (empty when the
    /// session is not recorded).
    pub fn index_row(&self, recording: String) -> SessionStart {
        SessionStart {
            id: self.id.clone(),
            user: self.user.clone(),
            target: self.target.clone(),
            login: self.login.clone(),
            grant_id: self.grant,
            command: self.command.clone(),
            interactive: self.interactive(),
            client: self.client.clone(),
            recording,
            recorded: self.recorded,
            node: self.node.clone(),
        }
    }

    pub fn start_event(&self) -> AuditEvent {
        AuditEvent::SessionStart {
            session: self.id.clone(),
            user: self.user.clone(),
            target: self.target.clone(),
            login: self.login.clone(),
            grant: self.grant,
            request: self.request.clone(),
            client: self.client.clone(),
            interactive: self.interactive(),
            command: self.command.clone(),
            recorded: self.recorded,
        }
    }

    pub fn end_event(&self, reason: &str, bytes: u64, recording_complete: bool) -> AuditEvent {
        AuditEvent::SessionEnd {
            session: self.id.clone(),
            user: self.user.clone(),
            target: self.target.clone(),
            reason: reason.to_string(),
            bytes,
            recording_complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(terminal: Option<Terminal>) -> SessionFacts {
        SessionFacts {
            id: "0193-s".into(),
            user: "alice".into(),
            target: "db-1".into(),
            login: "app".into(),
            grant: 7,
            request: Some("r-7f3k".into()),
            command: Some("uname -a".into()),
            terminal,
            client: "127.0.0.1:5000".into(),
            node: "node-a".into(),
            recorded: true,
            fail_open: false,
            started_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn every_shape_tells_the_same_session() {
        let f = facts(Some(Terminal {
            term: "xterm".into(),
            cols: 120,
            rows: 40,
        }));
        let meta = f.recording_meta();
        let row = f.index_row("file:///r/0193-s".into());
        let AuditEvent::SessionStart {
            session,
            user,
            target,
            login,
            grant,
            interactive,
            command,
            ..
        } = f.start_event()
        else {
            panic!("not a start event");
        };
        assert_eq!((meta.id.as_str(), row.id.as_str()), ("0193-s", "0193-s"));
        assert_eq!(session, "0193-s");
        assert_eq!(
            (meta.user, row.user, user),
            ("alice".into(), "alice".into(), "alice".into())
        );
        assert_eq!(
            (meta.target, row.target, target),
            ("db-1".into(), "db-1".into(), "db-1".into())
        );
        assert_eq!(
            (meta.login, row.login, login),
            ("app".into(), "app".into(), "app".into())
        );
        assert_eq!((meta.grant_id, row.grant_id, grant), (Some(7), 7, 7));
        assert_eq!(meta.command, command);
        assert_eq!(row.command, command);
        assert!(row.interactive && interactive);
        assert_eq!((meta.width, meta.height), (120, 40));
        assert_eq!(meta.term.as_deref(), Some("xterm"));
    }

    #[test]
    fn a_command_without_terminal_records_the_default_size() {
        let f = facts(None);
        let meta = f.recording_meta();
        assert_eq!((meta.width, meta.height, meta.term), (80, 24, None));
        assert!(!f.index_row(String::new()).interactive);
    }
}
