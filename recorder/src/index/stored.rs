//! The index as a stored object (`{ID}/index.json.zst`), building it from a stored recording, and
//! the segment reading that the index builder, [`crate::Reader`] and [`crate::follow`] share:
//! fetching one segment and parsing its lines.

use futures::StreamExt as _;

use super::{INDEX_OBJECT, IndexBuilder, RecordingIndex};
use crate::cast::{ASCIICAST_VERSION, Event, EventKind, Header};
use crate::error::{ReadError, StoreError};
use crate::manifest::Manifest;
use crate::segment::{SegmentData, segment_name};
use crate::store::RecordingStore;

/// Segments fetched ahead while building an index: hides store latency behind decoding.
const PREFETCH: usize = 4;

impl RecordingStore {
    /// Stores a recording's index next to its segments. Create-only like every recording
    /// object: an existing index is an error, never overwritten.
    pub async fn write_index(&self, id: &str, index: &RecordingIndex) -> Result<(), StoreError> {
        let bytes = index.encode().map_err(|e| StoreError::Write {
            object: format!("{}{INDEX_OBJECT}", self.location(id)),
            source: object_store::Error::Generic {
                store: "index",
                source: Box::new(e),
            },
        })?;
        self.write_object(id, INDEX_OBJECT, bytes).await
    }

    /// The stored index, or `None` when the recording has none (not indexed yet).
    pub async fn read_index(&self, id: &str) -> Result<Option<RecordingIndex>, ReadError> {
        let Some(bytes) = self.read_object(id, INDEX_OBJECT).await? else {
            return Ok(None);
        };
        RecordingIndex::decode(&bytes)
            .map(Some)
            .map_err(|source| ReadError::Corrupt {
                object: format!("{}{INDEX_OBJECT}", self.location(id)),
                source,
            })
    }

    /// Builds a recording's index by reading all its segments, one at a time (a few prefetched),
    /// decoding and replaying them off the async threads. Damage (missing or corrupt segments,
    /// an unreadable line, no manifest, a manifest marking the recording incomplete) ends up in
    /// the index's `damage`; store errors fail the build so an outage never yields an index
    /// that calls an intact recording damaged.
    pub async fn build_index(&self, id: &str) -> Result<RecordingIndex, ReadError> {
        let manifest = match self.read_manifest(id).await {
            Ok(manifest) => Ok(manifest),
            Err(ReadError::Manifest { .. }) => Err("its manifest is invalid"),
            Err(e) => return Err(e),
        };
        let seqs = self.segment_seqs(id).await?;
        if seqs.first() != Some(&0) {
            return Err(ReadError::MissingSegment {
                id: id.to_string(),
                seq: 0,
            });
        }
        let mut fetches = futures::stream::iter(seqs)
            .map(|seq| async move { (seq, fetch_segment(self, id, seq).await) })
            .buffered(PREFETCH);
        let mut builder: Option<IndexBuilder> = None;
        let mut last_seq = 0;
        while let Some((seq, fetched)) = fetches.next().await {
            let data = match fetched? {
                Some(data) => data,
                None if seq == 0 => {
                    return Err(ReadError::NotFound { id: id.to_string() });
                }
                None => {
                    if let Some(b) = builder.as_mut() {
                        b.stop(&format!("segment {seq} is missing"));
                    }
                    break;
                }
            };
            let state = builder.take();
            let (state, result) =
                tokio::task::spawn_blocking(move || index_segment(state, seq, &data))
                    .await
                    .map_err(|e| ReadError::Corrupt {
                        object: format!("{}{}", self.location(id), segment_name(seq)),
                        source: std::io::Error::other(e),
                    })?;
            result?;
            builder = state;
            last_seq = seq;
            if builder.as_ref().is_some_and(IndexBuilder::is_stopped) {
                break;
            }
        }
        let Some(mut builder) = builder else {
            return Err(ReadError::NotFound { id: id.to_string() });
        };
        match manifest {
            Err(reason) => builder.stop(reason),
            Ok(None) => builder.stop("recording has no manifest (still running, or cut off)"),
            Ok(Some(manifest)) => check_against_manifest(&mut builder, &manifest, last_seq),
        }
        Ok(builder.finish())
    }

    /// Sequence numbers of the stored segments, in order.
    pub(crate) async fn segment_seqs(&self, id: &str) -> Result<Vec<u32>, ReadError> {
        let paths = self.segment_paths(id).await?;
        Ok(paths.into_iter().map(|(seq, _)| seq).collect())
    }
}

fn check_against_manifest(builder: &mut IndexBuilder, manifest: &Manifest, last_seq: u32) {
    if let Some(missing) = manifest.segments.iter().find(|s| s.seq > last_seq) {
        builder.stop(&format!("segment {} is missing", missing.seq));
    } else if !manifest.complete {
        builder.stop("the recorder marked the recording incomplete (events were lost)");
    }
}

/// Decodes one segment into the builder, creating it from the header in segment 0. An
/// undecodable segment stops the index; an undecodable segment 0 fails the build (there is
/// nothing to show without the header).
fn index_segment(
    builder: Option<IndexBuilder>,
    seq: u32,
    data: &SegmentData,
) -> (Option<IndexBuilder>, Result<(), ReadError>) {
    let floor = builder.as_ref().map_or(0.0, IndexBuilder::last_time);
    let parsed = match decode_segment(data, seq == 0, floor) {
        Ok(parsed) => parsed,
        Err(e) => {
            return match builder {
                Some(mut b) => {
                    b.stop(&format!("segment {seq} is corrupt ({e})"));
                    (Some(b), Ok(()))
                }
                None => (None, Err(e)),
            };
        }
    };
    let mut builder = match (builder, &parsed.header) {
        (Some(b), _) => b,
        (None, Some(header)) => IndexBuilder::new(header),
        (None, None) => {
            let reason = parsed.bad.unwrap_or_else(|| "missing header".to_string());
            let source = std::io::Error::new(std::io::ErrorKind::InvalidData, reason);
            let object = data.object.clone();
            return (None, Err(ReadError::Corrupt { object, source }));
        }
    };
    if builder.segment(seq) {
        for event in &parsed.events {
            builder.push(seq, event);
        }
        if let Some(bad) = parsed.bad {
            builder.stop(&format!("segment {seq}: {bad}"));
        }
    }
    (Some(builder), Ok(()))
}

/// One segment fetched from the store; `None` when it does not exist (yet).
pub(crate) async fn fetch_segment(
    store: &RecordingStore,
    id: &str,
    seq: u32,
) -> Result<Option<SegmentData>, ReadError> {
    match store.read_segment(id, seq).await {
        Ok(data) => Ok(Some(data)),
        Err(ReadError::MissingSegment { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A segment's readable content: the header (segment 0 only), the events up to the first line
/// that cannot be read, and what was wrong with that line.
#[derive(Debug, Default)]
pub(crate) struct ParsedSegment {
    pub(crate) header: Option<Header>,
    pub(crate) events: Vec<Event>,
    pub(crate) bad: Option<String>,
}

/// Decompresses and parses a stored segment; only an undecodable object is an error.
pub(crate) fn decode_segment(
    data: &SegmentData,
    first: bool,
    floor: f64,
) -> Result<ParsedSegment, ReadError> {
    Ok(parse_segment(&data.decompress()?, first, floor))
}

/// Parses asciicast lines; with `first` the first line is the header. Event times are made
/// non-decreasing starting from `floor` (see the index doc). Parsing stops at the first bad line:
/// what comes after damage is not played.
pub(crate) fn parse_segment(text: &[u8], first: bool, floor: f64) -> ParsedSegment {
    let mut out = ParsedSegment::default();
    let mut last = floor.max(0.0);
    let mut want_header = first;
    let lines = text
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
    for (number, line) in lines {
        if want_header {
            want_header = false;
            match parse_header(line) {
                Ok(header) => out.header = Some(header),
                Err(message) => {
                    out.bad = Some(format!("line {number} is not a valid header ({message})"));
                    break;
                }
            }
            continue;
        }
        match serde_json::from_slice::<(f64, String, String)>(line) {
            Ok((time, code, data)) => {
                last = time.max(last);
                out.events.push(Event {
                    time: last,
                    kind: event_kind(code),
                    data,
                });
            }
            Err(e) => {
                out.bad = Some(format!("line {number} is not a valid event ({e})"));
                break;
            }
        }
    }
    if want_header && out.bad.is_none() {
        out.bad = Some("missing header".to_string());
    }
    out
}

fn parse_header(line: &[u8]) -> Result<Header, String> {
    let header: Header = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if header.version != ASCIICAST_VERSION {
        return Err(format!("unsupported asciicast version {}", header.version));
    }
    Ok(header)
}

fn event_kind(code: String) -> EventKind {
    match code.as_str() {
        "o" => EventKind::Output,
        "i" => EventKind::Input,
        "r" => EventKind::Resize,
        "m" => EventKind::Marker,
        _ => EventKind::Other(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_lines_parse_until_the_first_bad_one() {
        let text = b"{\"version\": 2, \"width\": 80, \"height\": 24}\n\
            [1.5, \"o\", \"a\"]\r\n\n[1.0, \"x\", \"b\"]\n[oops\n[3.0, \"o\", \"c\"]\n";
        let parsed = parse_segment(text, true, 0.0);
        assert_eq!(parsed.header.unwrap().width, 80);
        let times: Vec<f64> = parsed.events.iter().map(|e| e.time).collect();
        assert_eq!(times, [1.5, 1.5]);
        assert_eq!(parsed.events[1].kind, EventKind::Other("x".into()));
        assert!(
            parsed
                .bad
                .unwrap()
                .starts_with("line 5 is not a valid event")
        );

        let later = parse_segment(b"[0.5, \"i\", \"q\"]\n", false, 2.0);
        assert_eq!((later.events[0].time, later.bad), (2.0, None));
        assert_eq!(parse_segment(b"", true, 0.0).bad.unwrap(), "missing header");
        let v1 = parse_segment(b"{\"version\": 1, \"width\": 1, \"height\": 1}", true, 0.0);
        assert!(v1.bad.unwrap().contains("unsupported asciicast version 1"));
    }
}
