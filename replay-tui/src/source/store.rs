//! Recordings in the recording store (local directory or S3), read through `recorder`.
//!
//! A finished recording with a stored index (written by the recording pipeline) is played
//! through `recorder::Reader` ([`StoreSource`]): its keyframes make any point one segment
//! fetch away, so opening and seeking cost the same on a gigabyte recording as on a small one.
//! Any other recording (still running, interrupted, or never indexed) is loaded segment by
//! segment in the background into a [`CastSource`], so the first frame shows after segment 0
//! arrives; a recording without a manifest is followed, new segments appended as they appear,
//! until the manifest shows up.

use std::collections::BTreeMap;
use std::time::Duration;

use recorder::{Event, Header, ReadError, Reader, RecordingIndex, RecordingStore};

use super::cast::{CastLoader, CastSource, info_from_header, split_header};
use super::{
    IndexDelta, Mark, MarkKind, Neighbours, Progress, RecordingInfo, RecordingSource, SourceError,
    SourceFuture, TimedText,
};

/// Opens recording `id` for playing.
pub async fn open(
    store: RecordingStore,
    id: String,
    poll: Duration,
) -> Result<Box<dyn RecordingSource>, SourceError> {
    let read_error = |e: ReadError| SourceError::Read {
        what: id.clone(),
        reason: e.to_string(),
    };
    // Only whether an index exists: `Reader::open` reads and decodes it (once) itself, and
    // would build a missing one before returning, which the progressive path avoids.
    let (manifest, index) = tokio::join!(
        store.read_manifest(&id),
        store.read_object(&id, recorder::INDEX_OBJECT)
    );
    let finished = manifest.map_err(read_error)?.is_some();
    if finished && index.is_ok_and(|index| index.is_some()) {
        let reader = Reader::open(&store, &id).await.map_err(read_error)?;
        return Ok(Box::new(StoreSource::new(reader, &store.location(&id))));
    }
    Ok(Box::new(open_segments(store, id, poll).await?))
}

/// Opens recording `id` as a [`CastSource`]; segments after the first keep loading (and, for a
/// recording without a manifest, keep being followed every `poll`) in a background task.
pub async fn open_segments(
    store: RecordingStore,
    id: String,
    poll: Duration,
) -> Result<CastSource, SourceError> {
    let read_error = |e: ReadError| SourceError::Read {
        what: id.clone(),
        reason: e.to_string(),
    };
    let manifest = store.read_manifest(&id).await.map_err(read_error)?;
    let first = loop {
        match fetch_segment(&store, &id, 0).await.map_err(read_error)? {
            Some(text) => break text,
            // A session that just started has no segment stored yet.
            None if manifest.is_none() => tokio::time::sleep(poll).await,
            None => {
                return Err(SourceError::Read {
                    what: id.clone(),
                    reason: "its first segment is missing".to_string(),
                });
            }
        }
    };
    let (header, rest) = split_header(&first, &id)?;
    let (mut source, mut loader) = CastSource::new(header, &store.location(&id));
    source.set_live(manifest.is_none());
    loader.push_bytes(rest);
    let total = manifest.as_ref().map(|m| m.totals.segments);
    tokio::spawn(feed_segments(store, id, loader, total, poll));
    Ok(source)
}

/// Decompressed text of segment `seq`, `None` when it is not (yet) in the store.
async fn fetch_segment(
    store: &RecordingStore,
    id: &str,
    seq: u32,
) -> Result<Option<Vec<u8>>, ReadError> {
    let segment = match store.read_segment(id, seq).await {
        Ok(segment) => segment,
        Err(ReadError::MissingSegment { .. } | ReadError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let object = segment.object.clone();
    let text = tokio::task::spawn_blocking(move || segment.decompress())
        .await
        .map_err(|e| ReadError::Corrupt {
            object,
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(Some(text))
}

/// Parsing and terminal emulation are CPU work: off the async threads.
async fn push(loader: CastLoader, text: Vec<u8>) -> Option<CastLoader> {
    tokio::task::spawn_blocking(move || {
        let mut loader = loader;
        loader.push_bytes(&text);
        loader
    })
    .await
    .ok()
}

async fn feed_segments(
    store: RecordingStore,
    id: String,
    mut loader: CastLoader,
    mut total: Option<u32>,
    poll: Duration,
) {
    let mut next = 1u32;
    let damage = loop {
        if loader.abandoned() {
            return;
        }
        match fetch_segment(&store, &id, next).await {
            Ok(Some(text)) => {
                let Some(pushed) = push(loader, text).await else {
                    return;
                };
                loader = pushed;
                next += 1;
                match total {
                    Some(total) => loader.progress(
                        f64::from(next) / f64::from(total.max(1)),
                        format!("loading segment {next} of {total}"),
                    ),
                    None => loader.progress(0.0, format!("loading segment {next}")),
                }
            }
            Ok(None) => {
                if let Some(total) = total {
                    break (next < total).then(|| {
                        format!(
                            "recording stops at {}: segment {next} of {total} is missing",
                            crate::units::offset(loader.last_time())
                        )
                    });
                }
                match store.read_manifest(&id).await {
                    // Finished meanwhile: fetch whatever is left, then stop.
                    Ok(Some(manifest)) => total = Some(manifest.totals.segments),
                    Ok(None) => {
                        loader.set_live(true);
                        loader.caught_up();
                        tokio::time::sleep(poll).await;
                    }
                    Err(e) => break Some(format!("cannot follow recording: {e}")),
                }
            }
            Err(e) => {
                break Some(format!(
                    "recording stops at {}: {e}",
                    crate::units::offset(loader.last_time())
                ));
            }
        }
    };
    loader.set_live(false);
    let _ = tokio::task::spawn_blocking(move || loader.finish(damage)).await;
}

/// A finished, indexed store recording played through `recorder::Reader`.
pub struct StoreSource {
    reader: Reader,
    info: RecordingInfo,
    /// The index was handed out; later deltas only carry damage found while reading.
    sent: bool,
    sent_damage: Option<String>,
}

impl StoreSource {
    pub fn new(reader: Reader, origin: &str) -> StoreSource {
        let info = info_from_header(reader.header(), origin);
        StoreSource {
            reader,
            info,
            sent: false,
            sent_damage: None,
        }
    }
}

/// Output bytes per second estimated from the segment spans (bytes spread evenly over each
/// span's seconds): the index has no per-event sizes, and the timeline only needs the shape.
pub fn activity(index: &RecordingIndex) -> Vec<(u64, u64)> {
    let mut seconds: BTreeMap<u64, u64> = BTreeMap::new();
    for span in &index.segments {
        if span.screen_events == 0 || span.raw_bytes == 0 {
            continue;
        }
        let first = span.t_start.max(0.0) as u64;
        let last = (span.t_end.max(0.0) as u64).max(first);
        // A span is a few seconds; the cap only guards against absurd times.
        let count = (last - first + 1).min(3600);
        let each = (span.raw_bytes / count).max(1);
        for second in first..first + count {
            *seconds.entry(second).or_default() += each;
        }
    }
    seconds.into_iter().collect()
}

/// Resizes as far as the index shows them: the index lists no resize events, but a keyframe
/// whose size differs from the previous one follows one (in the segment before it).
fn resizes(index: &RecordingIndex) -> Vec<Mark> {
    let mut size = (index.width, index.height);
    let mut marks = Vec::new();
    for keyframe in &index.keyframes {
        if (keyframe.cols, keyframe.rows) != size {
            size = (keyframe.cols, keyframe.rows);
            marks.push(Mark {
                t: keyframe.t,
                kind: MarkKind::Resize,
                label: format!("resize {}x{}", keyframe.cols, keyframe.rows),
            });
        }
    }
    marks
}

fn read_error(what: &str, e: ReadError) -> SourceError {
    SourceError::Read {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

fn lines(lines: &[recorder::TextLine]) -> Vec<TimedText> {
    lines
        .iter()
        .map(|l| TimedText {
            t: l.t,
            text: l.text.clone(),
        })
        .collect()
}

impl RecordingSource for StoreSource {
    fn info(&self) -> RecordingInfo {
        self.info.clone()
    }

    fn poll_index(&mut self) -> Option<IndexDelta> {
        let damage = self.reader.damage().map(str::to_string);
        if self.sent && damage == self.sent_damage {
            return None;
        }
        let index = self.reader.index();
        let mut delta = IndexDelta {
            duration: self.reader.duration(),
            progress: Progress {
                fraction: 1.0,
                done: true,
                detail: String::new(),
            },
            damage: damage.clone(),
            ..IndexDelta::default()
        };
        if !self.sent {
            delta.commands = lines(&index.commands);
            delta.output = lines(&index.output);
            delta.marks = index
                .markers
                .iter()
                .map(|m| Mark {
                    t: m.t,
                    kind: MarkKind::Marker,
                    label: m.text.clone(),
                })
                .chain(resizes(index))
                .collect();
            delta.marks.sort_by(|a, b| a.t.total_cmp(&b.t));
            delta.activity = activity(index);
        }
        self.sent = true;
        self.sent_damage = damage;
        Some(delta)
    }

    fn duration(&self) -> f64 {
        self.reader.duration()
    }

    fn screen_at(&mut self, t: f64) -> SourceFuture<'_, avt::Terminal> {
        Box::pin(async move {
            let what = self.info.origin.clone();
            self.reader
                .screen_at(t)
                .await
                .map_err(|e| read_error(&what, e))
        })
    }

    fn events_between(&mut self, from: f64, to: f64) -> SourceFuture<'_, Vec<Event>> {
        Box::pin(async move {
            let what = self.info.origin.clone();
            self.reader
                .events_between(from, to)
                .await
                .map_err(|e| read_error(&what, e))
        })
    }

    fn neighbours(&mut self, t: f64) -> SourceFuture<'_, Neighbours> {
        Box::pin(async move {
            let what = self.info.origin.clone();
            let spans: Vec<(f64, f64)> = self
                .reader
                .index()
                .segments
                .iter()
                .filter(|s| s.events > 0)
                .map(|s| (s.t_start, s.t_end))
                .collect();
            let pos = spans.partition_point(|(start, _)| *start <= t);
            let following = spans.get(pos).map(|(start, _)| *start);
            let Some(&(start, end)) = pos.checked_sub(1).and_then(|p| spans.get(p)) else {
                return Ok(Neighbours {
                    previous: None,
                    next: following,
                });
            };
            if t >= end {
                return Ok(Neighbours {
                    previous: Some(end),
                    next: following,
                });
            }
            // Inside one segment: its events (the segment screen_at needs anyway, cached).
            let events = self
                .reader
                .events_between(start - 1e-6, end)
                .await
                .map_err(|e| read_error(&what, e))?;
            let split = events.partition_point(|e| e.time <= t);
            Ok(Neighbours {
                previous: split.checked_sub(1).map(|i| events[i].time),
                next: events.get(split).map(|e| e.time).or(following),
            })
        })
    }

    fn header(&self) -> Header {
        self.reader.header().clone()
    }
}
