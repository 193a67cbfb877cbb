//! The per-recording manifest (`{ID}/manifest.json`) and its hash chain.
//!
//! The manifest is written once, at finish, and lists every segment with the SHA-256 of its data
//! frame and the chained hash (the same values as the segment's trailer), so that a missing,
//! reordered or altered segment is detectable from the manifest alone. With a signing key it is
//! signed: `public_key` and `signature` (hex) over [`Manifest::signed_bytes`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::meta::RecordingMeta;

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
    /// The recording's metadata, as given to [`crate::RecordingStore::begin`]. Stored as the
    /// top-level `id` and the `session` object (everything else), the layout manifests have
    /// always had, so older manifests parse and their signatures still verify.
    #[serde(flatten, with = "id_and_session")]
    pub session: RecordingMeta,
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

/// (De)serializes [`Manifest::session`] as two manifest keys: `id` and `session`.
mod id_and_session {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::meta::RecordingMeta;

    #[derive(Serialize)]
    struct Stored<'a> {
        id: &'a str,
        session: &'a RecordingMeta,
    }

    #[derive(Deserialize)]
    struct Read {
        id: String,
        session: RecordingMeta,
    }

    pub(super) fn serialize<S: Serializer>(
        meta: &RecordingMeta,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Stored {
            id: &meta.id,
            session: meta,
        }
        .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<RecordingMeta, D::Error> {
        let Read { id, mut session } = Read::deserialize(deserializer)?;
        session.id = id;
        Ok(session)
    }
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
            session: RecordingMeta {
                id: "rec-1".to_string(),
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

    /// `sample()` signed with seed [1; 32], as written by the version before `RecordingMeta`
    /// became the manifest's session type (pretty JSON, as stored).
    const STORED_SIGNED: &str = r#"{
  "format": 2,
  "id": "rec-1",
  "session": {
    "user": "alice \"quoted\" é",
    "target": "db-1",
    "login": "postgres",
    "grant_id": -3,
    "command": "psql\n",
    "width": 80,
    "height": 24,
    "term": null,
    "started_at": "2025-01-02T03:04:05.123456789+02:00"
  },
  "segments": [
    {
      "seq": 0,
      "object": "seg-00000000.zst",
      "stored_bytes": 10,
      "raw_bytes": 20,
      "first_time": 123456.789012,
      "last_time": 1e-6,
      "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "chain": "1111111111111111111111111111111111111111111111111111111111111111"
    }
  ],
  "totals": {
    "segments": 1,
    "events": 2,
    "raw_bytes": 20,
    "stored_bytes": 10,
    "duration_secs": 98765.432109
  },
  "end_reason": "expired",
  "ended_at": "2025-01-02T04:00:00.000000001Z",
  "complete": true,
  "chain": "1111111111111111111111111111111111111111111111111111111111111111",
  "public_key": "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
  "signature": "ca8bfef879f59c87a1a10fc8dde3d487edec7682b663a07786a5ef92093ab963dcc063d1f4443c3ad2bfe3114e2a0516dd57357e2968dec226ae391aae71b707"
}"#;

    /// An unsigned manifest of that version with the optional session fields flipped.
    const STORED_UNSIGNED: &str = r#"{
  "format": 2,
  "id": "rec-1",
  "session": {
    "user": "alice \"quoted\" é",
    "target": "db-1",
    "login": "postgres",
    "grant_id": null,
    "command": null,
    "width": 80,
    "height": 24,
    "term": "screen",
    "started_at": "2025-01-02T03:04:05.123456789+02:00"
  },
  "segments": [
    {
      "seq": 0,
      "object": "seg-00000000.zst",
      "stored_bytes": 10,
      "raw_bytes": 20,
      "first_time": 123456.789012,
      "last_time": 1e-6,
      "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "chain": "1111111111111111111111111111111111111111111111111111111111111111"
    }
  ],
  "totals": {
    "segments": 1,
    "events": 2,
    "raw_bytes": 20,
    "stored_bytes": 10,
    "duration_secs": 98765.432109
  },
  "end_reason": "expired",
  "ended_at": "2025-01-02T04:00:00.000000001Z",
  "complete": true,
  "chain": "1111111111111111111111111111111111111111111111111111111111111111"
}"#;

    #[test]
    fn manifests_of_the_earlier_layout_parse_verify_and_serialize_identically() {
        let key = crate::sign::SigningKey::from_seed([1; 32]);
        let parsed: Manifest = serde_json::from_str(STORED_SIGNED).unwrap();
        let mut expected = sample();
        expected.sign(&key).unwrap();
        assert_eq!(parsed, expected);
        assert_eq!(parsed.session.id, "rec-1");
        assert!(parsed.signature_valid(&key.verifying_key()));
        assert_eq!(
            serde_json::to_string_pretty(&parsed).unwrap(),
            STORED_SIGNED
        );

        let parsed: Manifest = serde_json::from_str(STORED_UNSIGNED).unwrap();
        let session = &parsed.session;
        assert_eq!(session.id, "rec-1");
        assert_eq!((session.grant_id, session.command.as_deref()), (None, None));
        assert_eq!(session.term.as_deref(), Some("screen"));
        assert_eq!((&parsed.public_key, &parsed.signature), (&None, &None));
        assert_eq!(
            serde_json::to_string_pretty(&parsed).unwrap(),
            STORED_UNSIGNED
        );
    }

    #[test]
    fn a_manifest_without_id_or_session_is_refused() {
        let mut value: serde_json::Value = serde_json::from_str(STORED_UNSIGNED).unwrap();
        value.as_object_mut().unwrap().remove("id");
        let error = serde_json::from_value::<Manifest>(value).unwrap_err();
        assert!(error.to_string().contains("missing field `id`"), "{error}");
        let mut value: serde_json::Value = serde_json::from_str(STORED_UNSIGNED).unwrap();
        value.as_object_mut().unwrap().remove("session");
        let error = serde_json::from_value::<Manifest>(value).unwrap_err();
        assert!(
            error.to_string().contains("missing field `session`"),
            "{error}"
        );
    }
}
