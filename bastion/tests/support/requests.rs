//! The request workflow's test bed (`tests/access_requests.rs`): a policy configuration with
//! users in groups, shortcuts for asking and deciding, and readers of the audit trail.

use std::fmt::Debug;
use std::time::Duration;

use bastion::access::{Ask, BreakGlassAsk, Decided, Decider, ExtendAsk};
use bastion::db::{
    AccessRequest, ApprovalOutcome, Filed, Grant, NewGrant, RequestState, SessionStart,
};
use serde_json::Value;

use super::access::Service;

pub const HOUR: Duration = Duration::from_secs(3600);
pub const MINUTE: Duration = Duration::from_secs(60);
pub const CLIENT: &str = "198.51.100.7:50022";
pub const REASON: &str = "INC-9 replica lag";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP";
pub const SELF_APPROVAL: &str = "you filed this request: self-approval is never counted; another approver must decide (withdraw it with cancel)";
pub const NOT_APPROVER: &str = "you are not an approver of policy databases (approvers: group:dba)";
pub const ENDED_NOTE: &str = "the grant had already ended when the extension was approved";

/// alice (sre, oncall), bob, carol, dave (dba), erin (no group); `databases` needs two dba
/// approvals and approves oncall at once for up to an hour; `web` needs one. No policy
/// covers lab-1.
pub fn config() -> String {
    let user = |name: &str, groups: &str| {
        format!("[[users]]\nname = \"{name}\"\nkeys = [\"{KEY}\"]\ngroups = {groups}\n\n")
    };
    let target = |name: &str, logins: &str| {
        format!(
            "[[targets]]\nname = \"{name}\"\naddress = \"127.0.0.1:2200\"\nlogins = {logins}\nidentity = \"target_key\"\n\n"
        )
    };
    let policies = r#"
[[policies]]
name = "databases"
targets = ["db-*"]
requesters = ["group:sre"]
approvers = ["group:dba"]
approvals = 2
max_duration = "4h"
logins = ["app"]
require_reason = true
request_ttl = "30m"
auto_approve = [{ groups = ["oncall"], max_duration = "1h" }]
break_glass = ["group:oncall"]

[[policies]]
name = "web"
targets = ["web-1"]
requesters = ["group:dba", "alice"]
approvers = ["group:dba", "alice"]
approvals = 1
max_duration = "4h"
require_reason = false
"#;
    [
        user("alice", r#"["sre", "oncall"]"#),
        user("bob", r#"["dba"]"#),
        user("carol", r#"["dba"]"#),
        user("dave", r#"["dba"]"#),
        user("erin", "[]"),
        target("db-1", r#"["app", "root"]"#),
        target("db-2", r#"["app"]"#),
        target("web-1", r#"["www"]"#),
        target("lab-1", r#"["app"]"#),
        policies.to_string(),
    ]
    .concat()
}

pub fn ask(user: &str, target: &str, duration: Duration) -> Ask {
    Ask {
        user: user.into(),
        target: target.into(),
        login: None,
        duration,
        starts_in: Duration::ZERO,
        reason: Some(REASON.into()),
        client: CLIENT.into(),
    }
}

/// alice asks for `duration` more on `what` (a grant or session id).
pub fn extend(what: impl ToString, duration: Duration) -> ExtendAsk {
    ExtendAsk {
        user: "alice".into(),
        what: what.to_string(),
        duration,
        reason: Some(REASON.into()),
        client: CLIENT.into(),
    }
}

pub fn glass(user: &str, duration: Option<Duration>, reason: Option<&str>) -> BreakGlassAsk {
    BreakGlassAsk {
        user: user.into(),
        target: "db-1".into(),
        login: None,
        duration,
        reason: reason.map(str::to_string),
        client: CLIENT.into(),
    }
}

pub fn by(user: &str) -> Decider<'_> {
    Decider {
        user,
        client: CLIENT,
    }
}

pub fn ok<T: Debug>(decided: Decided<T>) -> T {
    match decided {
        Ok(Ok(value)) => value,
        Ok(Err(refused)) => panic!("refused: {refused}"),
        Err(err) => panic!("failed: {err}"),
    }
}

pub fn refused<T: Debug>(decided: Decided<T>) -> String {
    match decided {
        Ok(Err(refused)) => refused.to_string(),
        Ok(Ok(value)) => panic!("expected a refusal, got {value:?}"),
        Err(err) => panic!("failed: {err}"),
    }
}

pub fn granted(outcome: ApprovalOutcome) -> Grant {
    match outcome {
        ApprovalOutcome::Granted { grant, .. } => grant,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// Every key of `fields` has that value in `event`.
pub fn has(event: &Value, fields: Value) {
    for (key, value) in fields.as_object().unwrap() {
        assert_eq!(&event[key], value, "{key} of {event}");
    }
}

impl Service {
    /// Files `ask`, which must wait for approvers.
    pub async fn pending(&self, ask: Ask) -> AccessRequest {
        let filed = ok(self.access.request_access(ask).await);
        assert_eq!(filed.request.state, RequestState::Pending, "{filed:?}");
        assert_eq!(filed.grant, None);
        filed.request
    }

    /// Files `ask`, which an `auto_approve` rule must grant at once.
    pub async fn auto(&self, ask: Ask) -> (AccessRequest, Grant) {
        let Filed { request, grant, .. } = ok(self.access.request_access(ask).await);
        assert_eq!(request.state, RequestState::Approved);
        (request, grant.unwrap())
    }

    pub async fn approve(&self, id: &str, approver: &str) -> Decided<ApprovalOutcome> {
        self.access.approve(id, by(approver), None).await
    }

    /// The audit events about request `id`, in order.
    pub fn trail(&self, id: &str) -> Vec<Value> {
        let all = self.audit().into_iter();
        all.filter(|e| e["request"] == id).collect()
    }

    pub fn names(&self, id: &str) -> Vec<String> {
        let names = self.trail(id).into_iter();
        names
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }
}

/// An approved request starting in an hour; returns it and its grant.
pub async fn starting_later(service: &Service) -> (AccessRequest, Grant) {
    let later = Ask {
        starts_in: HOUR,
        ..ask("alice", "db-1", 2 * HOUR)
    };
    let request = service.pending(later).await;
    ok(service.approve(&request.id, "bob").await);
    let grant = granted(ok(service.approve(&request.id, "dave").await));
    assert_eq!(grant.starts_at, grant.created_at + HOUR);
    (request, grant)
}

/// Session `id` of alice under `grant`, as the daemon stores it.
pub fn session_of(id: &str, grant: &Grant) -> SessionStart {
    SessionStart {
        id: id.into(),
        user: grant.user.clone(),
        target: grant.target.clone(),
        login: grant.logins[0].clone(),
        grant_id: grant.id,
        command: None,
        interactive: true,
        client: CLIENT.into(),
        recording: String::new(),
        recorded: false,
        node: "node-a".into(),
    }
}

/// An administrator's grant for alice on db-1 as root, a login no policy grants.
pub fn root_grant() -> NewGrant {
    NewGrant {
        user: "alice".into(),
        target: "db-1".into(),
        logins: vec!["root".into()],
        starts_in: Duration::ZERO,
        duration: HOUR,
        approved_by: "root".into(),
        reason: "INC-9".into(),
        commands: Vec::new(),
        pty: true,
    }
}
