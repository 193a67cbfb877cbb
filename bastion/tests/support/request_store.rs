//! The request store's test bed (`tests/requests_store.rs`): requests as the access service
//! would file them, and shortcuts for deciding them and reading the outcome.

use std::time::Duration;

use bastion::db::{
    AccessRequest, ApprovalOutcome, Closing, Database, Filing, Grant, NewGrant, NewRequest,
    RequestKind, RequestState,
};

pub const HOUR: Duration = Duration::from_secs(3600);
pub const MINUTE: Duration = Duration::from_secs(60);
pub const CLIENT: &str = "198.51.100.7:50022";
pub const ENDED_NOTE: &str = "the grant had already ended when the extension was approved";

/// alice asks for `target` as `app`, under policy `databases`, needing `approvals`.
pub fn asking(target: &str, approvals: u32, starts_in: Duration) -> NewRequest {
    NewRequest {
        kind: RequestKind::Access,
        user: "alice".into(),
        target: target.into(),
        logins: vec!["app".into()],
        duration: 2 * HOUR,
        starts_in,
        reason: "INC-9 replica lag".into(),
        policy: "databases".into(),
        approvals_needed: approvals,
        commands: vec!["systemctl status *".into()],
        pty: false,
        client: CLIENT.into(),
        ttl: 30 * MINUTE,
        grant: None,
    }
}

/// alice asks for `more` time on `grant`.
pub fn extending(grant: &Grant, more: Duration) -> NewRequest {
    NewRequest {
        kind: RequestKind::Extend,
        duration: more,
        grant: Some(grant.id),
        target: grant.target.clone(),
        logins: grant.logins.clone(),
        ..asking("db-1", 1, Duration::ZERO)
    }
}

pub fn admin_grant(duration: Duration) -> NewGrant {
    NewGrant {
        user: "alice".into(),
        target: "db-1".into(),
        logins: vec!["app".into()],
        starts_in: Duration::ZERO,
        duration,
        approved_by: "root".into(),
        reason: "INC-9".into(),
        commands: Vec::new(),
        pty: true,
    }
}

pub async fn file(store: &Database, new: &NewRequest) -> AccessRequest {
    let filed = store.file_request(new, &Filing::Pending).await.unwrap();
    assert_eq!(filed.grant, None, "a pending request has no grant yet");
    assert_eq!(filed.previous_expires_at, None);
    filed.request
}

pub async fn approve(store: &Database, id: &str, approver: &str) -> ApprovalOutcome {
    store
        .approve_request(id, approver, Some("ok"), CLIENT)
        .await
        .unwrap()
}

pub fn recorded(outcome: ApprovalOutcome) -> AccessRequest {
    match outcome {
        ApprovalOutcome::Recorded(request) => request,
        other => panic!("expected the approval to be recorded, got {other:?}"),
    }
}

pub fn granted(outcome: ApprovalOutcome) -> (AccessRequest, Grant) {
    match outcome {
        ApprovalOutcome::Granted { request, grant } => (request, grant),
        other => panic!("expected a grant, got {other:?}"),
    }
}

pub fn not_pending(outcome: ApprovalOutcome) -> AccessRequest {
    match outcome {
        ApprovalOutcome::NotPending(request) => request,
        other => panic!("expected NotPending, got {other:?}"),
    }
}

pub fn approvers(request: &AccessRequest) -> Vec<&str> {
    request
        .approvals
        .iter()
        .map(|a| a.approver.as_str())
        .collect()
}

pub async fn grant_count(store: &Database) -> usize {
    store.list_grants(false).await.unwrap().len()
}

pub async fn close(store: &Database, id: &str, state: RequestState, by: &str) -> Closing {
    let note = (state == RequestState::Denied).then_some("use the replica");
    store.close_request(id, state, by, note).await.unwrap()
}
