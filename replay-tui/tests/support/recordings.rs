//! Sample recordings for tests: literal asciicast files (colours, vim in the alternate screen,
//! a resize, a shell session with pauses and markers) and a file store filled through
//! `recorder::RecordingWriter` with explicit event times, plus a bastion configuration file
//! pointing at it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use recorder::{RecordingMeta, RecordingStore, RecordingWriter, StoreConfig};
use replay_tui::config::ReplayConfig;
use tempfile::TempDir;
use time::OffsetDateTime;

/// 2024-05-01 12:03:04 UTC.
pub const START: i64 = 1_714_564_984;

/// An event of a sample recording: time, code (`o`, `i`, `r`, `m`), data.
pub type Ev = (f64, &'static str, &'static str);

/// Asciicast text with bastion's header keys.
pub fn cast(width: u32, height: u32, events: &[Ev]) -> String {
    let header = serde_json::json!({
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": START,
        "title": "alice to app@db-1",
        "bastion": {
            "format": 1,
            "session_id": "0192d1c4-sample",
            "user": "alice",
            "target": "db-1",
            "login": "app",
            "grant_id": 7,
            "command": null
        }
    });
    let mut text = format!("{header}\n");
    for (t, code, data) in events {
        text.push_str(&serde_json::to_string(&(t, code, data)).expect("event json"));
        text.push('\n');
    }
    text
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write sample recording");
    path
}

const PROMPT: &str = "\u{1b}[1;32mapp@db-1\u{1b}[0m:\u{1b}[1;34m~\u{1b}[0m$ ";

/// Colours and attributes: 16-colour, 256-colour, true colour, bold, underline, inverse.
pub fn colours() -> String {
    cast(
        40,
        8,
        &[
            (0.1, "o", PROMPT),
            (0.5, "i", "ls --color\r"),
            (0.6, "o", "ls --color\r\n"),
            (
                0.7,
                "o",
                "\u{1b}[1;34mbin\u{1b}[0m  \u{1b}[31merror.log\u{1b}[0m  \u{1b}[38;5;208morange\u{1b}[0m\r\n",
            ),
            (
                0.8,
                "o",
                "\u{1b}[48;2;0;95;135m truecolor \u{1b}[0m \u{1b}[4munder\u{1b}[0m \u{1b}[7minverse\u{1b}[0m\r\n",
            ),
            (0.9, "o", PROMPT),
        ],
    )
}

/// A shell, then vim in the alternate screen, then back to the shell.
pub fn vim() -> String {
    cast(
        40,
        8,
        &[
            (0.1, "o", PROMPT),
            (1.0, "i", "vim notes.txt\r"),
            (1.1, "o", "vim notes.txt\r\n"),
            (
                1.2,
                "o",
                "\u{1b}[?1049h\u{1b}[H\u{1b}[2J\u{1b}[1mDROP TABLE users;\u{1b}[0m\r\n\u{1b}[34m~\u{1b}[0m\r\n\u{1b}[34m~\u{1b}[0m\r\n\u{1b}[34m~\u{1b}[0m\r\n\u{1b}[34m~\u{1b}[0m\r\n\u{1b}[34m~\u{1b}[0m\r\n\u{1b}[7m notes.txt [+]           1,1  All\u{1b}[0m\u{1b}[8;1H\"notes.txt\" 1L, 18B\u{1b}[1;5H",
            ),
            (2.0, "i", ":wq\r"),
            (2.1, "o", "\u{1b}[?1049l"),
            (2.2, "o", PROMPT),
        ],
    )
}

/// Output at 30x6, a resize to 44x8, output using the new width.
pub fn resize() -> String {
    cast(
        30,
        6,
        &[
            (0.1, "o", "narrow terminal 30x6\r\n$ "),
            (1.0, "r", "44x8"),
            (
                1.1,
                "o",
                "\r\nnow 44 columns wide: 0123456789012345678901\r\n$ ",
            ),
        ],
    )
}

/// A shell session with typed commands, a long idle pause and markers.
pub fn session() -> String {
    cast(
        60,
        10,
        &[
            (0.2, "o", PROMPT),
            (1.0, "i", "l"),
            (1.1, "i", "s"),
            (1.3, "i", "\r"),
            (1.3, "o", "ls\r\nnotes.txt  backup.sql\r\n"),
            (1.4, "o", PROMPT),
            // Typed, echoed by the shell, then submitted.
            (2.5, "i", "psql -c 'DROP TABLE users'"),
            (2.6, "o", "psql -c 'DROP TABLE users'"),
            (3.0, "i", "\r"),
            (
                3.1,
                "o",
                "\r\nERROR:  permission denied for table users\r\n",
            ),
            (3.2, "o", PROMPT),
            (60.0, "m", "grant expires in 5 minutes"),
            (61.5, "i", "cat notes.txt"),
            (61.6, "o", "cat notes.txt"),
            (62.0, "i", "\r"),
            (62.1, "o", "\r\nremember to drop table users\r\n"),
            (62.2, "o", PROMPT),
            (70.0, "m", "end: grant expired"),
        ],
    )
}

/// A file store in a temp dir, its writer store and a bastion config file for it.
pub struct TestStore {
    pub dir: TempDir,
    pub config_path: PathBuf,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("bastion.toml");
        let text = format!(
            "# written by the replay-tui tests\nlisten = \"127.0.0.1:2222\"\ndata_dir = {:?}\nrecordings = {:?}\n[recording]\nsegment_interval = \"1s\"\n",
            dir.path().join("data").display().to_string(),
            format!("file://{}", dir.path().join("recordings").display()),
        );
        std::fs::write(&config_path, text).expect("write config");
        TestStore { dir, config_path }
    }

    pub fn config(&self) -> ReplayConfig {
        ReplayConfig::load(&self.config_path).expect("load config")
    }

    /// Adds `[replay] allow_end_session = true` to the config file, as an admin letting
    /// reviewers end live sessions would.
    pub fn allow_end_session(&self) {
        let mut text = std::fs::read_to_string(&self.config_path).expect("read config");
        text.push_str("[replay]\nallow_end_session = true\n");
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// The store the bastion would write with (segments cut every `interval`).
    pub async fn writer(&self, interval: Duration) -> RecordingStore {
        let config = self.config();
        RecordingStore::open(StoreConfig {
            segment_interval: interval,
            segment_bytes: 64 * 1024,
            ..config.store_config()
        })
        .await
        .expect("open writer store")
    }
}

pub fn meta(id: &str, user: &str, target: &str, started: i64) -> RecordingMeta {
    RecordingMeta {
        id: id.to_string(),
        user: user.to_string(),
        target: target.to_string(),
        login: "app".to_string(),
        grant_id: Some(1),
        command: None,
        width: 60,
        height: 10,
        term: None,
        started_at: OffsetDateTime::from_unix_timestamp(started).expect("timestamp"),
    }
}

/// Writes `events` through the recorder at their times.
pub async fn record(writer: &RecordingWriter, events: &[Ev]) {
    for (t, code, data) in events {
        let at = Duration::from_secs_f64(*t);
        let result = match *code {
            "o" => writer.output_at(at, data.as_bytes()).await,
            "i" => writer.input_at(at, data.as_bytes()).await,
            "m" => writer.marker_at(at, data).await,
            "r" => {
                let (cols, rows) = data.split_once('x').expect("resize data");
                writer
                    .resize_at(at, cols.parse().expect("cols"), rows.parse().expect("rows"))
                    .await
            }
            other => panic!("unknown event code {other}"),
        };
        result.expect("record event");
    }
}

/// A whole finished recording.
pub async fn finished(store: &RecordingStore, meta: RecordingMeta, events: &[Ev], end: &str) {
    let end_at = Duration::from_secs_f64(events.last().map_or(0.0, |e| e.0) + 0.5);
    let writer = store.begin(meta).expect("begin recording");
    record(&writer, events).await;
    writer
        .finish_at(end_at, end)
        .await
        .expect("finish recording");
}

/// The events of [`session`] for writing to a store.
pub const SESSION_EVENTS: &[Ev] = &[
    (0.2, "o", "app@db-1:~$ "),
    (0.8, "i", "ls"),
    (0.9, "o", "ls"),
    (1.0, "i", "\r"),
    (1.1, "o", "\r\nnotes.txt  backup.sql\r\napp@db-1:~$ "),
    (2.5, "i", "psql -c 'DROP TABLE users'"),
    (2.6, "o", "psql -c 'DROP TABLE users'"),
    (3.0, "i", "\r"),
    (
        3.1,
        "o",
        "\r\nERROR:  permission denied for table users\r\napp@db-1:~$ ",
    ),
    (20.0, "m", "grant expires in 5 minutes"),
    (20.5, "i", "exit"),
    (20.6, "o", "exit"),
    (21.0, "i", "\r"),
    (21.1, "o", "\r\n"),
];
