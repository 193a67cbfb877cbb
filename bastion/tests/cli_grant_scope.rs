//! `bastion grant add --command PATTERN... --no-pty` as an admin runs it: the patterns are
//! checked before anything is written, and `grant list` (table and `--json`) shows the scope.

mod support {
    pub mod cli;
}

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

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

const ADD: [&str; 9] = [
    "grant", "add", "--user", "alice", "--target", "db-1", "--for", "1h", "--reason",
];

fn run(dir: &Path, args: &[&str]) -> Output {
    support::cli::admin(dir, args)
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "bastion {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bastion.toml"), CONFIG).unwrap();
    dir
}

fn add(dir: &Path, extra: &[&str]) -> Output {
    let args: Vec<&str> = ADD
        .iter()
        .copied()
        .chain(["INC-9"])
        .chain(extra.iter().copied())
        .collect();
    run(dir, &args)
}

#[test]
fn scoped_grants_are_stored_listed_and_announced() {
    let ws = workspace();
    let out = add(
        ws.path(),
        &[
            "--command",
            "systemctl status *",
            "--command",
            "journalctl -u app *",
            "--no-pty",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scoped: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "scope: only the commands systemctl status *; journalctl -u app *, no terminal"
        ),
        "{stderr}"
    );
    let out = ok(
        ws.path(),
        &ADD.iter().copied().chain(["INC-10"]).collect::<Vec<_>>(),
    );
    let open: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !String::from_utf8(out.stderr).unwrap().contains("scope:"),
        "an unscoped grant says nothing about scope"
    );

    let text = String::from_utf8(ok(ws.path(), &["grant", "list", "--json"]).stdout).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], scoped);
    assert_eq!(
        rows[0]["commands"],
        json!(["systemctl status *", "journalctl -u app *"])
    );
    assert_eq!(rows[0]["pty"], false);
    assert_eq!(rows[1]["id"], open);
    assert_eq!(rows[1]["commands"], json!([]));
    assert_eq!(rows[1]["pty"], true);

    let table = String::from_utf8(ok(ws.path(), &["grant", "list"]).stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("  PTY  ") && lines[0].contains("  COMMANDS  "),
        "{table}"
    );
    assert!(
        lines[1].contains("active  no   systemctl status *; journalctl -u app *  carol"),
        "{table}"
    );
    assert!(lines[2].contains("active  yes  (any)  "), "{table}");

    let audit = std::fs::read_to_string(ws.path().join("data/audit.jsonl")).unwrap();
    let created = audit
        .lines()
        .filter(|l| l.contains("\"grant.created\""))
        .count();
    assert_eq!(created, 2, "two grant.created events");
    assert_eq!(audit.lines().count(), 4, "each grant also started at once");
}

#[test]
fn bad_patterns_are_refused_before_anything_is_written() {
    let ws = workspace();
    let many: Vec<String> = (0..65).map(|i| format!("cmd{i}")).collect();
    let mut too_many: Vec<&str> = Vec::new();
    for pattern in &many {
        too_many.extend(["--command", pattern]);
    }
    let long = "x".repeat(257);
    let cases: Vec<(Vec<&str>, String)> =
        vec![
        (vec!["--command", ""], "bastion: --command must not be empty".into()),
        (
            vec!["--command", "ls \x1b[2J"],
            "bastion: --command must not contain control characters (found \\x1b)".into(),
        ),
        (
            vec!["--command", &long],
            format!(
                "bastion: --command pattern \"{}...\" is 257 characters long (at most 256)",
                "x".repeat(40)
            ),
        ),
        (
            vec!["--command", "uptime && id"],
            "bastion: --command pattern \"uptime && id\" contains the shell metacharacter \"&\", \
             which no admitted command may contain"
                .into(),
        ),
        (
            too_many,
            "bastion: a grant may allow at most 64 --command patterns (got 65)".into(),
        ),
    ];
    for (extra, want) in cases {
        let out = add(ws.path(), &extra);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr.trim_end(), want, "{:.80?}", extra);
    }
    assert!(
        !ws.path().join("data/audit.jsonl").exists(),
        "a refused grant writes no audit log"
    );
    let out = run(ws.path(), &["grant", "add", "--no-pty=yes"]);
    assert_eq!(out.status.code(), Some(2), "--no-pty is a plain switch");
}
