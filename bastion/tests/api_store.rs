//! What the HTTP API reads and writes, against real databases, on SQLite and PostgreSQL: a
//! token is found by its hash only, revoked and expired tokens are refused with the reason,
//! the first revocation stands, names resolve to live tokens; a Slack signature is accepted
//! once, also when two nodes see the same delivery at once; listings are bounded and newest
//! first.

mod support {
    pub mod db;
}

use std::time::Duration;

use bastion::db::{TOKEN_PREFIX, TokenRefusal, TokenRevocation, is_token_id, token_hash};
use support::db::TestDb;

async fn created_tokens_authenticate_and_keep_only_a_hash(db: TestDb) {
    let store = &db.store;
    let created = store
        .create_token("bob", "ci", Duration::from_secs(3600), "root")
        .await
        .unwrap();
    assert!(created.secret.starts_with(TOKEN_PREFIX));
    assert!(is_token_id(&created.token.id), "{}", created.token.id);
    assert_eq!(created.token.user, "bob");
    assert_eq!(created.token.name, "ci");
    assert!(created.token.last_used_at.is_none());

    let token = store
        .authenticate_token(&created.secret)
        .await
        .unwrap()
        .expect("a fresh token is accepted");
    assert_eq!(token.id, created.token.id);
    assert!(
        token.last_used_at.is_none(),
        "read before the use was recorded"
    );
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "the use is recorded");

    // What is stored is the hash, never the token.
    let columns: Vec<String> = stored_values(&db).await;
    assert!(columns.contains(&token_hash(&created.secret)));
    assert!(
        !columns.iter().any(|value| value.contains(&created.secret)),
        "no column holds the token: {columns:?}"
    );

    for forged in [
        String::new(),
        "bst_".to_string(),
        format!("{TOKEN_PREFIX}{}", "A".repeat(43)),
        created.secret.to_uppercase(),
        format!("{}x", created.secret),
        "x".repeat(10_000),
    ] {
        assert_eq!(
            store.authenticate_token(&forged).await.unwrap(),
            Err(TokenRefusal::Unknown),
            "{forged:.20}"
        );
    }
}

/// Every text column of every `api_tokens` row.
async fn stored_values(db: &TestDb) -> Vec<String> {
    use sqlx::Connection;
    let sql = "SELECT id, name, user_name, token_hash, created_by FROM api_tokens";
    let rows: Vec<(String, String, String, String, String)> = match db.backend {
        support::db::Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
        support::db::Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
    };
    rows.into_iter()
        .flat_map(|(a, b, c, d, e)| [a, b, c, d, e])
        .collect()
}

async fn revoked_and_expired_tokens_are_refused_with_the_reason(db: TestDb) {
    let store = &db.store;
    let ci = store
        .create_token("bob", "ci", Duration::from_secs(3600), "root")
        .await
        .unwrap();
    let Some(TokenRevocation::Revoked(revoked)) =
        store.revoke_token(&ci.token.id, "carol").await.unwrap()
    else {
        panic!("the first revocation revokes");
    };
    assert_eq!(revoked.revoked_by.as_deref(), Some("carol"));
    // The first revocation stands; the second is told so.
    let Some(TokenRevocation::AlreadyRevoked(again)) =
        store.revoke_token(&ci.token.id, "dave").await.unwrap()
    else {
        panic!("the second revocation finds it revoked");
    };
    assert_eq!(again.revoked_by.as_deref(), Some("carol"));
    assert_eq!(
        store.authenticate_token(&ci.secret).await.unwrap(),
        Err(TokenRefusal::Revoked)
    );
    assert!(
        store
            .revoke_token("tok-nothing22", "x")
            .await
            .unwrap()
            .is_none()
    );

    let short = store
        .create_token("bob", "short", Duration::from_secs(3600), "root")
        .await
        .unwrap();
    // Its expiry passes (on the database clock, as every check).
    db.execute(format!(
        "UPDATE api_tokens SET expires_at = {} - 1 WHERE id = '{}'",
        db.now_sql(),
        short.token.id
    ))
    .await;
    assert_eq!(
        store.authenticate_token(&short.secret).await.unwrap(),
        Err(TokenRefusal::Expired)
    );
    assert!(
        store
            .create_token(
                "bob",
                "forever",
                Duration::from_secs(400 * 24 * 3600),
                "root"
            )
            .await
            .is_err(),
        "a lifetime over the maximum is refused"
    );
}

async fn names_find_live_tokens_and_ids_any(db: TestDb) {
    let store = &db.store;
    let first = store
        .create_token("bob", "ci", Duration::from_secs(3600), "root")
        .await
        .unwrap();
    store.revoke_token(&first.token.id, "root").await.unwrap();
    let second = store
        .create_token("bob", "ci", Duration::from_secs(3600), "root")
        .await
        .unwrap();
    let by_name = store.find_token("ci").await.unwrap();
    assert_eq!(
        by_name.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![second.token.id.clone()],
        "the revoked one no longer answers to its name"
    );
    let by_id = store.find_token(&first.token.id).await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert!(by_id[0].revoked_at.is_some());
}

async fn a_slack_delivery_is_accepted_once(db: TestDb) {
    let store = &db.store;
    let window = Duration::from_secs(300);
    assert!(store.first_slack_delivery("v0=abc", window).await.unwrap());
    assert!(!store.first_slack_delivery("v0=abc", window).await.unwrap());
    assert!(store.first_slack_delivery("v0=abd", window).await.unwrap());

    // Two nodes receiving the same delivery at once: exactly one acts on it.
    let other = bastion::db::Database::open(&db.url).await.unwrap();
    let (a, b) = tokio::join!(
        store.first_slack_delivery("v0=race", window),
        other.first_slack_delivery("v0=race", window)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one node wins");
    other.close().await;
}

async fn listings_are_bounded_and_newest_first(db: TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for (user, delay) in [("alice", 0), ("bob", 0), ("carol", 3600)] {
        let grant = store
            .add_grant(bastion::db::NewGrant {
                user: user.into(),
                target: "db-1".into(),
                logins: vec!["app".into()],
                starts_in: Duration::from_secs(delay),
                duration: Duration::from_secs(600),
                approved_by: "root".into(),
                reason: "test".into(),
                commands: Vec::new(),
                pty: true,
            })
            .await
            .unwrap();
        ids.push(grant.id);
    }
    let newest: Vec<_> = store
        .recent_grants(false, 2)
        .await
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(newest, [ids[2], ids[1]]);
    let active: Vec<_> = store
        .recent_grants(true, 10)
        .await
        .unwrap()
        .iter()
        .map(|g| g.user.clone())
        .collect();
    assert_eq!(active, ["bob", "alice"], "carol's grant has not started");
    assert!(store.recent_sessions(true, 10).await.unwrap().is_empty());
    assert!(store.recent_requests(None, 10).await.unwrap().is_empty());
}

on_both_databases!(
    listings_are_bounded_and_newest_first,
    created_tokens_authenticate_and_keep_only_a_hash,
    revoked_and_expired_tokens_are_refused_with_the_reason,
    names_find_live_tokens_and_ids_any,
    a_slack_delivery_is_accepted_once,
);
