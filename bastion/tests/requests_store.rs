//! The access-request store against real databases, on SQLite and on PostgreSQL (see
//! `support/db.rs`): request ids, N-of-M approval by distinct approvers, the one grant an
//! approval creates (also when approvers race), deny and cancel, TTL expiry, extensions
//! (approved or auto-approved), break glass and its review, and the once-only report of a
//! grant's start. (Auto-approved access and `session_grant` are exercised through the service
//! in `access_requests.rs`, on both databases too.)

mod support {
    pub mod db;
    pub mod request_store;
}

use std::collections::HashSet;
use std::time::Duration;

use bastion::db::{
    AccessRequest, ApprovalOutcome, Closing, Database, Filed, Filing, Grant, GrantOrigin,
    NewRequest, RequestKind, RequestState, is_request_id,
};
use support::db::TestDb;
use support::request_store::*;

async fn ids_are_short_unique_and_requests_round_trip(db: TestDb) {
    let store = &db.store;
    let mut ids = HashSet::new();
    for i in 0..40 {
        let mut new = asking(&format!("db-{i}"), 2, 5 * MINUTE);
        if i % 2 == 1 {
            new.user = "bob".into();
        }
        let request = file(store, &new).await;
        let id = &request.id;
        assert!(
            is_request_id(id) && id.len() == 6 && id.starts_with("r-"),
            "{id}"
        );
        assert!(ids.insert(request.id.clone()), "id {} reused", request.id);
    }

    let new = asking("db-1", 2, 5 * MINUTE);
    let request = file(store, &new).await;
    let expected = AccessRequest {
        id: request.id.clone(),
        kind: RequestKind::Access,
        user: "alice".into(),
        target: "db-1".into(),
        logins: vec!["app".into()],
        duration: 2 * HOUR,
        starts_in: 5 * MINUTE,
        reason: "INC-9 replica lag".into(),
        policy: "databases".into(),
        approvals_needed: 2,
        commands: vec!["systemctl status *".into()],
        pty: false,
        client: CLIENT.into(),
        state: RequestState::Pending,
        created_at: request.created_at,
        expires_at: request.created_at + 30 * MINUTE,
        decided_at: None,
        decided_by: None,
        decision_note: None,
        grant: None,
        approvals: Vec::new(),
    };
    assert_eq!(request, expected);
    assert_eq!(store.request(&request.id).await.unwrap(), Some(expected));
    assert_eq!(store.request("r-zzzz").await.unwrap(), None);

    let pending = store.pending_requests(None).await.unwrap();
    assert_eq!(pending.len(), 41);
    assert!(pending.iter().any(|r| r.id == request.id));
    let in_order = pending
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at);
    assert!(in_order, "oldest first");
    let bobs = store.pending_requests(Some("bob")).await.unwrap();
    assert_eq!(bobs.len(), 20);
    assert!(bobs.iter().all(|r| r.user == "bob"));
    assert_eq!(grant_count(store).await, 0);
}

async fn n_of_m_counts_distinct_approvers(db: TestDb) {
    let store = &db.store;
    let request = file(store, &asking("db-1", 2, Duration::ZERO)).await;

    let first = recorded(approve(store, &request.id, "bob").await);
    assert_eq!(first.state, RequestState::Pending);
    assert_eq!(approvers(&first), ["bob"]);
    assert_eq!(first.approvals[0].comment.as_deref(), Some("ok"));
    assert_eq!(first.approvals[0].client, CLIENT);

    match approve(store, &request.id, "bob").await {
        ApprovalOutcome::AlreadyApproved(again) => assert_eq!(approvers(&again), ["bob"]),
        other => panic!("the same approver twice must not count: {other:?}"),
    }
    let stored = store.request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Pending);
    assert_eq!(approvers(&stored), ["bob"]);
    assert_eq!(grant_count(store).await, 0, "one distinct approver of two");
    assert_eq!(
        store.pending_requests(None).await.unwrap()[0].approvals,
        stored.approvals
    );

    let (approved, grant) = granted(approve(store, &request.id, "carol").await);
    assert_eq!(approved.state, RequestState::Approved);
    assert_eq!(approved.grant, Some(grant.id));
    assert_eq!(approvers(&approved), ["bob", "carol"]);
    assert_eq!(grant.approved_by, "bob, carol");
    assert_eq!(grant.origin, GrantOrigin::Request);
    assert_eq!(grant.request.as_deref(), Some(request.id.as_str()));
    assert!(!grant.review_required && grant.reviewed.is_none());
    assert_eq!(
        (grant.user.as_str(), grant.target.as_str()),
        ("alice", "db-1")
    );
    assert_eq!(grant.logins, ["app"]);
    assert_eq!(grant.commands, ["systemctl status *"]);
    assert_eq!(
        (grant.reason.as_str(), grant.pty),
        ("INC-9 replica lag", false)
    );

    let stored = store.request(&request.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Approved);
    assert_eq!(stored.grant, Some(grant.id));
    assert!(stored.decided_at.is_some());
    assert_eq!(store.list_grants(false).await.unwrap(), [grant]);
    assert!(store.pending_requests(None).await.unwrap().is_empty());

    // Decided: a third approver changes nothing.
    let late = not_pending(approve(store, &request.id, "dave").await);
    assert_eq!(late.state, RequestState::Approved);
    assert_eq!(approvers(&late), ["bob", "carol"]);
    assert_eq!(grant_count(store).await, 1);
    assert!(matches!(
        approve(store, "r-zzzz", "bob").await,
        ApprovalOutcome::NotFound
    ));
}

async fn the_grant_window_starts_at_the_approval(db: TestDb) {
    let store = &db.store;
    let now = store.now().await.unwrap();
    let immediate = file(store, &asking("db-1", 1, Duration::ZERO)).await;
    let later = file(store, &asking("db-2", 1, 20 * MINUTE)).await;
    // The window is measured from the approval, not from the filing.
    db.execute(format!(
        "UPDATE access_requests SET created_at = created_at - 600000 WHERE id IN ('{}', '{}')",
        immediate.id, later.id
    ))
    .await;

    let (request, grant) = granted(approve(store, &immediate.id, "bob").await);
    let approved_at = request.approvals[0].at;
    assert!(grant.created_at >= approved_at, "{grant:?} {approved_at}");
    assert!(grant.created_at - approved_at < time::Duration::seconds(2));
    assert!(grant.created_at >= now);
    assert_eq!(grant.starts_at, grant.created_at);
    assert_eq!(grant.expires_at, grant.starts_at + 2 * HOUR);

    let (request, grant) = granted(approve(store, &later.id, "bob").await);
    let approved_at = request.approvals[0].at;
    assert!(grant.created_at >= approved_at);
    assert!(grant.created_at - approved_at < time::Duration::seconds(2));
    assert_eq!(
        grant.starts_at,
        grant.created_at + 20 * MINUTE,
        "starts_in honoured"
    );
    assert_eq!(grant.expires_at, grant.starts_at + 2 * HOUR);
}

async fn racing_approvers_create_one_grant(db: TestDb) {
    // A second store on the same database: two nodes deciding at the same moment.
    let other = Database::open(&db.url).await.unwrap();
    for round in 0..6 {
        let request = file(
            &db.store,
            &asking(&format!("db-{round}"), 1, Duration::ZERO),
        )
        .await;
        let (a, b) = tokio::join!(
            db.store.approve_request(&request.id, "bob", None, CLIENT),
            other.approve_request(&request.id, "carol", None, CLIENT),
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let grants: Vec<&Grant> = outcomes
            .iter()
            .filter_map(|o| match o {
                ApprovalOutcome::Granted { grant, .. } => Some(grant),
                _ => None,
            })
            .collect();
        assert_eq!(grants.len(), 1, "round {round}: {outcomes:?}");
        let loser = outcomes
            .iter()
            .find(|o| !matches!(o, ApprovalOutcome::Granted { .. }))
            .unwrap();
        match loser {
            ApprovalOutcome::NotPending(request) => {
                assert_eq!(request.state, RequestState::Approved);
                assert_eq!(request.grant, Some(grants[0].id));
            }
            other => panic!("round {round}: the loser should see it decided: {other:?}"),
        }
        let stored = db.store.request(&request.id).await.unwrap().unwrap();
        assert_eq!(
            stored.approvals.len(),
            1,
            "round {round}: only the winner counts"
        );
        assert_eq!(stored.approvals[0].approver, grants[0].approved_by);
        let made: Vec<Grant> = db
            .store
            .list_grants(false)
            .await
            .unwrap()
            .into_iter()
            .filter(|g| g.request.as_deref() == Some(request.id.as_str()))
            .collect();
        assert_eq!(made, [grants[0].clone()], "round {round}");
    }
    assert_eq!(grant_count(&db.store).await, 6);
    other.close().await;
}

/// Three approvers at once on 2-of-N requests: the first counts, the second grants, the
/// third finds it decided; and two nodes sweeping expired requests each take different ones.
async fn racing_nodes_count_and_sweep_once(db: TestDb) {
    let other = Database::open(&db.url).await.unwrap();
    let third = Database::open(&db.url).await.unwrap();
    for round in 0..4 {
        let new = asking(&format!("db-{round}"), 2, Duration::ZERO);
        let id = file(&db.store, &new).await.id;
        let (a, b, c) = tokio::join!(
            db.store.approve_request(&id, "bob", None, CLIENT),
            other.approve_request(&id, "carol", None, CLIENT),
            third.approve_request(&id, "dave", None, CLIENT),
        );
        let mut kinds: Vec<&str> = [a.unwrap(), b.unwrap(), c.unwrap()]
            .iter()
            .map(|o| match o {
                ApprovalOutcome::Recorded(_) => "recorded",
                ApprovalOutcome::Granted { .. } => "granted",
                ApprovalOutcome::NotPending(_) => "not pending",
                other => panic!("round {round}: {other:?}"),
            })
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["granted", "not pending", "recorded"],
            "round {round}"
        );
        let stored = db.store.request(&id).await.unwrap().unwrap();
        assert_eq!(stored.approvals.len(), 2, "round {round}");
    }
    assert_eq!(grant_count(&db.store).await, 4);

    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            file(&db.store, &asking(&format!("web-{i}"), 1, Duration::ZERO))
                .await
                .id,
        );
    }
    let now = db.now_sql();
    db.execute(format!(
        "UPDATE access_requests SET expires_at = {now} - 1000 WHERE state = 'pending'"
    ))
    .await;
    let (a, b) = tokio::join!(
        db.store.take_expired_requests(),
        other.take_expired_requests()
    );
    let mut taken: Vec<String> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|r| r.id)
        .collect();
    taken.sort();
    ids.sort();
    assert_eq!(
        taken, ids,
        "each expired request is taken by exactly one node"
    );
    other.close().await;
    third.close().await;
}

async fn deny_and_cancel_only_while_pending(db: TestDb) {
    let store = &db.store;
    let denied = file(store, &asking("db-1", 2, Duration::ZERO)).await;
    recorded(approve(store, &denied.id, "bob").await);
    let Closing::Closed(closed) = close(store, &denied.id, RequestState::Denied, "carol").await
    else {
        panic!("a pending request can be denied");
    };
    assert_eq!(closed.state, RequestState::Denied);
    assert_eq!(closed.decided_by.as_deref(), Some("carol"));
    assert_eq!(closed.decision_note.as_deref(), Some("use the replica"));
    assert!(closed.decided_at.is_some());
    assert_eq!(approvers(&closed), ["bob"], "the approvals it had are kept");
    assert_eq!(
        store.request(&denied.id).await.unwrap().as_ref(),
        Some(&closed)
    );
    // Denied: neither a later approval nor a second close changes anything.
    assert_eq!(
        not_pending(approve(store, &denied.id, "dave").await),
        closed
    );
    assert_eq!(
        close(store, &denied.id, RequestState::Cancelled, "alice").await,
        Closing::NotPending(closed)
    );
    assert_eq!(grant_count(store).await, 0);

    let cancelled = file(store, &asking("db-2", 1, Duration::ZERO)).await;
    let Closing::Closed(closed) =
        close(store, &cancelled.id, RequestState::Cancelled, "alice").await
    else {
        panic!("a pending request can be cancelled");
    };
    assert_eq!(closed.state, RequestState::Cancelled);
    assert_eq!(closed.decided_by.as_deref(), Some("alice"));
    assert_eq!(closed.decision_note, None);
    assert_eq!(
        not_pending(approve(store, &cancelled.id, "bob").await),
        closed
    );

    let approved = file(store, &asking("web-1", 1, Duration::ZERO)).await;
    granted(approve(store, &approved.id, "bob").await);
    let stored = store.request(&approved.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Approved);
    assert_eq!(
        close(store, &approved.id, RequestState::Denied, "carol").await,
        Closing::NotPending(stored),
        "an approved request cannot be denied"
    );
    assert_eq!(
        close(store, "r-zzzz", RequestState::Denied, "carol").await,
        Closing::NotFound
    );
    assert!(store.pending_requests(None).await.unwrap().is_empty());
}

async fn expired_requests_are_taken_once(db: TestDb) {
    let store = &db.store;
    let stale = file(store, &asking("db-1", 1, Duration::ZERO)).await;
    let fresh = file(store, &asking("db-2", 1, Duration::ZERO)).await;
    assert!(store.take_expired_requests().await.unwrap().is_empty());
    db.execute(format!(
        "UPDATE access_requests SET expires_at = {} - 1000 WHERE id = '{}'",
        db.now_sql(),
        stale.id
    ))
    .await;

    // Past its TTL but not swept yet: already neither listed nor decidable.
    let pending: Vec<String> = store
        .pending_requests(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, std::slice::from_ref(&fresh.id));
    let unswept = not_pending(approve(store, &stale.id, "bob").await);
    assert_eq!(unswept.state, RequestState::Pending);
    assert!(
        unswept.approvals.is_empty(),
        "a refused approval is not stored"
    );
    assert!(matches!(
        store
            .close_request(&stale.id, RequestState::Cancelled, "alice", None)
            .await
            .unwrap(),
        Closing::NotPending(_)
    ));

    let taken = store.take_expired_requests().await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].id, stale.id);
    assert_eq!(taken[0].state, RequestState::Expired);
    assert!(taken[0].decided_at.is_some());
    assert!(
        store.take_expired_requests().await.unwrap().is_empty(),
        "once"
    );

    let expired = not_pending(approve(store, &stale.id, "bob").await);
    assert_eq!(expired.state, RequestState::Expired);
    assert_eq!(grant_count(store).await, 0);
    // The fresh request is untouched and still approvable.
    granted(approve(store, &fresh.id, "bob").await);
}

async fn an_extension_adds_time_to_a_live_grant(db: TestDb) {
    let store = &db.store;
    let grant = store.add_grant(admin_grant(HOUR)).await.unwrap();
    let request = file(store, &extending(&grant, 90 * MINUTE)).await;
    assert_eq!(request.kind, RequestKind::Extend);
    assert_eq!(request.grant, Some(grant.id), "the grant it is for");

    match approve(store, &request.id, "bob").await {
        ApprovalOutcome::Extended {
            request: approved,
            grant: extended,
            previous_expires_at,
        } => {
            assert_eq!(approved.state, RequestState::Approved);
            assert_eq!(approved.grant, Some(grant.id));
            assert_eq!(previous_expires_at, grant.expires_at);
            assert_eq!(extended.id, grant.id);
            assert_eq!(extended.expires_at, grant.expires_at + 90 * MINUTE);
            assert_eq!(extended.starts_at, grant.starts_at);
            assert_eq!(store.grant(grant.id).await.unwrap(), Some(extended));
        }
        other => panic!("expected the grant to be extended: {other:?}"),
    }
    assert_eq!(
        grant_count(store).await,
        1,
        "an extension makes no new grant"
    );

    // Auto-approved at filing: lengthened in the same step.
    let before = store.grant(grant.id).await.unwrap().unwrap();
    let rule = Filing::AutoApproved {
        rule: "databases.auto_approve[0]".into(),
    };
    let filed: Filed = store
        .file_request(&extending(&grant, 10 * MINUTE), &rule)
        .await
        .unwrap();
    assert_eq!(filed.request.state, RequestState::Approved);
    assert_eq!(
        filed.request.decided_by.as_deref(),
        Some("databases.auto_approve[0]")
    );
    assert_eq!(filed.previous_expires_at, Some(before.expires_at));
    let extended = filed.grant.unwrap();
    assert_eq!(extended.expires_at, before.expires_at + 10 * MINUTE);
    assert_eq!(extended.origin, GrantOrigin::Admin, "its origin is kept");
    assert_eq!(grant_count(store).await, 1);
}

async fn an_extension_of_an_ended_grant_changes_nothing(db: TestDb) {
    let store = &db.store;
    let revoked = store.add_grant(admin_grant(HOUR)).await.unwrap();
    let expired = store.add_grant(admin_grant(HOUR)).await.unwrap();
    let for_revoked = file(store, &extending(&revoked, HOUR)).await;
    let for_expired = file(store, &extending(&expired, HOUR)).await;
    let revoked = store
        .revoke_grant(revoked.id, "root")
        .await
        .unwrap()
        .unwrap();
    db.execute(format!(
        "UPDATE grants SET starts_at = {now} - 7200000, expires_at = {now} - 1000 WHERE id = {}",
        expired.id,
        now = db.now_sql()
    ))
    .await;
    let expired = store.grant(expired.id).await.unwrap().unwrap();

    for (request, grant) in [(&for_revoked, &revoked), (&for_expired, &expired)] {
        match approve(store, &request.id, "bob").await {
            ApprovalOutcome::GrantEnded(ended) => {
                assert_eq!(ended.state, RequestState::Expired);
                assert_eq!(ended.decision_note.as_deref(), Some(ENDED_NOTE));
            }
            other => panic!("grant {} has ended: {other:?}", grant.id),
        }
        let stored = store.request(&request.id).await.unwrap().unwrap();
        assert_eq!(stored.state, RequestState::Expired);
        assert_eq!(stored.decision_note.as_deref(), Some(ENDED_NOTE));
        assert_eq!(store.grant(grant.id).await.unwrap().as_ref(), Some(grant));
    }

    // Auto-approved at filing for an ended grant: expired at once, nothing changed.
    let rule = Filing::AutoApproved {
        rule: "databases.auto_approve[0]".into(),
    };
    let filed = store
        .file_request(&extending(&expired, HOUR), &rule)
        .await
        .unwrap();
    assert_eq!(filed.request.state, RequestState::Expired);
    assert_eq!(filed.request.decision_note.as_deref(), Some(ENDED_NOTE));
    assert_eq!((filed.grant, filed.previous_expires_at), (None, None));
    let stored = store.request(&filed.request.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RequestState::Expired);
    assert_eq!(store.grant(expired.id).await.unwrap(), Some(expired));
    assert_eq!(grant_count(store).await, 2);
}

async fn break_glass_grants_at_once_and_waits_for_one_review(db: TestDb) {
    let store = &db.store;
    let new = NewRequest {
        kind: RequestKind::BreakGlass,
        approvals_needed: 0,
        ttl: Duration::ZERO,
        ..asking("db-1", 0, Duration::ZERO)
    };
    let filed = store.file_request(&new, &Filing::BreakGlass).await.unwrap();
    let grant = filed.grant.clone().unwrap();
    assert_eq!(filed.request.kind, RequestKind::BreakGlass);
    assert_eq!(filed.request.state, RequestState::Approved);
    assert_eq!(filed.request.decided_by.as_deref(), Some("alice"));
    assert_eq!(filed.request.grant, Some(grant.id));
    assert_eq!(grant.origin, GrantOrigin::BreakGlass);
    assert_eq!(grant.request.as_deref(), Some(filed.request.id.as_str()));
    assert!(grant.review_required);
    assert_eq!(grant.reviewed, None);
    assert_eq!(grant.starts_at, grant.created_at, "live at once");
    assert!(store.pending_requests(None).await.unwrap().is_empty());
    assert!(store.take_expired_requests().await.unwrap().is_empty());

    let admin = store.add_grant(admin_grant(HOUR)).await.unwrap();
    assert_eq!(
        store.unreviewed_grants().await.unwrap(),
        std::slice::from_ref(&grant)
    );
    assert_eq!(
        store.review_grant(admin.id, "bob", "fine").await.unwrap(),
        None,
        "a grant not taken by break glass has nothing to review"
    );

    let reviewed = store
        .review_grant(grant.id, "bob", "disk was full; ok")
        .await
        .unwrap()
        .unwrap();
    let review = reviewed.reviewed.clone().unwrap();
    assert_eq!(
        (review.by.as_str(), review.comment.as_str()),
        ("bob", "disk was full; ok")
    );
    assert!(review.at >= grant.created_at);
    assert_eq!(
        store
            .review_grant(grant.id, "carol", "me too")
            .await
            .unwrap(),
        None,
        "the first review wins"
    );
    assert_eq!(store.grant(grant.id).await.unwrap(), Some(reviewed));
    assert!(store.unreviewed_grants().await.unwrap().is_empty());
}

async fn a_later_start_is_reported_once(db: TestDb) {
    let store = &db.store;
    let now_started = file(store, &asking("db-1", 1, Duration::ZERO)).await;
    granted(approve(store, &now_started.id, "bob").await);
    let admin = store.add_grant(admin_grant(HOUR)).await.unwrap();
    assert!(
        store.take_newly_started().await.unwrap().is_empty(),
        "grants live at creation are reported by their creator"
    );

    let later = file(store, &asking("db-2", 1, HOUR)).await;
    let (_, grant) = granted(approve(store, &later.id, "bob").await);
    let revoked = file(store, &asking("web-1", 1, HOUR)).await;
    let (_, revoked) = granted(approve(store, &revoked.id, "bob").await);
    store.revoke_grant(revoked.id, "root").await.unwrap();
    assert!(
        store.take_newly_started().await.unwrap().is_empty(),
        "not started yet"
    );

    db.execute(format!(
        "UPDATE grants SET starts_at = {} - 1000 WHERE id IN ({}, {})",
        db.now_sql(),
        grant.id,
        revoked.id
    ))
    .await;
    let started = store.take_newly_started().await.unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].id, grant.id);
    assert_eq!(started[0].request.as_deref(), Some(later.id.as_str()));
    assert!(store.take_newly_started().await.unwrap().is_empty(), "once");
    assert_ne!(admin.id, grant.id);
}

on_both_databases!(
    ids_are_short_unique_and_requests_round_trip,
    n_of_m_counts_distinct_approvers,
    the_grant_window_starts_at_the_approval,
    racing_approvers_create_one_grant,
    racing_nodes_count_and_sweep_once,
    deny_and_cancel_only_while_pending,
    expired_requests_are_taken_once,
    an_extension_adds_time_to_a_live_grant,
    an_extension_of_an_ended_grant_changes_nothing,
    break_glass_grants_at_once_and_waits_for_one_review,
    a_later_start_is_reported_once,
);
