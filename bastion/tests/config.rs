//! Loading and validating configuration files: the shipped example, defaults, and the error
//! messages an operator sees (file, dotted key, reason).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bastion::config::{Config, ConfigError};

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvq27m2nvQJ4mhJN87wz2dEl5dbI8TKJnFK2g+0PiSP alice@laptop";
const TARGET_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAYfJ8AUN73ccFs8n/XD1iS7J1mxfVSv4haT08qEyAo4 db-1";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bastion.example.toml")
}

fn invalid(text: &str) -> (String, String) {
    match Config::parse(text, "bastion.toml") {
        Err(ConfigError::Invalid { file, key, reason }) => {
            assert_eq!(file, "bastion.toml");
            (key, reason)
        }
        other => panic!("expected an invalid-key error for {text:?}, got {other:?}"),
    }
}

fn target(extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"db-1\"\naddress = \"10.0.0.5:22\"\nlogins = [\"app\"]\nidentity = \"k\"\n{extra}"
    )
}

#[test]
fn the_shipped_example_loads() {
    let config = Config::load(&example_path()).unwrap();
    assert_eq!(config.source, example_path().display().to_string());
    assert_eq!(
        config.listen,
        "127.0.0.1:2222".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.data_dir, Path::new("data"));
    assert_eq!(config.database_url, "sqlite://data/bastion.db");
    assert_eq!(config.recordings, "file://data/recordings");
    assert_eq!(
        config.warn_before,
        [Duration::from_secs(300), Duration::from_secs(60)]
    );
    assert_eq!(config.audit_log, Path::new("data/audit.jsonl"));
    assert_eq!(config.host_key, Path::new("data/host_ed25519_key"));
    assert_eq!(config.spool_dir, Path::new("data/spool"));
    assert_eq!(config.grant_poll, Duration::from_secs(1));
    assert_eq!(config.recording.segment_interval, Duration::from_secs(5));
    assert_eq!(config.recording.segment_bytes, 1 << 20);
    assert!(
        config
            .access_hint_for("alice", "db-1")
            .contains("--user alice --target db-1")
    );

    let alice = config.user("alice").unwrap();
    assert_eq!(alice.keys.len(), 1);
    assert_eq!(alice.keys[0].to_openssh().unwrap(), ALICE_KEY);
    let db = config.target("db-1").unwrap();
    assert_eq!(db.address, "10.0.0.5:22");
    assert_eq!(db.logins, ["app", "root"]);
    assert_eq!(db.default_login(), "app");
    assert_eq!(db.identity, Path::new("/etc/bastion/targets_ed25519"));
    assert!(db.host_key.is_some());
    assert!(!db.fail_open);
    assert!(db.record, "the example records its target");
    assert!(!config.replay.allow_end_session);
    assert!(config.user("bob").is_none() && config.target("db-2").is_none());
}

#[test]
fn embedded_defaults() {
    let config = Config::load_or_default(None).unwrap();
    assert_eq!(config.source, "<embedded defaults>");
    assert_eq!(config.listen.to_string(), "127.0.0.1:2222");
    assert_eq!(config.database_url, "sqlite://data/bastion.db");
    assert_eq!(config.recordings, "file://data/recordings");
    assert_eq!(
        config.warn_before,
        [Duration::from_secs(300), Duration::from_secs(60)]
    );
    assert_eq!(
        config.access_hint_for("bob", "web"),
        "ask for it: ssh bastion request web --for 1h --reason '...'"
    );
    assert!(config.users.is_empty() && config.targets.is_empty());
    // An empty file is the same as no file.
    let empty = Config::parse("", "empty.toml").unwrap();
    assert_eq!(empty.database_url, config.database_url);
    assert_eq!(empty.source, "empty.toml");
}

#[test]
fn paths_and_urls_follow_data_dir() {
    let config = Config::parse("data_dir = \"/var/lib/bastion\"", "f").unwrap();
    assert_eq!(config.database_url, "sqlite:///var/lib/bastion/bastion.db");
    assert_eq!(config.recordings, "file:///var/lib/bastion/recordings");
    assert_eq!(config.audit_log, Path::new("/var/lib/bastion/audit.jsonl"));
    assert_eq!(
        config.host_key,
        Path::new("/var/lib/bastion/host_ed25519_key")
    );
    assert_eq!(config.spool_dir, Path::new("/var/lib/bastion/spool"));
}

#[test]
fn warnings_are_sorted_longest_first_without_duplicates() {
    let config = Config::parse(r#"warn_before = ["30s", "10m", "1m", "60s"]"#, "f").unwrap();
    assert_eq!(
        config.warn_before,
        [
            Duration::from_secs(600),
            Duration::from_secs(60),
            Duration::from_secs(30)
        ]
    );
    assert!(
        Config::parse("warn_before = []", "f")
            .unwrap()
            .warn_before
            .is_empty()
    );
}

#[test]
fn segment_bytes_accepts_integers_and_suffixes() {
    let bytes = |value: &str| {
        Config::parse(&format!("[recording]\nsegment_bytes = {value}"), "f")
            .unwrap()
            .recording
            .segment_bytes
    };
    assert_eq!(bytes("65536"), 65536);
    assert_eq!(bytes("\"64KiB\""), 65536);
    assert_eq!(bytes("\"2MiB\""), 2 << 20);
    let (key, reason) = invalid("[recording]\nsegment_bytes = true");
    assert_eq!(key, "recording.segment_bytes");
    assert!(reason.contains("size like"), "{reason}");
    let (key, _) = invalid("[recording]\nsegment_bytes = 0");
    assert_eq!(key, "recording.segment_bytes");
}

#[test]
fn pinned_host_key_and_fail_open() {
    let config = Config::parse(
        &target(&format!("host_key = \"{TARGET_KEY}\"\nfail_open = true")),
        "f",
    )
    .unwrap();
    let db = config.target("db-1").unwrap();
    assert!(db.fail_open);
    assert_eq!(
        db.host_key.as_ref().unwrap().to_openssh().unwrap(),
        TARGET_KEY
    );
}

#[test]
fn recording_off_node_id_and_replay_settings() {
    let config = Config::parse(&target(""), "f").unwrap();
    assert!(
        config.target("db-1").unwrap().record,
        "recording is on by default"
    );
    assert!(
        !config.node_id.is_empty(),
        "node_id defaults to the host name"
    );
    assert!(
        !config.replay.allow_end_session,
        "reviewers may not end sessions by default"
    );

    let text = format!(
        "node_id = \"bastion-2\"\n[replay]\nallow_end_session = true\n{}",
        target("record = false")
    );
    let config = Config::parse(&text, "f").unwrap();
    assert!(!config.target("db-1").unwrap().record);
    assert_eq!(config.node_id, "bastion-2");
    assert!(config.replay.allow_end_session);
}

#[test]
fn errors_name_the_key_and_the_reason() {
    let cases: Vec<(String, &str, &str)> = vec![
        ("node_id = \"a b\"".into(), "node_id", "invalid name"),
        (
            "[replay]\nallow_end = true".into(),
            "replay.allow_end",
            "unknown key",
        ),
        (
            target("record = \"no\""),
            "targets[0].record",
            "invalid type",
        ),
        ("lisen = \"x\"".into(), "lisen", "unknown key"),
        (target("adress = \"x\""), "targets[0].adress", "unknown key"),
        (
            "[recording]\nsegment_size = 1".into(),
            "recording.segment_size",
            "unknown key",
        ),
        (
            format!("[[users]]\nname = \"a\"\nkeys = [\"{ALICE_KEY}\"]\nemail = \"x\""),
            "users[0].email",
            "unknown key",
        ),
        (
            "listen = \"localhost\"".into(),
            "listen",
            "invalid socket address",
        ),
        (
            "grant_poll = \"soon\"".into(),
            "grant_poll",
            "invalid duration",
        ),
        (
            "grant_poll = \"0s\"".into(),
            "grant_poll",
            "greater than zero",
        ),
        (
            "warn_before = [\"5m\", \"never\"]".into(),
            "warn_before[1]",
            "invalid duration",
        ),
        (
            "[recording]\nsegment_interval = \"5 parsecs\"".into(),
            "recording.segment_interval",
            "invalid duration",
        ),
        (
            "database_url = \"mysql://u:pw@h/db\"".into(),
            "database_url",
            "unsupported database url",
        ),
        (
            "recordings = \"data/recordings\"".into(),
            "recordings",
            "invalid recordings url",
        ),
        (
            "access_hint = \" \"".into(),
            "access_hint",
            "must not be empty",
        ),
        (
            "[[users]]\nname = \"a\"\nkeys = [\"ssh-ed25519 AAAAnotakey\"]".into(),
            "users[0].keys[0]",
            "invalid public key",
        ),
        (
            "[[users]]\nname = \"a\"\nkeys = []".into(),
            "users[0].keys",
            "at least one public key",
        ),
        (
            format!("[[users]]\nname = \"al ice\"\nkeys = [\"{ALICE_KEY}\"]"),
            "users[0].name",
            "invalid name",
        ),
        (
            format!(
                "[[users]]\nname = \"a\"\nkeys = [\"{ALICE_KEY}\"]\n[[users]]\nname = \"a\"\nkeys = [\"{ALICE_KEY}\"]"
            ),
            "users[1].name",
            "duplicate user name",
        ),
        (
            format!("{}\n{}", target(""), target("")),
            "targets[1].name",
            "duplicate target name",
        ),
        (
            target("").replace("10.0.0.5:22", "10.0.0.5"),
            "targets[0].address",
            "invalid socket address \"10.0.0.5\" (expected host:port)",
        ),
        (
            target("").replace("[\"app\"]", "[]"),
            "targets[0].logins",
            "at least one login",
        ),
        (
            target("").replace("[\"app\"]", "[\"app\", \"r:oot\"]"),
            "targets[0].logins[1]",
            "invalid unix user name",
        ),
        (
            target("").replace("[\"app\"]", "[\"app\", 5]"),
            "targets[0].logins[1]",
            "invalid type",
        ),
        (
            target("host_key = \"nope\""),
            "targets[0].host_key",
            "invalid public key",
        ),
        (
            target("").replace("identity = \"k\"\n", ""),
            "targets[0]",
            "missing field `identity`",
        ),
        ("users = 5".into(), "users", "invalid type"),
    ];
    for (text, want_key, want_reason) in cases {
        let (key, reason) = invalid(&text);
        assert_eq!(key, want_key, "for {text:?}: {reason}");
        assert!(
            reason.contains(want_reason),
            "for {text:?}: {reason:?} lacks {want_reason:?}"
        );
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    match Config::parse("listen = \"127.0.0.1:2222\"\ndata_dir = \n", "bad.toml") {
        Err(err @ ConfigError::Syntax { line: 2, .. }) => {
            assert!(err.to_string().starts_with("bad.toml:2:"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/bastion.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/bastion.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn login_grace_and_limits_have_defaults_and_key_level_errors() {
    let config = Config::parse("", "bastion.toml").unwrap();
    assert_eq!(config.login_grace, Duration::from_secs(30));
    assert_eq!(config.limits, bastion::config::Limits::default());
    assert_eq!(config.limits.idle, Duration::from_secs(300));

    let example = Config::load(&example_path()).unwrap();
    assert_eq!(example.login_grace, Duration::from_secs(30));
    assert_eq!(example.limits, bastion::config::Limits::default());

    let set = Config::parse(
        "login_grace = \"5s\"\n[limits]\nunauthenticated = 10\nunauthenticated_per_source = 2\nconnections = 20\nsessions_per_user = 3\nidle = \"1m\"\n",
        "bastion.toml",
    )
    .unwrap();
    assert_eq!(set.login_grace, Duration::from_secs(5));
    assert_eq!(
        (
            set.limits.unauthenticated,
            set.limits.unauthenticated_per_source,
            set.limits.connections,
            set.limits.sessions_per_user,
            set.limits.idle
        ),
        (10, 2, 20, 3, Duration::from_secs(60))
    );

    let (key, reason) = invalid("login_grace = \"soon\"\n");
    assert_eq!(key, "login_grace");
    assert!(reason.contains("invalid duration"), "{reason}");
    let (key, reason) = invalid("[limits]\nconnections = 0\n");
    assert_eq!(key, "limits.connections");
    assert!(reason.contains("at least 1"), "{reason}");
    let (key, reason) = invalid("[limits]\nunauthenticated = 4\nunauthenticated_per_source = 8\n");
    assert_eq!(key, "limits.unauthenticated_per_source");
    assert!(
        reason.contains("more than limits.unauthenticated"),
        "{reason}"
    );
    let (key, _) = invalid("[limits]\nidle = \"0s\"\n");
    assert_eq!(key, "limits.idle");
    match Config::parse("[limits]\nsessions = 3\n", "bastion.toml") {
        Err(err) => assert!(err.to_string().contains("sessions"), "{err}"),
        Ok(_) => panic!("an unknown key in [limits] must be refused"),
    }
}
