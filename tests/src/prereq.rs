//! Prerequisites of the end-to-end tests: external tools, the `app` login and the bastion binary.
//!
//! A missing tool is a hard failure in CI (`CI=true`) and a loud SKIP line elsewhere, so a
//! developer without tmux can still run the rest, but CI can never pass by skipping.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Tools every end-to-end test needs.
pub const TOOLS: &[&str] = &[
    "sshd",
    "ssh",
    "ssh-keygen",
    "ssh-keyscan",
    "tmux",
    "asciinema",
    "zstd",
];

/// Directories searched besides `PATH`: `sshd` lives in /usr/sbin, which is not on every PATH.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Full path of `tool`, or `None` if it is not installed.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Full path of `tool`; panics if it is missing (callers checked `require` first).
pub fn tool(tool: &str) -> PathBuf {
    find_tool(tool)
        .unwrap_or_else(|| panic!("{tool} is not installed (run tests/run, which installs it)"))
}

/// True if all `tools` exist. Otherwise: panics in CI, prints a loud SKIP line and returns false
/// elsewhere. The line goes straight to the process's stderr so the test harness does not
/// swallow it for a passing (skipped) test.
pub fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    unavailable(&format!(
        "missing tools: {} (tests/run installs them)",
        missing.join(", ")
    ))
}

/// True if the local user `login` exists (the target logins the tests use: `root`, `app`).
pub fn require_login(login: &str) -> bool {
    let found = std::fs::read_to_string("/etc/passwd")
        .map(|passwd| passwd.lines().any(|l| l.split(':').next() == Some(login)))
        .unwrap_or(false);
    if !found {
        return unavailable(&format!(
            "missing local user {login:?} (tests/run creates it: useradd -m -s /bin/bash {login})"
        ));
    }
    // useradd leaves the password field "!" (locked) and sshd without PAM refuses locked accounts.
    let locked = std::fs::read_to_string("/etc/shadow").is_ok_and(|shadow| {
        shadow.lines().any(|l| {
            l.split(':').next() == Some(login)
                && l.split(':').nth(1).is_some_and(|p| p.starts_with('!'))
        })
    });
    !locked
        || unavailable(&format!(
            "local user {login:?} is locked, sshd refuses it (tests/run unlocks it: usermod -p '*' {login})"
        ))
}

/// The tests start sshd and switch users, which needs root.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || unavailable("not running as root (sshd needs root to log in as root and app)")
}

/// For a prerequisite the caller checked itself: panics in CI, prints a SKIP line and returns
/// false elsewhere.
pub fn unavailable(why: &str) -> bool {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if in_ci() {
        panic!("prerequisite missing in CI for {test}: {why}");
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n*** SKIP {test}: {why} ***\n");
    false
}

/// Path of the `bastion` binary: `$BASTION_BIN`, else `target/release/bastion` next to the
/// running test or bench executable. Panics with instructions when it does not exist, because
/// running the suite without the binary is a mistake, never a skip.
pub fn bastion_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BASTION_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            is_executable(&bin),
            "BASTION_BIN={} is not an executable file",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the test executable: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/release/deps, bench binaries directly in target/release.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join("bastion");
    assert!(
        is_executable(&bin),
        "bastion binary not found at {}: run tests/run, or cargo build --release -p bastion \
         (or point BASTION_BIN at it)",
        bin.display()
    );
    bin
}
