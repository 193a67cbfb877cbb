//! Text typed by other people (reasons, approver and revoker names, logins, recorded output)
//! reaches the admin's terminal with its control characters escaped, whatever the database
//! holds; `--json` stays exact; and the CLI refuses control characters in the text it stores.

mod support {
    pub mod cli;
}

use std::path::PathBuf;
use std::process::Output;

use bastion::db::{Database, NewGrant, SessionEnd, SessionStart, TextKind, TextLine};
use serde_json::Value;

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";

/// Sets the window title and clears the screen when printed raw.
const HOSTILE: &str = "x\x1b]0;pwned\x07\x1b[2J";
const HOSTILE_SHOWN: &str = "x\\x1b]0;pwned\\x07\\x1b[2J";

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "grant_poll = \"250ms\"\n\n[[users]]\nname = \"alice\"\nkeys = [{ALICE_KEY:?}]\n\n\
             [[targets]]\nname = \"db-1\"\naddress = \"127.0.0.1:2200\"\nlogins = [\"app\", \"root\"]\n\
             identity = \"k\"\n"
        );
        std::fs::write(dir.path().join("bastion.toml"), config).unwrap();
        let ws = Workspace { dir };
        // The first command creates and migrates the database the library then writes to.
        ws.ok(&["grant", "list"]);
        ws
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        support::cli::admin(self.dir.path(), args)
    }

    /// Runs a command that must succeed; returns stdout and stderr, checked printable.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "bastion {args:?} failed: {stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        printable(&stdout);
        printable(&stderr);
        stdout
    }

    /// Runs a command that must fail with exit code 1; returns its (printable) stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "bastion {args:?}: {stderr}");
        assert!(out.stdout.is_empty());
        printable(&stderr);
        stderr
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Writes to the CLI's database directly, as an older bastion (or a bypassed check) might
    /// have.
    fn with_db<F: AsyncFnOnce(&Database)>(&self, f: F) {
        let url = format!("sqlite://{}", self.path("data/bastion.db").display());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let db = Database::open(&url).await.unwrap();
                f(&db).await;
                db.close().await;
            });
    }

    fn audit_events(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("data/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap();
                value["event"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

/// Nothing but line breaks may reach the terminal as a control character.
fn printable(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters in output: {text:?}"
    );
}

fn new_grant(target: &str, reason: &str, approved_by: &str) -> NewGrant {
    NewGrant {
        user: "alice".into(),
        target: target.into(),
        logins: vec!["app".into()],
        starts_in: std::time::Duration::ZERO,
        duration: std::time::Duration::from_secs(3600),
        approved_by: approved_by.into(),
        reason: reason.into(),
        commands: Vec::new(),
        pty: true,
    }
}

fn session(id: &str, login: &str) -> SessionStart {
    SessionStart {
        id: id.into(),
        user: "alice".into(),
        target: "db-1".into(),
        login: login.into(),
        grant_id: 1,
        command: None,
        interactive: true,
        client: "127.0.0.1:40000".into(),
        recording: String::new(),
        recorded: true,
        node: "test".into(),
    }
}

#[test]
fn stored_grant_text_is_escaped_in_list_and_revoke_output() {
    let ws = Workspace::new();
    let mut ids = Vec::new();
    ws.with_db(async |db| {
        let first = db
            .add_grant(new_grant("db-1", HOSTILE, "ev\x1b[31mil"))
            .await
            .unwrap();
        db.revoke_grant(first.id, "mallory\x07\x1b]0;x\x07")
            .await
            .unwrap();
        let second = db
            .add_grant(new_grant("db-1\x1b[2J", "INC-7", "carol"))
            .await
            .unwrap();
        ids = vec![first.id.to_string(), second.id.to_string()];
    });

    let table = ws.ok(&["grant", "list"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "one line per grant: {table}");
    assert!(rows[1].contains(HOSTILE_SHOWN), "{table}");
    assert!(rows[1].contains("ev\\x1b[31mil"), "{table}");
    assert!(rows[2].contains("db-1\\x1b[2J"), "{table}");

    // JSON escapes control characters itself: the values come back exactly as stored.
    let grants = ws.json_lines(&["grant", "list", "--json"]);
    assert_eq!(grants[0]["reason"], HOSTILE);
    assert_eq!(grants[0]["approved_by"], "ev\x1b[31mil");
    assert_eq!(grants[0]["revoked_by"], "mallory\x07\x1b]0;x\x07");
    assert_eq!(grants[1]["target"], "db-1\x1b[2J");

    let out = ws.ok(&["grant", "revoke", &ids[0]]);
    assert!(
        out.starts_with(&format!("grant {} was already revoked at ", ids[0]))
            && out.ends_with(" by mallory\\x07\\x1b]0;x\\x07\n"),
        "{out}"
    );
    let out = ws.ok(&["grant", "revoke", &ids[1], "--by", "erin"]);
    assert!(
        out.starts_with(&format!(
            "revoked grant {} (alice on db-1\\x1b[2J); live sessions end within 250ms",
            ids[1]
        )),
        "{out}"
    );
}

#[test]
fn control_characters_are_refused_where_text_is_stored() {
    let ws = Workspace::new();
    let add = ["grant", "add", "--user", "alice", "--target", "db-1"];
    let add_with = |extra: &[&str]| -> Vec<String> {
        add.iter()
            .chain(["--for", "1h"].iter())
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let cases: [(Vec<String>, &str); 2] = [
        (
            add_with(&["--reason", HOSTILE]),
            "bastion: --reason must not contain control characters (found \\x1b)\n",
        ),
        (
            add_with(&["--reason", "r", "--approved-by", "ev\u{9b}2Jil"]),
            "bastion: --approved-by must not contain control characters (found \\u{9b})\n",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(ws.refused(&args), want);
    }
    // A pasted multi-line reason is fine: the table shows it on one line.
    let id = ws.ok(&add_with(&["--reason", "INC-7\r\n\tdisk full"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let id = id.trim();
    assert!(ws.ok(&["grant", "list"]).contains("INC-7 disk full"));

    assert_eq!(
        ws.refused(&["grant", "revoke", id, "--by", "erin\x07"]),
        "bastion: --by must not contain control characters (found \\x07)\n"
    );
    assert_eq!(
        ws.refused(&["grant", "revoke", id, "--by", " "]),
        "bastion: --by must not be empty\n"
    );

    let session_id = "0193a1b2-0000-7000-8000-000000000001";
    ws.with_db(async |db| {
        db.session_started(&session(session_id, "app"))
            .await
            .unwrap()
    });
    assert_eq!(
        ws.refused(&["sessions", "end", session_id, "--by", "ev\x1b[2Jil"]),
        "bastion: --by must not contain control characters (found \\x1b)\n"
    );
    assert_eq!(
        ws.refused(&["recordings", "hold", session_id, "--reason", HOSTILE]),
        "bastion: --reason must not contain control characters (found \\x1b)\n"
    );
    let rows = ws.json_lines(&["recordings", "list", "--json"]);
    assert_eq!(rows[0]["legal_hold"], false);
    ws.with_db(async |db| {
        let row = db.session(session_id).await.unwrap().unwrap();
        assert_eq!(row.end_requested_by, None, "the refused end was not stored");
    });
    assert_eq!(
        ws.audit_events(),
        ["grant.created", "grant.started"],
        "refused commands leave no trace"
    );
}

#[test]
fn session_and_recording_output_is_escaped() {
    let ws = Workspace::new();
    let ids = [
        "0193a1b2-0000-7000-8000-000000000001",
        "0193a1b2-0000-7000-8000-000000000002",
        "0193a1b2-0000-7000-8000-000000000003",
    ];
    ws.with_db(async |db| {
        db.add_grant(new_grant("db-1", "INC-7", "carol"))
            .await
            .unwrap();
        db.session_started(&session(ids[0], "app\x1b[2J"))
            .await
            .unwrap();
        db.session_started(&session(ids[1], "app")).await.unwrap();
        db.request_end(ids[1], "ev\x07il").await.unwrap();
        db.session_started(&session(ids[2], "app")).await.unwrap();
        let end = SessionEnd {
            reason: "ended by ev\x1b[2Jil".into(),
            bytes: 10,
            recording_complete: true,
        };
        db.session_ended(ids[2], &end).await.unwrap();
        let lines = [TextLine {
            t: 1.5,
            kind: TextKind::Output,
            text: format!("rm -rf / {HOSTILE} done"),
        }];
        db.replace_recording_text(ids[0], &lines, true)
            .await
            .unwrap();
    });

    let out = ws.ok(&["sessions", "end", ids[0], "--by", "carol"]);
    assert!(
        out.starts_with(&format!(
            "asked to end session {} (alice on db-1 as app\\x1b[2J)",
            ids[0]
        )),
        "{out}"
    );
    let out = ws.ok(&["sessions", "end", ids[1]]);
    assert!(out.ends_with(" by ev\\x07il\n"), "{out}");
    let out = ws.ok(&["sessions", "end", ids[2]]);
    assert!(out.ends_with(" (ended by ev\\x1b[2Jil)\n"), "{out}");

    let table = ws.ok(&["recordings", "list"]);
    assert!(table.contains("app\\x1b[2J"), "{table}");
    assert!(table.contains("ended by ev\\x1b[2Jil"), "{table}");
    let rows = ws.json_lines(&["recordings", "list", "--json"]);
    let first = rows.iter().find(|r| r["id"] == ids[0]).unwrap();
    assert_eq!(first["login"], "app\x1b[2J");

    let found = ws.ok(&["recordings", "search", "rm -rf"]);
    assert!(
        found.contains(&format!("rm -rf / {HOSTILE_SHOWN} done")),
        "{found}"
    );
    assert!(found.contains("as app\\x1b[2J"), "{found}");
    let found = ws.json_lines(&["recordings", "search", "rm -rf", "--json"]);
    assert_eq!(
        found[0]["hits"][0]["text"],
        format!("rm -rf / {HOSTILE} done")
    );
}
