//! What strangers and idle connections may hold of the daemon: one deadline from accept to
//! authentication (`login_grace`), the `[limits]`, the idle timeout, shutdown reaching
//! authenticated connections, and owner-only files whatever the umask.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bastion_tests::{GrantSpec, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::bed;

const GRACE: Duration = Duration::from_secs(5);

/// Raises this test process's own open-file limit: it opens ~1,700 sockets.
fn raise_own_open_files() {
    let limit = libc::rlimit {
        rlim_cur: 16_384,
        rlim_max: 16_384,
    };
    // SAFETY: setrlimit with a valid struct; failing only leaves the old limit.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// What became of one flood connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// It never got through (refused, or the listen backlog was full): nothing to hold.
    NotConnected,
    /// The daemon closed it this long after it was established.
    ClosedAfter(Duration),
    /// Still open when the test gave up.
    StillOpen,
}

/// Connects from 127.0.0.2 and waits until the daemon closes the connection. A slowloris
/// connection sends one byte of an identification line every 1.5 s.
async fn hold(addr: SocketAddr, slowloris: bool, give_up: Duration) -> Held {
    let Ok(socket) = TcpSocket::new_v4() else {
        return Held::NotConnected;
    };
    if socket.bind(([127, 0, 0, 2], 0).into()).is_err() {
        return Held::NotConnected;
    }
    let mut stream = match tokio::time::timeout(give_up, socket.connect(addr)).await {
        Ok(Ok(stream)) => stream,
        _ => return Held::NotConnected,
    };
    let connected = Instant::now();
    let mut buf = [0u8; 512];
    let banner = b"SSH-2.0-slow\r\n";
    let mut sent = 0;
    let closed = async {
        loop {
            let tick = tokio::time::sleep(Duration::from_millis(1500));
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = tick, if slowloris => {
                    if stream.write_all(&banner[sent % banner.len()..][..1]).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        }
    };
    match tokio::time::timeout(give_up, closed).await {
        Ok(()) => Held::ClosedAfter(connected.elapsed()),
        Err(_) => Held::StillOpen,
    }
}

/// 1,500 silent and 200 slowloris connections from 127.0.0.2 against a daemon started with
/// `ulimit -n 1024`: a user from 127.0.0.1 still logs in and runs a command within 2 s, and
/// every silent connection is closed by the daemon within `login_grace` + 2 s.
#[test]
fn strangers_cannot_lock_users_out_and_are_closed_within_the_login_grace() -> Result<()> {
    let bed = bed!(Options {
        extra_keys: format!("login_grace = \"{}s\"\n", GRACE.as_secs()),
        open_files: Some(1024),
        ..Options::default()
    });
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    raise_own_open_files();
    let addr: SocketAddr = format!("127.0.0.1:{}", bed.bastion.port).parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let give_up = GRACE + Duration::from_secs(20);
    let flood = runtime.spawn(async move {
        let mut tasks = Vec::new();
        // In bursts of 50: all 1,700 within a fraction of a second would overflow the kernel's
        // listen queue, whose dropped handshakes leave client sockets that look connected but
        // never reached the daemon (nothing the daemon could close).
        for i in 0..1700 {
            tasks.push(tokio::spawn(hold(addr, i >= 1500, give_up)));
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap_or(Held::NotConnected));
        }
        results
    });
    // Let the flood arrive before the user tries.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo", "still-in"])
        .timeout(Duration::from_secs(10))
        .run()?;
    let took = started.elapsed();
    ensure!(
        out.stdout_str() == "still-in\n" && out.code() == Some(0),
        "the user was locked out by the flood: status {:?}, stdout {:?}, stderr {:?}\nbastion:\n{}",
        out.code(),
        out.stdout_str(),
        out.stderr_str(),
        bed.bastion.stderr()
    );
    ensure!(
        took < Duration::from_secs(2),
        "the user's command took {took:?} under the flood (want < 2 s)"
    );
    let results = runtime.block_on(flood)?;
    let closed: Vec<Duration> = results
        .iter()
        .filter_map(|r| match r {
            Held::ClosedAfter(d) => Some(*d),
            _ => None,
        })
        .collect();
    let still_open = results.iter().filter(|r| **r == Held::StillOpen).count();
    let slowest = closed.iter().max().copied().unwrap_or_default();
    ensure!(
        closed.len() >= 1000,
        "only {} of 1700 flood connections connected; the test did not flood",
        closed.len()
    );
    ensure!(
        slowest <= GRACE + Duration::from_secs(2) && still_open == 0,
        "the daemon held a stranger's connection {slowest:?} (login_grace {GRACE:?}); {still_open} still open after {give_up:?}; bastion:\n{}",
        tail(&bed.bastion.stderr(), 40)
    );
    let stderr = bed.bastion.stderr();
    let refusal_lines = stderr.matches("connection refused: over [limits]").count();
    ensure!(
        (1..=3).contains(&refusal_lines),
        "refusals are logged at most once per source, limit and minute; got {refusal_lines} lines:\n{stderr}"
    );
    ensure!(
        !stderr.contains("Too many open files"),
        "the daemon ran out of file descriptors:\n{stderr}"
    );
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An authenticated connection with no session is closed after `[limits] idle`; one with a
/// session is not.
#[test]
fn an_authenticated_connection_without_a_session_is_closed_when_idle() -> Result<()> {
    let bed = bed!(Options {
        extra_tables: "[limits]\nidle = \"2s\"\n".into(),
        ..Options::default()
    });
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let started = Instant::now();
    let out = bed
        .bastion
        .alice()
        .opt("-N")
        .timeout(Duration::from_secs(20))
        .run()?;
    let took = started.elapsed();
    ensure!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "a connection with no session lasted {took:?} (idle limit 2 s); stderr {:?}",
        out.stderr_str()
    );
    // A session that runs longer than the idle time is not cut by it.
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "sleep 3; echo done"])
        .timeout(Duration::from_secs(20))
        .run()?;
    ensure!(
        out.stdout_str() == "done\n" && out.code() == Some(0),
        "a live session was cut by the idle limit: {:?} {:?}",
        out.code(),
        out.stderr_str()
    );
    Ok(())
}

/// Shutdown reaches authenticated connections that have no session: the daemon stops at once
/// instead of waiting for them until the drain timeout.
#[test]
fn shutdown_does_not_wait_for_idle_authenticated_connections() -> Result<()> {
    let mut bed = bed!();
    let mut idle = bed
        .bastion
        .alice()
        .opt("-N")
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    bed.bastion
        .wait_audit("auth.success", Duration::from_secs(10), |_| true)?;
    let started = Instant::now();
    let status = bed.bastion.stop(Duration::from_secs(30))?;
    let took = started.elapsed();
    bastion_tests::child::terminate(&mut idle, Duration::from_secs(1));
    ensure!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with one idle authenticated connection (status {status})"
    );
    Ok(())
}

/// Under umask 022 every file and folder the daemon and the CLI create is owner-only, and a
/// file someone else made world-readable in the data folder is named in a warning at start.
#[test]
fn files_are_owner_only_whatever_the_umask() -> Result<()> {
    let mut bed = bed!(Options {
        umask: Some(0o022),
        ..Options::default()
    });
    bed.bastion.grant(&GrantSpec::new("alice", "db-1", "1h"))?;
    let out = bed
        .bastion
        .alice()
        .args(["db-1", "--", "echo", "private-output"])
        .run()?;
    ensure!(
        out.code() == Some(0),
        "session failed: {:?}",
        out.stderr_str()
    );
    bed.bastion
        .wait_audit("session.end", Duration::from_secs(10), |_| true)?;
    let data = bed.bastion.data_dir();
    let mut checked = 0;
    let mut open = Vec::new();
    let mut stack = vec![data.clone(), bed.bastion.audit_log()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).with_context(|| path.display().to_string())?;
        checked += 1;
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path)?.flatten().map(|e| e.path()));
        }
    }
    ensure!(
        checked > 5,
        "expected a populated data folder, saw {checked} entries"
    );
    ensure!(
        open.is_empty(),
        "readable by others under umask 022: {open:#?}"
    );

    let exposed = data.join("exposed.txt");
    std::fs::write(&exposed, "x")?;
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644))?;
    bed.bastion.stop(Duration::from_secs(20))?;
    bed.bastion.restart()?;
    let stderr = bed.bastion.stderr();
    ensure!(
        stderr.contains("readable by other users") && stderr.contains("exposed.txt"),
        "no warning naming the world-readable file:\n{stderr}"
    );
    Ok(())
}
