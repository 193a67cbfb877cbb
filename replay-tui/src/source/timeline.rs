//! The shared, growing part of a recording loaded into memory: events in fixed-size data chunks
//! (appending to a gigabyte recording never copies what is already loaded, nor holds the lock
//! long), terminal keyframes every [`KEYFRAME_BYTES`] of output, and the text index.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use recorder::{Event, EventKind, Header};

use super::{Mark, Progress, SourceError, TimedText, new_terminal, parse_size};

/// Output replayed between keyframes at most: bounds the cost of showing any point.
pub const KEYFRAME_BYTES: usize = 256 * 1024;

/// Event data chunk size.
const CHUNK_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub(super) struct StoredEvent {
    pub(super) time: f64,
    pub(super) code: u8,
    pub(super) chunk: u32,
    pub(super) start: u32,
    pub(super) len: u32,
}

/// Terminal state after the first `events` events.
#[derive(Debug, Clone)]
pub(super) struct Keyframe {
    pub(super) events: usize,
    pub(super) cols: usize,
    pub(super) rows: usize,
    pub(super) dump: String,
}

/// The shared, growing part of a loaded recording.
#[derive(Debug)]
pub(super) struct Timeline {
    pub(super) header: Header,
    pub(super) chunks: Vec<Vec<u8>>,
    pub(super) events: Vec<StoredEvent>,
    pub(super) keyframes: Vec<Keyframe>,
    pub(super) commands: Vec<TimedText>,
    pub(super) output: Vec<TimedText>,
    pub(super) marks: Vec<Mark>,
    pub(super) activity: Vec<(u64, u64)>,
    pub(super) progress: Progress,
    pub(super) damage: Option<String>,
    pub(super) live: bool,
}

impl Timeline {
    pub(super) fn new(header: Header) -> Timeline {
        let keyframe = Keyframe {
            events: 0,
            cols: header.width as usize,
            rows: header.height as usize,
            dump: String::new(),
        };
        Timeline {
            header,
            chunks: Vec::new(),
            events: Vec::new(),
            keyframes: vec![keyframe],
            commands: Vec::new(),
            output: Vec::new(),
            marks: Vec::new(),
            activity: Vec::new(),
            progress: Progress::default(),
            damage: None,
            live: false,
        }
    }

    pub(super) fn duration(&self) -> f64 {
        self.events.last().map_or(0.0, |e| e.time)
    }

    pub(super) fn data(&self, event: &StoredEvent) -> &str {
        let chunk = &self.chunks[event.chunk as usize];
        let bytes = &chunk[event.start as usize..(event.start + event.len) as usize];
        // Only whole `&str`s are ever stored, so this cannot fail; an empty string is harmless.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    pub(super) fn event(&self, index: usize) -> Event {
        let stored = &self.events[index];
        let kind = match stored.code {
            b'o' => EventKind::Output,
            b'i' => EventKind::Input,
            b'r' => EventKind::Resize,
            b'm' => EventKind::Marker,
            _ => EventKind::Other("?".to_string()),
        };
        Event {
            time: stored.time,
            kind,
            data: self.data(stored).to_string(),
        }
    }

    /// Number of events with time <= t.
    pub(super) fn count_upto(&self, t: f64) -> usize {
        self.events.partition_point(|e| e.time <= t)
    }

    pub(super) fn push(&mut self, time: f64, code: u8, data: &str) {
        let need = data.len();
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= need);
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK_BYTES.max(need)));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        let start = chunk.len();
        chunk.extend_from_slice(data.as_bytes());
        self.events.push(StoredEvent {
            time,
            code,
            chunk: chunk_index as u32,
            start: start as u32,
            len: need as u32,
        });
    }

    pub(super) fn replay(&self, upto: usize) -> Result<avt::Terminal, SourceError> {
        let k = self.keyframes.partition_point(|k| k.events <= upto);
        let keyframe = &self.keyframes[k.saturating_sub(1)];
        let mut term = new_terminal(keyframe.cols, keyframe.rows)?;
        term.feed(keyframe.dump.as_str());
        for index in keyframe.events..upto {
            let stored = &self.events[index];
            match stored.code {
                b'o' => term.feed(self.data(stored)),
                b'r' => {
                    if let Some((cols, rows)) = parse_size(self.data(stored)) {
                        term.resize(cols, rows);
                    }
                }
                _ => {}
            }
        }
        Ok(term)
    }
}

pub(super) fn read(timeline: &RwLock<Timeline>) -> RwLockReadGuard<'_, Timeline> {
    // A loader thread that panicked leaves the data it appended intact and consistent (every
    // append finishes before the guard drops), so reading on is safe.
    timeline.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write(timeline: &RwLock<Timeline>) -> RwLockWriteGuard<'_, Timeline> {
    timeline.write().unwrap_or_else(|e| e.into_inner())
}
