//! The webhook notifier's store queries against real databases, on SQLite and on PostgreSQL
//! (see `support/db.rs`): which audit events are waiting to be posted (recent, notified, not
//! claimed, in `(at, id)` order), and the claim that lets one node only post each event, also
//! when two nodes race for it.

mod support {
    pub mod db;
}

use std::time::Duration;

use bastion::db::{Database, NewAuditEvent};
use bastion::notify::NOTIFIED_EVENTS;
use support::db::TestDb;
use time::OffsetDateTime;

fn event(at: OffsetDateTime, name: &str, request: &str) -> NewAuditEvent {
    NewAuditEvent {
        at,
        event: name.to_string(),
        user: Some("frank".into()),
        target: Some("db-1".into()),
        json: format!(
            r#"{{"event":"{name}","request":"{request}","user":"frank","target":"db-1"}}"#
        ),
    }
}

async fn waiting(store: &Database, since: OffsetDateTime) -> Vec<(String, String)> {
    store
        .unclaimed_audit_events(NOTIFIED_EVENTS, since, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.event, r.json))
        .collect()
}

async fn recent_notified_unclaimed_events_in_order(db: TestDb) {
    let store = &db.store;
    let now = OffsetDateTime::now_utc();
    store
        .insert_audit_events(&[
            event(now - Duration::from_secs(3600), "request.filed", "r-old1"),
            event(now, "request.approved", "r-new1"),
            event(now - Duration::from_secs(5), "request.filed", "r-new1"),
            event(now, "grant.created", "r-new1"),
            event(now, "session.start", "r-new1"),
        ])
        .await
        .unwrap();
    let since = now - Duration::from_secs(600);
    let events: Vec<String> = waiting(store, since)
        .await
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    assert_eq!(
        events,
        vec!["request.filed", "request.approved"],
        "recent request events only, oldest first"
    );
    assert!(
        store
            .unclaimed_audit_events(&[], since, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn one_claim_wins(db: TestDb) {
    let store = &db.store;
    let now = OffsetDateTime::now_utc();
    store
        .insert_audit_events(&[
            event(now, "request.filed", "r-aaaa"),
            event(now, "request.filed", "r-bbbb"),
        ])
        .await
        .unwrap();
    let since = now - Duration::from_secs(60);
    let page = store
        .unclaimed_audit_events(NOTIFIED_EVENTS, since, 100)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let (first, second) = (page[0].id, page[1].id);

    assert!(store.claim_notification(first, "node-a").await.unwrap());
    assert!(!store.claim_notification(first, "node-b").await.unwrap());
    assert!(
        !store.claim_notification(first, "node-a").await.unwrap(),
        "a claim is made once, even by its own node"
    );
    let left = waiting(store, since).await;
    assert_eq!(
        left.len(),
        1,
        "the claimed event is not offered again: {left:?}"
    );
    assert!(left[0].1.contains("r-bbbb"));

    // Two nodes (two pools) racing for the same event: exactly one wins.
    let other = Database::open(&db.url).await.unwrap();
    let (a, b) = tokio::join!(
        store.claim_notification(second, "node-a"),
        other.claim_notification(second, "node-b")
    );
    assert!(a.unwrap() ^ b.unwrap(), "one of two racing claims succeeds");
    assert!(waiting(store, since).await.is_empty());
    other.close().await;

    // Old claims are forgotten; recent ones stay.
    db.execute(format!(
        "UPDATE notification_claims SET claimed_at = {} - 7200000 WHERE event_id = {first}",
        db.now_sql()
    ))
    .await;
    let forgotten = store
        .forget_notification_claims(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
    let again = waiting(store, since).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].1.contains("r-aaaa"));
}

on_both_databases!(recent_notified_unclaimed_events_in_order, one_claim_wins);
