//! The per-recording manifest (`{ID}/manifest.json`) and its hash chain.
//!
//! The manifest is written once, at finish, and lists every segment with its SHA-256 and a chained
//! hash so that a missing, reordered or altered segment is detectable from the manifest alone.
//! `signature` is reserved for signing the manifest later; readers must accept it being absent.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Object name of the manifest inside a recording's prefix.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

/// The chain value before the first segment (`chain_{-1}`).
pub const CHAIN_SEED: [u8; 32] = [0; 32];

/// `chain_i = sha256(chain_{i-1} || sha256(segment_i))`, on raw 32-byte digests.
pub fn chain_next(previous: &[u8; 32], segment_sha256: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(segment_sha256);
    hasher.finalize().into()
}

/// Recomputes the chain over stored segment objects (compressed bytes, in order).
pub fn chain_of<'a>(segments: impl IntoIterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
    let mut chain = CHAIN_SEED;
    segments
        .into_iter()
        .map(|bytes| {
            chain = chain_next(&chain, &Sha256::digest(bytes).into());
            chain
        })
        .collect()
}

/// Everything known about a finished recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub session: SessionInfo,
    pub segments: Vec<SegmentEntry>,
    pub totals: Totals,
    pub end_reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    /// True when every event given to the writer was captured into a segment (no write error).
    pub complete: bool,
    /// Hex chain value of the last segment (hex of [`CHAIN_SEED`] when there is none).
    pub chain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The session the recording belongs to (same values as the cast header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
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

/// One stored segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub seq: u32,
    /// Object name relative to the recording's prefix (`seg-00000000.zst`).
    pub object: String,
    /// Size of the stored (zstd) object.
    pub stored_bytes: u64,
    /// Size of the asciicast text it holds.
    pub raw_bytes: u64,
    /// Time of its first and last event in seconds; `None` for a segment holding only the header.
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// Hex chain value up to and including this segment.
    pub chain: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub segments: u32,
    pub events: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub duration_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_starts_from_zero_seed() {
        let chain = chain_of([b"a".as_slice(), b"b".as_slice()]);
        let first = chain_next(&CHAIN_SEED, &Sha256::digest(b"a").into());
        assert_eq!(chain[0], first);
        assert_eq!(chain[1], chain_next(&first, &Sha256::digest(b"b").into()));
        assert_ne!(chain_of([b"b".as_slice(), b"a".as_slice()])[1], chain[1]);
    }
}
