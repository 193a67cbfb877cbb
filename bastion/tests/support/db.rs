//! Fresh databases for store tests: a SQLite file in a temp dir, or a PostgreSQL database
//! created for one test and dropped after it.
//!
//! PostgreSQL is found at `BASTION_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unreachable the test fails if `CI=true`
//! and otherwise prints a loud note and passes without running.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use bastion::db::Database;
use futures::FutureExt;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test gets: the store and the URL it was opened with (for raw SQL or a second store).
pub struct TestDb {
    pub store: Database,
    pub url: String,
    pub backend: Backend,
}

impl TestDb {
    /// The dialect's database clock in epoch milliseconds, for raw SQL in tests.
    pub fn now_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Backend::Postgres => "(extract(epoch from clock_timestamp()) * 1000)::bigint",
        }
    }

    /// Runs one statement directly against the test database.
    pub async fn execute(&self, sql: String) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Runs `check` against a fresh SQLite database.
pub async fn with_sqlite<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    // A nested path also checks that opening creates missing directories.
    let url = format!("sqlite://{}/state/bastion.db", dir.path().display());
    let store = Database::open(&url).await.unwrap();
    check(TestDb {
        store,
        url,
        backend: Backend::Sqlite,
    })
    .await;
}

/// Runs `check` against a fresh PostgreSQL database, dropped afterwards even if `check` panics.
pub async fn with_postgres<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let admin_url =
        std::env::var("BASTION_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string());
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(conn) => conn,
        Err(err) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL at {admin_url} is required in CI but unreachable: {err}");
            }
            eprintln!(
                "\n*** NOTE: PostgreSQL at {admin_url} is unreachable ({err}); \
                 PostgreSQL store test NOT RUN (set BASTION_TEST_POSTGRES) ***\n"
            );
            return;
        }
    };
    let name = format!("bastion_test_{:016x}", rand::random::<u64>());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = database_url(&admin_url, &name);
    let outcome = AssertUnwindSafe(async {
        let store = Database::open(&url).await.unwrap();
        let db = TestDb {
            store: store.clone(),
            url: url.clone(),
            backend: Backend::Postgres,
        };
        check(db).await;
        store.close().await;
    })
    .catch_unwind()
    .await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `admin_url` with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Declares `#[tokio::test]`s running each named `async fn(TestDb)` on SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    $crate::support::db::with_sqlite(super::$check).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    $crate::support::db::with_postgres(super::$check).await;
                }
            )*
        }
    };
}
