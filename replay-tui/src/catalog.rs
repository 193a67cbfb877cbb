//! The browser's list of recordings, loaded from the store in the background: ids from a
//! listing, metadata from each manifest (or, for a recording without one, the header in its
//! first segment: a running or interrupted session), then each recording's verification and
//! its search index. Everything arrives as [`CatalogEvent`]s; the UI never waits for it.

use std::sync::Arc;

use futures::StreamExt;
use recorder::{Manifest, RecordingStore, VerifyStatus, VerifyingKey};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

use crate::search::SearchDoc;
use crate::source::TimedText;
use crate::source::cast::split_header;

/// Recordings whose metadata is read at once.
const METADATA_CONCURRENCY: usize = 8;
/// Rows sent to the UI per message.
const ROW_BATCH: usize = 64;
/// Finished recordings without a stored index are indexed in memory for search only when
/// smaller than this (stored bytes): larger ones would take the whole store's bandwidth.
const BUILD_INDEX_MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Pending,
    /// Chain (and signatures when `signed`) intact, manifest complete.
    Intact {
        signed: bool,
    },
    /// Intact but stops early (no manifest yet, or marked incomplete).
    Truncated(String),
    Tampered(String),
    /// Verification could not run (store error).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub started_at: Option<OffsetDateTime>,
    /// Seconds; unknown for a recording without a manifest.
    pub duration: Option<f64>,
    pub end_reason: Option<String>,
    /// Stored (compressed) bytes.
    pub stored_bytes: Option<u64>,
    /// A manifest exists (the session ended).
    pub finished: bool,
    /// The manifest says every event was captured.
    pub complete: bool,
    pub verified: Verified,
    /// Why the metadata could not be read, if it could not.
    pub error: Option<String>,
}

impl CatalogRow {
    fn from_manifest(manifest: &Manifest) -> CatalogRow {
        CatalogRow {
            id: manifest.session.id.clone(),
            user: manifest.session.user.clone(),
            target: manifest.session.target.clone(),
            login: manifest.session.login.clone(),
            started_at: Some(manifest.session.started_at),
            duration: Some(manifest.totals.duration_secs),
            end_reason: Some(manifest.end_reason.clone()),
            stored_bytes: Some(manifest.totals.stored_bytes),
            finished: true,
            complete: manifest.complete,
            verified: Verified::Pending,
            error: None,
        }
    }

    fn unreadable(id: &str, error: String) -> CatalogRow {
        CatalogRow {
            id: id.to_string(),
            user: String::new(),
            target: String::new(),
            login: String::new(),
            started_at: None,
            duration: None,
            end_reason: None,
            stored_bytes: None,
            finished: false,
            complete: false,
            verified: Verified::Pending,
            error: Some(error),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CatalogEvent {
    /// The listing came back with this many recordings.
    Listed {
        total: usize,
    },
    Rows(Vec<CatalogRow>),
    Verified {
        id: String,
        verified: Verified,
    },
    Failed(String),
}

/// Loads the list, then verification; search documents go to `docs` as they are read.
pub async fn load(
    store: RecordingStore,
    key: Option<Arc<VerifyingKey>>,
    events: UnboundedSender<CatalogEvent>,
    docs: UnboundedSender<SearchDoc>,
) {
    let ids = match store.list_ids().await {
        Ok(ids) => ids,
        Err(e) => {
            let _ = events.send(CatalogEvent::Failed(e.to_string()));
            return;
        }
    };
    let _ = events.send(CatalogEvent::Listed { total: ids.len() });
    let mut rows = futures::stream::iter(ids.iter().cloned())
        .map(|id| {
            let store = store.clone();
            async move { row(&store, &id).await }
        })
        .buffered(METADATA_CONCURRENCY);
    let mut batch = Vec::new();
    let mut all = Vec::new();
    while let Some(row) = rows.next().await {
        all.push((row.id.clone(), row.finished, row.stored_bytes));
        batch.push(row);
        if batch.len() >= ROW_BATCH
            && events
                .send(CatalogEvent::Rows(std::mem::take(&mut batch)))
                .is_err()
        {
            return;
        }
    }
    if events.send(CatalogEvent::Rows(batch)).is_err() {
        return;
    }
    // Search indexes first (search is what a reviewer waits for), then verification.
    let mut indexed = futures::stream::iter(all.iter().cloned())
        .map(|(id, finished, stored)| {
            let store = store.clone();
            async move { search_doc(&store, &id, finished, stored).await }
        })
        .buffered(METADATA_CONCURRENCY);
    while let Some(doc) = indexed.next().await {
        if docs.send(doc).is_err() {
            break;
        }
    }
    drop(indexed);
    drop(docs);
    let mut verified = futures::stream::iter(all)
        .map(|(id, _, _)| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                let verified = verify(&store, &id, key.as_deref()).await;
                (id, verified)
            }
        })
        .buffered(2);
    while let Some((id, verified)) = verified.next().await {
        if events
            .send(CatalogEvent::Verified { id, verified })
            .is_err()
        {
            return;
        }
    }
}

async fn row(store: &RecordingStore, id: &str) -> CatalogRow {
    match store.read_manifest(id).await {
        Ok(Some(manifest)) => CatalogRow::from_manifest(&manifest),
        Ok(None) => header_row(store, id).await,
        Err(e) => CatalogRow::unreadable(id, e.to_string()),
    }
}

/// A recording without a manifest: what its first segment's header says.
async fn header_row(store: &RecordingStore, id: &str) -> CatalogRow {
    let segment = match store.read_segment(id, 0).await {
        Ok(segment) => segment,
        Err(e) => return CatalogRow::unreadable(id, e.to_string()),
    };
    let text = match tokio::task::spawn_blocking(move || segment.decompress()).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return CatalogRow::unreadable(id, e.to_string()),
        Err(e) => return CatalogRow::unreadable(id, e.to_string()),
    };
    match split_header(&text, id) {
        Ok((header, _)) => {
            let info = crate::source::cast::info_from_header(&header, id);
            CatalogRow {
                id: id.to_string(),
                user: info.user.unwrap_or_default(),
                target: info.target.unwrap_or_default(),
                login: info.login.unwrap_or_default(),
                started_at: info.started_at,
                duration: None,
                end_reason: None,
                stored_bytes: None,
                finished: false,
                complete: false,
                verified: Verified::Pending,
                error: None,
            }
        }
        Err(e) => CatalogRow::unreadable(id, e.to_string()),
    }
}

async fn search_doc(
    store: &RecordingStore,
    id: &str,
    finished: bool,
    stored: Option<u64>,
) -> SearchDoc {
    let index = match store.read_index(id).await {
        Ok(Some(index)) => Some(index),
        Ok(None) if finished && stored.is_some_and(|b| b <= BUILD_INDEX_MAX_BYTES) => {
            store.build_index(id).await.ok()
        }
        _ => None,
    };
    let Some(index) = index else {
        return SearchDoc::missing(id);
    };
    let lines = |lines: Vec<recorder::TextLine>| {
        lines
            .into_iter()
            .map(|l| TimedText {
                t: l.t,
                text: l.text,
            })
            .collect()
    };
    SearchDoc::new(id, lines(index.commands), lines(index.output))
}

async fn verify(store: &RecordingStore, id: &str, key: Option<&VerifyingKey>) -> Verified {
    match store.verify(id, key).await {
        Ok(v) => match v.status {
            VerifyStatus::Complete => Verified::Intact { signed: v.signed },
            VerifyStatus::Truncated => Verified::Truncated(v.detail),
            VerifyStatus::Tampered => Verified::Tampered(v.detail),
        },
        Err(e) => Verified::Failed(e.to_string()),
    }
}
