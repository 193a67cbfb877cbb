//! Helpers for the index and reader tests: a local store, the recorded sessions in this directory
//! written through the real `RecordingWriter`, and a straight (no keyframe) replay to compare
//! seeks against.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use recorder::{Event, EventKind, ParsedCast, RecordingMeta, RecordingStore, StoreConfig};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/index_data")
}

/// A recorded session from `tests/index_data` (see `record.py` there).
pub fn session(name: &str) -> anyhow::Result<ParsedCast> {
    let bytes = std::fs::read(data_dir().join(name))?;
    let cast = recorder::parse_cast(&bytes)?;
    anyhow::ensure!(cast.errors.is_empty(), "{name}: {:?}", cast.errors);
    Ok(cast)
}

pub fn config(dir: &Path, segment_bytes: usize) -> StoreConfig {
    StoreConfig {
        url: format!("file://{}", dir.join("store").display()),
        spool_dir: dir.join("spool"),
        segment_interval: Duration::from_secs(3600),
        segment_bytes,
        finish_timeout: Duration::from_secs(10),
        ..StoreConfig::default()
    }
}

pub fn meta(id: &str, width: u32, height: u32) -> RecordingMeta {
    RecordingMeta {
        id: id.to_string(),
        user: "alice".to_string(),
        target: "db-1".to_string(),
        login: "postgres".to_string(),
        grant_id: Some(7),
        command: None,
        width: width as u16,
        height: height as u16,
        term: Some("xterm-256color".to_string()),
        started_at: time::macros::datetime!(2025-01-02 03:04:05 UTC),
    }
}

/// Records `cast`'s events as recording `id` and finishes it.
pub async fn record(store: &RecordingStore, id: &str, cast: &ParsedCast) -> anyhow::Result<()> {
    let writer = store.begin(meta(id, cast.header.width, cast.header.height))?;
    let mut last = Duration::ZERO;
    for event in &cast.events {
        let at = Duration::from_secs_f64(event.time);
        last = last.max(at);
        match event.kind {
            EventKind::Output => writer.output_at(at, event.data.as_bytes()).await?,
            EventKind::Input => writer.input_at(at, event.data.as_bytes()).await?,
            EventKind::Resize => {
                let (cols, rows) = event.data.split_once('x').expect("fixture resize");
                writer.resize_at(at, cols.parse()?, rows.parse()?).await?
            }
            EventKind::Marker => writer.marker_at(at, &event.data).await?,
            EventKind::Other(_) => {}
        }
    }
    let summary = writer.finish_at(last, "test").await?;
    anyhow::ensure!(summary.complete && summary.uploaded, "{summary:?}");
    Ok(())
}

/// The terminal after every event at or before `t`, replayed from the start.
pub fn straight_replay(width: u32, height: u32, events: &[Event], t: f64) -> avt::Terminal {
    let mut terminal = avt::Terminal::new(width as usize, height as usize).expect("size");
    for event in events.iter().take_while(|e| e.time <= t) {
        match event.kind {
            EventKind::Output => terminal.feed(event.data.as_str()),
            EventKind::Resize => {
                if let Some((c, r)) = event.data.split_once('x') {
                    terminal.resize(c.parse().expect("cols"), r.parse().expect("rows"));
                }
            }
            _ => {}
        }
    }
    terminal
}

/// Everything a viewer would see: size, active screen, cursor, every visible cell with its
/// colours and attributes.
pub fn assert_same_screen(seek: &avt::Terminal, straight: &avt::Terminal, context: &str) {
    assert_eq!(seek.size(), straight.size(), "{context}: size");
    assert_eq!(
        seek.active_screen_kind(),
        straight.active_screen_kind(),
        "{context}: active screen"
    );
    assert_eq!(seek.cursor(), straight.cursor(), "{context}: cursor");
    let cells = |t: &avt::Terminal| -> Vec<Vec<avt::Cell>> {
        t.screen()
            .visible_lines()
            .map(|l| l.cells().to_vec())
            .collect()
    };
    assert_eq!(cells(seek), cells(straight), "{context}: cells");
    assert_eq!(
        seek.primary_screen().text(),
        straight.primary_screen().text(),
        "{context}: primary screen"
    );
}

/// Times worth seeking to: every event time, just before and after it, and past the end.
pub fn probe_times(events: &[Event]) -> Vec<f64> {
    let mut times = vec![-1.0, 0.0];
    for e in events {
        times.extend([e.time - 0.000_5, e.time, e.time + 0.000_5]);
    }
    times.push(events.last().map_or(0.0, |e| e.time) + 10.0);
    times
}
