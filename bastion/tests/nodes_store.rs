//! Several nodes on one database, against real databases (SQLite and PostgreSQL, see
//! `support/db.rs`): node registration with every signing key a node used, the heartbeat and
//! stale sessions, target host keys learned once for all nodes; on PostgreSQL, a revocation or
//! end request made through one handle wakes another handle's `changes()` at once; on
//! SQLite, a second daemon cannot take the single-node lock.

mod support {
    pub mod db;
}

use std::time::{Duration, Instant};

use bastion::db::{
    Database, Grant, NewGrant, NodeLockError, NodeStart, SessionEnd, SessionStart, lock_sqlite,
};
use support::db::{Backend, TestDb, with_postgres};

fn start(node: &str, key: Option<&str>) -> NodeStart {
    NodeStart {
        node_id: node.into(),
        signing_key: key.map(str::to_string),
        host: format!("{node}.example.net"),
        pid: 4242,
    }
}

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

async fn session(store: &Database, id: &str, grant: &Grant, node: &str) {
    store
        .session_started(&SessionStart {
            id: id.into(),
            user: grant.user.clone(),
            target: grant.target.clone(),
            login: "app".into(),
            grant_id: grant.id,
            command: None,
            interactive: true,
            client: "127.0.0.1:50022".into(),
            recording: id.into(),
            recorded: true,
            node: node.into(),
        })
        .await
        .unwrap();
}

const KEY_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

async fn nodes_register_and_keep_every_signing_key(db: TestDb) {
    let store = &db.store;
    assert_eq!(
        store.register_node(&start("a", Some(KEY_1))).await.unwrap(),
        None
    );
    let a = store.node("a").await.unwrap().unwrap();
    assert_eq!(
        (a.host.as_str(), a.pid, a.started_at),
        ("a.example.net", 4242, a.last_seen)
    );
    assert!(a.silent_for < Duration::from_secs(5), "{a:?}");
    // A restart with a rotated key (upper case is the same key written differently).
    let previous = store
        .register_node(&start("a", Some(&KEY_2.to_uppercase())))
        .await
        .unwrap();
    assert_eq!(previous.map(|p| p.node_id), Some("a".to_string()));
    store.register_node(&start("b", None)).await.unwrap();
    let keys: Vec<(String, String)> = store
        .node_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.node_id, k.key))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("a".to_string(), KEY_1.to_string()),
            ("a".to_string(), KEY_2.to_string())
        ],
        "old keys stay so old recordings verify; b registered none"
    );
    let nodes: Vec<String> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node_id)
        .collect();
    assert_eq!(nodes, ["a", "b"]);

    db.execute("UPDATE bastion_nodes SET last_seen = last_seen - 90000 WHERE node_id = 'a'".into())
        .await;
    assert!(store.node("a").await.unwrap().unwrap().silent_for >= Duration::from_secs(90));
    assert!(store.node_heartbeat("a").await.unwrap());
    assert!(store.node("a").await.unwrap().unwrap().silent_for < Duration::from_secs(5));
    assert!(!store.node_heartbeat("nobody").await.unwrap());
}

async fn open_sessions_of_silent_nodes_are_stale(db: TestDb) {
    let store = &db.store;
    let grant = grant(store).await;
    store.register_node(&start("a", None)).await.unwrap();
    store.register_node(&start("b", None)).await.unwrap();
    session(store, "s-a", &grant, "a").await;
    session(store, "s-b", &grant, "b").await;
    session(store, "s-b-ended", &grant, "b").await;
    session(store, "s-ghost", &grant, "ghost").await;
    store
        .session_ended(
            "s-b-ended",
            &SessionEnd {
                reason: "exit".into(),
                bytes: 1,
                recording_complete: true,
            },
        )
        .await
        .unwrap();
    let stale_after = Duration::from_secs(60);
    let ids = |stale: Vec<bastion::db::StaleSession>| -> Vec<String> {
        stale.into_iter().map(|s| s.session.id).collect()
    };
    // Every node alive: only the session of a node that never registered.
    assert_eq!(
        ids(store.stale_sessions(stale_after).await.unwrap()),
        ["s-ghost"]
    );

    // b's last word was two minutes ago on the database clock.
    db.execute(format!(
        "UPDATE bastion_nodes SET last_seen = {} - 120000 WHERE node_id = 'b'",
        db.now_sql()
    ))
    .await;
    let stale = store.stale_sessions(stale_after).await.unwrap();
    let b = stale
        .iter()
        .find(|s| s.session.id == "s-b")
        .expect("s-b is stale");
    assert_eq!(b.session.node.as_deref(), Some("b"));
    let silent = b.silent_for.unwrap();
    assert!(
        (Duration::from_secs(120)..Duration::from_secs(130)).contains(&silent),
        "{silent:?}"
    );
    assert!(b.last_seen.is_some());
    let ghost = stale.iter().find(|s| s.session.id == "s-ghost").unwrap();
    assert_eq!((ghost.last_seen, ghost.silent_for), (None, None));
    assert_eq!(ids(stale), ["s-b", "s-ghost"]);
    // A longer tolerance: b is not silent long enough.
    assert_eq!(
        ids(store
            .stale_sessions(Duration::from_secs(600))
            .await
            .unwrap()),
        ["s-ghost"]
    );
    // b speaks again.
    store.node_heartbeat("b").await.unwrap();
    assert_eq!(
        ids(store.stale_sessions(stale_after).await.unwrap()),
        ["s-ghost"]
    );
}

async fn a_host_key_learned_by_one_node_binds_the_others(db: TestDb) {
    let store = &db.store;
    let other = Database::open(&db.url).await.unwrap();
    assert_eq!(store.target_host_key("db-1").await.unwrap(), None);
    let (stored, learned) = store
        .learn_target_host_key("db-1", "10.0.0.1:22", "ssh-ed25519 AAAAfirst", "a")
        .await
        .unwrap();
    assert!(learned);
    assert_eq!(
        (
            stored.host_key.as_str(),
            stored.learned_by.as_str(),
            stored.address.as_str()
        ),
        ("ssh-ed25519 AAAAfirst", "a", "10.0.0.1:22")
    );
    // Node b, through its own pool, meets another key: it gets a's key back, not learned.
    let (stored, learned) = other
        .learn_target_host_key("db-1", "10.0.0.1:22", "ssh-ed25519 AAAAsecond", "b")
        .await
        .unwrap();
    assert!(!learned);
    assert_eq!(stored.host_key, "ssh-ed25519 AAAAfirst");
    assert_eq!(
        other
            .target_host_key("db-1")
            .await
            .unwrap()
            .unwrap()
            .learned_by,
        "a"
    );
    other.close().await;
}

async fn sqlite_has_no_listener(db: TestDb) {
    match db.backend {
        Backend::Sqlite => assert!(db.store.changes().await.is_none()),
        Backend::Postgres => assert!(db.store.changes().await.is_some()),
    }
}

on_both_databases!(
    nodes_register_and_keep_every_signing_key,
    open_sessions_of_silent_nodes_are_stale,
    a_host_key_learned_by_one_node_binds_the_others,
    sqlite_has_no_listener,
);

/// Waits for one change on `changes`, failing after 2 s; returns how long it took.
async fn changed_within_2s(changes: &mut bastion::db::Changes, what: &str) -> Duration {
    let began = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), changes.next())
        .await
        .unwrap_or_else(|_| panic!("no change seen within 2 s of {what}"))
        .expect("the listener is alive");
    began.elapsed()
}

#[tokio::test]
async fn a_revocation_or_end_request_on_one_node_wakes_the_other() {
    with_postgres(|db| async move {
        let node_a = &db.store;
        let node_b = Database::open(&db.url).await.unwrap();
        let mut changes = node_b.changes().await.expect("PostgreSQL listens");
        // Nothing happened yet: no wakeup.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), changes.next())
                .await
                .is_err(),
            "a wakeup without a change"
        );
        let grant = grant(node_a).await;
        session(node_a, "s-1", &grant, "b").await;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), changes.next())
                .await
                .is_err(),
            "starting a grant or a session ends nothing: no wakeup"
        );

        node_a.revoke_grant(grant.id, "carol").await.unwrap();
        let took = changed_within_2s(&mut changes, "a revocation").await;
        eprintln!("revocation seen by the other handle after {took:?}");

        node_a.request_end("s-1", "carol").await.unwrap();
        changed_within_2s(&mut changes, "an end request").await;
        node_b.close().await;
    })
    .await;
}

#[test]
fn a_second_daemon_cannot_lock_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("bastion.db");
    let url = format!("sqlite://{}", path.display());
    let first = lock_sqlite(&url).unwrap().expect("a SQLite file is locked");
    let lock_file = dir.path().join("state").join("bastion.db.lock");
    assert_eq!(first.path, lock_file);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&lock_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    match lock_sqlite(&url) {
        Err(err @ NodeLockError::Held { .. }) => assert_eq!(
            err.to_string(),
            format!(
                "another bastion daemon is using the SQLite database {}; SQLite is single-node: \
                 use PostgreSQL (database_url = \"postgres://...\") to run several nodes",
                path.display()
            )
        ),
        other => panic!("expected the lock to be held, got {other:?}"),
    }
    drop(first);
    assert!(
        lock_sqlite(&url).unwrap().is_some(),
        "free again once the first is gone"
    );
    assert!(
        lock_sqlite("postgres://postgres@127.0.0.1/x")
            .unwrap()
            .is_none()
    );
    assert!(lock_sqlite("sqlite::memory:").unwrap().is_none());
}
