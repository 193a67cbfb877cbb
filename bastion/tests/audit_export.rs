//! `bastion audit export` as an admin (or an auditor) uses it: the real binary records grant
//! events (the CLI) and a session's end (the daemon), then exports them from the database as
//! JSON lines and as CSV, filtered.

mod support {
    pub mod cli;
}

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bastion::db::{Database, SessionStart};
use serde_json::Value;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";

const CONFIG: &str = r#"
[[users]]
name = "alice"
keys = ["KEY"]

[[users]]
name = "bob"
keys = ["KEY"]

[[targets]]
name = "db-1"
address = "127.0.0.1:2200"
logins = ["app"]
identity = "target_key"

[[targets]]
name = "db-2"
address = "127.0.0.1:2201"
logins = ["app"]
identity = "target_key"
"#;

/// A reason a spreadsheet would run as a formula if it were pasted in as it is.
const FORMULA_REASON: &str = "=HYPERLINK(\"http://evil.example\",\"INC-1\")";

fn bastion(dir: &Path, args: &[&str]) -> Output {
    support::cli::admin(dir, args)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = bastion(dir, args);
    assert!(
        out.status.success(),
        "bastion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `grant add` tells on stderr what it granted; a lost database copy would be a warning.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning"),
        "bastion {args:?} warned: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

fn export_jsonl(dir: &Path, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "export", "--format", "jsonl"];
    args.extend(filters);
    ok(dir, &args)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn events(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| {
            let who = l["user"].as_str().or(l["by"].as_str()).unwrap_or_default();
            (l["event"].as_str().unwrap().to_string(), who.to_string())
        })
        .collect()
}

fn pair(event: &str, who: &str) -> (String, String) {
    (event.to_string(), who.to_string())
}

#[test]
fn grant_events_export_as_json_lines_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("bastion.toml"), CONFIG.replace("KEY", KEY)).unwrap();
    let grant = |user: &str, target: &str, reason: &str| {
        ok(
            dir,
            &[
                "grant", "add", "--user", user, "--target", target, "--for", "1h", "--reason",
                reason,
            ],
        )
        .trim()
        .to_string()
    };
    let alice = grant("alice", "db-1", FORMULA_REASON);
    let bob = grant("bob", "db-2", "INC-2 disk full");
    ok(dir, &["grant", "revoke", &alice, "--by", "dave"]);

    // JSON lines: every event, in order, byte for byte what the audit log file holds.
    let jsonl = ok(dir, &["audit", "export", "--format", "jsonl"]);
    let file = std::fs::read_to_string(dir.join("data/audit.jsonl")).unwrap();
    assert_eq!(jsonl, file);
    let all = export_jsonl(dir, &[]);
    assert_eq!(
        events(&all),
        [
            pair("grant.created", "alice"),
            pair("grant.started", "alice"),
            pair("grant.created", "bob"),
            pair("grant.started", "bob"),
            pair("grant.revoked", "alice"),
        ]
    );
    assert_eq!(all[0]["grant"].as_i64().unwrap().to_string(), alice);
    assert_eq!(all[1]["grant"].as_i64().unwrap().to_string(), alice);
    assert_eq!(all[2]["grant"].as_i64().unwrap().to_string(), bob);
    assert_eq!(all[0]["reason"], FORMULA_REASON);
    assert!(all.iter().all(|l| l["ts"].is_string()));

    // CSV: a header row, one row per event, the formula shown as text, nothing lost.
    let csv_text = ok(dir, &["audit", "export", "--format", "csv"]);
    assert!(
        csv_text
            .starts_with("ts,event,user,target,session,grant,request,client,by,reason,details\r\n"),
        "{csv_text}"
    );
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 5);
    let created = &rows[0];
    assert_eq!(created[column("event")], "grant.created");
    assert_eq!(created[column("user")], "alice");
    assert_eq!(created[column("target")], "db-1");
    assert_eq!(created[column("grant")], alice);
    assert_eq!(created[column("by")], "carol", "approved_by fills `by`");
    assert_eq!(created[column("reason")], format!("'{FORMULA_REASON}"));
    let details: Value = serde_json::from_str(&created[column("details")]).unwrap();
    assert_eq!(details, all[0], "details is the whole event");
    let revoked = &rows[4];
    assert_eq!(revoked[column("event")], "grant.revoked");
    assert_eq!(revoked[column("grant")], alice);
    assert_eq!(revoked[column("by")], "dave");
    assert_eq!(revoked[column("ts")], all[4]["ts"].as_str().unwrap());

    // Filters.
    assert_eq!(
        events(&export_jsonl(dir, &["--user", "bob"])),
        [pair("grant.created", "bob"), pair("grant.started", "bob")]
    );
    // The revocation names whose grant it was, so it is found by user and by target too.
    assert_eq!(
        events(&export_jsonl(dir, &["--target", "db-1"])),
        [
            pair("grant.created", "alice"),
            pair("grant.started", "alice"),
            pair("grant.revoked", "alice")
        ]
    );
    assert_eq!(
        events(&export_jsonl(dir, &["--user", "alice"])),
        [
            pair("grant.created", "alice"),
            pair("grant.started", "alice"),
            pair("grant.revoked", "alice")
        ]
    );
    assert_eq!(export_jsonl(dir, &["--since", "1h"]).len(), 5);
    assert_eq!(
        export_jsonl(dir, &["--since", "1h", "--until", "2000-01-01T00:00:00Z"]).len(),
        0
    );
    assert!(export_jsonl(dir, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    // Bob's grant was made by a second command, so its events come strictly later.
    let second = all[2]["ts"].as_str().unwrap();
    assert_eq!(
        events(&export_jsonl(dir, &["--since", second])),
        [
            pair("grant.created", "bob"),
            pair("grant.started", "bob"),
            pair("grant.revoked", "alice")
        ]
    );
    assert_eq!(
        events(&export_jsonl(dir, &["--until", second])),
        [
            pair("grant.created", "alice"),
            pair("grant.started", "alice")
        ]
    );
    let empty_csv = ok(
        dir,
        &["audit", "export", "--format", "csv", "--user", "mallory"],
    );
    assert_eq!(
        empty_csv,
        "ts,event,user,target,session,grant,request,client,by,reason,details\r\n"
    );
}

/// The daemon stores what it records too, and flushes it before it exits: here the end it
/// writes at start for a session a crash left open.
#[tokio::test]
async fn the_daemon_stores_its_events_before_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nnode_id = \"node-a\"\n{}",
        CONFIG.replace("KEY", KEY)
    );
    std::fs::write(dir.join("bastion.toml"), config).unwrap();
    let grant = ok(
        dir,
        &[
            "grant", "add", "--user", "alice", "--target", "db-1", "--for", "1h", "--reason",
            "INC-3",
        ],
    );
    let url = format!("sqlite://{}", dir.join("data/bastion.db").display());
    let db = Database::open(&url).await.unwrap();
    db.session_started(&SessionStart {
        id: "s-crashed".into(),
        user: "alice".into(),
        target: "db-1".into(),
        login: "app".into(),
        grant_id: grant.trim().parse().unwrap(),
        command: None,
        interactive: true,
        client: "127.0.0.1:40000".into(),
        recording: "s-crashed".into(),
        recorded: true,
        node: "node-a".into(),
    })
    .await
    .unwrap();
    db.close().await;

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_bastion"))
        .args(["serve", "--config", "bastion.toml"])
        .current_dir(dir)
        .env_remove("BASTION_CONFIG")
        .env("BASTION_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = daemon.stderr.take().unwrap();
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("listening on")) {
        match log.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => seen.push(line),
            Err(err) => {
                let _ = daemon.kill();
                panic!("the daemon did not start ({err}): {seen:#?}");
            }
        }
    }
    // The SSH banner comes from the accept loop, which starts after the SIGTERM handler is in
    // place ("listening on" is logged before it).
    let port = seen
        .iter()
        .find_map(|l| l.split("listening on 127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let mut banner = String::new();
    let tcp = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    BufReader::new(tcp).read_line(&mut banner).unwrap();
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}");
    let pid = i32::try_from(daemon.id()).unwrap();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}: {seen:#?}");

    let exported = export_jsonl(dir, &[]);
    assert_eq!(
        events(&exported),
        [
            pair("grant.created", "alice"),
            pair("grant.started", "alice"),
            pair("session.end", "alice")
        ]
    );
    assert_eq!(exported[2]["session"], "s-crashed");
    assert_eq!(exported[2]["reason"], "interrupted");
    let file = std::fs::read_to_string(dir.join("data/audit.jsonl")).unwrap();
    assert_eq!(ok(dir, &["audit", "export", "--format", "jsonl"]), file);
}

#[test]
fn bad_times_are_refused_with_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("bastion.toml"), CONFIG.replace("KEY", KEY)).unwrap();
    for (flag, value) in [
        ("--since", "yesterday"),
        ("--until", "2026-13-01T00:00:00Z"),
    ] {
        let out = bastion(dir, &["audit", "export", "--format", "csv", flag, value]);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        assert!(out.stdout.is_empty(), "nothing on stdout");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("bastion: invalid {flag} \"{value}\": expected")),
            "{stderr}"
        );
    }
}
