//! Reading one recording for replay: terminal state at any time offset, events over a time range,
//! and where a damaged recording stops.
//!
//! A [`Reader`] holds the recording's [`RecordingIndex`] (loaded from the store, or built in
//! memory when the recording has none yet) and fetches segments only when asked: `screen_at(t)`
//! restores the latest keyframe at or before `t` and replays the rest of the one segment holding
//! `t` up to it. Decoded segments are kept in a small LRU cache, so stepping through a recording does not
//! fetch the same segment again. A local `.cast` or `.cast.zst` file is cut into 1 MiB pieces in
//! memory that play the part of segments.
//!
//! Damage (a missing or undecodable segment, an unreadable line, an unfinished recording) never
//! panics: the index stops at the first damage, playback ends there, and [`Reader::damage`] says
//! where and why. Store errors (network, permissions) are returned as errors instead, so a
//! passing outage is never mistaken for a damaged recording.

use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::Arc;

use crate::cast::{Event, Header};
use crate::error::ReadError;
use crate::index::{
    IndexBuilder, RecordingIndex, decode_segment, fetch_segment, parse_segment, terminal,
};
use crate::store::RecordingStore;

/// Decoded segments kept by a reader: the current one, its neighbours for stepping back and forth
/// and a seek target, at about 1 MiB of events each.
const CACHED_SEGMENTS: usize = 4;

/// Data bytes per in-memory piece of a `.cast` file (the store's default segment size).
const CAST_PIECE_BYTES: u64 = 1024 * 1024;

/// One opened recording.
pub struct Reader {
    index: RecordingIndex,
    source: Source,
    /// Most recently used first.
    cache: VecDeque<(u32, Arc<Vec<Event>>)>,
    damage: Option<String>,
}

enum Source {
    Store {
        store: RecordingStore,
        id: String,
    },
    /// A `.cast` file's events, one entry per piece (the piece's "segment" number is its position).
    Memory {
        pieces: Vec<Arc<Vec<Event>>>,
    },
}

impl Reader {
    /// Opens a stored recording: its stored index, or (when there is none, or it is unreadable)
    /// one built now by reading every segment.
    pub async fn open(store: &RecordingStore, id: &str) -> Result<Reader, ReadError> {
        let index = match store.read_index(id).await {
            Ok(Some(index)) => index,
            Ok(None) => store.build_index(id).await?,
            Err(e @ ReadError::Corrupt { .. }) => {
                tracing::warn!(recording = id, error = %e, "rebuilding unreadable index");
                store.build_index(id).await?
            }
            Err(e) => return Err(e),
        };
        Ok(Reader::from_index(store, id, index))
    }

    /// A reader over an index the caller already has (loaded in the background, or shared by
    /// several readers); nothing is fetched until a seek.
    pub fn from_index(store: &RecordingStore, id: &str, index: RecordingIndex) -> Reader {
        Reader {
            damage: index.damage.clone(),
            index,
            source: Source::Store {
                store: store.clone(),
                id: id.to_string(),
            },
            cache: VecDeque::new(),
        }
    }

    /// Opens a local asciicast file, plain (`.cast`) or zstd-compressed (`.cast.zst`, e.g. the
    /// stored segments concatenated). Only an unreadable header is an error; damage after it is
    /// reported by [`Reader::damage`].
    pub fn from_cast_bytes(bytes: &[u8]) -> Result<Reader, ReadError> {
        let (text, decode_error) = if is_zstd(bytes) {
            let (text, error) = decompress_prefix(bytes);
            (std::borrow::Cow::Owned(text), error)
        } else {
            (std::borrow::Cow::Borrowed(bytes), None)
        };
        let parsed = parse_segment(&text, true, 0.0);
        let header = parsed.header.ok_or_else(|| ReadError::Corrupt {
            object: "cast file".to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                parsed
                    .bad
                    .clone()
                    .unwrap_or_else(|| "missing header".to_string()),
            ),
        })?;
        let mut builder = IndexBuilder::new(&header);
        let mut pieces = Vec::new();
        let mut piece = Vec::new();
        let mut piece_bytes = 0u64;
        for event in parsed.events {
            let seq = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
            builder.push(seq, &event);
            piece_bytes += event.data.len() as u64;
            piece.push(event);
            if piece_bytes >= CAST_PIECE_BYTES {
                pieces.push(Arc::new(std::mem::take(&mut piece)));
                piece_bytes = 0;
            }
        }
        if !piece.is_empty() {
            pieces.push(Arc::new(piece));
        }
        if let Some(error) = decode_error {
            builder.stop(&format!(
                "compressed data is corrupt or cut off after {} bytes ({error})",
                text.len()
            ));
        } else if let Some(bad) = parsed.bad {
            builder.stop(&bad);
        }
        let index = builder.finish();
        Ok(Reader {
            damage: index.damage.clone(),
            index,
            source: Source::Memory { pieces },
            cache: VecDeque::new(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.index.header
    }

    pub fn index(&self) -> &RecordingIndex {
        &self.index
    }

    /// Seconds up to the last playable event.
    pub fn duration(&self) -> f64 {
        self.index.duration
    }

    /// Where and why playback stops early, if it does. Starts as the index's damage and is set
    /// when a segment turns out to be missing or corrupt while reading.
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The terminal as it was at `t` seconds: every event at or before `t` applied. Fetches at
    /// most one segment (none if it is cached).
    pub async fn screen_at(&mut self, t: f64) -> Result<avt::Terminal, ReadError> {
        let Some(target) = self.index.segment_at(t) else {
            return Ok(terminal::blank(
                self.index.width.into(),
                self.index.height.into(),
            ));
        };
        let target_seq = self.index.segments[target].seq;
        let (mut screen, from_seq, skip) = match self.index.keyframe_for(target_seq, t) {
            Some(k) => (terminal::restore(k.cols, k.rows, &k.dump), k.seq, k.event),
            None => (
                terminal::blank(self.index.width.into(), self.index.height.into()),
                0,
                0,
            ),
        };
        // Normally only the target itself: segments between a keyframe and the next segment
        // without one hold no screen events (see `index`).
        let replay: Vec<usize> = (0..=target)
            .filter(|&pos| {
                let span = &self.index.segments[pos];
                span.seq >= from_seq && span.screen_events > 0
            })
            .collect();
        for pos in replay {
            let events = self.segment_events(pos).await?;
            // Events before the keyframe's position in its own segment are in the keyframe.
            let skip = if self.index.segments[pos].seq == from_seq {
                usize::try_from(skip).unwrap_or(usize::MAX)
            } else {
                0
            };
            for event in events.iter().skip(skip).take_while(|e| e.time <= t) {
                terminal::apply(&mut screen, event);
            }
        }
        Ok(screen)
    }

    /// Events with `from < time <= to`, in order: `screen_at(from)` plus these is
    /// `screen_at(to)`. Pass a negative `from` to include events at time 0.
    pub async fn events_between(&mut self, from: f64, to: f64) -> Result<Vec<Event>, ReadError> {
        let first = self.index.segments.partition_point(|s| s.t_end <= from);
        let mut out = Vec::new();
        for pos in first..self.index.segments.len() {
            let span = &self.index.segments[pos];
            if span.t_start > to {
                break;
            }
            if span.events == 0 {
                continue;
            }
            let events = self.segment_events(pos).await?;
            out.extend(
                events
                    .iter()
                    .skip_while(|e| e.time <= from)
                    .take_while(|e| e.time <= to)
                    .cloned(),
            );
        }
        Ok(out)
    }

    /// The events of the segment at `pos` in the index, from the cache or the source.
    async fn segment_events(&mut self, pos: usize) -> Result<Arc<Vec<Event>>, ReadError> {
        let seq = self.index.segments[pos].seq;
        if let Some(hit) = self.cache.iter().position(|(s, _)| *s == seq) {
            let entry = self.cache.remove(hit).expect("position is in range");
            let events = entry.1.clone();
            self.cache.push_front(entry);
            return Ok(events);
        }
        let events = match &self.source {
            Source::Memory { pieces } => pieces.get(pos).cloned().unwrap_or_default(),
            Source::Store { store, id } => {
                let (store, id) = (store.clone(), id.clone());
                let floor = pos
                    .checked_sub(1)
                    .map_or(0.0, |p| self.index.segments[p].t_end);
                let Some(data) = fetch_segment(&store, &id, seq).await? else {
                    return Err(self.damaged(seq, ReadError::MissingSegment { id, seq }));
                };
                let object = data.object.clone();
                let decoded =
                    tokio::task::spawn_blocking(move || decode_segment(&data, seq == 0, floor))
                        .await
                        .map_err(|e| ReadError::Corrupt {
                            object,
                            source: std::io::Error::other(e),
                        })?;
                let parsed = decoded.map_err(|e| self.damaged(seq, e))?;
                if let Some(bad) = parsed.bad {
                    let stop = parsed.events.last().map_or(floor, |e| e.time);
                    self.damage.get_or_insert_with(|| {
                        format!("segment {seq}: {bad}: playback stops at {stop:.3} s")
                    });
                }
                Arc::new(parsed.events)
            }
        };
        self.cache.push_front((seq, events.clone()));
        self.cache.truncate(CACHED_SEGMENTS);
        Ok(events)
    }

    /// Records damage found while reading (after the index was built) and hands the error back.
    fn damaged(&mut self, seq: u32, error: ReadError) -> ReadError {
        let stop = self
            .index
            .segments
            .iter()
            .take_while(|s| s.seq < seq)
            .last()
            .map_or(0.0, |s| s.t_end);
        self.damage.get_or_insert_with(|| {
            format!("segment {seq} cannot be read ({error}): playback stops at {stop:.3} s")
        });
        error
    }
}

/// zstd frame magic, and skippable frames (0x184D2A50..=0x184D2A5F) which bastion's segment
/// trailers use.
fn is_zstd(bytes: &[u8]) -> bool {
    match bytes {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => true,
        [low, 0x2a, 0x4d, 0x18, ..] => low & 0xf0 == 0x50,
        _ => false,
    }
}

/// Decompresses as much as possible: what was decoded before an error is kept (a file cut off
/// mid-frame still plays up to there), along with the error.
fn decompress_prefix(bytes: &[u8]) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    let mut decoder = match zstd::stream::read::Decoder::new(bytes) {
        Ok(decoder) => decoder,
        Err(e) => return (out, Some(e.to_string())),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAST: &str = "{\"version\": 2, \"width\": 10, \"height\": 3}\n\
        [0.5, \"o\", \"hello\"]\n\
        [1.0, \"o\", \"\\r\\nworld\"]\n";

    #[tokio::test]
    async fn cast_bytes_plain_and_compressed_play_the_same() {
        let compressed = zstd::encode_all(CAST.as_bytes(), 3).unwrap();
        for bytes in [CAST.as_bytes(), compressed.as_slice()] {
            let mut reader = Reader::from_cast_bytes(bytes).unwrap();
            assert_eq!(reader.duration(), 1.0);
            assert_eq!(reader.damage(), None);
            let screen = reader.screen_at(0.7).await.unwrap();
            assert_eq!(screen.screen().text(), ["hello", "", ""]);
            let screen = reader.screen_at(5.0).await.unwrap();
            assert_eq!(screen.screen().text(), ["hello", "world", ""]);
            assert_eq!(reader.events_between(-1.0, 0.5).await.unwrap().len(), 1);
            assert_eq!(reader.events_between(0.5, 9.0).await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn damaged_cast_bytes_play_up_to_the_damage() {
        let broken = format!("{CAST}[2.0, \"o\", \"cut");
        let mut reader = Reader::from_cast_bytes(broken.as_bytes()).unwrap();
        assert_eq!(reader.duration(), 1.0);
        let damage = reader.damage().unwrap();
        assert!(
            damage.starts_with("line 4 is not a valid event"),
            "{damage}"
        );
        assert!(damage.ends_with("playback stops at 1.000 s"), "{damage}");
        let screen = reader.screen_at(3.0).await.unwrap();
        assert_eq!(screen.screen().text()[1], "world");

        // Two frames, like concatenated segments; the second one cut short.
        let mut frames = zstd::encode_all(CAST.as_bytes(), 3).unwrap();
        let second = zstd::encode_all(&b"[2.0, \"o\", \"more\"]\n"[..], 3).unwrap();
        frames.extend_from_slice(&second[..second.len() - 4]);
        let reader = Reader::from_cast_bytes(&frames).unwrap();
        assert_eq!(reader.duration(), 1.0);
        let damage = reader.damage().unwrap();
        assert!(
            damage.contains("compressed data is corrupt or cut off"),
            "{damage}"
        );

        for garbage in [
            &b""[..],
            b"\x28\xb5\x2f\xfd",
            b"{\"version\": 3}\n",
            b"\xff\xfe",
        ] {
            assert!(Reader::from_cast_bytes(garbage).is_err());
        }
    }
}
