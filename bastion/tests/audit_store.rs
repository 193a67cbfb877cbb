//! The database copy of the audit log against real databases (SQLite and PostgreSQL, see
//! `support/db.rs`): storing events, reading them back filtered, in order and page by page,
//! and the audit log's sink feeding it without ever losing the file line.

mod support {
    pub mod db;
}

use bastion::audit::{AuditEvent, AuditLog, QUEUE_CAPACITY};
use bastion::db::{AuditFilter, AuditRecord, Database, NewAuditEvent};
use support::db::TestDb;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

fn event(minutes: i64, name: &str, user: Option<&str>, target: Option<&str>) -> NewAuditEvent {
    let at = T0 + time::Duration::minutes(minutes);
    NewAuditEvent {
        at,
        event: name.into(),
        user: user.map(Into::into),
        target: target.map(Into::into),
        json: format!(r#"{{"ts":"{at}","event":"{name}","n":{minutes}}}"#),
    }
}

/// Every page of `filter`, `page` rows at a time, checking that no page is larger.
async fn read_all(store: &Database, filter: &AuditFilter, page: u32) -> Vec<AuditRecord> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let rows = store.audit_events_page(filter, after, page).await.unwrap();
        assert!(rows.len() <= page as usize);
        let Some(last) = rows.last() else { break };
        after = Some(last.cursor());
        all.extend(rows);
    }
    all
}

fn names(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.json.as_str()).collect()
}

async fn stores_and_filters_in_time_order(db: TestDb) {
    let store = &db.store;
    // Inserted out of time order, as several nodes would.
    let events = [
        event(30, "grant.revoked", None, None),
        event(0, "grant.created", Some("alice"), Some("db-1")),
        event(10, "session.start", Some("alice"), Some("db-1")),
        event(10, "access.denied", Some("bob"), Some("db-2")),
        event(20, "session.end", Some("alice"), Some("db-2")),
    ];
    store.insert_audit_events(&events[..2]).await.unwrap();
    store.insert_audit_events(&events[2..]).await.unwrap();
    store.insert_audit_events(&[]).await.unwrap();

    let all = read_all(store, &AuditFilter::default(), 100).await;
    let expect = |indexes: &[usize]| -> Vec<String> {
        indexes.iter().map(|&i| events[i].json.clone()).collect()
    };
    // By time, then by id (session.start was stored before access.denied).
    assert_eq!(names(&all), expect(&[1, 2, 3, 4, 0]));
    let first = &all[0];
    assert_eq!(first.at, T0);
    assert_eq!(first.event, "grant.created");
    assert_eq!(first.user.as_deref(), Some("alice"));
    assert_eq!(first.target.as_deref(), Some("db-1"));
    assert_eq!(all[4].user, None);

    let since = |m: i64| Some(T0 + time::Duration::minutes(m));
    let cases = [
        (
            AuditFilter {
                since: since(10),
                ..AuditFilter::default()
            },
            &[2, 3, 4, 0][..],
        ),
        (
            AuditFilter {
                until: since(10),
                ..AuditFilter::default()
            },
            &[1],
        ),
        (
            AuditFilter {
                since: since(10),
                until: since(30),
                ..AuditFilter::default()
            },
            &[2, 3, 4],
        ),
        (
            AuditFilter {
                user: Some("alice".into()),
                ..AuditFilter::default()
            },
            &[1, 2, 4],
        ),
        (
            AuditFilter {
                target: Some("db-2".into()),
                ..AuditFilter::default()
            },
            &[3, 4],
        ),
        (
            AuditFilter {
                since: since(5),
                user: Some("alice".into()),
                target: Some("db-1".into()),
                ..AuditFilter::default()
            },
            &[2],
        ),
        (
            AuditFilter {
                user: Some("mallory".into()),
                ..AuditFilter::default()
            },
            &[],
        ),
    ];
    for (filter, indexes) in cases {
        for page in [1, 2, 100] {
            let found = read_all(store, &filter, page).await;
            assert_eq!(
                names(&found),
                expect(indexes),
                "{filter:?}, pages of {page}"
            );
        }
    }
}

async fn pages_cover_every_event_once(db: TestDb) {
    let store = &db.store;
    // 1203 events, three to a millisecond: pages must split ties by id, never skip or repeat.
    let events: Vec<NewAuditEvent> = (0..1203)
        .map(|i| {
            let mut e = event(0, "auth.success", Some("alice"), None);
            e.at = T0 + time::Duration::milliseconds(i / 3);
            e.json = format!(r#"{{"event":"auth.success","i":{i}}}"#);
            e
        })
        .collect();
    store.insert_audit_events(&events).await.unwrap();
    for page in [1000, 7, 3] {
        let found = read_all(store, &AuditFilter::default(), page).await;
        assert_eq!(found.len(), events.len(), "pages of {page}");
        assert!(
            found
                .iter()
                .zip(&events)
                .all(|(found, sent)| found.json == sent.json),
            "pages of {page} out of order"
        );
    }
    let later = AuditFilter {
        since: Some(T0 + time::Duration::milliseconds(400)),
        ..AuditFilter::default()
    };
    assert_eq!(read_all(store, &later, 50).await.len(), 3);
}

async fn order_is_by_event_time_not_by_arrival(db: TestDb) {
    // Another node's event, stored first, stamped with the current time.
    db.execute(format!(
        "INSERT INTO audit_events (at, event, user_name, target, event_json) \
         VALUES ({now}, 'session.start', 'bob', 'db-2', '{{\"event\":\"session.start\"}}')",
        now = db.now_sql()
    ))
    .await;
    // This node's event from yesterday, arriving late (its database was down).
    let late = event(0, "grant.created", Some("alice"), Some("db-1"));
    db.store
        .insert_audit_events(std::slice::from_ref(&late))
        .await
        .unwrap();
    let all = read_all(&db.store, &AuditFilter::default(), 1).await;
    assert_eq!(
        names(&all),
        [late.json.as_str(), r#"{"event":"session.start"}"#]
    );
    let recent = AuditFilter {
        since: Some(OffsetDateTime::now_utc() - time::Duration::hours(1)),
        ..AuditFilter::default()
    };
    assert_eq!(read_all(&db.store, &recent, 10).await.len(), 1);
}

fn file_lines(log: &AuditLog) -> Vec<String> {
    std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

async fn the_audit_log_copies_every_line(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    log.attach_database(db.store.clone());
    log.record(AuditEvent::AccessDenied {
        user: "alice".into(),
        target: "db-1\x1b[2J".into(),
        login: None,
        reason: "no grant".into(),
        client: "127.0.0.1:5555".into(),
    });
    log.clone().record(AuditEvent::GrantRevoked {
        grant: 7,
        user: "alice".into(),
        target: "db-1".into(),
        by: "carol".into(),
        client: None,
    });
    log.flush().await;
    let stored = read_all(&db.store, &AuditFilter::default(), 100).await;
    assert_eq!(names(&stored), file_lines(&log), "the same lines, in order");
    assert_eq!(stored[0].event, "access.denied");
    assert_eq!(stored[0].user.as_deref(), Some("alice"));
    // What was stored is what was written: the capped, escaped target.
    assert_eq!(stored[0].target.as_deref(), Some("db-1\\x1b[2J"));
    assert_eq!(stored[1].event, "grant.revoked");
    assert_eq!(stored[1].user.as_deref(), Some("alice"));
    let ts: serde_json::Value = serde_json::from_str(&stored[1].json).unwrap();
    let ts = OffsetDateTime::parse(
        ts["ts"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        stored[1].at.unix_timestamp_nanos() / 1_000_000,
        ts.unix_timestamp_nanos() / 1_000_000
    );
    let copy = log.database_copy().unwrap();
    assert_eq!((copy.stored, copy.lost, copy.last_error), (2, 0, None));
}

async fn a_full_queue_costs_the_database_copy_not_the_file_line(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    log.attach_database(db.store.clone());
    // The test runtime has one thread: the writer cannot run before the first await, so the
    // queue fills up as it would behind a stalled database.
    let total = QUEUE_CAPACITY + 100;
    for i in 0..total {
        log.record(AuditEvent::SessionEndRequested {
            session: format!("s-{i}"),
            by: "carol".into(),
            client: None,
        });
    }
    log.flush().await;
    assert_eq!(file_lines(&log).len(), total, "every line is in the file");
    let copy = log.database_copy().unwrap();
    assert_eq!(copy.stored, QUEUE_CAPACITY as u64);
    assert_eq!(copy.lost, 100);
    assert!(copy.last_error.unwrap().contains("queue"));
    let stored = read_all(&db.store, &AuditFilter::default(), 1000).await;
    assert_eq!(names(&stored), file_lines(&log)[..QUEUE_CAPACITY]);
}

async fn a_database_outage_costs_the_database_copy_not_the_file_line(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    // A second pool on the same database, closed: every insert fails.
    let gone = Database::open(&db.url).await.unwrap();
    log.attach_database(gone.clone());
    gone.close().await;
    log.record(AuditEvent::GrantRevoked {
        grant: 1,
        user: "alice".into(),
        target: "db-1".into(),
        by: "carol".into(),
        client: None,
    });
    log.flush().await;
    log.record(AuditEvent::GrantRevoked {
        grant: 2,
        user: "alice".into(),
        target: "db-1".into(),
        by: "carol".into(),
        client: None,
    });
    log.flush().await;
    assert_eq!(file_lines(&log).len(), 2);
    let copy = log.database_copy().unwrap();
    assert_eq!((copy.stored, copy.lost), (0, 2));
    assert!(
        copy.last_error.unwrap().contains("database failed"),
        "the reason is kept"
    );
    assert!(
        read_all(&db.store, &AuditFilter::default(), 10)
            .await
            .is_empty()
    );
}

async fn a_log_without_a_database_flushes_at_once(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    log.record(AuditEvent::GrantRevoked {
        grant: 1,
        user: "alice".into(),
        target: "db-1".into(),
        by: "carol".into(),
        client: None,
    });
    log.flush().await;
    assert_eq!(log.database_copy(), None);
    // Opened lazily from its URL, the database is only reached once there is an event.
    let lazy = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    lazy.attach_database_url(db.url.clone());
    lazy.flush().await;
    lazy.record(AuditEvent::GrantRevoked {
        grant: 2,
        user: "alice".into(),
        target: "db-1".into(),
        by: "carol".into(),
        client: None,
    });
    lazy.flush().await;
    let stored = read_all(&db.store, &AuditFilter::default(), 10).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].json.contains(r#""grant":2"#));
}

on_both_databases!(
    stores_and_filters_in_time_order,
    pages_cover_every_event_once,
    order_is_by_event_time_not_by_arrival,
    the_audit_log_copies_every_line,
    a_full_queue_costs_the_database_copy_not_the_file_line,
    a_database_outage_costs_the_database_copy_not_the_file_line,
    a_log_without_a_database_flushes_at_once,
);
