//! Recordings in the recording store (local directory or S3), read through `recorder`.
//!
//! Segments are fetched one at a time in the background and appended to a [`CastSource`], so
//! the first frame shows after segment 0 arrives, however long the recording. A recording
//! without a manifest is still being written (or its session was interrupted): it is followed,
//! new segments are appended as they appear, until the manifest shows up.

use std::time::Duration;

use recorder::{ReadError, RecordingStore};

use super::cast::{CastLoader, CastSource, split_header};
use super::{RecordingSource, SourceError};

/// Opens recording `id` for playing.
pub async fn open(
    store: RecordingStore,
    id: String,
    poll: Duration,
) -> Result<Box<dyn RecordingSource>, SourceError> {
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
    let segments = match store.read_segments(id).await {
        Ok(segments) => segments,
        Err(ReadError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match segments.into_iter().find(|s| s.seq == seq) {
        Some(segment) => {
            let text = tokio::task::spawn_blocking(move || segment.decompress())
                .await
                .map_err(|e| ReadError::Corrupt {
                    object: format!("{id} segment {seq}"),
                    source: std::io::Error::other(e.to_string()),
                })??;
            Ok(Some(text))
        }
        None => Ok(None),
    }
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
