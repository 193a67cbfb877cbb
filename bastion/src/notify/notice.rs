//! A `Notice`: the facts of one request event, read back from its audit line, that the Slack
//! and Teams payloads are built from.
//!
//! The audit line is the source because every face and node writes one for every step of a
//! request; reading it back (rather than being called by the code that made the step) is what
//! lets one notifier report steps taken by the admin CLI in another process or by another node.

use serde::Deserialize;

/// The audit events that are posted to webhooks.
pub const NOTIFIED_EVENTS: &[&str] = &[
    "request.filed",
    "request.approved",
    "request.auto_approved",
    "request.denied",
    "request.cancelled",
    "request.expired",
    "break_glass",
];

/// Which step of a request a notice reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for approvers: the message carries Approve/Deny buttons.
    Filed,
    Approved,
    AutoApproved,
    Denied,
    Cancelled,
    Expired,
    /// Access taken in an emergency, to be reviewed.
    BreakGlass,
}

impl Step {
    fn of(event: &str) -> Option<Step> {
        Some(match event {
            "request.filed" => Step::Filed,
            "request.approved" => Step::Approved,
            "request.auto_approved" => Step::AutoApproved,
            "request.denied" => Step::Denied,
            "request.cancelled" => Step::Cancelled,
            "request.expired" => Step::Expired,
            "break_glass" => Step::BreakGlass,
            _ => return None,
        })
    }

    /// The audit event's name.
    pub fn event(self) -> &'static str {
        match self {
            Step::Filed => "request.filed",
            Step::Approved => "request.approved",
            Step::AutoApproved => "request.auto_approved",
            Step::Denied => "request.denied",
            Step::Cancelled => "request.cancelled",
            Step::Expired => "request.expired",
            Step::BreakGlass => "break_glass",
        }
    }
}

/// One request event's facts. Strings are as the audit line has them (control characters
/// already escaped there); each payload escapes them again for its own format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub step: Step,
    /// `r-7f3k`.
    pub request: String,
    /// `access`, `extend` or `break_glass` (known for filed requests and break glass).
    pub kind: Option<String>,
    pub user: String,
    pub target: String,
    pub logins: Vec<String>,
    /// How long the grant lasts (for an extension: the time added).
    pub duration: Option<String>,
    pub reason: Option<String>,
    pub policy: Option<String>,
    pub approvals_needed: Option<u32>,
    /// Who may approve (filed requests).
    pub approvers: Vec<String>,
    /// Who decided: the approvers, the denier, or the auto-approval rule.
    pub by: Option<String>,
    /// Why it was denied or expired.
    pub note: Option<String>,
    /// The grant made, extended or taken.
    pub grant: Option<i64>,
    /// When a break-glass grant ends (RFC 3339).
    pub expires_at: Option<String>,
    /// For a filed request: still waiting for a decision when the notice was made, so the
    /// Approve/Deny buttons make sense.
    pub pending: bool,
}

/// The fields of the notified audit events; every one optional, since each event has some.
#[derive(Deserialize)]
struct Line {
    event: String,
    request: Option<String>,
    kind: Option<String>,
    user: Option<String>,
    target: Option<String>,
    #[serde(default)]
    logins: Vec<String>,
    duration: Option<String>,
    reason: Option<String>,
    policy: Option<String>,
    approvals_needed: Option<u32>,
    #[serde(default)]
    approvers: Vec<String>,
    approved_by: Option<String>,
    by: Option<String>,
    rule: Option<String>,
    grant: Option<i64>,
    expires_at: Option<String>,
}

impl Notice {
    /// The notice for audit line `json`; `None` for an event that is not notified or a line
    /// without a request, user or target.
    pub fn from_audit(json: &str) -> Option<Notice> {
        let line: Line = serde_json::from_str(json).ok()?;
        let step = Step::of(&line.event)?;
        let (by, note, reason) = match step {
            Step::Approved => (line.approved_by, None, None),
            Step::AutoApproved => (line.rule, None, None),
            Step::Denied => (line.by, line.reason, None),
            Step::Expired => (None, line.reason, None),
            Step::Filed | Step::BreakGlass | Step::Cancelled => (None, None, line.reason),
        };
        Some(Notice {
            step,
            request: line.request?,
            kind: match step {
                Step::BreakGlass => Some("break_glass".to_string()),
                _ => line.kind,
            },
            user: line.user?,
            target: line.target?,
            logins: line.logins,
            duration: line.duration,
            reason,
            policy: line.policy,
            approvals_needed: line.approvals_needed,
            approvers: line.approvers,
            by,
            note,
            grant: line.grant,
            expires_at: line.expires_at,
            pending: step == Step::Filed,
        })
    }

    /// Whether this is the filing of a break-glass request: its `break_glass` event (written
    /// with it) is the one posted.
    pub fn is_break_glass_filing(&self) -> bool {
        self.step == Step::Filed && self.kind.as_deref() == Some("break_glass")
    }

    /// Whether this is the filing of an extension.
    pub fn is_extension(&self) -> bool {
        self.kind.as_deref() == Some("extend")
    }

    /// Takes the facts only the filing has (logins, duration, reason, policy) from `filed`:
    /// an auto-approval is posted as one message, not as a filing with buttons and then its
    /// approval.
    pub fn absorb(&mut self, filed: Notice) {
        if self.logins.is_empty() {
            self.logins = filed.logins;
        }
        self.kind = self.kind.take().or(filed.kind);
        self.duration = self.duration.take().or(filed.duration);
        self.reason = self.reason.take().or(filed.reason);
        self.policy = self.policy.take().or(filed.policy);
    }

    /// One line saying what happened, for logs, notification previews and plain-text
    /// fallbacks (not escaped).
    pub fn summary(&self) -> String {
        let (user, target, id) = (&self.user, &self.target, &self.request);
        let what = if self.is_extension() {
            format!("more time on {target}")
        } else {
            format!("access to {target}")
        };
        match self.step {
            Step::Filed => {
                let time = self
                    .duration
                    .as_deref()
                    .map(|d| format!(" for {d}"))
                    .unwrap_or_default();
                format!("{user} asks for {what}{time} ({id})")
            }
            Step::Approved => format!(
                "{id} approved: {user} has {what} (by {})",
                self.by.as_deref().unwrap_or("approvers")
            ),
            Step::AutoApproved => format!(
                "{id} auto-approved: {user} has {what} (rule {})",
                self.by.as_deref().unwrap_or("auto_approve")
            ),
            Step::Denied => format!(
                "{id} denied by {}: {user} does not get {what}",
                self.by.as_deref().unwrap_or("an approver")
            ),
            Step::Cancelled => format!("{id} cancelled by {user} ({what})"),
            Step::Expired => format!("{id} expired without a decision: {user}, {what}"),
            Step::BreakGlass => {
                format!("BREAK GLASS: {user} took access to {target} without approval ({id})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filed_request_keeps_every_fact() {
        let line = r#"{"ts":"2026-12-02T10:00:00Z","event":"request.filed","request":"r-7f3k",
            "kind":"access","user":"frank","target":"db-1","logins":["app"],"duration":"30m",
            "starts_in":"0s","reason":"INC-42","policy":"databases","approvals_needed":1,
            "approvers":["bob","carol"],"grant":null,"client":"127.0.0.1:5555"}"#;
        let notice = Notice::from_audit(line).unwrap();
        assert_eq!(notice.step, Step::Filed);
        assert_eq!(notice.request, "r-7f3k");
        assert_eq!(notice.logins, vec!["app".to_string()]);
        assert_eq!(notice.duration.as_deref(), Some("30m"));
        assert_eq!(notice.reason.as_deref(), Some("INC-42"));
        assert_eq!(notice.approvals_needed, Some(1));
        assert_eq!(
            notice.approvers,
            vec!["bob".to_string(), "carol".to_string()]
        );
        assert!(notice.pending && !notice.is_break_glass_filing());
        assert_eq!(
            notice.summary(),
            "frank asks for access to db-1 for 30m (r-7f3k)"
        );
    }

    #[test]
    fn decisions_say_who_and_why() {
        let denied = Notice::from_audit(
            r#"{"event":"request.denied","request":"r-7f3k","user":"frank","target":"db-1",
                "by":"bob","reason":"not during the freeze","client":"c"}"#,
        )
        .unwrap();
        assert_eq!(denied.by.as_deref(), Some("bob"));
        assert_eq!(denied.note.as_deref(), Some("not during the freeze"));
        assert_eq!(denied.reason, None);
        assert!(!denied.pending);
        let auto = Notice::from_audit(
            r#"{"event":"request.auto_approved","request":"r-7f3k","user":"frank",
                "target":"db-1","policy":"databases","rule":"databases.auto_approve[0]",
                "grant":4,"client":"c"}"#,
        )
        .unwrap();
        assert_eq!(auto.by.as_deref(), Some("databases.auto_approve[0]"));
        assert_eq!(auto.grant, Some(4));
    }

    #[test]
    fn other_events_and_broken_lines_are_not_notices() {
        assert_eq!(
            Notice::from_audit(r#"{"event":"grant.created","user":"a","target":"b"}"#),
            None
        );
        assert_eq!(
            Notice::from_audit(r#"{"event":"request.denied","user":"a","target":"b"}"#),
            None,
            "no request id"
        );
        assert_eq!(Notice::from_audit("not json"), None);
    }
}
