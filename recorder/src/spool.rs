//! The local spool: durable copies of closed segments and manifests awaiting upload.
//!
//! A file appears in the spool only complete and fsync'd (written as `NAME.tmp`, synced, renamed,
//! directory synced), so after a crash or `kill -9` every `seg-*.zst` or `manifest.json` found
//! there is whole and can be uploaded; a leftover `.tmp` is a write that never finished and whose
//! content was never acknowledged, so it is deleted.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::manifest::MANIFEST_NAME;
use crate::segment::parse_segment_name;

/// Writes `bytes` to `dir/name` durably and returns the final path.
///
/// `sync_parent` also syncs `dir`'s parent, needed once per recording so the directory entry of
/// a freshly created recording dir survives a crash.
pub(crate) fn write_durably(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync_parent: bool,
) -> io::Result<PathBuf> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        if sync_parent && let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(path.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a previous process left in the spool for one recording.
#[derive(Debug)]
pub(crate) struct SpooledRecording {
    pub(crate) id: String,
    pub(crate) dir: PathBuf,
    /// `(seq, path)`, sorted by seq.
    pub(crate) segments: Vec<(u32, PathBuf)>,
    pub(crate) manifest: Option<PathBuf>,
}

/// Lists leftovers per recording, deleting unfinished `.tmp` writes and empty recording dirs.
///
/// Unknown files are left alone (and logged) rather than deleted: the spool may hold the only
/// copy of audit data, and guessing is worse than a stray file.
pub(crate) fn scan(spool_dir: &Path) -> io::Result<Vec<SpooledRecording>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(spool_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %entry.path().display(), "ignoring spool directory with a non-utf8 name");
            continue;
        };
        let dir = entry.path();
        let mut recording = SpooledRecording {
            id,
            dir: dir.clone(),
            segments: Vec::new(),
            manifest: None,
        };
        for file in fs::read_dir(&dir)? {
            let file = file?;
            let path = file.path();
            let name = file.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = parse_segment_name(&name) {
                recording.segments.push((seq, path));
            } else if name == MANIFEST_NAME {
                recording.manifest = Some(path);
            } else if name.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "deleting unfinished spool write");
                fs::remove_file(&path)?;
            } else {
                tracing::warn!(path = %path.display(), "ignoring unknown file in spool");
            }
        }
        recording.segments.sort_by_key(|(seq, _)| *seq);
        if recording.segments.is_empty() && recording.manifest.is_none() {
            // Nothing to upload: a recording whose uploads all finished. `remove_dir` fails on
            // anything non-empty (unknown files), which is what we want.
            let _ = fs::remove_dir(&dir);
            continue;
        }
        found.push(recording);
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// Bytes of segments and manifests in the spool, read without changing anything (for a process
/// that does not own the spool). Unreadable or missing directories count as empty.
pub(crate) fn spooled_bytes(spool_dir: &Path) -> u64 {
    let Ok(recordings) = fs::read_dir(spool_dir) else {
        return 0;
    };
    recordings
        .flatten()
        .filter_map(|rec| fs::read_dir(rec.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|file| {
            let name = file.file_name();
            let name = name.to_string_lossy();
            parse_segment_name(&name).is_some() || name == MANIFEST_NAME
        })
        .filter_map(|file| file.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_leftovers_and_cleans_unfinished_writes() {
        let spool = tempfile::tempdir().unwrap();
        let rec = spool.path().join("rec-1");
        fs::create_dir(&rec).unwrap();
        write_durably(&rec, "seg-00000001.zst", b"b", false).unwrap();
        write_durably(&rec, "seg-00000000.zst", b"a", true).unwrap();
        fs::write(rec.join("seg-00000002.zst.tmp"), b"partial").unwrap();
        fs::create_dir(spool.path().join("empty")).unwrap();

        let found = scan(spool.path()).unwrap();
        assert_eq!(found.len(), 1);
        let seqs: Vec<u32> = found[0].segments.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![0, 1]);
        assert!(found[0].manifest.is_none());
        assert!(!rec.join("seg-00000002.zst.tmp").exists());
        assert!(!spool.path().join("empty").exists());
        assert_eq!(spooled_bytes(spool.path()), 2);
        assert_eq!(spooled_bytes(&spool.path().join("missing")), 0);
    }
}
