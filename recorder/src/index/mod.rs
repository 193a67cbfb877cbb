//! The per-recording index (`{ID}/index.json.zst`): what a reader needs to seek and search without
//! reading the whole recording.
//!
//! - **Segment spans**: per stored segment its time range, event count and data bytes, so a reader
//!   knows which one segment holds a given time.
//! - **Keyframes**: the terminal state (`avt` `Terminal::dump()`, an escape sequence that recreates
//!   the screens, cursor, modes and even a half-parsed sequence) at the start of every segment
//!   whose predecessors changed the screen, and inside a segment after every
//!   [`KEYFRAME_OUTPUT_BYTES`] of output since the last keyframe. Seeking restores the latest
//!   keyframe at or before the target time and replays the rest of that one segment: segments in
//!   between have no output or resize events, which is why they got no keyframe of their own. So a
//!   seek replays at most one segment, and at most about `KEYFRAME_OUTPUT_BYTES` of output
//!   whatever `segment_bytes` is.
//! - **Commands**: typed command lines rebuilt from `i` events (see `text` module rules), timed
//!   at the keystroke that submitted them.
//! - **Output**: text lines of `o` events, escapes stripped, timed at the event that completed
//!   them. Capped so a 1 GB recording's index stays a few MB: within a segment a line is kept only
//!   once, at most [`MAX_OUTPUT_LINES_PER_SEGMENT`] lines per segment, each cut at 240 characters;
//!   `output_dropped` counts what was left out. Segments close every few seconds or MiB, so this
//!   keeps the start of every burst of output across the whole session.
//! - **Markers**: `m` events (warnings, the end reason).
//! - **Damage**: where playback stops when the recording is cut off or corrupt (a missing segment,
//!   an undecodable one, an unreadable event line, no manifest, or a manifest marking it
//!   incomplete). Everything up to that point is indexed and playable.
//!
//! Event times are made non-decreasing (a time earlier than its predecessor's counts as equal)
//! identically here and in [`crate::Reader`], so spans and replays agree on foreign recordings.
//! The stored object is JSON compressed with zstd; it is created once, like every recording
//! object, so an index is never rewritten in place.

use std::collections::HashSet;
use std::io::Read as _;

use serde::{Deserialize, Serialize};

mod stored;
pub(crate) mod terminal;
mod text;

pub(crate) use stored::{decode_segment, fetch_segment, parse_segment};
pub use terminal::{MAX_COLS, MAX_ROWS};

use crate::cast::{Event, EventKind, Header};
use text::{CommandLine, OutputText};

/// Object name of the index inside a recording's prefix.
pub const INDEX_OBJECT: &str = "index.json.zst";

/// Version of the index layout; readers rebuild indexes with a newer version than they know.
pub const INDEX_VERSION: u32 = 1;

/// Output lines kept per segment (see the module doc).
pub const MAX_OUTPUT_LINES_PER_SEGMENT: usize = 50;

/// Output bytes after which a keyframe is taken inside a segment. Replaying through `avt` runs at
/// roughly 25-30 MB/s, so this bounds the replay part of a seek to about 20 ms; each keyframe
/// costs a few KiB of index (an 80x24 to 120x40 screen dump), which the reader decodes on open.
pub const KEYFRAME_OUTPUT_BYTES: u64 = 512 * 1024;

/// Typed lines kept per segment: input is typed by hand, so only a paste of a large file gets
/// near this.
pub const MAX_COMMANDS_PER_SEGMENT: usize = 500;

/// Largest decompressed index accepted, so a damaged or hostile object cannot exhaust memory.
const MAX_INDEX_BYTES: u64 = 512 * 1024 * 1024;

/// Level 3: on index JSON it compresses within 1% of level 9, five times faster, and
/// decompresses faster, which is what opening a recording waits for.
const INDEX_ZSTD_LEVEL: i32 = 3;

/// Seek and search data of one recording (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingIndex {
    pub version: u32,
    /// The recording's header line, so a reader needs no segment to know the terminal size.
    pub header: Header,
    /// Time of the last playable event, in seconds.
    pub duration: f64,
    /// Initial terminal size (from the header, clamped to what replay supports).
    pub width: u16,
    pub height: u16,
    pub segments: Vec<SegmentSpan>,
    /// In segment order; the first segment with events always has one.
    pub keyframes: Vec<Keyframe>,
    pub commands: Vec<TextLine>,
    pub output: Vec<TextLine>,
    pub markers: Vec<TextLine>,
    /// Output lines left out by the caps.
    #[serde(default)]
    pub output_dropped: u64,
    /// Where and why playback stops early; `None` for an intact, finished recording.
    #[serde(default)]
    pub damage: Option<String>,
}

/// One segment's place in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSpan {
    pub seq: u32,
    /// Times of its first and last event (both the previous segment's end if it has none).
    pub t_start: f64,
    pub t_end: f64,
    pub events: u64,
    /// Bytes of event data it holds (UTF-8, before JSON escaping).
    pub raw_bytes: u64,
    /// Its output and resize events: zero means replaying it cannot change the screen.
    pub screen_events: u64,
}

/// Terminal state within segment `seq` after its first `event` events (0: at its start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    /// Time of the segment's next event, `event`: every event before it is at or before `t`.
    pub t: f64,
    pub seq: u32,
    #[serde(default)]
    pub event: u64,
    pub cols: u16,
    pub rows: u16,
    /// `avt::Terminal::dump()`: fed to a blank `cols` x `rows` terminal it recreates the state.
    pub dump: String,
}

/// A line of text at a time offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub t: f64,
    pub text: String,
}

impl RecordingIndex {
    /// Position in `segments` of the segment holding the last event at or before `t`;
    /// `None` before the first event.
    pub fn segment_at(&self, t: f64) -> Option<usize> {
        let candidates = self
            .segments
            .partition_point(|s| s.events == 0 || s.t_start <= t);
        self.segments[..candidates]
            .iter()
            .rposition(|s| s.events > 0 && s.t_start <= t)
    }

    /// The keyframe to seek from to reach time `t` in segment `seq`: the latest one in an
    /// earlier segment or in `seq` at or before `t`.
    pub fn keyframe_for(&self, seq: u32, t: f64) -> Option<&Keyframe> {
        let after = self
            .keyframes
            .partition_point(|k| k.seq < seq || (k.seq == seq && k.t <= t));
        after.checked_sub(1).map(|i| &self.keyframes[i])
    }

    /// The stored form: JSON compressed with zstd.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        zstd::bulk::compress(&json, INDEX_ZSTD_LEVEL)
    }

    /// Reads the stored form; refuses indexes of a newer layout than this code knows.
    pub fn decode(bytes: &[u8]) -> std::io::Result<RecordingIndex> {
        // One-shot decompression into a buffer of the size the frame header announces is several
        // times faster than streaming; `encode` always writes that size.
        let size = zstd::zstd_safe::get_frame_content_size(bytes)
            .ok()
            .flatten();
        let json = match size {
            Some(size) if size <= MAX_INDEX_BYTES => zstd::bulk::decompress(bytes, size as usize)?,
            _ => {
                let mut json = Vec::new();
                zstd::stream::read::Decoder::new(bytes)?
                    .take(MAX_INDEX_BYTES)
                    .read_to_end(&mut json)?;
                json
            }
        };
        let index: RecordingIndex = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
        if index.version > INDEX_VERSION {
            return Err(std::io::Error::other(format!(
                "unsupported index version {}",
                index.version
            )));
        }
        Ok(index)
    }
}

/// Builds an index from a recording's events in order, tagged with their segment's sequence
/// number. For damage reporting (missing or corrupt segments) use [`IndexBuilder`] directly.
pub fn build_index(header: &Header, events: impl Iterator<Item = (u32, Event)>) -> RecordingIndex {
    let mut builder = IndexBuilder::new(header);
    for (seq, event) in events {
        builder.push(seq, &event);
    }
    builder.finish()
}

/// Builds a [`RecordingIndex`] event by event, replaying the output through a terminal emulator.
pub struct IndexBuilder {
    index: RecordingIndex,
    terminal: avt::Terminal,
    command: CommandLine,
    text: OutputText,
    /// Sequence number of the segment being indexed.
    current: Option<u32>,
    /// The screen changed since the last keyframe.
    changed: bool,
    output_since_keyframe: u64,
    /// Output lines kept in the current segment (for the per-segment cap and de-duplication).
    segment_lines: HashSet<String>,
    segment_commands: usize,
    last_time: f64,
    stop_reason: Option<String>,
}

impl IndexBuilder {
    pub fn new(header: &Header) -> IndexBuilder {
        let cols = usize::try_from(header.width).unwrap_or(usize::MAX);
        let rows = usize::try_from(header.height).unwrap_or(usize::MAX);
        let terminal = terminal::blank(cols, rows);
        let (width, height) = terminal::size_u16(&terminal);
        IndexBuilder {
            index: RecordingIndex {
                version: INDEX_VERSION,
                header: header.clone(),
                duration: 0.0,
                width,
                height,
                segments: Vec::new(),
                keyframes: Vec::new(),
                commands: Vec::new(),
                output: Vec::new(),
                markers: Vec::new(),
                output_dropped: 0,
                damage: None,
            },
            terminal,
            command: CommandLine::default(),
            text: OutputText::default(),
            current: None,
            changed: true,
            output_since_keyframe: 0,
            segment_lines: HashSet::new(),
            segment_commands: 0,
            last_time: 0.0,
            stop_reason: None,
        }
    }

    /// Starts segment `seq` explicitly (so segments without events are listed too). A sequence
    /// number other than the next one stops the index there: the segment in between is missing.
    /// Returns false once the builder has stopped.
    pub fn segment(&mut self, seq: u32) -> bool {
        if self.stop_reason.is_some() {
            return false;
        }
        let expected = self.current.map_or(0, |c| c.saturating_add(1));
        if seq != expected {
            self.stop(&format!("segment {expected} is missing"));
            return false;
        }
        self.start_segment(seq);
        true
    }

    fn start_segment(&mut self, seq: u32) {
        self.current = Some(seq);
        self.segment_lines.clear();
        self.segment_commands = 0;
        self.index.segments.push(SegmentSpan {
            seq,
            t_start: self.last_time,
            t_end: self.last_time,
            events: 0,
            raw_bytes: 0,
            screen_events: 0,
        });
    }

    /// Adds the next event of segment `seq` (a new `seq` starts that segment, unchecked).
    pub fn push(&mut self, seq: u32, event: &Event) {
        if self.stop_reason.is_some() {
            return;
        }
        if self.current != Some(seq) {
            self.start_segment(seq);
        }
        let t = event.time.max(self.last_time);
        self.last_time = t;
        let Some(span) = self.index.segments.last_mut() else {
            return;
        };
        if span.events == 0 {
            span.t_start = t;
        }
        if (span.events == 0 && self.changed) || self.output_since_keyframe >= KEYFRAME_OUTPUT_BYTES
        {
            let (cols, rows) = terminal::size_u16(&self.terminal);
            self.index.keyframes.push(Keyframe {
                t,
                seq,
                event: span.events,
                cols,
                rows,
                dump: self.terminal.dump(),
            });
            self.changed = false;
            self.output_since_keyframe = 0;
        }
        span.t_end = t;
        span.events += 1;
        span.raw_bytes += event.data.len() as u64;
        if terminal::apply(&mut self.terminal, event) {
            span.screen_events += 1;
            self.changed = true;
            self.output_since_keyframe += event.data.len() as u64;
        }
        match event.kind {
            EventKind::Output => {
                let (kept, dropped, lines) = (
                    &mut self.segment_lines,
                    &mut self.index.output_dropped,
                    &mut self.index.output,
                );
                self.text
                    .feed(&event.data, |line| keep_line(kept, dropped, lines, t, line));
            }
            EventKind::Input => {
                let (count, commands) = (&mut self.segment_commands, &mut self.index.commands);
                self.command.feed(&event.data, |text| {
                    if *count < MAX_COMMANDS_PER_SEGMENT {
                        *count += 1;
                        commands.push(TextLine { t, text });
                    }
                });
            }
            EventKind::Marker => self.index.markers.push(TextLine {
                t,
                text: event.data.clone(),
            }),
            EventKind::Resize | EventKind::Other(_) => {}
        }
    }

    /// Stops indexing here: later events are ignored and the index reports `reason` as damage.
    /// Only the first reason is kept.
    pub fn stop(&mut self, reason: &str) {
        self.stop_reason.get_or_insert_with(|| reason.to_string());
    }

    /// Whether [`IndexBuilder::stop`] was called (or a gap stopped it).
    pub fn is_stopped(&self) -> bool {
        self.stop_reason.is_some()
    }

    /// Time of the last event accepted so far.
    pub fn last_time(&self) -> f64 {
        self.last_time
    }

    pub fn finish(mut self) -> RecordingIndex {
        let t = self.last_time;
        let (kept, dropped, lines) = (
            &mut self.segment_lines,
            &mut self.index.output_dropped,
            &mut self.index.output,
        );
        self.text
            .flush(|line| keep_line(kept, dropped, lines, t, line));
        self.index.duration = t;
        self.index.damage = self
            .stop_reason
            .map(|reason| format!("{reason}: playback stops at {t:.3} s"));
        self.index
    }
}

fn keep_line(
    kept: &mut HashSet<String>,
    dropped: &mut u64,
    lines: &mut Vec<TextLine>,
    t: f64,
    line: &str,
) {
    if kept.len() < MAX_OUTPUT_LINES_PER_SEGMENT && !kept.contains(line) {
        kept.insert(line.to_string());
        lines.push(TextLine {
            t,
            text: line.to_string(),
        });
    } else {
        *dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: 2,
            width: 20,
            height: 5,
            timestamp: None,
            env: None,
            title: None,
            bastion: None,
        }
    }

    fn ev(time: f64, kind: EventKind, data: &str) -> Event {
        Event {
            time,
            kind,
            data: data.to_string(),
        }
    }

    #[test]
    fn keyframes_only_where_the_screen_changed() {
        let events = vec![
            (0, ev(0.5, EventKind::Output, "$ ")),
            (1, ev(1.0, EventKind::Input, "ls\r")),
            (2, ev(2.0, EventKind::Output, "a b\r\n$ ")),
            (3, ev(1.5, EventKind::Marker, "warning")),
            (4, ev(4.0, EventKind::Resize, "30x6")),
            (5, ev(5.0, EventKind::Output, "x")),
        ];
        let index = build_index(&header(), events.into_iter());
        let seqs: Vec<u32> = index.keyframes.iter().map(|k| k.seq).collect();
        // Segment 2 follows an input-only segment; segment 4 follows a marker-only one.
        assert_eq!(seqs, [0, 1, 3, 5]);
        assert_eq!((index.keyframes[3].cols, index.keyframes[3].rows), (30, 6));
        // The marker's earlier time is clamped to its predecessor's.
        assert_eq!(index.markers[0].t, 2.0);
        assert_eq!(
            index.commands,
            [TextLine {
                t: 1.0,
                text: "ls".into()
            }]
        );
        assert_eq!(index.segment_at(0.1), None);
        assert_eq!(index.segment_at(2.5), Some(3));
        assert_eq!(index.segment_at(99.0), Some(5));
        assert_eq!(index.keyframe_for(2, 2.0).map(|k| k.seq), Some(1));
        assert!(index.keyframes.iter().all(|k| k.event == 0));
        assert_eq!(index.duration, 5.0);
        assert_eq!(index.damage, None);
        let decoded = RecordingIndex::decode(&index.encode().unwrap()).unwrap();
        assert_eq!(decoded, index);
    }

    #[test]
    fn big_segments_get_keyframes_inside() {
        let mut builder = IndexBuilder::new(&header());
        let chunk = "x".repeat(64 * 1024);
        let per_keyframe = KEYFRAME_OUTPUT_BYTES / chunk.len() as u64;
        for i in 0..per_keyframe * 3 {
            builder.push(0, &ev(i as f64, EventKind::Output, &chunk));
        }
        builder.push(1, &ev(1e4, EventKind::Output, "y"));
        let index = builder.finish();
        let at: Vec<(u32, u64, f64)> = index
            .keyframes
            .iter()
            .map(|k| (k.seq, k.event, k.t))
            .collect();
        let n = per_keyframe;
        assert_eq!(
            at,
            [
                (0, 0, 0.0),
                (0, n, n as f64),
                (0, 2 * n, (2 * n) as f64),
                (1, 0, 1e4)
            ]
        );
        assert_eq!(
            index.keyframe_for(0, n as f64 - 0.5).map(|k| k.event),
            Some(0)
        );
        assert_eq!(index.keyframe_for(0, n as f64).map(|k| k.event), Some(n));
        assert_eq!(index.keyframe_for(1, 1e5).map(|k| k.seq), Some(1));
    }

    #[test]
    fn output_lines_are_capped_per_segment() {
        let mut builder = IndexBuilder::new(&header());
        let burst: String = (0..MAX_OUTPUT_LINES_PER_SEGMENT + 50)
            .map(|i| format!("line {i}\r\nline 0\r\n"))
            .collect();
        builder.push(0, &ev(1.0, EventKind::Output, &burst));
        builder.push(1, &ev(2.0, EventKind::Output, "line 0\r\ntail"));
        let index = builder.finish();
        assert_eq!(index.output.len(), MAX_OUTPUT_LINES_PER_SEGMENT + 2);
        assert_eq!(index.output.last().unwrap().text, "tail");
        assert_eq!(
            index.output_dropped,
            (MAX_OUTPUT_LINES_PER_SEGMENT + 50) as u64 * 2 - MAX_OUTPUT_LINES_PER_SEGMENT as u64
        );
    }

    #[test]
    fn a_gap_stops_the_index_and_says_where() {
        let mut builder = IndexBuilder::new(&header());
        assert!(builder.segment(0));
        builder.push(0, &ev(1.0, EventKind::Output, "one\r\n"));
        assert!(!builder.segment(2));
        builder.push(2, &ev(9.0, EventKind::Output, "after the gap\r\n"));
        let index = builder.finish();
        assert_eq!(index.segments.len(), 1);
        assert_eq!(index.duration, 1.0);
        assert_eq!(
            index.damage.as_deref(),
            Some("segment 1 is missing: playback stops at 1.000 s")
        );
        assert!(RecordingIndex::decode(b"not zstd").is_err());
    }
}
