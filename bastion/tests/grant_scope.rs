//! A grant's scope (allowed commands, `pty`) against real databases, on SQLite and on
//! PostgreSQL (see `support/db.rs`): the fields round-trip through every query that reads
//! grants, rows written before the columns existed admit anything, and
//! `Access::check_command` refuses what the scope does not admit and audits it.

mod support {
    pub mod access;
    pub mod db;
}

use std::time::Duration;

use bastion::access::GrantRequest;
use bastion::db::{Decision, Grant, NewGrant};
use serde_json::Value;
use support::access::Service;
use support::db::TestDb;

const HOUR: Duration = Duration::from_secs(3600);
const CLIENT: &str = "198.51.100.7:50022";

const CONFIG: &str = r#"
[[users]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP"]

[[targets]]
name = "db-1"
address = "127.0.0.1:2200"
logins = ["app", "root"]
identity = "target_key"
"#;

fn scoped(commands: &[&str], pty: bool) -> NewGrant {
    NewGrant {
        user: "alice".into(),
        target: "db-1".into(),
        logins: vec!["app".into()],
        starts_in: Duration::ZERO,
        duration: HOUR,
        approved_by: "carol".into(),
        reason: "INC-9".into(),
        commands: commands.iter().map(|c| c.to_string()).collect(),
        pty,
    }
}

async fn scope_round_trips_through_every_read(db: TestDb) {
    let store = &db.store;
    let patterns = ["systemctl status *", "journalctl -u app *", "ünï ?"];
    let grant = store.add_grant(scoped(&patterns, false)).await.unwrap();
    assert_eq!(grant.commands, patterns);
    assert!(!grant.pty);
    let open = store.add_grant(scoped(&[], true)).await.unwrap();
    assert!(open.commands.is_empty() && open.pty);

    assert_eq!(store.grant(grant.id).await.unwrap().as_ref(), Some(&grant));
    assert_eq!(
        store.list_grants(false).await.unwrap(),
        [grant.clone(), open.clone()]
    );
    assert_eq!(
        store.list_grants(true).await.unwrap(),
        [grant.clone(), open.clone()]
    );
    assert_eq!(
        store.grants_by_id(&[grant.id, open.id]).await.unwrap(),
        [grant.clone(), open.clone()]
    );
    // With the open grant revoked, the scoped one is the only one left to decide.
    store.revoke_grant(open.id, "erin").await.unwrap();
    match store.authorize("alice", "db-1", None).await.unwrap() {
        Decision::Allow { grant: decided, .. } => assert_eq!(decided, grant),
        Decision::Deny(denial) => panic!("expected the scoped grant to allow: {denial}"),
    }
    let revoked = store.revoke_grant(grant.id, "erin").await.unwrap().unwrap();
    assert_eq!((revoked.commands, revoked.pty), (grant.commands, false));
}

async fn rows_from_before_the_scope_admit_anything(db: TestDb) {
    // Written the way the store wrote grants before the scope columns existed.
    db.execute(format!(
        "INSERT INTO grants (user_name, target, logins, starts_at, expires_at, approved_by, \
         reason, created_at) VALUES ('alice', 'db-1', '[\"app\"]', {now}, {now} + 3600000, \
         'carol', 'old', {now})",
        now = db.now_sql()
    ))
    .await;
    let grants = db.store.list_grants(false).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert!(grants[0].commands.is_empty(), "any command");
    assert!(grants[0].pty, "a terminal allowed");
}

async fn a_corrupt_scope_is_an_error_not_an_open_grant(db: TestDb) {
    let grant = db.store.add_grant(scoped(&["uptime"], true)).await.unwrap();
    db.execute(format!(
        "UPDATE grants SET commands = 'uptime' WHERE id = {}",
        grant.id
    ))
    .await;
    let err = db.store.grant(grant.id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("commands is not a JSON list of patterns"),
        "{err}"
    );
}

impl Service {
    async fn grant(&self, commands: &[&str], pty: bool) -> Grant {
        self.access
            .create_grant(GrantRequest {
                user: "alice".into(),
                target: "db-1".into(),
                logins: Vec::new(),
                starts_in: Duration::ZERO,
                duration: HOUR,
                reason: "INC-9".into(),
                approved_by: "carol".into(),
                commands: commands.iter().map(|c| c.to_string()).collect(),
                pty,
            })
            .await
            .unwrap()
    }

    fn refusal(&self, grant: &Grant, command: Option<&str>, pty: bool) -> String {
        match self
            .access
            .check_command(grant, "app", command, pty, CLIENT)
        {
            Err(denied) => denied.reason,
            Ok(()) => panic!("expected {command:?} (pty {pty}) to be refused"),
        }
    }
}

async fn the_scope_is_held_on_every_channel_and_refusals_are_audited(db: TestDb) {
    let service = Service::new(&db, CONFIG);
    let scoped = service.grant(&["systemctl status *"], false).await;
    let open = service.grant(&[], true).await;
    let no_pty = service.grant(&[], false).await;
    let before = service.audit().len();

    let check = |grant: &Grant, command: Option<&str>, pty: bool| {
        service
            .access
            .check_command(grant, "app", command, pty, CLIENT)
    };
    assert_eq!(check(&scoped, Some("systemctl status app"), false), Ok(()));
    assert_eq!(check(&open, None, true), Ok(()));
    assert_eq!(check(&open, Some("rm -rf x; id"), true), Ok(()));
    assert_eq!(check(&no_pty, None, false), Ok(()), "a shell without PTY");
    assert_eq!(
        service.audit().len(),
        before,
        "admitted channels write nothing"
    );

    assert_eq!(
        service.refusal(&scoped, Some("systemctl status app"), true),
        "this grant allows no terminal (pty = false); run a command: ssh bastion db-1 -- COMMAND"
    );
    assert_eq!(
        service.refusal(&no_pty, None, true),
        "this grant allows no terminal (pty = false); run a command: ssh bastion db-1 -- COMMAND"
    );
    assert_eq!(
        service.refusal(&scoped, None, false),
        "this grant allows no interactive shell, only the commands systemctl status *; \
         run one: ssh bastion db-1 -- COMMAND"
    );
    assert_eq!(
        service.refusal(&scoped, Some("systemctl status app; id"), false),
        "command contains a shell metacharacter ';'"
    );
    assert_eq!(
        service.refusal(&scoped, Some("systemctl restart app"), false),
        "command matches none of the grant's allowed commands: systemctl status *"
    );
    let hostile = format!("systemctl restart \x1b]0;x\x07{}", "y".repeat(10_000));
    service.refusal(&scoped, Some(&hostile), false);

    let refused: Vec<Value> = service.audit().into_iter().skip(before).collect();
    assert_eq!(refused.len(), 6);
    assert!(refused.iter().all(|e| e["event"] == "command.refused"
        && e["user"] == "alice"
        && e["target"] == "db-1"
        && e["login"] == "app"
        && e["client"] == CLIENT));
    assert_eq!(refused[0]["grant"], scoped.id);
    assert_eq!(refused[0]["pty"], true);
    assert_eq!(refused[0]["command"], "systemctl status app");
    assert_eq!(
        refused[0]["rule"],
        "this grant allows no terminal (pty = false); run a command: ssh bastion db-1 -- COMMAND"
    );
    assert_eq!(refused[1]["grant"], no_pty.id);
    assert_eq!(refused[2]["command"], Value::Null, "an interactive shell");
    assert_eq!(refused[3]["command"], "systemctl status app; id");
    assert_eq!(
        refused[3]["rule"],
        "command contains a shell metacharacter ';'"
    );
    // A client-chosen command is escaped and capped in the audit log.
    let logged = refused[5]["command"].as_str().unwrap();
    assert!(
        logged.starts_with("systemctl restart \\x1b]0;x\\x07y") && logged.len() < 4200,
        "{logged:.80}"
    );
    assert!(
        logged.contains("sha256:"),
        "{}",
        &logged[logged.len() - 60..]
    );
}

on_both_databases!(
    scope_round_trips_through_every_read,
    rows_from_before_the_scope_admit_anything,
    a_corrupt_scope_is_an_error_not_an_open_grant,
    the_scope_is_held_on_every_channel_and_refusals_are_audited,
);
