//! Files the bastion creates are its own: owner-only whatever the umask it was started with.
//!
//! The database holds a full-text index of every session's output, the audit log names who
//! did what, recordings hold everything: none of it may be readable by other local users.
//! Setting the process umask once, before anything is created, covers every file and folder
//! (including those that libraries create: SQLite's WAL, object_store's files, the spool).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Makes every file and folder this process creates from now on owner-only (0600/0700).
pub fn private_umask() {
    // SAFETY: umask only swaps the process's file-mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Files and folders under `dir` (not following symbolic links) that other users may read or
/// write, for the warning at start. Bounded: a huge tree is not walked beyond `limit` entries.
pub fn exposed(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        seen += 1;
        if seen > limit {
            break;
        }
        if meta.permissions().mode() & 0o077 != 0 && !meta.file_type().is_symlink() {
            found.push(path.clone());
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    found
}

/// Logs one warning per file or folder under `dir` that others may read.
pub fn warn_exposed(dir: &Path) {
    let exposed = exposed(dir, 100_000);
    for path in exposed.iter().take(20) {
        tracing::warn!(path = %path.display(), "readable by other users: it may hold session output or audit data; chmod go-rwx it");
    }
    if exposed.len() > 20 {
        tracing::warn!(count = exposed.len(), dir = %dir.display(), "more files readable by other users; chmod -R go-rwx the data directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        let open = dir.path().join("open");
        std::fs::write(&private, "x").unwrap();
        std::fs::write(&open, "x").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(exposed(dir.path(), 100), vec![open]);
    }
}
