//! bastion's session recording format and storage. Knows nothing of SSH or SQL.
//!
//! # Format
//!
//! A recording is an [asciicast v2](https://docs.asciinema.org/manual/asciicast/v2/) stream:
//! a JSON header line (`version`, `width`, `height`, `timestamp`, `env.TERM`, `title`, plus
//! bastion's own keys under `"bastion"`: `format` (= [`BASTION_FORMAT`]), `session_id`, `user`,
//! `target`, `login`, `grant_id`, `command`), then one `[time, code, data]` line per event:
//! `o` output, `i` input, `r` resize (`"COLSxROWS"`), `m` marker (warnings, and a final
//! `"end: REASON"`). Times are seconds since the recording began with six decimals, taken when
//! the session handed the data over and never decreasing. Output and input are decoded as UTF-8
//! incrementally, each direction as one text, so a character split across chunks comes out
//! whole; invalid bytes become U+FFFD. asciinema players ignore the extra `bastion` key
//! (`asciinema cat` is tested).
//!
//! The writer takes data tagged with its [`Stream`]: a pty session's `TerminalOutput` and
//! `TerminalInput`, or a command's `Stdout`, `Stderr` and `Stdin` when there is no pty. For now
//! the three output streams become `o` events and the two input streams `i` events, decoded by
//! one decoder per direction, byte for byte what the untagged `output()`/`input()` write. The tag
//! travels with the data to the recording task, the one place asciicast text is made, so that
//! stdout, stderr and stdin can later be recorded byte-exact there. Resizes and markers have
//! their own calls.
//!
//! We use our own small serde types rather than the `asciicast` crate: its 0.2.2 release only
//! knows `i`/`o` events and, with its default `chrono` feature, requires an integer `timestamp`
//! in the header, so it cannot read our `r`/`m` events or many valid v2 files.
//!
//! # Storage layout
//!
//! A recording `ID` is a set of objects under `{prefix}/{ID}/` in a local directory
//! (`file://`) or an S3-compatible bucket (`s3://BUCKET/PREFIX`; AWS, MinIO, Ceph, R2; path-style
//! or virtual-hosted requests; settings from `AWS_*` variables overridden by [`S3Options`]):
//! - `seg-{seq:08}.zst`: a zstd data frame holding whole lines (segment 0 starts with the
//!   header), followed by a zstd skippable frame (magic [`TRAILER_MAGIC`]) holding the JSON
//!   [`SegmentTrailer`]. Decoders skip skippable frames, so `cat seg-* | zstd -dc` is exactly
//!   the asciicast file (tested with the real `zstd`). A segment is closed when it holds
//!   `segment_bytes` of text, `segment_interval` after its first line (a timer, so idle
//!   sessions are persisted too), and at finish.
//! - `manifest.json` ([`Manifest`], format [`MANIFEST_FORMAT`]), written at finish: session
//!   metadata, per segment its sizes, event times, data-frame SHA-256 and chain value, totals,
//!   the end reason, `complete`, and with a signing key `public_key` and `signature`.
//! - side objects such as a search index ([`RecordingStore::write_object`]); names starting
//!   with `seg-` and `manifest.json` are reserved.
//!
//! Every object is created with `PutMode::Create` (S3 `If-None-Match: *`), one single PUT each:
//! nothing recorded is ever overwritten. Segments are deliberately not multipart uploads: S3
//! parts must be at least 5 MiB (except the last) while a segment is typically a few hundred
//! KiB, and a single PUT takes up to 5 GiB; a segment above 5 MiB is tested to go up as one PUT.
//!
//! # Tamper evidence
//!
//! Segments form a hash chain: `chain_i = sha256(chain_{i-1} || sha256(data frame_i))` from 32
//! zero bytes ([`CHAIN_SEED`]); each trailer holds its `seq`, the recording id, the hashes, and
//! an ed25519 signature over id, seq and chain with [`StoreConfig::signing_key`] (the bastion's
//! key; [`SigningKey::from_seed`]). The manifest repeats the chain and is signed as a whole.
//! [`RecordingStore::verify`] checks all of it with a [`VerifyingKey`] and answers
//! [`VerifyStatus::Complete`], `Truncated` (intact but cut short: no manifest after a crash, or a
//! manifest saying incomplete; it names the last intact segment and its time) or `Tampered`
//! (naming the first bad segment: altered bytes, a removed, moved, replayed or foreign segment,
//! a bad or missing signature, a forged manifest). Without a signing key segments and manifest
//! are unsigned and only accidental damage is detectable; verification says which it checked.
//!
//! # Failure model
//!
//! The session never waits on the network. A closed segment is compressed, sealed (trailer) and
//! written and fsync'd to a local spool (`spool_dir/ID/`), then a background uploader stores it
//! with retries and exponential backoff (capped at 30 s) and deletes the spool copy. On S3 every
//! request has a time limit (connect 5 s, whole request [`StoreConfig::request_timeout`]), so a
//! store that hangs fails the attempt and is retried rather than blocking uploads; an outage of
//! any length loses nothing while the spool has room ([`RecordingStore::spool_bytes`] tells the
//! caller how full it is; enforcing a limit is the caller's policy). Whatever is left in the
//! spool when the process dies (`kill -9` included) is uploaded by the next
//! [`RecordingStore::open`]; an "already exists" answer with identical bytes counts as success
//! (crash between upload and delete), different bytes are an error and the spool copy is kept.
//!
//! Compression (zstd level 3, one frame per segment) runs on tokio's blocking pool, up to two
//! segments per recording at once; sealing and spooling then happen in sequence order (each
//! segment's chain value is handed to the next once it is durable), so the session's path only
//! decodes, escapes and appends text, and a segment that failed is never followed by a stored
//! one. If compressing or spooling fails the recording is broken: every later call fails with
//! [`RecordError::Broken`], so the caller can end the session instead of letting it run
//! unrecorded (fail closed). Because segments close asynchronously, calls that were accepted
//! while the failing segment was being written (at most two segments' worth) are lost too.
//! `finish` still writes a manifest with `complete: false`. It waits up to `finish_timeout` for
//! the upload; `uploaded: false` in the summary means the rest is still in the spool and being
//! retried. Events in the segment still open when the process is killed are lost (at most
//! `segment_interval` or `segment_bytes` worth), and a killed recording has no manifest (its
//! segments are still uploaded, readable, and verify as truncated). A spool dir belongs to one
//! process at a time: other processes (admin CLI, replay UI) use
//! [`RecordingStore::open_reader`], which never touches the spool and cannot record.
//!
//! # Reading, seeking and the index
//!
//! [`RecordingStore::build_index`] reads a recording once and produces its [`RecordingIndex`]
//! (segment time spans, `avt` terminal keyframes, typed command lines, output text lines,
//! markers, and where a damaged recording stops), stored as the side object [`INDEX_OBJECT`] by
//! [`RecordingStore::write_index`]. A [`Reader`] uses it to show the terminal at any time offset
//! by fetching one segment; [`follow`] streams a running recording's events as its segments
//! appear. These use a terminal emulator (`avt`) but nothing of SSH or SQL.

mod cast;
mod error;
mod follow;
mod index;
mod manifest;
mod meta;
mod reader;
mod recording;
mod s3;
mod segment;
mod sign;
mod spool;
mod store;
mod uploader;
mod utf8;
mod verify;
mod writer;

pub use cast::{
    ASCIICAST_VERSION, BASTION_FORMAT, BastionHeader, Event, EventKind, Header, ParseError,
    ParsedCast, parse_cast,
};
pub use error::{ReadError, RecordError, StoreError};
pub use follow::{follow, follow_from};
pub use index::{
    INDEX_OBJECT, INDEX_VERSION, IndexBuilder, KEYFRAME_OUTPUT_BYTES, Keyframe, MAX_COLS,
    MAX_COMMANDS_PER_SEGMENT, MAX_OUTPUT_LINES_PER_SEGMENT, MAX_ROWS, RecordingIndex, SegmentSpan,
    TextLine, build_index,
};
pub use manifest::{
    CHAIN_SEED, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, SegmentEntry, Totals, chain_next,
    chain_of,
};
pub use meta::RecordingMeta;
pub use reader::Reader;
pub use s3::S3Options;
pub use segment::{
    SegmentData, SegmentTrailer, TRAILER_MAGIC, TRAILER_VERSION, parse_segment_name, segment_name,
};
pub use sign::{KeyError, SigningKey, VerifyingKey};
pub use store::{RecordingStore, StoreConfig};
pub use verify::{Verification, VerifyStatus};
pub use writer::{RecordingSummary, RecordingWriter, Stream};
