//! The per-recording manifest (`{ID}/manifest.json`) and its hash chain.
//!
//! The manifest is written once, at finish, and lists every segment with the SHA-256 of its data
//! frame and the chained hash (the same values as the segment's trailer), so that a missing,
//! reordered or altered segment is detectable from the manifest alone. With a signing key it is
//! signed: `public_key` and `signature` (hex) over [`Manifest::signed_bytes`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Object name of the manifest inside a recording's prefix.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Version of the manifest layout. 2: segments carry trailers, `sha256` is of the data frame,
/// times are whole microseconds, `public_key` and `signature` are filled when signing.
pub const MANIFEST_FORMAT: u32 = 2;

/// The chain value before the first segment (`chain_{-1}`).
pub const CHAIN_SEED: [u8; 32] = [0; 32];

/// `chain_i = sha256(chain_{i-1} || sha256(segment_i))`, on raw 32-byte digests.
pub fn chain_next(previous: &[u8; 32], segment_sha256: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(segment_sha256);
    hasher.finalize().into()
}

/// Recomputes the chain over segment data frames (compressed bytes without trailer, in order).
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
    /// Hex ed25519 public key the manifest and segments were signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Hex ed25519 signature over [`Manifest::signed_bytes`]; absent when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Manifest {
    /// The canonical bytes the signature covers: the manifest as compact JSON, fields in
    /// declaration order, without `signature` (with `public_key`). Verifiers re-serialize the
    /// parsed manifest, so the stored file may be pretty-printed; this holds because every float
    /// in it is a whole number of microseconds, which prints and parses back exactly.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let unsigned = Manifest {
            signature: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned)
    }

    /// Fills `public_key` and `signature`.
    pub(crate) fn sign(&mut self, key: &crate::sign::SigningKey) -> Result<(), serde_json::Error> {
        self.public_key = Some(key.verifying_key().to_hex());
        let canonical = self.signed_bytes()?;
        self.signature = Some(hex::encode(key.sign_manifest(&canonical)));
        Ok(())
    }

    /// True when `signature` is a valid signature by `key` (whatever `public_key` claims).
    pub fn signature_valid(&self, key: &crate::sign::VerifyingKey) -> bool {
        let Some(sig) = self.signature.as_deref().and_then(|s| hex::decode(s).ok()) else {
            return false;
        };
        self.signed_bytes()
            .is_ok_and(|canonical| key.verify_manifest(&canonical, &sig))
    }
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
    /// Size of the stored object (data frame and trailer).
    pub stored_bytes: u64,
    /// Size of the asciicast text it holds.
    pub raw_bytes: u64,
    /// Time of its first and last event in seconds (whole microseconds); `None` for a segment
    /// holding only the header.
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    /// Hex SHA-256 of the data frame (as in the trailer).
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

    fn sample() -> Manifest {
        let started_at = time::macros::datetime!(2025-01-02 03:04:05.123456789 +02:00);
        Manifest {
            format: MANIFEST_FORMAT,
            id: "rec-1".to_string(),
            session: SessionInfo {
                user: "alice \"quoted\" é".to_string(),
                target: "db-1".to_string(),
                login: "postgres".to_string(),
                grant_id: Some(-3),
                command: Some("psql\n".to_string()),
                width: 80,
                height: 24,
                term: None,
                started_at,
            },
            segments: vec![SegmentEntry {
                seq: 0,
                object: "seg-00000000.zst".to_string(),
                stored_bytes: 10,
                raw_bytes: 20,
                first_time: Some(123_456.789_012),
                last_time: Some(0.000_001),
                sha256: "00".repeat(32),
                chain: "11".repeat(32),
            }],
            totals: Totals {
                segments: 1,
                events: 2,
                raw_bytes: 20,
                stored_bytes: 10,
                duration_secs: 98_765.432_109,
            },
            end_reason: "expired".to_string(),
            ended_at: time::macros::datetime!(2025-01-02 04:00:00.000000001 UTC),
            complete: true,
            chain: "11".repeat(32),
            public_key: None,
            signature: None,
        }
    }

    #[test]
    fn signature_survives_a_pretty_round_trip_and_catches_any_change() {
        let key = crate::sign::SigningKey::from_seed([1; 32]);
        let mut manifest = sample();
        manifest.sign(&key).unwrap();
        let stored = serde_json::to_vec_pretty(&manifest).unwrap();
        let parsed: Manifest = serde_json::from_slice(&stored).unwrap();
        assert_eq!(parsed, manifest);
        assert!(parsed.signature_valid(&key.verifying_key()));
        let other = crate::sign::SigningKey::from_seed([2; 32]).verifying_key();
        assert!(!parsed.signature_valid(&other));

        let mut changed = parsed.clone();
        changed.complete = false;
        assert!(!changed.signature_valid(&key.verifying_key()));
        let mut changed = parsed.clone();
        changed.totals.duration_secs = 98_765.432_108;
        assert!(!changed.signature_valid(&key.verifying_key()));
        let mut changed = parsed;
        changed.signature = None;
        assert!(!changed.signature_valid(&key.verifying_key()));
    }
}
