//! `bastion recordings verify|search|prune|hold|release|list` and `bastion sessions end` as an
//! admin runs them, on real recordings made by the recorder in a temp dir (signed with the
//! daemon's signing key), indexed by the indexer the daemon runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bastion::config::Config;
use bastion::db::{Database, SessionEnd, SessionStart};
use bastion::recordings::{indexer, signing};
use recorder::{RecordingMeta, RecordingStore};
use serde_json::{Value, json};
use sqlx::Connection;

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";

struct Workspace {
    dir: tempfile::TempDir,
}

/// What a recorded session typed and saw: (seconds, input?, data).
type Script<'a> = &'a [(f64, bool, &'a str)];

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[recording]\nsegment_bytes = 200\n\n[[users]]\nname = \"alice\"\nkeys = [{ALICE_KEY:?}]\n\n\
             [[targets]]\nname = \"db-1\"\naddress = \"127.0.0.1:2200\"\nlogins = [\"app\"]\nidentity = \"k\"\n"
        );
        std::fs::write(dir.path().join("bastion.toml"), config).unwrap();
        Workspace { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The config as the daemon would load it, with paths made absolute.
    fn config(&self) -> Config {
        let text = std::fs::read_to_string(self.path("bastion.toml")).unwrap();
        let data = self.path("data").display().to_string();
        let text = format!("data_dir = {data:?}\n{text}");
        Config::parse(&text, "bastion.toml").unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bastion"))
            .args(args)
            .args(["--config", "bastion.toml"])
            .current_dir(self.dir.path())
            .env_remove("BASTION_CONFIG")
            .env_remove("SUDO_USER")
            .env("USER", "carol")
            .output()
            .unwrap()
    }

    /// Runs a command expecting exit `code`; returns stdout and stderr.
    fn exits(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "bastion {args:?}: stdout {stdout:?} stderr {stderr:?}"
        );
        (stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.exits(args, 0).0
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("data/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn recording_dir(&self, id: &str) -> PathBuf {
        self.path("data/recordings").join(id)
    }

    fn db_url(&self) -> String {
        format!("sqlite://{}", self.path("data/bastion.db").display())
    }

    /// Records session `id` as the daemon does: index row, signed recording, search index.
    /// `finish: false` leaves it as a crash would (no manifest, no end).
    async fn record(&self, id: &str, script: Script<'_>, finish: bool) {
        let config = self.config();
        let store = Database::open(&self.db_url()).await.unwrap();
        let grant = match store.list_grants(false).await.unwrap().first() {
            Some(grant) => grant.id,
            None => {
                store
                    .add_grant(bastion::db::NewGrant {
                        user: "alice".into(),
                        target: "db-1".into(),
                        logins: vec!["app".into()],
                        starts_in: Duration::ZERO,
                        duration: Duration::from_secs(3600),
                        approved_by: "carol".into(),
                        reason: "r".into(),
                        commands: Vec::new(),
                        pty: true,
                    })
                    .await
                    .unwrap()
                    .id
            }
        };
        store
            .session_started(&SessionStart {
                id: id.into(),
                user: "alice".into(),
                target: "db-1".into(),
                login: "app".into(),
                grant_id: grant,
                command: None,
                interactive: true,
                client: "127.0.0.1:40000".into(),
                recording: id.into(),
                recorded: true,
                node: "test".into(),
            })
            .await
            .unwrap();
        let (store_config, _) = signing::store_config(&config).unwrap();
        let recordings = RecordingStore::open(store_config).await.unwrap();
        let writer = recordings
            .begin(RecordingMeta {
                id: id.into(),
                user: "alice".into(),
                target: "db-1".into(),
                login: "app".into(),
                grant_id: Some(grant),
                command: None,
                width: 80,
                height: 24,
                term: None,
                started_at: time::OffsetDateTime::now_utc(),
            })
            .unwrap();
        let mut last = 0.0;
        for (t, input, data) in script {
            let at = Duration::from_secs_f64(*t);
            if *input {
                writer.input_at(at, data.as_bytes()).await.unwrap();
            } else {
                writer.output_at(at, data.as_bytes()).await.unwrap();
            }
            last = *t;
        }
        if finish {
            let summary = writer
                .finish_at(Duration::from_secs_f64(last + 1.0), "exit")
                .await
                .unwrap();
            assert!(summary.complete && summary.uploaded, "{summary:?}");
            store
                .session_ended(
                    id,
                    &SessionEnd {
                        reason: "exit".into(),
                        bytes: summary.raw_bytes,
                        recording_complete: true,
                    },
                )
                .await
                .unwrap();
        }
        if !finish {
            // `flush` waits for the upload queue only; segments closed by size may still be
            // compressing. A crash keeps what was sealed, so wait for those to be stored.
            let dir = self.recording_dir(id);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !(dir.exists() && segments(&dir).len() >= 2)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(recordings.flush(Duration::from_secs(10)).await);
        drop(writer);
        if finish {
            let summary = indexer::index_session(&store, &recordings, id)
                .await
                .unwrap();
            assert!(summary.complete, "{summary:?}");
        }
        store.close().await;
    }

    /// Runs one SQL statement on the workspace database.
    async fn sql(&self, sql: &str) {
        let mut conn = sqlx::SqliteConnection::connect(&self.db_url())
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

const PSQL: Script = &[
    (0.5, false, "app@db-1:~$ "),
    (1.0, true, "psql app\r"),
    (1.1, false, "psql app\r\napp=> "),
    (12.0, true, "DROP TABEL\x7f\x7fLE users;\r"),
    (
        12.1,
        false,
        "DROP TABLE users;\r\nERROR:  permission denied for table users\r\napp=> ",
    ),
    (20.0, true, "\\q\r"),
    (20.1, false, "\r\napp@db-1:~$ "),
];

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .collect();
    segs.sort();
    segs
}

#[test]
fn search_lists_sessions_with_hit_offsets() {
    let ws = Workspace::new();
    block_on(ws.record("rec-psql", PSQL, true));
    block_on(ws.record(
        "rec-ls",
        &[(0.2, true, "ls -la /etc\r"), (0.3, false, "total 0\r\n")],
        true,
    ));

    let found = ws.json_lines(&["recordings", "search", "--json", "DROP TABLE"]);
    assert_eq!(found.len(), 1, "{found:?}");
    let row = &found[0];
    assert_eq!(row["id"], "rec-psql");
    assert_eq!(
        (&row["user"], &row["target"], &row["login"]),
        (&json!("alice"), &json!("db-1"), &json!("app"))
    );
    assert!(
        row["start"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{row}"
    );
    let hits = row["hits"].as_array().unwrap();
    let shape: Vec<(f64, &str, &str)> = hits
        .iter()
        .map(|h| {
            (
                h["t"].as_f64().unwrap(),
                h["kind"].as_str().unwrap(),
                h["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (12.0, "command", "DROP TABLE users;"),
            (12.1, "output", "app=> DROP TABLE users;"),
        ]
    );
    assert_eq!(row["total_hits"], 2);

    let found = ws.json_lines(&["recordings", "search", "--json", "ls -la"]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], "rec-ls");
    assert_eq!(found[0]["hits"][0]["t"], 0.2);

    let text = ws.ok(&["recordings", "search", "permission denied"]);
    assert!(
        text.starts_with("rec-psql  alice on db-1 as app, started "),
        "{text}"
    );
    assert!(
        text.contains("12.1s  output   ERROR:  permission denied for table users"),
        "{text}"
    );
    let (out, err) = ws.exits(&["recordings", "search", "TRUNCATE"], 0);
    assert!(
        out.is_empty() && err.contains("no recordings match"),
        "{err}"
    );
    ws.exits(&["recordings", "search", "--json", "  "], 1);
}

#[test]
fn verify_reports_intact_truncated_and_tampered_recordings() {
    let ws = Workspace::new();
    for id in ["good", "cut", "flipped"] {
        block_on(ws.record(id, PSQL, true));
        assert!(segments(&ws.recording_dir(id)).len() >= 3, "small segments");
    }
    block_on(ws.record("crashed", PSQL, false));

    let (out, _) = ws.exits(&["recordings", "verify", "good"], 0);
    assert!(
        out.starts_with("recording good: complete and intact\n"),
        "{out}"
    );
    assert!(out.contains("signed: yes, by key "), "{out}");

    // A crash: segments but no manifest.
    let (out, err) = ws.exits(&["recordings", "verify", "crashed"], 3);
    assert!(out.contains("intact but truncated"), "{out}");
    assert!(err.contains("recording crashed is truncated"), "{err}");

    // The last segment and the manifest gone.
    let dir = ws.recording_dir("cut");
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    std::fs::remove_file(segments(&dir).last().unwrap()).unwrap();
    let (out, _) = ws.exits(&["recordings", "verify", "cut"], 3);
    assert!(out.contains("intact but truncated"), "{out}");

    // One flipped byte in the second segment's compressed data.
    let second = &segments(&ws.recording_dir("flipped"))[1];
    let mut bytes = std::fs::read(second).unwrap();
    bytes[6] ^= 0x01;
    std::fs::write(second, bytes).unwrap();
    let (out, err) = ws.exits(&["recordings", "verify", "flipped"], 1);
    assert!(out.contains("TAMPERED"), "{out}");
    assert!(out.contains("first bad segment: 1\n"), "{out}");
    assert!(err.contains("recording flipped is tampered"), "{err}");

    // The outcome shows in the list and the audit log.
    let rows = ws.json_lines(&["recordings", "list", "--json"]);
    let verified = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap()["verified"].clone();
    assert_eq!(verified("good"), "complete");
    assert_eq!(verified("cut"), "truncated");
    assert_eq!(verified("flipped"), "tampered");
    let audit: Vec<(String, String)> = ws
        .audit()
        .iter()
        .filter(|e| e["event"] == "recording.verified")
        .map(|e| {
            (
                e["session"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        audit,
        [
            ("good".into(), "complete".into()),
            ("crashed".into(), "truncated".into()),
            ("cut".into(), "truncated".into()),
            ("flipped".into(), "tampered".into()),
        ]
    );
    let (_, err) = ws.exits(&["recordings", "verify", "nope"], 1);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn prune_deletes_old_recordings_but_never_held_ones() {
    let ws = Workspace::new();
    for id in ["old-1", "old-held", "fresh"] {
        block_on(ws.record(id, PSQL, true));
    }
    block_on(async {
        for (id, days) in [("old-1", 100), ("old-held", 200), ("fresh", 3)] {
            ws.sql(&format!(
                "UPDATE sessions SET started_at = started_at - {ms}, ended_at = ended_at - {ms} WHERE id = '{id}'",
                ms = days * 86_400_000_i64
            ))
            .await;
        }
    });
    let out = ws.ok(&[
        "recordings",
        "hold",
        "old-held",
        "--reason",
        "case 17",
        "--by",
        "dora",
    ]);
    assert_eq!(
        out,
        "placed a legal hold on recording old-held (alice on db-1): case 17\n"
    );

    let dry = ws.ok(&["recordings", "prune", "--older-than", "90d", "--dry-run"]);
    assert!(dry.contains("would prune old-1 "), "{dry}");
    assert!(
        dry.contains("kept old-held ") && dry.contains("legal hold (case 17)"),
        "{dry}"
    );
    assert!(
        dry.ends_with(
            "dry run: would prune 1 recordings of sessions that ended more than 90d ago; 1 kept under legal hold\n"
        ),
        "{dry}"
    );
    assert!(
        ws.recording_dir("old-1").exists(),
        "a dry run deletes nothing"
    );

    let out = ws.ok(&["recordings", "prune", "--older-than", "90d"]);
    assert!(out.contains("pruned old-1 "), "{out}");
    assert!(out.contains("pruned 1 recordings ("), "{out}");
    assert!(!ws.recording_dir("old-1").exists() || segments(&ws.recording_dir("old-1")).is_empty());
    assert!(!segments(&ws.recording_dir("old-held")).is_empty());
    assert!(!segments(&ws.recording_dir("fresh")).is_empty());

    let rows = ws.json_lines(&["recordings", "list", "--json"]);
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(
        row("old-1")["pruned"],
        true,
        "the session row stays, marked"
    );
    assert_eq!(row("old-held")["legal_hold"], true);
    assert_eq!(row("old-held")["hold_reason"], "case 17");
    assert_eq!(row("fresh")["legal_hold"], false);
    assert_eq!(row("fresh")["complete"], true);
    assert_eq!(row("fresh")["indexed"], true);
    let found: Vec<String> = ws
        .json_lines(&["recordings", "search", "--json", "DROP TABLE"])
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!found.contains(&"old-1".to_string()), "{found:?}");
    assert_eq!(found.len(), 2);

    // Released, it goes on the next prune.
    assert_eq!(
        ws.ok(&["recordings", "release", "old-held"]),
        "released the legal hold on recording old-held\n"
    );
    assert_eq!(
        ws.ok(&["recordings", "release", "old-held"]),
        "recording old-held was not under legal hold\n"
    );
    let out = ws.ok(&["recordings", "prune", "--older-than", "90d"]);
    assert!(out.contains("pruned old-held "), "{out}");
    let (_, err) = ws.exits(&["recordings", "hold", "old-held", "--reason", "late"], 1);
    assert_eq!(
        err,
        "bastion: the recording of session \"old-held\" has been pruned\n"
    );
    let (_, err) = ws.exits(&["recordings", "hold", "nope", "--reason", "x"], 1);
    assert_eq!(err, "bastion: no session with id nope\n");

    let events: Vec<(String, String)> = ws
        .audit()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().into(),
                e["session"].as_str().unwrap_or("").into(),
            )
        })
        .filter(|(e, _): &(String, String)| e.starts_with("recording."))
        .collect();
    assert_eq!(
        events,
        [
            ("recording.hold".into(), "old-held".into()),
            ("recording.pruned".into(), "old-1".into()),
            ("recording.release".into(), "old-held".into()),
            ("recording.pruned".into(), "old-held".into()),
        ]
    );
    let pruned = ws
        .audit()
        .into_iter()
        .find(|e| e["event"] == "recording.pruned")
        .unwrap();
    assert_eq!(pruned["by"], "carol");
    assert!(pruned["objects"].as_u64().unwrap() >= 3, "{pruned}");
}

#[test]
fn sessions_end_records_a_request_for_the_daemon() {
    let ws = Workspace::new();
    block_on(ws.record("live", PSQL, false));
    block_on(ws.record("done", PSQL, true));
    let out = ws.ok(&["sessions", "end", "live", "--by", "erin"]);
    assert_eq!(
        out,
        "asked to end session live (alice on db-1 as app); it ends within 1s\n"
    );
    let again = ws.ok(&["sessions", "end", "live"]);
    assert!(
        again.starts_with("session live was already asked to end at ") && again.contains("by erin"),
        "{again}"
    );
    let done = ws.ok(&["sessions", "end", "done"]);
    assert!(
        done.starts_with("session done already ended at ") && done.contains("(exit)"),
        "{done}"
    );
    let (_, err) = ws.exits(&["sessions", "end", "nope"], 1);
    assert_eq!(err, "bastion: no session with id nope\n");

    let requests = block_on(async {
        let store = Database::open(&ws.db_url()).await.unwrap();
        let requests = store.pending_end_requests().await.unwrap();
        store.close().await;
        requests
    });
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].session.as_str(), requests[0].by.as_str()),
        ("live", "erin")
    );
    let audit: Vec<Value> = ws
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "session.end_requested")
        .collect();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (&audit[0]["session"], &audit[0]["by"]),
        (&json!("live"), &json!("erin"))
    );
}
