//! The local PostgreSQL server of the end-to-end tests (127.0.0.1:5432, user postgres, trust):
//! whether it is up, and running one statement with the real `psql`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::{child, prereq};

/// True when PostgreSQL accepts connections; otherwise the test's prerequisite is missing
/// (a failure in CI, a SKIP line elsewhere).
pub fn is_up() -> bool {
    let up = Command::new("pg_isready")
        .args(["-h", "127.0.0.1", "-p", "5432"])
        .output()
        .is_ok_and(|o| o.status.success());
    up || prereq::unavailable(
        "PostgreSQL is not accepting connections on 127.0.0.1:5432 (tests/run starts it)",
    )
}

/// Runs `sql` as postgres on the `postgres` database.
pub fn psql(sql: &str) -> Result<()> {
    let out = child::run(
        Command::new("psql").args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]),
        child::Input::Null,
        Duration::from_secs(30),
    )?;
    ensure!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        out.stderr_str()
    );
    Ok(())
}
