//! Segments: independent zstd frames holding whole asciicast lines, each sealed by a trailer.
//!
//! A stored segment object is two zstd frames: the data frame (whole asciicast lines) and a
//! skippable frame (magic [`TRAILER_MAGIC`]) holding a small JSON [`SegmentTrailer`] with the
//! segment's place in the hash chain and its signature. Decoders skip skippable frames, so
//! segments can be decompressed one by one and their plain concatenation is still a valid
//! multi-frame zstd stream whose content is the whole asciicast file (`cat seg-* | zstd -dc`).

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ReadError;

/// zstd level 1: on terminal output (log lines, shell sessions) it compresses about as well
/// as level 3 (4.6x vs 4.3x on log-like text, measured with the `throughput` example) at about
/// 1.7x the speed, and compression is the largest CPU cost a recorded session adds. Segments
/// are independent frames compressed off the session's path (blocking pool), several at once.
const ZSTD_LEVEL: i32 = 1;

/// Object name of segment `seq` inside a recording's prefix.
pub fn segment_name(seq: u32) -> String {
    format!("seg-{seq:08}.zst")
}

/// Inverse of [`segment_name`]; `None` for any other object name.
pub fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".zst")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment being filled: plain asciicast text, compressed only when closed.
///
/// Holding text rather than a streaming zstd encoder keeps an open segment cheap: a level-3
/// compression context needs megabytes, which across hundreds of mostly idle sessions would
/// dwarf everything else; the text of an idle session's segment is a few hundred bytes.
pub(crate) struct OpenSegment {
    /// Whole lines, appended in place by the recording task.
    pub(crate) text: Vec<u8>,
    events: u64,
    first_time: Option<Duration>,
    last_time: Option<Duration>,
}

/// A closed, compressed segment.
pub(crate) struct ClosedSegment {
    pub(crate) seq: u32,
    pub(crate) bytes: Vec<u8>,
    pub(crate) raw_bytes: u64,
    pub(crate) events: u64,
    pub(crate) first_time: Option<Duration>,
    pub(crate) last_time: Option<Duration>,
    /// SHA-256 of the data frame alone (the trailer cannot cover itself).
    pub(crate) sha256: [u8; 32],
    /// Chain value up to and including this segment; set by [`ClosedSegment::seal`].
    pub(crate) chain: [u8; 32],
}

/// Magic number of the skippable frame holding a segment's trailer (zstd reserves
/// `0x184D2A50..=0x184D2A5F` for skippable frames; decoders step over them).
pub const TRAILER_MAGIC: u32 = 0x184D2A5B;

/// Version of the trailer layout (`"v"`).
pub const TRAILER_VERSION: u32 = 1;

/// The JSON trailer sealing one segment, stored in a skippable frame after its data frame.
///
/// `sha256` is of the data frame; `chain = sha256(prev || sha256)` on raw bytes, with `prev` the
/// previous segment's chain ([`crate::CHAIN_SEED`] before segment 0); `sig` is an ed25519
/// signature over `id`, `seq` and `chain` (see [`crate::SigningKey`]), absent when the store has
/// no signing key. `t0`/`t1` are the times of the first and last event in whole microseconds
/// (`None` for a segment holding only the header), `raw` the size of the asciicast text.
/// Those three are not signed: verification checks them against the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentTrailer {
    pub v: u32,
    pub id: String,
    pub seq: u32,
    pub t0: Option<f64>,
    pub t1: Option<f64>,
    pub raw: u64,
    pub sha256: String,
    pub prev: String,
    pub chain: String,
    pub sig: Option<String>,
}

/// Splits a stored segment object into its data frame and the payload of its trailer frame
/// (`None` for a bare frame).
pub(crate) fn split_object(bytes: &[u8]) -> Result<(&[u8], Option<&[u8]>), &'static str> {
    if bytes.len() >= 4 && is_skippable(&bytes[..4]) {
        return Err("does not start with a zstd data frame");
    }
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(bytes)
        .map_err(|_| "its zstd data frame is damaged")?;
    let (frame, rest) = bytes.split_at(frame_len.min(bytes.len()));
    if rest.is_empty() {
        return Ok((frame, None));
    }
    let (head, payload) = rest.split_at(rest.len().min(8));
    let magic = head.get(..4).and_then(|m| m.try_into().ok());
    let size = head.get(4..8).and_then(|s| s.try_into().ok());
    match (magic.map(u32::from_le_bytes), size.map(u32::from_le_bytes)) {
        (Some(TRAILER_MAGIC), Some(size)) if size as usize == payload.len() => {
            Ok((frame, Some(payload)))
        }
        _ => Err("holds unexpected bytes after its data frame"),
    }
}

fn is_skippable(magic: &[u8]) -> bool {
    magic
        .try_into()
        .map(u32::from_le_bytes)
        .is_ok_and(|m| m & 0xFFFF_FFF0 == 0x184D_2A50)
}

/// One stored segment as read back.
#[derive(Debug, Clone)]
pub struct SegmentData {
    pub seq: u32,
    /// Object location, e.g. `s3://bucket/prefix/ID/seg-00000003.zst`.
    pub object: String,
    /// The stored bytes: data frame and trailer frame.
    pub stored: bytes::Bytes,
}

impl SegmentData {
    /// The asciicast lines the segment holds (the trailer frame is skipped).
    pub fn decompress(&self) -> Result<Vec<u8>, ReadError> {
        zstd::decode_all(self.stored.as_ref()).map_err(|source| self.corrupt(source))
    }

    /// The zstd data frame without the trailer.
    pub fn frame(&self) -> Result<&[u8], ReadError> {
        split_object(&self.stored)
            .map(|(frame, _)| frame)
            .map_err(|reason| self.corrupt(io::Error::new(io::ErrorKind::InvalidData, reason)))
    }

    /// The segment's trailer; `None` for a segment stored without one (written before trailers
    /// existed, or stripped).
    pub fn trailer(&self) -> Result<Option<SegmentTrailer>, ReadError> {
        let invalid = |reason: String| io::Error::new(io::ErrorKind::InvalidData, reason);
        let (_, payload) =
            split_object(&self.stored).map_err(|reason| self.corrupt(invalid(reason.into())))?;
        payload
            .map(serde_json::from_slice)
            .transpose()
            .map_err(|e| self.corrupt(invalid(format!("invalid trailer: {e}"))))
    }

    fn corrupt(&self, source: io::Error) -> ReadError {
        ReadError::Corrupt {
            object: self.object.clone(),
            source,
        }
    }
}

/// `d` as seconds, truncated to whole microseconds like the cast's event times. Such values
/// print and parse back exactly, which the signed manifest relies on.
pub(crate) fn seconds(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e6
}

impl ClosedSegment {
    /// Appends the trailer frame: links the segment to `prev` and signs it if a key is given.
    /// Returns the new chain value (also kept in `self.chain`).
    pub(crate) fn seal(
        &mut self,
        id: &str,
        prev: &[u8; 32],
        key: Option<&crate::sign::SigningKey>,
    ) -> io::Result<[u8; 32]> {
        self.chain = crate::manifest::chain_next(prev, &self.sha256);
        let trailer = SegmentTrailer {
            v: TRAILER_VERSION,
            id: id.to_string(),
            seq: self.seq,
            t0: self.first_time.map(seconds),
            t1: self.last_time.map(seconds),
            raw: self.raw_bytes,
            sha256: hex::encode(self.sha256),
            prev: hex::encode(prev),
            chain: hex::encode(self.chain),
            sig: key.map(|k| hex::encode(k.sign_segment(id, self.seq, &self.chain))),
        };
        let payload = serde_json::to_vec(&trailer).map_err(io::Error::other)?;
        let size = u32::try_from(payload.len()).map_err(io::Error::other)?;
        self.bytes.reserve(8 + payload.len());
        self.bytes.extend_from_slice(&TRAILER_MAGIC.to_le_bytes());
        self.bytes.extend_from_slice(&size.to_le_bytes());
        self.bytes.extend_from_slice(&payload);
        Ok(self.chain)
    }
}

thread_local! {
    /// One compression context per (blocking pool) thread, reused across segments and
    /// recordings instead of allocating megabytes per segment.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

fn compress(text: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some(compressor) => compressor,
            empty => {
                let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
                // The frame checksum lets `zstd -t` and our reader detect a damaged segment.
                compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                empty.insert(compressor)
            }
        };
        compressor.compress(text)
    })
}

impl OpenSegment {
    pub(crate) fn new(text: Vec<u8>) -> OpenSegment {
        OpenSegment {
            text,
            events: 0,
            first_time: None,
            last_time: None,
        }
    }

    /// Counts an event whose line the caller has just appended to `text`.
    pub(crate) fn add_event(&mut self, time: Duration) {
        self.events += 1;
        self.first_time.get_or_insert(time);
        self.last_time = Some(time);
    }

    /// Compresses the segment into one zstd frame (CPU-heavy: call from a blocking thread); the
    /// caller then [`ClosedSegment::seal`]s it.
    /// Also hands back the text buffer so its allocation can be reused.
    /// Sequence numbers are given at close so a segment that stayed empty uses none.
    pub(crate) fn close(self, seq: u32) -> io::Result<(ClosedSegment, Vec<u8>)> {
        let bytes = compress(&self.text)?;
        let sha256 = Sha256::digest(&bytes).into();
        let closed = ClosedSegment {
            seq,
            bytes,
            raw_bytes: self.text.len() as u64,
            events: self.events,
            first_time: self.first_time,
            last_time: self.last_time,
            sha256,
            chain: [0; 32],
        };
        Ok((closed, self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(segment_name(7), "seg-00000007.zst");
        assert_eq!(parse_segment_name("seg-00000007.zst"), Some(7));
        for other in [
            "seg-7.zst",
            "seg-0000000a.zst",
            "manifest.json",
            "seg-00000007.zst.tmp",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn closed_segment_is_one_frame_with_the_lines() {
        let mut seg = OpenSegment::new(b"header\n".to_vec());
        seg.text.extend_from_slice(b"event\n");
        seg.add_event(Duration::from_secs(1));
        let (closed, text) = seg.close(0).unwrap();
        assert_eq!(text, b"header\nevent\n");
        assert_eq!(closed.raw_bytes, 13);
        assert_eq!(closed.events, 1);
        assert_eq!(
            zstd::decode_all(closed.bytes.as_slice()).unwrap(),
            b"header\nevent\n"
        );
    }

    #[test]
    fn sealed_segment_decodes_to_its_lines_and_splits_back() {
        let mut seg = OpenSegment::new(b"header\n".to_vec());
        seg.text.extend_from_slice(b"[1.5, \"o\", \"x\"]\n");
        seg.add_event(Duration::from_micros(1_500_000));
        let (mut closed, _) = seg.close(4).unwrap();
        let frame = closed.bytes.clone();
        let key = crate::sign::SigningKey::from_seed([3; 32]);
        let chain = closed.seal("rec-1", &[5; 32], Some(&key)).unwrap();

        // The skippable trailer is invisible to a zstd decoder.
        assert_eq!(
            zstd::decode_all(closed.bytes.as_slice()).unwrap(),
            b"header\n[1.5, \"o\", \"x\"]\n"
        );
        let (data, payload) = split_object(&closed.bytes).unwrap();
        assert_eq!(data, frame.as_slice());
        let trailer: SegmentTrailer = serde_json::from_slice(payload.unwrap()).unwrap();
        assert_eq!((trailer.seq, trailer.id.as_str()), (4, "rec-1"));
        assert_eq!(
            (trailer.t0, trailer.t1, trailer.raw),
            (Some(1.5), Some(1.5), 23)
        );
        assert_eq!(trailer.sha256, hex::encode(Sha256::digest(&frame)));
        assert_eq!(trailer.prev, hex::encode([5u8; 32]));
        assert_eq!(trailer.chain, hex::encode(chain));
        let sig = hex::decode(trailer.sig.unwrap()).unwrap();
        assert!(key.verifying_key().verify_segment("rec-1", 4, &chain, &sig));

        assert_eq!(split_object(&frame).unwrap(), (frame.as_slice(), None));
        let mut extra = closed.bytes.clone();
        extra.push(0);
        assert!(split_object(&extra).is_err());
        assert!(split_object(&closed.bytes[frame.len()..]).is_err());
        assert!(split_object(&frame[..frame.len() - 1]).is_err());
    }

    #[test]
    fn seconds_print_and_parse_back_exactly() {
        for micros in [0u64, 1, 999_999, 1_851_000, 123_456_789_012, 86_400_000_001] {
            let secs = seconds(Duration::from_micros(micros));
            let text = serde_json::to_string(&secs).unwrap();
            assert_eq!(
                serde_json::from_str::<f64>(&text).unwrap().to_bits(),
                secs.to_bits()
            );
            assert_eq!((secs * 1e6).round() as u64, micros, "{text}");
        }
    }
}
