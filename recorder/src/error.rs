//! Error types at the crate boundary: opening a store, recording, reading back.

use std::path::PathBuf;

/// Opening a [`crate::RecordingStore`] or beginning a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid recording store url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot prepare recording directory {path}: {source}")]
    LocalDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use spool directory {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open recording store {url}: {source}")]
    Backend {
        url: String,
        source: object_store::Error,
    },
    #[error("invalid recording id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("recording {id} already exists in the spool")]
    AlreadyExists { id: String },
    #[error("recording store {url} was opened read-only")]
    ReadOnly { url: String },
    #[error("invalid recording object name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("recording object {object} already exists with different content")]
    ObjectExists { object: String },
    #[error("cannot write recording object {object}: {source}")]
    Write {
        object: String,
        source: object_store::Error,
    },
}

/// A recording call failed. Once a recording is broken every later call fails too, so the
/// caller can end the session rather than run it unrecorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("recording {id} is broken: {reason}")]
    Broken { id: String, reason: String },
    #[error("recording {id} is already finished")]
    Finished { id: String },
    #[error("recording {id} stopped unexpectedly")]
    Stopped { id: String },
    #[error("cannot spool manifest of recording {id}: {reason}")]
    Manifest { id: String, reason: String },
}

/// Reading a recording back failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("invalid recording id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("invalid recording object name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("recording {id} not found")]
    NotFound { id: String },
    #[error("recording {id} is missing segment {seq}")]
    MissingSegment { id: String, seq: u32 },
    #[error("cannot read recording object {object}: {source}")]
    Store {
        object: String,
        source: object_store::Error,
    },
    #[error("recording object {object} is corrupt: {source}")]
    Corrupt {
        object: String,
        source: std::io::Error,
    },
    #[error("recording manifest {object} is invalid: {source}")]
    Manifest {
        object: String,
        source: serde_json::Error,
    },
    #[error("cannot delete recording object {object}: {source}")]
    Delete {
        object: String,
        source: object_store::Error,
    },
    #[error("cannot write recording export {path}: {source}")]
    Export {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Side objects (an index, ...) live next to the segments, so their names must not pass for a
/// segment or the manifest, nor leave the recording's prefix.
pub(crate) fn check_object_name(name: &str) -> Result<(), &'static str> {
    check_id(name)?;
    if crate::segment::parse_segment_name(name).is_some() || name.starts_with("seg-") {
        return Err("names starting with 'seg-' are reserved for segments");
    }
    if name == crate::manifest::MANIFEST_NAME {
        return Err("the manifest is written by the recorder only");
    }
    Ok(())
}

/// Recording ids become object names and spool directory names, so they are restricted to a
/// safe alphabet (UUIDs and similar fit) and can never escape the prefix.
pub(crate) fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 128 {
        return Err("length must be 1 to 128");
    }
    if id.starts_with('.') {
        return Err("must not start with a dot");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("only ascii letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_id, check_object_name};

    #[test]
    fn ids_cannot_escape_the_prefix() {
        assert!(check_id("0192d1c4-7b1e-7c3a-9f00-1234567890ab").is_ok());
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn side_objects_cannot_pass_for_segments_or_the_manifest() {
        assert!(check_object_name("index.json.zst").is_ok());
        for bad in [
            "seg-00000001.zst",
            "seg-x",
            "manifest.json",
            "a/b",
            "..",
            "",
        ] {
            assert!(check_object_name(bad).is_err(), "{bad:?}");
        }
    }
}
