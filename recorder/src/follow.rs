//! Following a recording while it grows (live replay of a running session).
//!
//! The stream polls the store for the next segment; each one that appears yields all its events.
//! A segment is stored once it is closed (every `segment_interval` or `segment_bytes`) and
//! uploaded, so events arrive at most one segment interval plus one poll interval (plus the
//! upload) after they happened. The stream ends once the recording's manifest exists and every
//! segment it lists has been read: the uploader stores the manifest only after all segments, so
//! nothing can appear later.
//!
//! A store error (an outage) is yielded as an `Err` item and following goes on at the next poll;
//! a missing or corrupt segment is yielded as an `Err` item and ends the stream, like a damaged
//! recording stops playback.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;

use crate::cast::Event;
use crate::error::ReadError;
use crate::index::{decode_segment, fetch_segment};
use crate::store::RecordingStore;

/// Events of recording `id` from its start, as its segments appear; see the module doc.
pub fn follow(
    store: RecordingStore,
    id: String,
    poll: Duration,
) -> impl Stream<Item = Result<Event, ReadError>> + Send {
    follow_from(store, id, 0, poll)
}

/// Like [`follow`], starting at segment `first_seq`: to continue after the segments a
/// [`crate::Reader`] already indexed (`index().segments.last().seq + 1`).
pub fn follow_from(
    store: RecordingStore,
    id: String,
    first_seq: u32,
    poll: Duration,
) -> impl Stream<Item = Result<Event, ReadError>> + Send {
    let state = Follow {
        store,
        id,
        poll,
        next_seq: first_seq,
        last_time: 0.0,
        pending: VecDeque::new(),
        end: None,
        damage: None,
        finished: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
}

struct Follow {
    store: RecordingStore,
    id: String,
    poll: Duration,
    next_seq: u32,
    last_time: f64,
    /// Events of fetched segments not yet yielded.
    pending: VecDeque<Event>,
    /// One past the last segment, once the manifest says so.
    end: Option<u32>,
    /// Yielded once `pending` is drained; ends the stream.
    damage: Option<ReadError>,
    finished: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Result<Event, ReadError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(damage) = self.damage.take() {
                return self.fail(damage);
            }
            if self.finished || self.end.is_some_and(|end| self.next_seq >= end) {
                return None;
            }
            let seq = self.next_seq;
            match fetch_segment(&self.store, &self.id, seq).await {
                Ok(Some(data)) => {
                    let parsed = match decode_segment(&data, seq == 0, self.last_time) {
                        Ok(parsed) => parsed,
                        Err(e) => return self.fail(e),
                    };
                    self.next_seq += 1;
                    if let Some(last) = parsed.events.last() {
                        self.last_time = last.time;
                    }
                    self.pending.extend(parsed.events);
                    if let Some(bad) = parsed.bad {
                        // Yield what was readable first; the damage ends the stream after it.
                        self.damage = Some(corrupt_line(&data.object, bad));
                    }
                }
                Ok(None) if self.end.is_some() => {
                    return self.fail(ReadError::MissingSegment {
                        id: self.id.clone(),
                        seq,
                    });
                }
                Ok(None) => match self.store.read_manifest(&self.id).await {
                    Ok(Some(manifest)) => {
                        let end = manifest.segments.iter().map(|s| s.seq + 1).max();
                        // Check `seq` once more: it may have been stored just before the manifest.
                        self.end = Some(end.unwrap_or(0));
                    }
                    Ok(None) => tokio::time::sleep(self.poll).await,
                    Err(e) => {
                        tokio::time::sleep(self.poll).await;
                        return Some(Err(e));
                    }
                },
                Err(e) => {
                    tokio::time::sleep(self.poll).await;
                    return Some(Err(e));
                }
            }
        }
    }

    fn fail(&mut self, error: ReadError) -> Option<Result<Event, ReadError>> {
        self.finished = true;
        Some(Err(error))
    }
}

fn corrupt_line(object: &str, bad: String) -> ReadError {
    ReadError::Corrupt {
        object: object.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, bad),
    }
}
