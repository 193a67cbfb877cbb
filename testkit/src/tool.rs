//! The external programs the kit drives (`tmux`, `moto_server`): finding them on `PATH`, and the
//! rule for a test whose program is missing: an error in CI (`CI=true`), a loud SKIP line
//! elsewhere, so a developer without the tool still runs the rest but CI never passes by
//! skipping.

use std::io::Write as _;
use std::path::PathBuf;

/// True when running in CI (`CI=true` or `CI=1`), where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Full path of the executable `name` on `PATH`, if there is one.
pub fn find(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The name of the running test: libtest names each test's thread after it.
pub fn current_test() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// Prints a loud SKIP line for `test`. It goes straight to the process's stderr so that the
/// test harness does not swallow it for a passing (skipped) test.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr().lock(), "\n*** SKIP {test}: {why} ***\n");
}
