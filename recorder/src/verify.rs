//! Verifying a stored recording: the hash chain, the signatures and the manifest.
//!
//! Segments are checked in name order from `seg-00000000.zst`; the first one that fails is named
//! and nothing after it is trusted. Per segment: it splits into a data frame and a trailer, the
//! trailer names this recording and this sequence number, the data frame hashes to the trailer's
//! `sha256`, `prev` is the previous segment's chain and `chain = sha256(prev || sha256)`, the
//! signature (when a key is given) is valid, the frame decompresses (zstd checksum) to `raw`
//! bytes whose first and last event times are `t0`/`t1`, and segment 0 starts with a header for
//! this recording. Then the manifest: signature, id, one entry per stored segment with the same
//! hashes and sizes, and the final chain.
//!
//! What each attack looks like: a flipped byte breaks the frame hash, the trailer's JSON or its
//! signature; a removed segment is a gap in the names (or, at the end, a manifest entry without
//! its object); a moved or replayed segment carries another `seq` in its signed trailer; a
//! segment from another recording carries another `id`; a forged manifest fails its signature.
//! Without a key, only the chain holds them together, which someone who can write the store can
//! recompute: signatures are what make the recording tamper-evident, not just corruption-evident.
//!
//! Limits: without a manifest, removing the newest segments is indistinguishable from a crash
//! (the result is `Truncated`, naming the last intact segment), and deleting the manifest of a
//! finished recording turns `Complete` into `Truncated`; the session index in bastion's database
//! knows whether a session ended and can tell these apart. A bastion host that dies while
//! several segments of a session are being uploaded at once can leave a gap, reported as
//! `Tampered` (missing segment): the two cannot be told apart from the store alone.

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::cast::Header;
use crate::error::ReadError;
use crate::manifest::{CHAIN_SEED, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, chain_next};
use crate::segment::{SegmentData, SegmentTrailer, TRAILER_VERSION, parse_segment_name};
use crate::sign::VerifyingKey;
use crate::store::RecordingStore;

/// Segments fetched ahead while verifying (S3 latency hides behind the hashing).
const FETCH_AHEAD: usize = 4;

/// The outcome of [`RecordingStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub status: VerifyStatus,
    /// Segments that passed every check, from 0 (all of them when not `Tampered`).
    pub segments_ok: u32,
    /// The first segment that failed (or is missing); `None` when none did or only the
    /// manifest is wrong.
    pub first_bad: Option<u32>,
    /// One line for humans: what was found, or what is wrong and where.
    pub detail: String,
    /// A key was given and every signature checked so far was valid with it. False when
    /// verifying without a key: then only the chain was checked.
    pub signed: bool,
    /// The name of the key the signatures were made with ([`RecordingStore::verify_by_any`]),
    /// the key's hex for [`RecordingStore::verify`]; `None` when nothing was checked against
    /// a key.
    pub signer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyStatus {
    /// Manifest present and complete; every segment, the chain and all signatures are good.
    Complete,
    /// Everything stored is intact, but the recording stops early: no manifest (still running,
    /// or the bastion crashed) or a manifest that says it is incomplete.
    Truncated,
    /// Something stored was altered, removed, reordered, replayed or forged.
    Tampered,
}

impl VerifyStatus {
    /// Exit status of `bastion recordings verify`: 0 complete, 3 truncated, 1 tampered.
    pub fn exit_code(self) -> i32 {
        match self {
            VerifyStatus::Complete => 0,
            VerifyStatus::Truncated => 3,
            VerifyStatus::Tampered => 1,
        }
    }
}

/// Facts about an intact segment, for the manifest comparison and the summary.
struct Checked {
    trailer: SegmentTrailer,
    stored_bytes: u64,
}

impl RecordingStore {
    /// Checks a recording's chain, signatures and manifest (see the module doc). `key`: the
    /// bastion's public key; `None` checks the chain only and says so. Errors are for failures
    /// to read the store (and unknown ids), never for what was found in it.
    pub async fn verify(
        &self,
        id: &str,
        key: Option<&VerifyingKey>,
    ) -> Result<Verification, ReadError> {
        let keys: Vec<(String, VerifyingKey)> =
            key.map(|key| (key.to_hex(), *key)).into_iter().collect();
        self.verify_by_any(id, &keys).await
    }

    /// Like [`RecordingStore::verify`], but the signatures may be made by any one of `keys`
    /// (name, key), e.g. those of every bastion node sharing the store. A recording is signed
    /// by one key throughout: the first signature picks it, and [`Verification::signer`]
    /// names it. No keys checks the chain only.
    pub async fn verify_by_any(
        &self,
        id: &str,
        keys: &[(String, VerifyingKey)],
    ) -> Result<Verification, ReadError> {
        let objects = self.recording_objects(id).await?;
        let mut segments: Vec<(u32, object_store::path::Path)> = Vec::new();
        let mut manifest_path = None;
        for path in objects {
            match path.filename() {
                Some(MANIFEST_NAME) => manifest_path = Some(path),
                Some(name) => {
                    if let Some(seq) = parse_segment_name(name) {
                        segments.push((seq, path));
                    }
                }
                None => {}
            }
        }
        if segments.is_empty() && manifest_path.is_none() {
            return Err(ReadError::NotFound { id: id.to_string() });
        }
        segments.sort_by_key(|(seq, _)| *seq);

        let mut check = Checker {
            id,
            keys,
            chosen: None,
            chain: CHAIN_SEED,
            chains: Vec::new(),
            intact: Vec::new(),
        };
        let mut fetched = futures::stream::iter(segments)
            .map(|(seq, path)| async move {
                let stored = self.fetch(&path).await?;
                Ok::<_, ReadError>(SegmentData {
                    seq,
                    object: self.object_name(&path),
                    stored,
                })
            })
            .buffered(FETCH_AHEAD);
        let mut expected = 0u32;
        while let Some(segment) = fetched.try_next().await? {
            if segment.seq != expected {
                let detail = format!(
                    "segment {expected} is missing (the next stored is {}): removed, or lost \
                     before upload when the bastion host died",
                    segment.seq
                );
                return Ok(check.tampered(Some(expected), detail));
            }
            if let Err(detail) = check.segment(&segment) {
                return Ok(check.tampered(Some(expected), detail));
            }
            expected += 1;
        }
        drop(fetched);

        let Some(path) = manifest_path else {
            let detail = format!(
                "no manifest (session still running, or the bastion stopped before finishing it): {}",
                check.intact_up_to()
            );
            return Ok(check.truncated(detail));
        };
        let bytes = self.fetch(&path).await?;
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(manifest) => manifest,
            Err(e) => return Ok(check.tampered(None, format!("manifest is not valid: {e}"))),
        };
        if let Err((first_bad, detail)) = check.manifest(&manifest) {
            return Ok(check.tampered(first_bad, detail));
        }
        if !manifest.complete {
            let detail = format!(
                "manifest marks the recording incomplete (a segment could not be stored; end: {}): {}",
                manifest.end_reason,
                check.intact_up_to()
            );
            return Ok(check.truncated(detail));
        }
        let detail = format!(
            "complete: {} segments, {:.3} s, end: {}, {}",
            check.intact.len(),
            manifest.totals.duration_secs,
            manifest.end_reason,
            check.signature_note()
        );
        Ok(check.outcome(VerifyStatus::Complete, None, detail))
    }
}

struct Checker<'a> {
    id: &'a str,
    keys: &'a [(String, VerifyingKey)],
    /// The key that made the first valid signature: every later one must be by it too.
    chosen: Option<usize>,
    /// Chain value after the intact segments.
    chain: [u8; 32],
    /// Chain value after each intact segment, to recognise a replayed one.
    chains: Vec<[u8; 32]>,
    intact: Vec<Checked>,
}

impl Checker<'_> {
    /// Checks the next segment in order (its name is `self.intact.len()`).
    fn segment(&mut self, segment: &SegmentData) -> Result<(), String> {
        let seq = segment.seq;
        let frame = segment
            .frame()
            .map_err(|_| format!("segment {seq} is malformed (not a zstd frame and trailer)"))?;
        let trailer = match segment.trailer() {
            Ok(Some(trailer)) => trailer,
            Ok(None) => return Err(format!("segment {seq} has no trailer")),
            Err(_) => return Err(format!("segment {seq} has a corrupt trailer")),
        };
        if trailer.v != TRAILER_VERSION {
            return Err(format!(
                "segment {seq} has an unknown trailer version {}",
                trailer.v
            ));
        }
        if trailer.id != self.id {
            return Err(format!(
                "segment {seq} belongs to recording {:?}",
                trailer.id
            ));
        }
        let chain = parse_hash(&trailer.chain);
        if trailer.seq != seq {
            let replayed =
                chain.is_some() && self.chains.get(trailer.seq as usize).copied() == chain;
            return Err(if replayed {
                format!(
                    "segment {seq} is a replayed copy of segment {}",
                    trailer.seq
                )
            } else {
                format!(
                    "segment {seq} is segment {} moved out of place",
                    trailer.seq
                )
            });
        }
        let sha256: [u8; 32] = Sha256::digest(frame).into();
        if Some(sha256) != parse_hash(&trailer.sha256) {
            return Err(format!(
                "segment {seq} was altered: its data does not match its hash"
            ));
        }
        if parse_hash(&trailer.prev) != Some(self.chain) {
            return Err(format!(
                "segment {seq} does not follow segment {} in the chain",
                seq.wrapping_sub(1)
            ));
        }
        let chain = chain_next(&self.chain, &sha256);
        if parse_hash(&trailer.chain) != Some(chain) {
            return Err(format!("segment {seq} has a wrong chain value"));
        }
        if !self.keys.is_empty() {
            let Some(sig) = trailer.sig.as_deref() else {
                return Err(format!("segment {seq} is not signed"));
            };
            let id = self.id;
            let valid = hex::decode(sig)
                .is_ok_and(|sig| self.signed_by(|key| key.verify_segment(id, seq, &chain, &sig)));
            if !valid {
                return Err(format!(
                    "segment {seq} has a bad signature (altered, or not made by {})",
                    self.signers()
                ));
            }
        }
        let text = segment
            .decompress()
            .map_err(|_| format!("segment {seq} does not decompress"))?;
        if text.len() as u64 != trailer.raw {
            return Err(format!(
                "segment {seq} holds {} bytes, its trailer says {}",
                text.len(),
                trailer.raw
            ));
        }
        if event_times(&text) != (micros(trailer.t0), micros(trailer.t1)) {
            return Err(format!(
                "segment {seq} event times do not match its trailer"
            ));
        }
        if seq == 0 {
            self.header(&text)?;
        }
        self.chain = chain;
        self.chains.push(chain);
        self.intact.push(Checked {
            trailer,
            stored_bytes: segment.stored.len() as u64,
        });
        Ok(())
    }

    fn header(&self, text: &[u8]) -> Result<(), String> {
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let header: Header = serde_json::from_slice(line)
            .map_err(|_| "segment 0 does not start with an asciicast header".to_string())?;
        match header.bastion.map(|b| b.session_id) {
            Some(session) if session == self.id => Ok(()),
            Some(other) => Err(format!("segment 0 header belongs to recording {other:?}")),
            None => Err("segment 0 header has no bastion session".to_string()),
        }
    }

    /// Checks the manifest against the intact segments; `Err((first_bad, detail))`.
    fn manifest(&mut self, manifest: &Manifest) -> Result<(), (Option<u32>, String)> {
        let bad = |detail: String| Err((None, detail));
        if manifest.format != MANIFEST_FORMAT {
            return bad(format!(
                "manifest has format {}, this verifier knows {MANIFEST_FORMAT}",
                manifest.format
            ));
        }
        if !self.keys.is_empty() {
            if manifest.signature.is_none() {
                return bad("manifest is not signed".to_string());
            }
            if !self.signed_by(|key| manifest.signature_valid(key)) {
                return bad(format!(
                    "manifest has a bad signature (altered, or not made by {})",
                    self.signers()
                ));
            }
        }
        if manifest.session.id != self.id {
            return bad(format!(
                "manifest belongs to recording {:?}",
                manifest.session.id
            ));
        }
        for (n, entry) in manifest.segments.iter().enumerate() {
            let n = n as u32;
            let Some(checked) = self.intact.get(n as usize) else {
                return Err((
                    Some(n),
                    format!("segment {n} listed in the manifest is missing"),
                ));
            };
            let t = &checked.trailer;
            let same = entry.seq == n
                && entry.sha256 == t.sha256
                && entry.chain == t.chain
                && entry.raw_bytes == t.raw
                && entry.stored_bytes == checked.stored_bytes
                && micros(entry.first_time) == micros(t.t0)
                && micros(entry.last_time) == micros(t.t1);
            if !same {
                return Err((
                    Some(n),
                    format!("segment {n} differs from its manifest entry"),
                ));
            }
        }
        let listed = manifest.segments.len();
        if self.intact.len() > listed {
            return Err((
                Some(listed as u32),
                format!("segment {listed} is not listed in the manifest (appended)"),
            ));
        }
        if parse_hash(&manifest.chain) != Some(self.chain) {
            return bad("manifest chain does not match the segments".to_string());
        }
        if manifest.totals.segments as usize != listed {
            return bad("manifest totals do not match its segment list".to_string());
        }
        Ok(())
    }

    fn intact_up_to(&self) -> String {
        match self.intact.last() {
            None => "no segment stored".to_string(),
            Some(last) => {
                let at = last
                    .trailer
                    .t1
                    .or(last.trailer.t0)
                    .or_else(|| self.intact.iter().rev().find_map(|c| c.trailer.t1))
                    .unwrap_or(0.0);
                format!(
                    "intact up to segment {} at {at:.3} s, {}",
                    last.trailer.seq,
                    self.signature_note()
                )
            }
        }
    }

    /// Whether `valid` holds for the key chosen so far, or else for one of the keys, which
    /// is then chosen.
    fn signed_by(&mut self, valid: impl Fn(&VerifyingKey) -> bool) -> bool {
        match self.chosen {
            Some(i) => valid(&self.keys[i].1),
            None => match self.keys.iter().position(|(_, key)| valid(key)) {
                Some(i) => {
                    self.chosen = Some(i);
                    true
                }
                None => false,
            },
        }
    }

    /// Who a signature had to be made by, for a message saying it was not.
    fn signers(&self) -> String {
        let one = match (self.chosen, self.keys) {
            (Some(i), _) => &self.keys[i],
            (None, [only]) => only,
            (None, keys) => return format!("any of the {} keys given", keys.len()),
        };
        let (name, key) = one;
        if *name == key.to_hex() {
            format!("key {key}")
        } else {
            format!("{name}'s key {key}")
        }
    }

    fn signature_note(&self) -> String {
        match (self.chosen, self.keys.is_empty()) {
            (Some(i), _) => {
                let (name, key) = &self.keys[i];
                if *name == key.to_hex() {
                    format!("signed by {key}")
                } else {
                    format!("signed by {name} (key {key})")
                }
            }
            (None, false) => "no signature checked (nothing signed is stored)".to_string(),
            (None, true) => "signatures not checked (no key given)".to_string(),
        }
    }

    fn tampered(&self, first_bad: Option<u32>, detail: String) -> Verification {
        let mut outcome = self.outcome(VerifyStatus::Tampered, first_bad, detail);
        // A forged segment or manifest means the signatures did not all hold.
        outcome.signed = false;
        outcome
    }

    fn truncated(&self, detail: String) -> Verification {
        self.outcome(VerifyStatus::Truncated, None, detail)
    }

    fn outcome(
        &self,
        status: VerifyStatus,
        first_bad: Option<u32>,
        detail: String,
    ) -> Verification {
        Verification {
            status,
            segments_ok: self.intact.len() as u32,
            first_bad,
            detail,
            signed: !self.keys.is_empty(),
            signer: self.chosen.map(|i| self.keys[i].0.clone()),
        }
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// Whole microseconds of a time in seconds (trailer and manifest times are whole microseconds,
/// so this is exact).
fn micros(secs: Option<f64>) -> Option<i64> {
    secs.map(|s| (s * 1e6).round() as i64)
}

/// Times of the first and last event line (`[TIME, ...`), in microseconds.
fn event_times(text: &[u8]) -> (Option<i64>, Option<i64>) {
    let mut times = text
        .split(|&b| b == b'\n')
        .filter(|line| line.first() == Some(&b'['))
        .map(|line| {
            let end = line.iter().position(|&b| b == b',').unwrap_or(line.len());
            std::str::from_utf8(&line[1..end])
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
        });
    let first = times.next().flatten();
    let last = times.next_back().flatten().or(first);
    (micros(first), micros(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_come_from_the_first_and_last_event_lines() {
        let text = b"{\"version\":2}\n[0.500000, \"o\", \"a\"]\n[1.851000, \"o\", \"b,c\"]\n";
        assert_eq!(event_times(text), (Some(500_000), Some(1_851_000)));
        assert_eq!(
            event_times(b"[2.000001, \"m\", \"x\"]\n"),
            (Some(2_000_001), Some(2_000_001))
        );
        assert_eq!(event_times(b"{\"version\":2}\n"), (None, None));
    }

    #[test]
    fn exit_codes_match_the_cli_contract() {
        assert_eq!(VerifyStatus::Complete.exit_code(), 0);
        assert_eq!(VerifyStatus::Truncated.exit_code(), 3);
        assert_eq!(VerifyStatus::Tampered.exit_code(), 1);
    }
}
