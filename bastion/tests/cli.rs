//! The `bastion` binary as an admin uses it: config errors, grant add/list/revoke, recordings
//! list/export, exit codes and the audit log. Each test runs in its own temp directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bastion::db::{Database, SessionEnd, SessionStart};
use serde_json::Value;

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";

const CONFIG: &str = r#"
grant_poll = "250ms"

[[users]]
name = "alice"
keys = ["KEY"]

[[users]]
name = "bob"
keys = ["KEY"]

[[targets]]
name = "db-1"
address = "127.0.0.1:2200"
logins = ["app", "root"]
identity = "target_key"
"#;

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bastion.toml"),
            CONFIG.replace("KEY", ALICE_KEY),
        )
        .unwrap();
        Workspace { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `bastion ARGS` in the workspace with a clean environment.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bastion"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("BASTION_CONFIG")
            .env_remove("SUDO_USER")
            .env("USER", "carol")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bastion {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command expected to fail with `code`; returns its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "bastion {args:?}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "failed command printed to stdout");
        String::from_utf8(out.stderr).unwrap()
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn audit(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.path("data/audit.jsonl")) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

const CFG: [&str; 2] = ["--config", "bastion.toml"];

fn with_cfg<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(CFG);
    all
}

#[test]
fn config_errors_name_file_key_and_reason() {
    let ws = Workspace::new();
    let cases = [
        (
            "listen = \"127.0.0.1:2222\"\nlisten_backlog = 5\n",
            "bad.toml: listen_backlog: unknown key",
        ),
        (
            "grant_poll = \"fast\"\n",
            "bad.toml: grant_poll: invalid duration \"fast\"",
        ),
        (
            "[[users]]\nname = \"mallory\"\nkeys = [\"ssh-ed25519 AAAAAAAA\"]\n",
            "bad.toml: users[0].keys[0]: invalid public key",
        ),
        (
            "[[targets]]\nname = \"db-1\"\naddress = \"10.0.0.5\"\nlogins = [\"app\"]\nidentity = \"k\"\n",
            "bad.toml: targets[0].address: invalid socket address \"10.0.0.5\" (expected host:port)",
        ),
        ("listen = \"127.0.0.1:2222\n", "bad.toml:1:"),
    ];
    for (text, want) in cases {
        std::fs::write(ws.path("bad.toml"), text).unwrap();
        let stderr = ws.fails(&["grant", "list", "--config", "bad.toml"], 1);
        assert!(
            stderr.starts_with(&format!("bastion: {want}")),
            "{text:?}: got {stderr:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    }
    let stderr = ws.fails(&["grant", "list", "--config", "missing.toml"], 1);
    assert!(
        stderr.starts_with("bastion: missing.toml: cannot read configuration"),
        "{stderr}"
    );
    // A failed config load touches nothing.
    assert!(!ws.path("data").exists());
}

#[test]
fn grant_round_trip() {
    let ws = Workspace::new();
    let out = ws.ok(&with_cfg(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--target",
        "db-1",
        "--for",
        "1h",
        "--reason",
        "INC-7 replication lag",
    ]));
    let first: i64 = out
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("id alone on stdout, got {out:?}"));
    assert_eq!(out, format!("{first}\n"));
    let out = ws.ok(&with_cfg(&[
        "grant",
        "add",
        "--user",
        "bob",
        "--target",
        "db-1",
        "--login",
        "root",
        "--login",
        "app",
        "--for",
        "30m",
        "--starts-in",
        "2h",
        "--reason",
        "migration",
        "--approved-by",
        "dave",
    ]));
    let second: i64 = out.trim().parse().unwrap();
    assert!(second > first);

    let grants = ws.json_lines(&with_cfg(&["grant", "list", "--json"]));
    assert_eq!(grants.len(), 2);
    let (a, b) = (&grants[0], &grants[1]);
    assert_eq!(a["id"], first);
    assert_eq!(a["user"], "alice");
    assert_eq!(a["target"], "db-1");
    assert_eq!(a["logins"], serde_json::json!(["app"]));
    assert_eq!(a["status"], "active");
    assert_eq!(a["approved_by"], "carol", "defaults to $USER");
    assert_eq!(a["reason"], "INC-7 replication lag");
    assert_eq!(a["revoked_at"], Value::Null);
    let starts = time::OffsetDateTime::parse(
        a["starts_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        a["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - starts, time::Duration::HOUR);
    assert_eq!(b["logins"], serde_json::json!(["root", "app"]));
    assert_eq!(b["status"], "pending");
    assert_eq!(b["approved_by"], "dave");

    let table = ws.ok(&with_cfg(&["grant", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{table}"
    );
    assert!(
        lines[1].contains("alice")
            && lines[1].contains("active")
            && lines[1].contains("INC-7 replication lag")
    );
    assert!(lines[2].contains("root,app") && lines[2].contains("pending"));

    let active = ws.json_lines(&with_cfg(&["grant", "list", "--active", "--json"]));
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], first);

    let out = ws.ok(&with_cfg(&[
        "grant",
        "revoke",
        &first.to_string(),
        "--by",
        "erin",
    ]));
    assert!(
        out.starts_with(&format!("revoked grant {first} (alice on db-1)")),
        "{out}"
    );
    assert!(out.contains("within 250ms"), "{out}");
    let out = ws.ok(&with_cfg(&["grant", "revoke", &first.to_string()]));
    assert!(
        out.starts_with(&format!("grant {first} was already revoked at "))
            && out.contains("by erin"),
        "{out}"
    );
    let grants = ws.json_lines(&with_cfg(&["grant", "list", "--json"]));
    assert_eq!(grants[0]["status"], "revoked");
    assert_eq!(grants[0]["revoked_by"], "erin");
    assert!(
        ws.json_lines(&with_cfg(&["grant", "list", "--active", "--json"]))
            .is_empty()
    );

    let stderr = ws.fails(&with_cfg(&["grant", "revoke", "999"]), 1);
    assert_eq!(stderr, "bastion: no grant with id 999\n");

    let audit = ws.audit();
    let events: Vec<&str> = audit.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "grant.created",
            "grant.started",
            "grant.created",
            "grant.revoked"
        ],
        "the repeated revoke is not audited; a grant starting later is audited at its start"
    );
    assert_eq!(audit[0]["grant"], first);
    assert_eq!(audit[0]["user"], "alice");
    assert_eq!(audit[0]["logins"], serde_json::json!(["app"]));
    assert_eq!(audit[0]["expires_at"], a["expires_at"]);
    assert_eq!(audit[1]["grant"], first, "the first grant started at once");
    assert_eq!(audit[3]["grant"], first);
    assert_eq!(audit[3]["by"], "erin");
    assert!(audit.iter().all(|e| e["ts"].is_string()));
}

#[test]
fn grant_add_rejects_what_the_config_does_not_know() {
    let ws = Workspace::new();
    let base = ["grant", "add", "--for", "1h", "--config", "bastion.toml"];
    let cases: [(&[&str], &str); 4] = [
        (
            &["--user", "mallory", "--target", "db-1", "--reason", "r"],
            "bastion: unknown user \"mallory\"",
        ),
        (
            &["--user", "alice", "--target", "db-9", "--reason", "r"],
            "bastion: unknown target \"db-9\"",
        ),
        (
            &[
                "--user", "alice", "--target", "db-1", "--login", "postgres", "--reason", "r",
            ],
            "bastion: login \"postgres\" is not allowed on target \"db-1\" (allowed: app, root)",
        ),
        (
            &[
                "--user", "alice", "--target", "db-1", "--login", "app", "--reason", " ",
            ],
            "bastion: --reason must not be empty",
        ),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let stderr = ws.fails(&args, 1);
        assert!(stderr.starts_with(want), "{extra:?}: {stderr}");
    }
    // Without a config there are no users at all.
    let stderr = ws.fails(
        &[
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "1h", "--reason", "r",
        ],
        1,
    );
    assert!(stderr.contains("<embedded defaults>"), "{stderr}");
    assert!(ws.audit().is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let ws = Workspace::new();
    ws.fails(
        &with_cfg(&[
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "1h",
        ]),
        2,
    );
    let stderr = ws.fails(
        &with_cfg(&[
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "0s", "--reason", "r",
        ]),
        2,
    );
    assert!(stderr.contains("greater than zero"), "{stderr}");
    ws.fails(
        &with_cfg(&[
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "forever", "--reason",
            "r",
        ]),
        2,
    );
    ws.fails(&with_cfg(&["grant", "revoke", "abc"]), 2);
    ws.fails(&["frobnicate"], 2);
}

#[test]
fn config_from_environment() {
    let ws = Workspace::new();
    let out = Command::new(env!("CARGO_BIN_EXE_bastion"))
        .args([
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "1h", "--reason", "r",
        ])
        .current_dir(ws.dir.path())
        .env("BASTION_CONFIG", "bastion.toml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ws.json_lines(&with_cfg(&["grant", "list", "--json"])).len(),
        1
    );
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn recordings_list_shows_the_session_index() {
    let ws = Workspace::new();
    assert!(
        ws.ok(&with_cfg(&["recordings", "list", "--json"]))
            .is_empty()
    );
    let id: i64 = ws
        .ok(&with_cfg(&[
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "1h", "--reason", "r",
        ]))
        .trim()
        .parse()
        .unwrap();
    // The daemon writes the index; here the library does it on the same database file.
    block_on(async {
        let url = format!("sqlite://{}", ws.path("data/bastion.db").display());
        let store = Database::open(&url).await.unwrap();
        for (session, command) in [
            ("0193a1b2-0000-7000-8000-000000000001", None),
            ("0193a1b2-0000-7000-8000-000000000002", Some("uptime")),
        ] {
            store
                .session_started(&SessionStart {
                    id: session.into(),
                    user: "alice".into(),
                    target: "db-1".into(),
                    login: "app".into(),
                    grant_id: id,
                    command: command.map(String::from),
                    interactive: command.is_none(),
                    client: "127.0.0.1:40000".into(),
                    recording: format!("file://{}/{session}", ws.path("data/recordings").display()),
                    recorded: true,
                    node: "test".into(),
                })
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let end = SessionEnd {
            reason: "client closed".into(),
            bytes: 1234,
            recording_complete: true,
        };
        store
            .session_ended("0193a1b2-0000-7000-8000-000000000001", &end)
            .await
            .unwrap();
        store.close().await;
    });

    let rows = ws.json_lines(&with_cfg(&["recordings", "list", "--json"]));
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["id"], "0193a1b2-0000-7000-8000-000000000002",
        "newest first"
    );
    assert_eq!(rows[0]["end"], Value::Null);
    assert_eq!(rows[0]["command"], "uptime");
    let done = &rows[1];
    for (field, want) in [
        ("user", "alice"),
        ("target", "db-1"),
        ("login", "app"),
        ("end_reason", "client closed"),
    ] {
        assert_eq!(done[field], want, "{field}");
    }
    assert_eq!(done["bytes"], 1234);
    assert_eq!(done["grant"], id);
    for field in ["start", "end"] {
        let text = done[field].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    }

    let table = ws.ok(&with_cfg(&["recordings", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[1].contains("running")
            && lines[2].contains("client closed")
            && lines[2].ends_with("1234"),
        "{table}"
    );
}

#[test]
fn exporting_an_unknown_recording_fails_clearly() {
    let ws = Workspace::new();
    let out = ws.path("out.cast");
    let stderr = ws.fails(
        &with_cfg(&[
            "recordings",
            "export",
            "0193a1b2-0000-7000-8000-00000000dead",
            "-o",
            out.to_str().unwrap(),
        ]),
        1,
    );
    assert!(
        stderr.starts_with("bastion: recording 0193a1b2-0000-7000-8000-00000000dead not found"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
    assert!(!Path::new(&out).exists());
}

#[test]
fn concurrent_commands_share_the_database_and_audit_log() {
    let ws = Workspace::new();
    // The first run creates and migrates the database; then several writers race on it.
    ws.ok(&with_cfg(&["grant", "list"]));
    let children: Vec<_> = (0..6)
        .map(|i| {
            let reason = format!("parallel {i}");
            Command::new(env!("CARGO_BIN_EXE_bastion"))
                .args(["grant", "add", "--user", "alice", "--target", "db-1"])
                .args([
                    "--for",
                    "1h",
                    "--reason",
                    &reason,
                    "--config",
                    "bastion.toml",
                ])
                .current_dir(ws.dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids: Vec<i64> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert_eq!(
        ws.json_lines(&with_cfg(&["grant", "list", "--json"])).len(),
        6
    );
    let audited: Vec<i64> = ws
        .audit()
        .iter()
        .filter(|e| e["event"] == "grant.created")
        .map(|e| e["grant"].as_i64().unwrap())
        .collect();
    assert_eq!(audited.len(), 6);
}

#[test]
fn exports_a_finished_recording_as_asciicast() {
    let ws = Workspace::new();
    let id = "0193a1b2-0000-7000-8000-0000000000aa";
    // Record the way the daemon does, into the store the CLI's configuration points at.
    let expected = block_on(async {
        let store = recorder::RecordingStore::open(recorder::StoreConfig {
            url: format!("file://{}", ws.path("data/recordings").display()),
            spool_dir: ws.path("data/spool"),
            ..Default::default()
        })
        .await
        .unwrap();
        let writer = store
            .begin(recorder::RecordingMeta {
                id: id.into(),
                user: "alice".into(),
                target: "db-1".into(),
                login: "app".into(),
                grant_id: Some(1),
                command: None,
                width: 80,
                height: 24,
                term: None,
                started_at: time::OffsetDateTime::now_utc(),
            })
            .unwrap();
        writer.output(b"app@db-1:~$ ").await.unwrap();
        writer.input(b"uptime\r").await.unwrap();
        writer.output(b" 10:00:00 up 42 days\r\n").await.unwrap();
        let summary = writer.finish("client closed").await.unwrap();
        assert!(summary.complete && summary.uploaded, "{summary:?}");
        store.read_cast(id).await.unwrap()
    });

    let out = ws.path("session.cast");
    ws.ok(&with_cfg(&[
        "recordings",
        "export",
        id,
        "-o",
        out.to_str().unwrap(),
    ]));
    let exported = std::fs::read(&out).unwrap();
    assert_eq!(exported, expected);
    let cast = recorder::parse_cast(&exported).unwrap();
    let text = String::from_utf8_lossy(&exported);
    assert!(text.contains("up 42 days"), "{text}");
    assert!(cast.errors.is_empty() && !cast.events.is_empty());
}
