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
    #[error("cannot write recording export {path}: {source}")]
    Export {
        path: PathBuf,
        source: std::io::Error,
    },
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
    use super::check_id;

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
}
