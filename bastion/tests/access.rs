//! The grant service (`bastion::access::Access`) against real databases: every check runs on
//! SQLite and on PostgreSQL (see `support/db.rs`), with a real audit log file.

mod support {
    pub mod access;
    pub mod db;
}

use std::time::Duration;

use bastion::access::{AccessError, GrantRequest, Rejection, Revocation, Verdict};
use serde_json::{Value, json};
use support::access::Service;
use support::db::TestDb;

const CONFIG: &str = r#"
[[users]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP"]

[[users]]
name = "bob"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP"]

[[targets]]
name = "db-1"
address = "127.0.0.1:2200"
logins = ["app", "root"]
identity = "target_key"

[[targets]]
name = "db-2"
address = "127.0.0.1:2201"
logins = ["deploy"]
identity = "target_key"
"#;

const CLIENT: &str = "198.51.100.7:50022";
const HOUR: Duration = Duration::from_secs(3600);

fn request(user: &str, target: &str, logins: &[&str]) -> GrantRequest {
    GrantRequest {
        user: user.into(),
        target: target.into(),
        logins: logins.iter().map(|l| l.to_string()).collect(),
        starts_in: Duration::ZERO,
        duration: HOUR,
        reason: "INC-42 disk full".into(),
        approved_by: "carol".into(),
        commands: Vec::new(),
        pty: true,
    }
}

fn denial(verdict: Verdict<'_>) -> String {
    match verdict {
        Verdict::Deny(denied) => denied.reason,
        Verdict::Allow(allowed) => panic!("expected a denial, got {allowed:?}"),
    }
}

async fn creating_a_grant_stores_it_and_audits_it(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let grant = service
        .access
        .create_grant(request("alice", "db-1", &["root", "app", "root"]))
        .await
        .unwrap();
    assert_eq!(grant.logins, ["root", "app"], "de-duplicated, order kept");
    assert_eq!(grant.expires_at - grant.starts_at, time::Duration::HOUR);
    assert_eq!(db.store.grant(grant.id).await.unwrap(), Some(grant.clone()));

    let defaulted = service
        .access
        .create_grant(request("bob", "db-2", &[]))
        .await
        .unwrap();
    assert_eq!(defaulted.logins, ["deploy"], "the target's default login");

    // Each grant opens at once: its creation and its start are both audited.
    let events: Vec<String> = service
        .audit()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            "grant.created",
            "grant.started",
            "grant.created",
            "grant.started"
        ]
    );
    let audit: Vec<Value> = service
        .audit()
        .into_iter()
        .filter(|e| e["event"] != "grant.started")
        .collect();
    let created = &audit[0];
    assert_eq!(created["origin"], "admin");
    assert_eq!(created["event"], "grant.created");
    assert_eq!(created["grant"], grant.id);
    assert_eq!(created["user"], "alice");
    assert_eq!(created["target"], "db-1");
    assert_eq!(created["logins"], json!(["root", "app"]));
    assert_eq!(created["approved_by"], "carol");
    assert_eq!(created["reason"], "INC-42 disk full");
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires, grant.expires_at);
}

async fn a_refused_request_writes_nothing(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let mut blank = request("alice", "db-1", &[]);
    blank.reason = "  ".into();
    let mut hostile = request("alice", "db-1", &[]);
    hostile.reason = "x\x1b]0;pwned\x07\x1b[2J".into();
    let mut anonymous = request("alice", "db-1", &[]);
    anonymous.approved_by = String::new();
    let mut endless = request("alice", "db-1", &[]);
    endless.starts_in = Duration::from_secs(200 * 365 * 24 * 3600);
    let cases = [
        (request("mallory", "db-1", &[]), "unknown user \"mallory\""),
        (request("alice", "db-9", &[]), "unknown target \"db-9\""),
        (
            request("alice", "db-2", &["root"]),
            "login \"root\" is not allowed on target \"db-2\" (allowed: deploy)",
        ),
        (blank, "--reason must not be empty"),
        (
            hostile,
            "--reason must not contain control characters (found \\x1b)",
        ),
        (anonymous, "--approved-by must not be empty"),
        (endless, "a grant must end within"),
    ];
    for (request, want) in cases {
        let err = service.access.create_grant(request).await.unwrap_err();
        assert!(
            matches!(err, AccessError::Rejected(_)),
            "a rule refusal, not {err:?}"
        );
        assert!(err.to_string().starts_with(want), "{err}");
        assert!(!err.to_string().contains('\x1b'), "one printable line");
    }
    assert!(db.store.list_grants(false).await.unwrap().is_empty());
    assert!(service.audit().is_empty());
}

async fn revoking_audits_only_the_revocation_that_took_effect(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let grant = service
        .access
        .create_grant(request("alice", "db-1", &[]))
        .await
        .unwrap();
    match service.access.revoke_grant(grant.id, "erin").await.unwrap() {
        Revocation::Revoked(revoked) => {
            assert_eq!(revoked.revoked_by.as_deref(), Some("erin"));
            assert!(revoked.revoked_at.is_some());
        }
        other => panic!("{other:?}"),
    }
    match service
        .access
        .revoke_grant(grant.id, "frank")
        .await
        .unwrap()
    {
        Revocation::AlreadyRevoked(again) => {
            assert_eq!(
                again.revoked_by.as_deref(),
                Some("erin"),
                "the first stands"
            )
        }
        other => panic!("{other:?}"),
    }
    match service.access.revoke_grant(999_999, "erin").await {
        Err(AccessError::NoSuchGrant(999_999)) => {}
        other => panic!("{other:?}"),
    }
    match service.access.revoke_grant(grant.id, "erin\x1b[2J").await {
        Err(AccessError::Rejected(Rejection::ControlCharacter { .. })) => {}
        other => panic!("{other:?}"),
    }
    let events: Vec<(String, Value)> = service
        .audit()
        .into_iter()
        .filter(|e| e["event"] != "grant.started")
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["by"].clone()))
        .collect();
    assert_eq!(
        events,
        [
            ("grant.created".to_string(), Value::Null),
            ("grant.revoked".to_string(), json!("erin")),
        ]
    );
}

async fn concurrent_revokes_are_audited_once(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    for _ in 0..5 {
        let grant = service
            .access
            .create_grant(request("alice", "db-1", &[]))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            service.access.revoke_grant(grant.id, "erin"),
            service.access.revoke_grant(grant.id, "frank"),
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                Revocation::Revoked(g) => g.revoked_by.clone(),
                Revocation::AlreadyRevoked(_) => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let stored = db.store.grant(grant.id).await.unwrap().unwrap();
        assert_eq!(stored.revoked_by, Some(winners[0].clone()));
    }
    let revocations = service
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "grant.revoked")
        .count();
    assert_eq!(revocations, 5);
}

async fn decide_allows_with_the_configured_target_and_login(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let grant = service
        .access
        .create_grant(request("alice", "db-1", &["root", "app"]))
        .await
        .unwrap();
    for (asked, want) in [(None, "root"), (Some("app"), "app")] {
        match service
            .access
            .decide("alice", "db-1", asked, CLIENT)
            .await
            .unwrap()
        {
            Verdict::Allow(allowed) => {
                assert_eq!(allowed.target.name, "db-1");
                assert_eq!(allowed.target.address, "127.0.0.1:2200");
                assert_eq!(allowed.grant.id, grant.id);
                assert_eq!(allowed.login, want);
            }
            Verdict::Deny(denied) => panic!("{denied:?}"),
        }
    }
    let events: Vec<Value> = service.audit();
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "grant.created" || e["event"] == "grant.started"),
        "an allowed request writes no denial: {events:?}"
    );
}

async fn every_denial_is_a_value_and_audited(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let access = &service.access;
    let grant = access
        .create_grant(request("alice", "db-1", &["app"]))
        .await
        .unwrap();
    let cases = [
        ("db-9", None, "no such target"),
        (
            "db-1",
            Some("postgres"),
            "login \"postgres\" is not offered on this target (offered: app, root)",
        ),
        (
            "db-1",
            Some("root"),
            "your grant does not allow login \"root\" (allowed: app)",
        ),
        ("db-2", None, "you have no grant for this target"),
    ];
    for (target, login, want) in cases {
        let verdict = access.decide("alice", target, login, CLIENT).await.unwrap();
        assert_eq!(denial(verdict), want);
    }
    access.revoke_grant(grant.id, "erin").await.unwrap();
    let verdict = access.decide("alice", "db-1", None, CLIENT).await.unwrap();
    assert!(
        denial(verdict).starts_with("your grant was revoked at "),
        "revocation is seen at once"
    );

    let denied: Vec<Value> = service
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "access.denied")
        .collect();
    assert_eq!(denied.len(), 5);
    assert_eq!(denied[0]["user"], "alice");
    assert_eq!(denied[0]["target"], "db-9");
    assert_eq!(denied[0]["login"], Value::Null);
    assert_eq!(denied[0]["reason"], "no such target");
    assert_eq!(denied[0]["client"], CLIENT);
    assert_eq!(denied[1]["login"], "postgres");
    assert_eq!(
        denied[1]["reason"],
        "login \"postgres\" is not offered on this target (offered: app, root)"
    );
    assert_eq!(denied[3]["target"], "db-2");
}

async fn decide_judges_windows_on_the_database_clock(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let mut later = request("alice", "db-1", &[]);
    later.starts_in = HOUR;
    let grant = service.access.create_grant(later).await.unwrap();
    let verdict = service
        .access
        .decide("alice", "db-1", None, CLIENT)
        .await
        .unwrap();
    assert!(denial(verdict).starts_with("your grant starts at "));
    // Move the window into the past on the database's own clock.
    db.execute(format!(
        "UPDATE grants SET starts_at = {now} - 7200000, expires_at = {now} - 3600000 \
         WHERE id = {id}",
        now = db.now_sql(),
        id = grant.id
    ))
    .await;
    let verdict = service
        .access
        .decide("alice", "db-1", None, CLIENT)
        .await
        .unwrap();
    assert!(denial(verdict).starts_with("your grant expired at "));
}

async fn each_expiry_is_audited_once(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let grant = service
        .access
        .create_grant(request("alice", "db-1", &[]))
        .await
        .unwrap();
    let revoked = service
        .access
        .create_grant(request("alice", "db-1", &[]))
        .await
        .unwrap();
    service
        .access
        .revoke_grant(revoked.id, "erin")
        .await
        .unwrap();
    assert!(service.access.record_expired().await.unwrap().is_empty());
    db.execute(format!(
        "UPDATE grants SET starts_at = {now} - 7200000, expires_at = {now} - 3600000",
        now = db.now_sql()
    ))
    .await;
    let expired = service.access.record_expired().await.unwrap();
    let ids: Vec<_> = expired.iter().map(|g| g.id).collect();
    assert_eq!(ids, [grant.id], "a revoked grant does not also expire");
    assert!(service.access.record_expired().await.unwrap().is_empty());
    let audit = service.audit();
    let expiries: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "grant.expired")
        .collect();
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0]["grant"], grant.id);
    assert_eq!(expiries[0]["user"], "alice");
    assert_eq!(expiries[0]["target"], "db-1");
}

async fn a_hostile_target_name_is_denied_and_capped_in_the_audit_log(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let target = format!("\x1b]0;pwned\x07{}", "t".repeat(30_000));
    let login = "l".repeat(30_000);
    let verdict = service
        .access
        .decide("alice", &target, None, CLIENT)
        .await
        .unwrap();
    assert_eq!(denial(verdict), "no such target");
    service
        .access
        .create_grant(request("alice", "db-1", &[]))
        .await
        .unwrap();
    let verdict = service
        .access
        .decide("alice", "db-1", Some(&login), CLIENT)
        .await
        .unwrap();
    assert!(denial(verdict).starts_with("login \"lll"));
    let text = std::fs::read_to_string(&service.audit_path).unwrap();
    assert!(text.len() < 3000, "{} bytes written", text.len());
    let denied: Vec<Value> = service
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "access.denied")
        .collect();
    let shown = denied[0]["target"].as_str().unwrap();
    assert!(shown.starts_with("\\x1b]0;pwned\\x07ttt"), "{shown}");
    assert!(shown.contains("sha256:"), "{shown}");
    assert!(
        denied[1]["login"]
            .as_str()
            .unwrap()
            .contains("[30000 bytes, sha256:")
    );
}

async fn decide_fails_closed_when_the_database_is_gone(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    db.store.close().await;
    match service.access.decide("alice", "db-1", None, CLIENT).await {
        Err(AccessError::Database(_)) => {}
        other => panic!("expected a database error, got {other:?}"),
    }
    assert!(service.audit().is_empty(), "an error is not a denial");
}

on_both_databases!(
    creating_a_grant_stores_it_and_audits_it,
    a_refused_request_writes_nothing,
    revoking_audits_only_the_revocation_that_took_effect,
    concurrent_revokes_are_audited_once,
    decide_allows_with_the_configured_target_and_login,
    every_denial_is_a_value_and_audited,
    decide_judges_windows_on_the_database_clock,
    each_expiry_is_audited_once,
    a_hostile_target_name_is_denied_and_capped_in_the_audit_log,
    decide_fails_closed_when_the_database_is_gone,
);
