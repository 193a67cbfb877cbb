//! The recording side of the store against real databases (SQLite and PostgreSQL): full-text
//! search with time offsets, legal holds and pruning, end requests, verification outcomes.

mod support {
    pub mod db;
}

use std::time::Duration;

use bastion::db::{
    Database, DbError, EndRequestOutcome, Grant, NewGrant, SessionEnd, SessionStart, TextKind,
    TextLine, VerifyState,
};
use support::db::TestDb;

const DAY_MS: i64 = 24 * 3600 * 1000;
const NINETY_DAYS: Duration = Duration::from_secs(90 * 24 * 3600);

async fn grant(store: &Database) -> Grant {
    store
        .add_grant(NewGrant {
            user: "alice".into(),
            target: "db-1".into(),
            logins: vec!["app".into()],
            starts_in: Duration::ZERO,
            duration: Duration::from_secs(3600),
            approved_by: "carol".into(),
            reason: "INC-7".into(),
            commands: Vec::new(),
            pty: true,
        })
        .await
        .unwrap()
}

/// Starts session `id` (and ends it unless `running`).
async fn session(store: &Database, grant: &Grant, id: &str, running: bool) {
    store
        .session_started(&SessionStart {
            id: id.into(),
            user: grant.user.clone(),
            target: grant.target.clone(),
            login: "app".into(),
            grant_id: grant.id,
            command: None,
            interactive: true,
            client: "127.0.0.1:50000".into(),
            recording: format!("file:///rec/{id}/"),
            recorded: true,
            node: "node-a".into(),
        })
        .await
        .unwrap();
    if !running {
        store
            .session_ended(
                id,
                &SessionEnd {
                    reason: "exit".into(),
                    bytes: 100,
                    recording_complete: true,
                },
            )
            .await
            .unwrap();
    }
}

/// Makes session `id` end `days` ago (a running one stays running) and start a second earlier.
async fn age(db: &TestDb, id: &str, days: i64) {
    db.execute(format!(
        "UPDATE sessions SET started_at = {now} - {ms} - 1000, \
         ended_at = CASE WHEN ended_at IS NULL THEN NULL ELSE {now} - {ms} END WHERE id = '{id}'",
        now = db.now_sql(),
        ms = days * DAY_MS
    ))
    .await;
}

fn text(t: f64, kind: TextKind, text: &str) -> TextLine {
    TextLine {
        t,
        kind,
        text: text.into(),
    }
}

/// A session's hits as data: (t, kind, text).
type Hits = Vec<(f64, &'static str, String)>;

/// Expected search results: (session id, hits).
type Expected = Vec<(&'static str, Vec<(f64, &'static str, &'static str)>)>;

/// (session id, hits) of a search, for comparing with expectations as data.
async fn found(store: &Database, query: &str) -> Vec<(String, Hits)> {
    store
        .search(query, 100, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let hits = m
                .hits
                .into_iter()
                .map(|h| (h.t, h.kind.as_str(), h.text))
                .collect();
            (m.id, hits)
        })
        .collect()
}

async fn search_finds_commands_and_output_with_offsets(db: TestDb) {
    let store = &db.store;
    let g = grant(store).await;
    session(store, &g, "old", false).await;
    age(&db, "old", 2).await;
    session(store, &g, "new", false).await;
    store
        .replace_recording_text(
            "old",
            &[
                text(0.0, TextKind::Command, "psql app"),
                text(12.5, TextKind::Command, "DROP TABLE users;"),
                text(
                    12.6,
                    TextKind::Output,
                    "ERROR:  permission denied for table users",
                ),
                text(40.0, TextKind::Marker, "end: exit"),
            ],
            true,
        )
        .await
        .unwrap();
    store
        .replace_recording_text(
            "new",
            &[
                text(
                    3.25,
                    TextKind::Output,
                    "hint: drop  table if exists archive",
                ),
                text(7.0, TextKind::Command, "rm -rf /tmp/cache && ls"),
                text(9.0, TextKind::Command, "rm rf tmp"),
            ],
            true,
        )
        .await
        .unwrap();

    let cases: Vec<(&str, Expected)> = vec![
        // Words in order, case folded, any separation; newest session first.
        (
            "DROP TABLE",
            vec![
                (
                    "new",
                    vec![(3.25, "output", "hint: drop  table if exists archive")],
                ),
                ("old", vec![(12.5, "command", "DROP TABLE users;")]),
            ],
        ),
        (
            "table users",
            vec![(
                "old",
                vec![
                    (12.5, "command", "DROP TABLE users;"),
                    (12.6, "output", "ERROR:  permission denied for table users"),
                ],
            )],
        ),
        // Punctuation makes it an exact (case-insensitive) substring.
        (
            "rm -rf /",
            vec![("new", vec![(7.0, "command", "rm -rf /tmp/cache && ls")])],
        ),
        (
            "RM -RF",
            vec![("new", vec![(7.0, "command", "rm -rf /tmp/cache && ls")])],
        ),
        // Without any word it is a substring scan.
        (
            "&&",
            vec![("new", vec![(7.0, "command", "rm -rf /tmp/cache && ls")])],
        ),
        (
            "end: exit",
            vec![("old", vec![(40.0, "marker", "end: exit")])],
        ),
        // Words must be consecutive and in order.
        ("users table", vec![]),
        ("TRUNCATE", vec![]),
    ];
    for (query, want) in cases {
        let want: Vec<(String, Hits)> = want
            .into_iter()
            .map(|(id, hits)| {
                (
                    id.to_string(),
                    hits.into_iter()
                        .map(|(t, k, x)| (t, k, x.to_string()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(found(store, query).await, want, "query {query:?}");
    }

    let matches = store.search("table", 100, 20).await.unwrap();
    let old = matches.iter().find(|m| m.id == "old").unwrap();
    assert_eq!(
        (old.user.as_str(), old.target.as_str(), old.login.as_str()),
        ("alice", "db-1", "app")
    );
    assert_eq!(old.total_hits, 2);
    // Limits: one session, one hit, but the total still counts every hit.
    let limited = store.search("table", 1, 1).await.unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].id, "new");
    assert_eq!((limited[0].hits.len(), limited[0].total_hits), (1, 1));
    let limited = store.search("users", 5, 1).await.unwrap();
    assert_eq!((limited[0].hits.len(), limited[0].total_hits), (1, 2));
}

async fn reindexing_replaces_text_and_tracks_completeness(db: TestDb) {
    let store = &db.store;
    let g = grant(store).await;
    session(store, &g, "s1", false).await;
    session(store, &g, "live", true).await;
    assert_eq!(
        store.sessions_to_index().await.unwrap(),
        ["s1"],
        "running sessions wait"
    );

    let first = [text(1.0, TextKind::Command, "uptime")];
    store
        .replace_recording_text("s1", &first, false)
        .await
        .unwrap();
    assert_eq!(store.recording_text("s1").await.unwrap(), first);
    assert_eq!(
        store.sessions_to_index().await.unwrap(),
        ["s1"],
        "a provisional index is retried"
    );
    assert!(
        store
            .session("s1")
            .await
            .unwrap()
            .unwrap()
            .indexed_at
            .is_none()
    );

    let second = [
        text(1.0, TextKind::Command, "uptime"),
        text(1.1, TextKind::Output, "up 3 days"),
    ];
    store
        .replace_recording_text("s1", &second, true)
        .await
        .unwrap();
    assert_eq!(
        store.recording_text("s1").await.unwrap(),
        second,
        "no duplicates"
    );
    assert!(store.sessions_to_index().await.unwrap().is_empty());
    assert!(
        store
            .session("s1")
            .await
            .unwrap()
            .unwrap()
            .indexed_at
            .is_some()
    );
    assert_eq!(found(store, "uptime").await.len(), 1);

    // Many lines go in batches.
    let many: Vec<TextLine> = (0..1234)
        .map(|i| {
            text(
                f64::from(i),
                TextKind::Output,
                &format!("line {i} of output"),
            )
        })
        .collect();
    store
        .replace_recording_text("s1", &many, true)
        .await
        .unwrap();
    assert_eq!(store.recording_text("s1").await.unwrap().len(), 1234);
    let hit = store.search("line 1233", 10, 10).await.unwrap();
    assert_eq!(
        hit[0].hits,
        [text(1233.0, TextKind::Output, "line 1233 of output")]
    );

    let err = store
        .replace_recording_text("nope", &first, true)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::NoSuchSession(_)), "{err}");
}

async fn prune_respects_holds_and_age(db: TestDb) {
    let store = &db.store;
    let g = grant(store).await;
    for id in ["ancient", "held", "recent"] {
        session(store, &g, id, false).await;
        store
            .replace_recording_text(id, &[text(1.0, TextKind::Command, "whoami")], true)
            .await
            .unwrap();
    }
    session(store, &g, "running", true).await;
    age(&db, "ancient", 100).await;
    age(&db, "held", 120).await;
    age(&db, "running", 200).await;
    age(&db, "recent", 10).await;

    let held = store.hold("held", "case 2026-17", "dora").await.unwrap();
    assert!(!held.was_held);
    assert!(held.row.legal_hold);
    assert_eq!(held.row.hold_reason.as_deref(), Some("case 2026-17"));
    assert_eq!(held.row.held_by.as_deref(), Some("dora"));
    assert!(held.row.held_at.is_some());
    let again = store
        .hold("held", "case 2026-17, extended", "erin")
        .await
        .unwrap();
    assert!(again.was_held);
    assert_eq!(again.row.held_by.as_deref(), Some("erin"));

    let ids = |rows: Vec<bastion::db::SessionRow>| -> Vec<String> {
        rows.into_iter().map(|r| r.id).collect()
    };
    // Oldest end first; held ones are listed (the CLI reports them), running ones never.
    assert_eq!(
        ids(store.prune_candidates(NINETY_DAYS).await.unwrap()),
        ["held", "ancient"]
    );
    assert!(
        !store
            .claim_prune("held", "carol", NINETY_DAYS)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_prune("recent", "carol", NINETY_DAYS)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_prune("running", "carol", NINETY_DAYS)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_prune("ancient", "carol", NINETY_DAYS)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_prune("ancient", "carol", NINETY_DAYS)
            .await
            .unwrap(),
        "once"
    );

    let pruned = store.session("ancient").await.unwrap().unwrap();
    assert!(pruned.pruned_at.is_some());
    assert_eq!(pruned.pruned_by.as_deref(), Some("carol"));
    assert!(store.recording_text("ancient").await.unwrap().is_empty());
    assert_eq!(
        found(store, "whoami")
            .await
            .into_iter()
            .map(|f| f.0)
            .collect::<Vec<_>>(),
        ["recent", "held"],
        "pruned text is gone from search"
    );
    assert_eq!(
        ids(store.prune_candidates(NINETY_DAYS).await.unwrap()),
        ["held"]
    );
    let err = store.hold("ancient", "too late", "dora").await.unwrap_err();
    assert!(
        matches!(err, DbError::SessionPruned(ref id) if id == "ancient"),
        "{err}"
    );

    // A failed delete gives the recording back to the next prune (and the indexer).
    store.unclaim_prune("ancient").await.unwrap();
    assert_eq!(
        ids(store.prune_candidates(NINETY_DAYS).await.unwrap()),
        ["held", "ancient"]
    );
    assert!(
        store
            .sessions_to_index()
            .await
            .unwrap()
            .contains(&"ancient".to_string())
    );

    let released = store.release("held").await.unwrap();
    assert!(released.was_held && !released.row.legal_hold);
    assert_eq!(released.row.hold_reason, None);
    assert!(!store.release("held").await.unwrap().was_held);
    assert!(
        store
            .claim_prune("held", "carol", NINETY_DAYS)
            .await
            .unwrap()
    );

    assert!(matches!(
        store.hold("nope", "r", "x").await.unwrap_err(),
        DbError::NoSuchSession(_)
    ));
}

async fn end_requests_reach_running_sessions_only(db: TestDb) {
    let store = &db.store;
    let g = grant(store).await;
    session(store, &g, "live", true).await;
    session(store, &g, "done", false).await;
    assert!(store.pending_end_requests().await.unwrap().is_empty());

    match store.request_end("live", "carol").await.unwrap() {
        EndRequestOutcome::Requested(row) => {
            assert_eq!(row.end_requested_by.as_deref(), Some("carol"));
            assert!(row.end_requested_at.is_some());
        }
        other => panic!("expected Requested, got {other:?}"),
    }
    assert!(matches!(
        store.request_end("live", "dave").await.unwrap(),
        EndRequestOutcome::AlreadyRequested(row) if row.end_requested_by.as_deref() == Some("carol")
    ));
    assert!(matches!(
        store.request_end("done", "carol").await.unwrap(),
        EndRequestOutcome::AlreadyEnded(_)
    ));
    assert!(matches!(
        store.request_end("nope", "carol").await.unwrap_err(),
        DbError::NoSuchSession(_)
    ));
    let pending = store.pending_end_requests().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].session.as_str(), pending[0].by.as_str()),
        ("live", "carol")
    );

    store
        .session_ended(
            "live",
            &SessionEnd {
                reason: "terminated".into(),
                bytes: 1,
                recording_complete: true,
            },
        )
        .await
        .unwrap();
    assert!(store.pending_end_requests().await.unwrap().is_empty());
}

async fn verification_outcomes_are_kept(db: TestDb) {
    let store = &db.store;
    let g = grant(store).await;
    session(store, &g, "s1", false).await;
    assert_eq!(
        store.session("s1").await.unwrap().unwrap().verify_status,
        None
    );
    for state in [
        VerifyState::Truncated,
        VerifyState::Tampered,
        VerifyState::Complete,
    ] {
        assert!(store.record_verification("s1", state).await.unwrap());
        let row = store.session("s1").await.unwrap().unwrap();
        assert_eq!(row.verify_status, Some(state));
        assert!(row.verified_at.is_some());
    }
    assert!(
        !store
            .record_verification("orphan", VerifyState::Complete)
            .await
            .unwrap()
    );
}

on_both_databases!(
    search_finds_commands_and_output_with_offsets,
    reindexing_replaces_text_and_tracks_completeness,
    prune_respects_holds_and_age,
    end_requests_reach_running_sessions_only,
    verification_outcomes_are_kept,
);
