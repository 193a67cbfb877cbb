//! "A recording source": the one interface the player needs from a recording, whatever holds
//! it. [`cast::CastSource`] is a recording held in memory as events, loaded progressively from a
//! local `.cast`/`.cast.zst` file, from a store recording's segments, or grown live while a
//! session runs; [`store::StoreSource`] reads a finished store recording through `recorder`'s
//! seekable reader. The player worker (`worker.rs`) only talks to this trait, so the UI does not
//! care which one it plays.

pub mod cast;
pub mod file;
pub mod store;
pub mod text;
mod timeline;

use std::future::Future;
use std::pin::Pin;

use recorder::Event;
use time::OffsetDateTime;

/// Why a source could not produce what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read recording {what}: {reason}")]
    Read { what: String, reason: String },
    #[error("recording {what} has no readable header: {reason}")]
    Header { what: String, reason: String },
    #[error("invalid terminal size {cols}x{rows} in recording")]
    Size { cols: usize, rows: usize },
}

/// Boxed future so the trait stays object safe (`Box<dyn RecordingSource>`).
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// Who, where and when: what the player frame and the browser show about a recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordingInfo {
    /// Recording id (the session id) when known.
    pub id: Option<String>,
    pub user: Option<String>,
    pub target: Option<String>,
    pub login: Option<String>,
    pub title: Option<String>,
    /// Terminal size at the start.
    pub width: u16,
    pub height: u16,
    pub started_at: Option<OffsetDateTime>,
    /// Still being written: more events may arrive (follow mode).
    pub live: bool,
    /// Where it was read from (a path or a store location), for the frame title.
    pub origin: String,
}

/// A piece of text at a time offset: a typed command, an output line or a marker label.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedText {
    pub t: f64,
    pub text: String,
}

/// What a timeline marker stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// An `m` event: warnings, the end reason.
    Marker,
    /// An `r` event.
    Resize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub t: f64,
    pub kind: MarkKind,
    pub label: String,
}

/// Loading state of a source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// 0.0 to 1.0; 1.0 once everything present is loaded.
    pub fraction: f64,
    pub done: bool,
    /// Short human text ("loading 120 MiB of 1.0 GiB").
    pub detail: String,
}

/// What became known about a recording since the last delta: appended, never rewritten, so a
/// long recording's index is never copied again just because loading progressed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexDelta {
    /// Time of the last event known so far.
    pub duration: f64,
    pub commands: Vec<TimedText>,
    pub output: Vec<TimedText>,
    pub marks: Vec<Mark>,
    /// Output bytes per whole second of recording time: `(second, bytes)`, seconds ascending.
    /// A second may continue the previous delta's last entry, then the bytes add up.
    pub activity: Vec<(u64, u64)>,
    pub progress: Progress,
    /// Where a corrupt or truncated recording stops, once known.
    pub damage: Option<String>,
    /// The recording is still growing.
    pub live: bool,
}

impl IndexDelta {
    /// Nothing new besides duration/progress.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
            && self.output.is_empty()
            && self.marks.is_empty()
            && self.activity.is_empty()
    }
}

/// The events next to a time: for frame stepping and for capping idle time during playback.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Neighbours {
    /// Time of the last event at or before the time asked about.
    pub previous: Option<f64>,
    /// Time of the first event after it.
    pub next: Option<f64>,
}

/// One recording, as the player needs it.
pub trait RecordingSource: Send {
    fn info(&self) -> RecordingInfo;

    /// Index data that became available since the previous call (everything on the first).
    fn poll_index(&mut self) -> Option<IndexDelta>;

    /// Time of the last event known now.
    fn duration(&self) -> f64;

    /// The terminal as it was at `t` (all events with time <= t applied).
    fn screen_at(&mut self, t: f64) -> SourceFuture<'_, avt::Terminal>;

    /// Events with `from < time <= to`, in order.
    fn events_between(&mut self, from: f64, to: f64) -> SourceFuture<'_, Vec<Event>>;

    fn neighbours(&mut self, t: f64) -> SourceFuture<'_, Neighbours>;

    /// The asciicast header to write when exporting (terminal size and metadata of the start).
    fn header(&self) -> recorder::Header;
}

/// Applies one event to a terminal being replayed; only output and resizes change the screen.
pub fn apply_event(term: &mut avt::Terminal, event: &Event) {
    match event.kind {
        recorder::EventKind::Output => term.feed(event.data.as_str()),
        recorder::EventKind::Resize => {
            if let Some((cols, rows)) = parse_size(&event.data) {
                term.resize(cols, rows);
            }
        }
        _ => {}
    }
}

/// `"COLSxROWS"` of a resize event; `None` for anything malformed or zero.
pub fn parse_size(data: &str) -> Option<(usize, usize)> {
    let (cols, rows) = data.trim().split_once('x')?;
    let cols: usize = cols.trim().parse().ok()?;
    let rows: usize = rows.trim().parse().ok()?;
    // A corrupt resize must not make the replaying terminal allocate gigabytes.
    ((1..=2000).contains(&cols) && (1..=1000).contains(&rows)).then_some((cols, rows))
}

/// A new terminal of the header's size (clamped to something sane).
pub fn new_terminal(cols: usize, rows: usize) -> Result<avt::Terminal, SourceError> {
    let clamped = (cols.clamp(1, 2000), rows.clamp(1, 1000));
    avt::Terminal::new(clamped.0, clamped.1).map_err(|_| SourceError::Size { cols, rows })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_and_absurd_ones_are_refused() {
        assert_eq!(parse_size("80x24"), Some((80, 24)));
        assert_eq!(parse_size(" 120x40 "), Some((120, 40)));
        for bad in ["", "80", "0x24", "80x0", "x", "99999x24", "axb"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
