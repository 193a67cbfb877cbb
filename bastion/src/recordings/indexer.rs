//! Indexing a recording for search: take its typed command lines, output lines and markers from
//! the recorder's index (`recorder::RecordingIndex`, built from the segments and stored next to
//! them when missing) and store them in the database (`recording_text`).
//!
//! A session is indexed once its recording is final: the manifest is in the store, or the
//! session ended more than [`FINAL_AFTER`] ago (a crashed recording never gets a manifest).
//! Before that the text is stored but the session stays pending, so `index_pending` looks at it
//! again and picks up segments that were still in the spool.

use std::time::Duration;

use recorder::RecordingStore;

use crate::db::{Database, DbError, TextKind, TextLine};

/// How long after its end a recording without a manifest is taken as it is.
pub const FINAL_AFTER: Duration = Duration::from_secs(10 * 60);

/// How often `run` looks for sessions to index.
pub const POLL: Duration = Duration::from_secs(30);

/// Longest line stored; the rest of a longer line is cut.
const MAX_LINE_CHARS: usize = 1000;

/// Why a session could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Read(#[from] recorder::ReadError),
}

/// What `index_session` stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSummary {
    pub commands: usize,
    pub output: usize,
    pub markers: usize,
    /// The recording is final and the session will not be indexed again.
    pub complete: bool,
}

/// What `index_pending` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexReport {
    pub indexed: usize,
    /// Stored, but still waiting for the recording to be final.
    pub provisional: usize,
    pub failed: usize,
}

/// Indexes session `id`'s recording (replacing any earlier text of it).
pub async fn index_session(
    store: &Database,
    recordings: &RecordingStore,
    id: &str,
) -> Result<IndexSummary, IndexError> {
    let row = store
        .session(id)
        .await?
        .ok_or_else(|| DbError::NoSuchSession(id.to_string()))?;
    let has_manifest = recordings.read_manifest(id).await?.is_some();
    let ended_long_ago = match row.ended_at {
        Some(ended) => {
            let now = store.now().await?;
            now - ended > FINAL_AFTER
        }
        None => false,
    };
    let complete = has_manifest || ended_long_ago;
    let lines = match read_text(recordings, id, row.command.as_deref(), has_manifest).await {
        Ok(lines) => lines,
        // Nothing stored and nothing coming: index the session as having no text.
        Err(IndexError::Read(
            recorder::ReadError::NotFound { .. }
            | recorder::ReadError::MissingSegment { seq: 0, .. },
        )) if complete => Vec::new(),
        Err(err) => return Err(err),
    };
    let count = |kind| lines.iter().filter(|l| l.kind == kind).count();
    let summary = IndexSummary {
        commands: count(TextKind::Command),
        output: count(TextKind::Output),
        markers: count(TextKind::Marker),
        complete,
    };
    store.replace_recording_text(id, &lines, complete).await?;
    Ok(summary)
}

/// Indexes every ended session that is not indexed yet, oldest first. A failure is logged and
/// counted, and the session is tried again on the next call.
pub async fn index_pending(
    store: &Database,
    recordings: &RecordingStore,
) -> Result<IndexReport, DbError> {
    let mut report = IndexReport::default();
    for id in store.sessions_to_index().await? {
        match index_session(store, recordings, &id).await {
            Ok(summary) if summary.complete => report.indexed += 1,
            Ok(_) => report.provisional += 1,
            Err(IndexError::Database(DbError::SessionPruned(_))) => {}
            Err(err) => {
                tracing::warn!(session = %id, error = %err, "cannot index recording");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// Runs `index_pending` now and every [`POLL`] until `shutdown`: what the daemon spawns at start.
pub async fn run(
    store: Database,
    recordings: RecordingStore,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match index_pending(&store, &recordings).await {
            Ok(report) if report != IndexReport::default() => {
                tracing::info!(
                    indexed = report.indexed,
                    provisional = report.provisional,
                    failed = report.failed,
                    "indexed recordings for search"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cannot list recordings to index"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The searchable lines of a recording, from its stored index object or, when it has none,
/// an index built now from its segments (stored for readers when the recording is sealed).
async fn read_text(
    recordings: &RecordingStore,
    id: &str,
    command: Option<&str>,
    sealed: bool,
) -> Result<Vec<TextLine>, IndexError> {
    let index = match recordings.read_index(id).await {
        Ok(Some(index)) => index,
        Ok(None) | Err(recorder::ReadError::Corrupt { .. }) => {
            let index = recordings.build_index(id).await?;
            // Create-only: an index written before the manifest arrived would stay partial.
            if sealed && let Err(err) = recordings.write_index(id, &index).await {
                tracing::warn!(session = %id, error = %err, "cannot store recording index");
            }
            index
        }
        Err(err) => return Err(err.into()),
    };
    let mut lines =
        Vec::with_capacity(1 + index.commands.len() + index.output.len() + index.markers.len());
    if let Some(command) = command {
        lines.push(line(0.0, TextKind::Command, command));
    }
    for (kind, found) in [
        (TextKind::Command, &index.commands),
        (TextKind::Output, &index.output),
        (TextKind::Marker, &index.markers),
    ] {
        lines.extend(found.iter().map(|l| line(l.t, kind, &l.text)));
    }
    lines.retain(|l| !l.text.is_empty());
    lines.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(lines)
}

fn line(t: f64, kind: TextKind, text: &str) -> TextLine {
    // Control characters (NUL included, which PostgreSQL text cannot hold) are not searchable.
    let text: String = text
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .take(MAX_LINE_CHARS)
        .collect();
    TextLine {
        t,
        kind,
        text: text.trim().to_string(),
    }
}
