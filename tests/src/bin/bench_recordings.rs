//! Recording search benchmark: how long `bastion recordings search` takes over many recordings.
//!
//! Run (release build):
//!
//!     cargo run --release -p bastion-tests --bin bench_recordings -- [--recordings 1000]
//!         [--postgres URL | --no-postgres]
//!
//! 1. Makes `--recordings` recordings through the recorder (signed, 16 KiB segments, in a temp
//!    dir): shell sessions of ~30 typed commands (`git status`, `psql`, `tail`, `kubectl`...)
//!    with their output; one in 50 types `DROP TABLE`.
//! 2. Per database (SQLite in the temp dir; PostgreSQL in a fresh database when reachable at
//!    `--postgres`, default `postgres://postgres@127.0.0.1:5432/test`): writes the session rows,
//!    indexes every recording with the daemon's indexer (timed), then times each query of
//!    `QUERIES` through `Database::search` (median and max of 20 runs after a warm-up) and through
//!    the real CLI, `bastion recordings search --json` (median of 5 process runs, start-up
//!    included).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion::config::Config;
use bastion::db::{Database, NewGrant, SessionEnd, SessionStart};
use bastion::recordings::{indexer, signing};
use bastion_tests::prereq;
use recorder::{RecordingMeta, RecordingStore};
use sqlx::{AssertSqlSafe, Connection};
use testkit::logtext::Rng;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What an auditor looks for: a rare phrase, common words, an error message, text with
/// punctuation (index + exact substring) and a wordless query (substring scan).
const QUERIES: &[&str] = &[
    "DROP TABLE",
    "git status",
    "permission denied",
    "rm -rf /var",
    "&&",
];

struct Settings {
    recordings: usize,
    postgres: Option<String>,
}

fn main() {
    if let Err(err) = run() {
        eprintln!("bench_recordings: {err:#}");
        std::process::exit(2);
    }
}

fn parse_args() -> Result<Settings> {
    let mut settings = Settings {
        recordings: 1000,
        postgres: Some(DEFAULT_POSTGRES.to_string()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--recordings" => {
                settings.recordings = args
                    .next()
                    .context("--recordings needs a number")?
                    .parse()
                    .context("--recordings needs a number")?;
            }
            "--postgres" => {
                settings.postgres = Some(args.next().context("--postgres needs a URL")?)
            }
            "--no-postgres" => settings.postgres = None,
            other => anyhow::bail!(
                "unknown argument {other:?} (expected --recordings N, --postgres URL, --no-postgres)"
            ),
        }
    }
    Ok(settings)
}

fn run() -> Result<()> {
    let settings = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(settings))
}

async fn bench(settings: Settings) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("bastion-bench-search-")
        .tempdir()?;
    let config_text = format!(
        "data_dir = {:?}\n\n[recording]\nsegment_bytes = \"16KiB\"\n",
        work.path().join("data").display().to_string()
    );
    let config = Config::parse(&config_text, "bench.toml")?;
    let (store_config, _) = signing::store_config(&config)?;
    let recordings = RecordingStore::open(store_config).await?;

    println!(
        "recording search benchmark: {} recordings\n",
        settings.recordings
    );
    let started = Instant::now();
    let sessions = make_recordings(&recordings, settings.recordings).await?;
    let raw: u64 = sessions.iter().map(|s| s.raw_bytes).sum();
    println!(
        "made {} recordings ({:.1} MB of asciicast) in {:.1?}",
        sessions.len(),
        raw as f64 / 1e6,
        started.elapsed()
    );

    let mut databases = vec![(
        "SQLite (FTS5)".to_string(),
        format!("sqlite://{}", work.path().join("data/bastion.db").display()),
        None,
    )];
    if let Some(admin) = &settings.postgres {
        match fresh_postgres(admin).await {
            Ok((url, name)) => databases.push((
                "PostgreSQL (tsvector + GIN)".to_string(),
                url,
                Some((admin.clone(), name)),
            )),
            Err(err) => {
                println!("\nPostgreSQL at {admin} unreachable ({err:#}): PostgreSQL NOT measured")
            }
        }
    }
    let mut outcome = Ok(());
    for (label, url, _) in &databases {
        outcome = measure(label, url, &recordings, &sessions, work.path()).await;
        if outcome.is_err() {
            break;
        }
    }
    for (_, _, admin) in &databases {
        if let Some((admin, name)) = admin {
            drop_postgres(admin, name).await?;
        }
    }
    outcome
}

/// A made recording: its id and raw size.
struct Made {
    id: String,
    raw_bytes: u64,
}

async fn make_recordings(recordings: &RecordingStore, count: usize) -> Result<Vec<Made>> {
    let mut made = Vec::with_capacity(count);
    // A few at a time: compression and fsync run on the blocking pool.
    for chunk_start in (0..count).step_by(8) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in chunk_start..count.min(chunk_start + 8) {
            let recordings = recordings.clone();
            tasks.spawn(async move { make_recording(&recordings, i).await });
        }
        while let Some(result) = tasks.join_next().await {
            made.push(result??);
        }
    }
    made.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(made)
}

async fn make_recording(recordings: &RecordingStore, i: usize) -> Result<Made> {
    let id = format!("bench-{i:05}");
    let writer = recordings.begin(RecordingMeta {
        id: id.clone(),
        user: format!("user{}", i % 17),
        target: format!("db-{}", i % 5),
        login: "app".into(),
        grant_id: Some(1),
        command: None,
        width: 120,
        height: 40,
        term: None,
        started_at: time::OffsetDateTime::now_utc(),
    })?;
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    let mut t = 0.5;
    let prompt = format!("app@db-{}:~$ ", i % 5);
    writer
        .output_at(Duration::from_secs_f64(t), prompt.as_bytes())
        .await?;
    for n in 0..30 {
        let command = if n == 17 && i.is_multiple_of(50) {
            "psql app -c 'DROP TABLE audit_log;'".to_string()
        } else {
            COMMANDS[rng.below(COMMANDS.len())].to_string()
        };
        for c in command.chars() {
            t += 0.05 + rng.below(100) as f64 / 1000.0;
            writer
                .input_at(Duration::from_secs_f64(t), c.to_string().as_bytes())
                .await?;
            writer
                .output_at(Duration::from_secs_f64(t + 0.002), c.to_string().as_bytes())
                .await?;
        }
        t += 0.1;
        writer.input_at(Duration::from_secs_f64(t), b"\r").await?;
        let mut out = String::from("\r\n");
        for _ in 0..(5 + rng.below(30)) {
            out.push_str(OUTPUT[rng.below(OUTPUT.len())]);
            out.push_str(&format!(" {}\r\n", rng.below(1_000_000)));
        }
        out.push_str(&prompt);
        t += 0.2;
        writer
            .output_at(Duration::from_secs_f64(t), out.as_bytes())
            .await?;
        t += 1.0 + rng.below(5000) as f64 / 1000.0;
    }
    let summary = writer
        .finish_at(Duration::from_secs_f64(t + 1.0), "exit")
        .await?;
    ensure!(summary.complete, "recording {id} incomplete");
    Ok(Made {
        id,
        raw_bytes: summary.raw_bytes,
    })
}

async fn measure(
    label: &str,
    url: &str,
    recordings: &RecordingStore,
    sessions: &[Made],
    work: &Path,
) -> Result<()> {
    println!("\n{label}");
    let store = Database::open(url).await?;
    let grant = store
        .add_grant(NewGrant {
            user: "alice".into(),
            target: "db-1".into(),
            logins: vec!["app".into()],
            starts_in: Duration::ZERO,
            duration: Duration::from_secs(3600),
            approved_by: "bench".into(),
            reason: "bench".into(),
            commands: Vec::new(),
            pty: true,
        })
        .await?;
    for (i, made) in sessions.iter().enumerate() {
        store
            .session_started(&SessionStart {
                id: made.id.clone(),
                user: format!("user{}", i % 17),
                target: format!("db-{}", i % 5),
                login: "app".into(),
                grant_id: grant.id,
                command: None,
                interactive: true,
                client: "127.0.0.1:40000".into(),
                recording: recordings.location(&made.id),
                recorded: true,
                node: "bench".into(),
            })
            .await?;
        store
            .session_ended(
                &made.id,
                &SessionEnd {
                    reason: "exit".into(),
                    bytes: made.raw_bytes,
                    recording_complete: true,
                },
            )
            .await?;
    }

    let started = Instant::now();
    let report = indexer::index_pending(&store, recordings).await?;
    let took = started.elapsed();
    ensure!(
        report.indexed == sessions.len() && report.failed == 0,
        "indexing: {report:?}"
    );
    let lines: usize = {
        let mut total = 0;
        for made in sessions {
            total += store.recording_text(&made.id).await?.len();
        }
        total
    };
    println!(
        "  indexed {} recordings ({lines} text lines) in {:.1?} ({:.1} ms per recording)",
        report.indexed,
        took,
        took.as_secs_f64() * 1000.0 / sessions.len() as f64
    );

    let config = work.join(format!("search-{}.toml", label.len()));
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ndatabase_url = {url:?}\n",
            work.join("data").display().to_string()
        ),
    )?;
    println!(
        "  {:<20} {:>9} {:>6} {:>12} {:>12} {:>12}",
        "query", "sessions", "hits", "query p50", "query max", "CLI p50"
    );
    for query in QUERIES {
        let found = store.search(query, 100, 20).await?;
        let hits: u64 = found.iter().map(|f| f.total_hits).sum();
        let mut times = Vec::with_capacity(20);
        for _ in 0..20 {
            let started = Instant::now();
            store.search(query, 100, 20).await?;
            times.push(started.elapsed());
        }
        times.sort();
        let mut cli = Vec::with_capacity(5);
        for _ in 0..5 {
            let started = Instant::now();
            let out = Command::new(prereq::bastion_bin())
                .args(["recordings", "search", "--json", "--config"])
                .arg(&config)
                .arg(query)
                .output()?;
            cli.push(started.elapsed());
            ensure!(
                out.status.success(),
                "bastion recordings search {query:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let lines = out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            ensure!(
                lines.count() == found.len(),
                "CLI and library disagree on {query:?}"
            );
        }
        cli.sort();
        println!(
            "  {:<20} {:>9} {:>6} {:>9.1} ms {:>9.1} ms {:>9.1} ms",
            format!("{query:?}"),
            found.len(),
            hits,
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            ms(cli[cli.len() / 2]),
        );
    }
    store.close().await;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A new database on the PostgreSQL server at `admin`; returns its URL and name.
async fn fresh_postgres(admin: &str) -> Result<(String, String)> {
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    let name = format!("bastion_bench_{}", std::process::id());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin
        .rsplit_once('/')
        .map_or(admin, |(base, _)| base)
        .to_string();
    Ok((format!("{base}/{name}"), name))
}

async fn drop_postgres(admin: &str, name: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

const COMMANDS: &[&str] = &[
    "git status",
    "ls -la /var/log",
    "tail -n 50 /var/log/syslog",
    "psql app -c 'SELECT count(*) FROM orders;'",
    "kubectl get pods -n payments",
    "systemctl status nginx",
    "df -h",
    "journalctl -u app --since today | grep -i error",
    "cd /srv/app && git log --oneline | head",
    "sudo rm -rf /var/cache/app/tmp",
    "top -b -n 1 | head -20",
    "cat /etc/hosts",
    "docker ps --format '{{.Names}}'",
    "free -m",
    "grep -r TODO src/ | wc -l",
];

const OUTPUT: &[&str] = &[
    "drwxr-xr-x  2 app app 4096 Nov 24 10:01 releases",
    "2026-11-24T10:00:01Z INFO request served path=/api/orders status=200 duration_ms=",
    "2026-11-24T10:00:02Z WARN slow query table=orders duration_ms=",
    "ERROR: permission denied for table orders",
    "nginx.service - A high performance web server; active (running) since",
    "payments-api-7d9f8b6c4-x2k9p   1/1     Running   0          3d",
    "/dev/vda1        50G   31G   17G  65% /",
    "On branch main, your branch is up to date with 'origin/main', changes not staged:",
    "Mem:           7976        3121         512          44        4342        4512",
    "tcp   LISTEN 0  511  0.0.0.0:443  0.0.0.0:*  users:((\"nginx\",pid=",
];
