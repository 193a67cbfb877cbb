//! Who and what a recording is about: the one metadata type the writer is started with and the
//! manifest stores.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who and what a recording is about; written into the cast header and the manifest.
///
/// Its serde form is the manifest's `session` object, which has no `id`: the manifest keeps the
/// id at its top level (see [`crate::Manifest::session`]), so `id` is skipped here and filled in
/// by the manifest when it is read. Serializing a `RecordingMeta` on its own therefore drops the
/// id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingMeta {
    #[serde(skip)]
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub grant_id: Option<i64>,
    pub command: Option<String>,
    pub width: u16,
    pub height: u16,
    pub term: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}
