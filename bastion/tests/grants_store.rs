//! The grant store and recording index against real databases: every check runs on SQLite and
//! on PostgreSQL (see `support/db.rs`).

mod support {
    pub mod db;
}

use std::collections::HashSet;
use std::time::Duration;

use bastion::db::{
    Database, DbError, Decision, Denial, Grant, GrantStatus, NewGrant, SessionEnd, SessionStart,
};
use support::db::TestDb;

const HOUR: Duration = Duration::from_secs(3600);

fn new_grant(
    user: &str,
    target: &str,
    logins: &[&str],
    starts_in: Duration,
    duration: Duration,
) -> NewGrant {
    NewGrant {
        user: user.into(),
        target: target.into(),
        logins: logins.iter().map(|l| l.to_string()).collect(),
        starts_in,
        duration,
        approved_by: "carol".into(),
        reason: "INC-42 disk full".into(),
        commands: Vec::new(),
        pty: true,
    }
}

async fn add(store: &Database, logins: &[&str], starts_in: Duration, duration: Duration) -> Grant {
    store
        .add_grant(new_grant("alice", "db-1", logins, starts_in, duration))
        .await
        .unwrap()
}

fn allowed(decision: Decision) -> (i64, String) {
    match decision {
        Decision::Allow { grant, login } => (grant.id, login),
        Decision::Deny(denial) => panic!("expected allow, got denial: {denial}"),
    }
}

fn denied(decision: Decision) -> Denial {
    match decision {
        Decision::Deny(denial) => denial,
        Decision::Allow { grant, login } => panic!(
            "expected denial, got allow by grant {} as {login}",
            grant.id
        ),
    }
}

/// Waits until the database clock has passed `at`.
async fn sleep_past(store: &Database, at: time::OffsetDateTime) {
    while store.now().await.unwrap() <= at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stores_what_it_was_given(db: TestDb) {
    let store = &db.store;
    let before = store.now().await.unwrap();
    let grant = add(store, &["app", "root"], Duration::ZERO, HOUR).await;
    assert_eq!(grant.user, "alice");
    assert_eq!(grant.target, "db-1");
    assert_eq!(grant.logins, ["app", "root"]);
    assert_eq!(grant.approved_by, "carol");
    assert_eq!(grant.reason, "INC-42 disk full");
    assert!(
        grant.created_at >= before,
        "created_at comes from the database clock"
    );
    assert_eq!(grant.starts_at, grant.created_at);
    assert_eq!(grant.expires_at - grant.starts_at, time::Duration::HOUR);
    assert_eq!(grant.revoked_at, None);
    assert_eq!(store.grant(grant.id).await.unwrap(), Some(grant.clone()));
    assert_eq!(store.grant(grant.id + 1000).await.unwrap(), None);

    let second = add(store, &["app"], HOUR, HOUR).await;
    assert!(second.id > grant.id);
    assert_eq!(second.starts_at - second.created_at, time::Duration::HOUR);
}

async fn rejects_unusable_grants(db: TestDb) {
    let store = &db.store;
    for bad in [
        new_grant("alice", "db-1", &[], Duration::ZERO, HOUR),
        new_grant("alice", "db-1", &["app"], Duration::ZERO, Duration::ZERO),
        new_grant(
            "alice",
            "db-1",
            &["app"],
            Duration::ZERO,
            Duration::from_secs(200 * 365 * 86_400),
        ),
        new_grant("alice", "db-1", &["app"], Duration::MAX, HOUR),
    ] {
        let err = store.add_grant(bad).await.unwrap_err();
        assert!(matches!(err, DbError::InvalidGrant(_)), "{err}");
    }
    assert!(store.list_grants(false).await.unwrap().is_empty());
}

async fn no_grant_is_denied(db: TestDb) {
    let store = &db.store;
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::NoGrant
    );
    add(store, &["app"], Duration::ZERO, HOUR).await;
    // A grant for another user or another target does not count.
    assert_eq!(
        denied(store.authorize("bob", "db-1", None).await.unwrap()),
        Denial::NoGrant
    );
    assert_eq!(
        denied(store.authorize("alice", "db-2", None).await.unwrap()),
        Denial::NoGrant
    );
}

async fn allows_requested_or_default_login(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app", "root"], Duration::ZERO, HOUR).await;
    assert_eq!(
        allowed(store.authorize("alice", "db-1", None).await.unwrap()),
        (grant.id, "app".into())
    );
    assert_eq!(
        allowed(
            store
                .authorize("alice", "db-1", Some("root"))
                .await
                .unwrap()
        ),
        (grant.id, "root".into())
    );
}

async fn picks_the_grant_expiring_last(db: TestDb) {
    let store = &db.store;
    add(store, &["app"], Duration::ZERO, HOUR).await;
    let longest = add(store, &["app"], Duration::ZERO, 3 * HOUR).await;
    add(store, &["app"], Duration::ZERO, 2 * HOUR).await;
    let root_only = add(store, &["root"], Duration::ZERO, 4 * HOUR).await;
    assert_eq!(
        allowed(store.authorize("alice", "db-1", Some("app")).await.unwrap()).0,
        longest.id
    );
    // Without a login, every active grant qualifies with its own default login.
    assert_eq!(
        allowed(store.authorize("alice", "db-1", None).await.unwrap()),
        (root_only.id, "root".into())
    );
}

async fn login_not_allowed_lists_the_allowed_logins(db: TestDb) {
    let store = &db.store;
    add(store, &["app"], Duration::ZERO, HOUR).await;
    add(store, &["deploy", "app"], Duration::ZERO, HOUR).await;
    // Inactive grants for the login do not turn the answer into "expired" or "pending".
    add(store, &["root"], HOUR, HOUR).await;
    assert_eq!(
        denied(
            store
                .authorize("alice", "db-1", Some("root"))
                .await
                .unwrap()
        ),
        Denial::LoginNotAllowed {
            login: "root".into(),
            allowed: vec!["app".into(), "deploy".into()],
        }
    );
}

async fn pending_grant_names_its_start(db: TestDb) {
    let store = &db.store;
    add(store, &["app"], 2 * HOUR, HOUR).await;
    let sooner = add(store, &["app"], HOUR, HOUR).await;
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::NotYetStarted {
            starts_at: sooner.starts_at
        }
    );
}

async fn revoked_grant_names_its_revocation(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app"], Duration::ZERO, HOUR).await;
    let revoked = store.revoke_grant(grant.id, "dave").await.unwrap().unwrap();
    let revoked_at = revoked.revoked_at.unwrap();
    assert_eq!(revoked.revoked_by.as_deref(), Some("dave"));
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::Revoked { revoked_at }
    );
    // Revoking again keeps the first revocation.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = store.revoke_grant(grant.id, "erin").await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(revoked_at));
    assert_eq!(again.revoked_by.as_deref(), Some("dave"));
    assert_eq!(
        store.revoke_grant(grant.id + 1000, "erin").await.unwrap(),
        None
    );
}

async fn expired_grant_names_its_expiry(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app"], Duration::ZERO, Duration::from_millis(300)).await;
    assert_eq!(
        allowed(store.authorize("alice", "db-1", None).await.unwrap()).0,
        grant.id
    );
    sleep_past(store, grant.expires_at).await;
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::Expired {
            expired_at: grant.expires_at
        }
    );
}

async fn denials_prefer_pending_then_revoked_then_expired(db: TestDb) {
    let store = &db.store;
    let short = add(store, &["app"], Duration::ZERO, Duration::from_millis(100)).await;
    sleep_past(store, short.expires_at).await;
    assert!(matches!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::Expired { .. }
    ));
    let revoked = add(store, &["app"], Duration::ZERO, HOUR).await;
    store.revoke_grant(revoked.id, "dave").await.unwrap();
    assert!(matches!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::Revoked { .. }
    ));
    add(store, &["app"], HOUR, HOUR).await;
    assert!(matches!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::NotYetStarted { .. }
    ));
}

async fn window_opens_and_closes_on_time(db: TestDb) {
    let store = &db.store;
    let grant = add(
        store,
        &["app"],
        Duration::from_millis(300),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::NotYetStarted {
            starts_at: grant.starts_at
        }
    );
    sleep_past(store, grant.starts_at).await;
    assert_eq!(
        allowed(store.authorize("alice", "db-1", None).await.unwrap()).0,
        grant.id
    );
    sleep_past(store, grant.expires_at).await;
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::Expired {
            expired_at: grant.expires_at
        }
    );
}

/// The edges, made exact by moving a boundary to the database's now: whatever the clock reads
/// at authorization it is >= that instant, so "starts exactly now" must allow and "expires
/// exactly now" must deny.
async fn window_edges_are_start_inclusive_and_end_exclusive(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app"], HOUR, HOUR).await;
    db.execute(format!(
        "UPDATE grants SET starts_at = {} WHERE id = {}",
        db.now_sql(),
        grant.id
    ))
    .await;
    assert_eq!(
        allowed(store.authorize("alice", "db-1", None).await.unwrap()).0,
        grant.id
    );

    db.execute(format!(
        "UPDATE grants SET starts_at = {now} - 3600000, expires_at = {now} WHERE id = {}",
        grant.id,
        now = db.now_sql(),
    ))
    .await;
    let expired_at = store.grant(grant.id).await.unwrap().unwrap().expires_at;
    assert_eq!(
        denied(store.authorize("alice", "db-1", None).await.unwrap()),
        Denial::Expired { expired_at }
    );
    assert!(store.list_grants(true).await.unwrap().is_empty());
}

async fn starts_now_is_active_immediately(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app"], Duration::ZERO, HOUR).await;
    assert_eq!(
        allowed(store.authorize("alice", "db-1", None).await.unwrap()).0,
        grant.id
    );
    assert_eq!(grant.status_at(grant.starts_at), GrantStatus::Active);
}

async fn lists_all_or_only_active_grants(db: TestDb) {
    let store = &db.store;
    let active = add(store, &["app"], Duration::ZERO, HOUR).await;
    let pending = add(store, &["app"], HOUR, HOUR).await;
    let revoked = add(store, &["app"], Duration::ZERO, HOUR).await;
    store.revoke_grant(revoked.id, "dave").await.unwrap();
    let expired = add(store, &["app"], Duration::ZERO, Duration::from_millis(50)).await;
    sleep_past(store, expired.expires_at).await;

    let all = store.list_grants(false).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|g| g.id).collect();
    assert_eq!(ids, [active.id, pending.id, revoked.id, expired.id]);
    let now = store.now().await.unwrap();
    let statuses: Vec<GrantStatus> = all.iter().map(|g| g.status_at(now)).collect();
    assert_eq!(
        statuses,
        [
            GrantStatus::Active,
            GrantStatus::Pending,
            GrantStatus::Revoked,
            GrantStatus::Expired
        ]
    );
    let active_only: Vec<i64> = store
        .list_grants(true)
        .await
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(active_only, [active.id]);
}

async fn fetches_grants_by_id(db: TestDb) {
    let store = &db.store;
    let a = add(store, &["app"], Duration::ZERO, HOUR).await;
    let b = add(store, &["root"], Duration::ZERO, HOUR).await;
    assert!(store.grants_by_id(&[]).await.unwrap().is_empty());
    let found = store.grants_by_id(&[b.id, 9999, a.id]).await.unwrap();
    assert_eq!(found, [a.clone(), b]);
    // More ids than one statement takes.
    let many: Vec<i64> = (0..1200)
        .map(|i| if i == 700 { a.id } else { 100_000 + i })
        .collect();
    assert_eq!(store.grants_by_id(&many).await.unwrap(), [a]);
}

async fn reports_each_expiry_once(db: TestDb) {
    let store = &db.store;
    let short = add(store, &["app"], Duration::ZERO, Duration::from_millis(100)).await;
    let revoked = add(store, &["app"], Duration::ZERO, Duration::from_millis(100)).await;
    store.revoke_grant(revoked.id, "dave").await.unwrap();
    add(store, &["app"], Duration::ZERO, HOUR).await;
    assert!(store.take_newly_expired().await.unwrap().is_empty());
    sleep_past(store, short.expires_at).await;

    // Several pollers (as several daemons would): each expiry goes to exactly one of them.
    let second = Database::open(&db.url).await.unwrap();
    let polls = futures::future::join_all((0..6).map(|i| {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        async move { store.take_newly_expired().await.unwrap() }
    }))
    .await;
    let reported: Vec<i64> = polls.into_iter().flatten().map(|g| g.id).collect();
    assert_eq!(reported, [short.id]);
    assert!(store.take_newly_expired().await.unwrap().is_empty());
    second.close().await;
}

fn session_start(id: &str, grant: &Grant) -> SessionStart {
    SessionStart {
        id: id.into(),
        user: grant.user.clone(),
        target: grant.target.clone(),
        login: grant.logins[0].clone(),
        grant_id: grant.id,
        command: None,
        interactive: true,
        client: "127.0.0.1:50022".into(),
        recording: format!("file:///var/lib/bastion/recordings/{id}/"),
        recorded: true,
        node: "node-a".into(),
    }
}

async fn indexes_sessions(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app"], Duration::ZERO, HOUR).await;
    store
        .session_started(&session_start("s1", &grant))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second = session_start("s2", &grant);
    second.command = Some("pg_dump app".into());
    second.interactive = false;
    store.session_started(&second).await.unwrap();

    let running = store.session("s2").await.unwrap().unwrap();
    assert_eq!(running.command.as_deref(), Some("pg_dump app"));
    assert!(!running.interactive);
    assert_eq!(
        (running.ended_at, running.end_reason, running.bytes),
        (None, None, None)
    );

    let end = SessionEnd {
        reason: "expired".into(),
        bytes: 5_000_000_000,
        recording_complete: true,
    };
    store.session_ended("s1", &end).await.unwrap();
    // A second end (e.g. from the shutdown path) keeps the first.
    let later = SessionEnd {
        reason: "shutdown".into(),
        bytes: 1,
        recording_complete: false,
    };
    store.session_ended("s1", &later).await.unwrap();
    let ended = store.session("s1").await.unwrap().unwrap();
    assert_eq!(ended.end_reason.as_deref(), Some("expired"));
    assert_eq!(ended.bytes, Some(5_000_000_000));
    assert_eq!(ended.recording_complete, Some(true));
    assert!(ended.ended_at.unwrap() >= ended.started_at);
    assert_eq!(ended.recording, "file:///var/lib/bastion/recordings/s1/");

    let err = store.session_ended("nope", &end).await.unwrap_err();
    assert!(
        matches!(err, DbError::NoSuchSession(ref id) if id == "nope"),
        "{err}"
    );
    assert_eq!(store.session("nope").await.unwrap(), None);

    let ids: Vec<String> = store
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["s2", "s1"]);
    // Session ids are unique.
    assert!(
        store
            .session_started(&session_start("s1", &grant))
            .await
            .is_err()
    );
}

/// A restarted node closes its own sessions a crash left open, and only those; unrecorded
/// sessions are never queued for indexing.
async fn interrupted_and_unrecorded_sessions(db: TestDb) {
    let store = &db.store;
    let grant = add(store, &["app"], Duration::ZERO, HOUR).await;
    store
        .session_started(&session_start("crashed-1", &grant))
        .await
        .unwrap();
    let mut other_node = session_start("elsewhere", &grant);
    other_node.node = "node-b".into();
    store.session_started(&other_node).await.unwrap();
    let mut unrecorded = session_start("unrecorded", &grant);
    unrecorded.recorded = false;
    unrecorded.recording = String::new();
    store.session_started(&unrecorded).await.unwrap();
    store
        .session_started(&session_start("ended-1", &grant))
        .await
        .unwrap();
    let end = SessionEnd {
        reason: "exit".into(),
        bytes: 10,
        recording_complete: true,
    };
    store.session_ended("ended-1", &end).await.unwrap();
    // Ends are ordered by millisecond: let the interruption come strictly later.
    tokio::time::sleep(Duration::from_millis(5)).await;

    let interrupted = store.interrupt_open_sessions("node-a").await.unwrap();
    let ids: Vec<&str> = interrupted.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["crashed-1", "unrecorded"]);
    for row in &interrupted {
        assert_eq!(row.end_reason.as_deref(), Some("interrupted"));
        assert_eq!(row.recording_complete, Some(false));
        assert!(row.ended_at.is_some_and(|end| end >= row.started_at));
        assert_eq!(row.node.as_deref(), Some("node-a"));
    }
    // Another node's live session and an already ended one are untouched; a second start
    // finds nothing left to close.
    let elsewhere = store.session("elsewhere").await.unwrap().unwrap();
    assert_eq!((elsewhere.ended_at, elsewhere.end_reason), (None, None));
    let ended = store.session("ended-1").await.unwrap().unwrap();
    assert_eq!(ended.end_reason.as_deref(), Some("exit"));
    assert!(
        store
            .interrupt_open_sessions("node-a")
            .await
            .unwrap()
            .is_empty()
    );

    let row = store.session("unrecorded").await.unwrap().unwrap();
    assert!(!row.recorded && row.recording.is_empty());
    assert!(store.session("crashed-1").await.unwrap().unwrap().recorded);
    let to_index = store.sessions_to_index().await.unwrap();
    assert_eq!(to_index, ["ended-1", "crashed-1"]);
}

async fn reopening_keeps_data(db: TestDb) {
    let grant = add(&db.store, &["app"], Duration::ZERO, HOUR).await;
    let reopened = Database::open(&db.url).await.unwrap();
    assert_eq!(reopened.grant(grant.id).await.unwrap(), Some(grant));
    let ids: HashSet<i64> = reopened
        .list_grants(false)
        .await
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids.len(), 1);
    reopened.close().await;
}

on_both_databases!(
    stores_what_it_was_given,
    rejects_unusable_grants,
    no_grant_is_denied,
    allows_requested_or_default_login,
    picks_the_grant_expiring_last,
    login_not_allowed_lists_the_allowed_logins,
    pending_grant_names_its_start,
    revoked_grant_names_its_revocation,
    expired_grant_names_its_expiry,
    denials_prefer_pending_then_revoked_then_expired,
    window_opens_and_closes_on_time,
    window_edges_are_start_inclusive_and_end_exclusive,
    starts_now_is_active_immediately,
    lists_all_or_only_active_grants,
    fetches_grants_by_id,
    reports_each_expiry_once,
    indexes_sessions,
    interrupted_and_unrecorded_sessions,
    reopening_keeps_data,
);

#[tokio::test]
async fn unsupported_urls_are_rejected() {
    let err = Database::open("mysql://u:secret@h/db").await.unwrap_err();
    assert!(matches!(err, DbError::UnsupportedUrl(_)), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
}
