//! The accept loop: admits TCP connections within the `[limits]`, gives each one task, holds
//! every connection to one deadline from accept to successful authentication
//! (`login_grace`: banner, key exchange and authentication together), closes authenticated
//! connections that stay idle, and makes every connection observe shutdown.
//!
//! Refusals are cheap and early: a connection over a limit is closed right after `accept`,
//! before a byte of SSH is spent on it, and logged at most once per source and minute.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use crate::config::Limits;
use crate::cutoff::Cutoff;
use crate::daemon::Daemon;
use crate::ssh::handler::{Connection, ConnectionState};

/// How long sessions get to close themselves with a message when the daemon shuts down,
/// before their connection goes.
const SHUTDOWN_SESSION_GRACE: Duration = Duration::from_secs(2);
/// How often one source's refusals are logged at most.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Sources remembered for refusal logging; past it, the oldest are forgotten.
const REFUSAL_LOG_SOURCES: usize = 4096;

/// The SSH listener: the bound socket and the server configuration (host key, algorithms).
pub struct Listener {
    pub tcp: TcpListener,
    pub ssh: Arc<russh::server::Config>,
}

/// Accepts connections until `shutdown` resolves, then stops accepting and returns; the
/// caller cancels `daemon.shutdown` and waits for `daemon.tracker` to drain.
pub async fn run(daemon: Arc<Daemon>, listener: Listener, shutdown: impl Future<Output = ()>) {
    let admission = Admission::new(daemon.config.limits);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            _ = daemon.shutdown.cancelled() => return,
            accepted = listener.tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let accepted_at = Instant::now();
        match admission.admit(peer.ip()) {
            Ok(ticket) => {
                daemon.tracker.spawn(connection(
                    daemon.clone(),
                    listener.ssh.clone(),
                    tcp,
                    peer,
                    accepted_at,
                    ticket,
                ));
            }
            Err(limit) => {
                // Closed at once: no banner, no key exchange, no task.
                drop(tcp);
                if admission.should_log(peer.ip(), limit) {
                    tracing::warn!(%peer, limit, "connection refused: over [limits] {limit} (logged once a minute per source)");
                }
            }
        }
    }
}

/// Serves one user connection until it ends, the login grace passes without authentication,
/// it stays idle too long, or the daemon shuts down.
async fn connection(
    daemon: Arc<Daemon>,
    ssh_config: Arc<russh::server::Config>,
    tcp: TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
    mut ticket: Ticket,
) {
    let config = daemon.config.clone();
    let deadline = accepted_at + config.login_grace;
    let _ = tcp.set_nodelay(true);
    let (tcp, cutoff) = match Cutoff::attach(tcp) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot set up connection");
            return;
        }
    };
    let cutoff = Arc::new(cutoff);
    let state = Arc::new(ConnectionState::default());
    let handler = Connection::new(daemon.clone(), peer, cutoff.clone(), state.clone());
    // The client's identification line is read inside run_stream: the deadline covers it.
    let session = tokio::select! {
        started = timeout_at(deadline, russh::server::run_stream(ssh_config, tcp, handler)) => match started {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "no SSH identification within the login grace time");
                return;
            }
        },
        _ = daemon.shutdown.cancelled() => return,
    };
    let handle = session.handle();
    tokio::pin!(session);
    let mut authenticated = false;
    loop {
        let idle_at = if authenticated {
            state.idle_since().map(|since| since + config.limits.idle)
        } else {
            None
        };
        tokio::select! {
            result = &mut session => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = state.authenticated.notified(), if !authenticated => {
                authenticated = true;
                ticket.authenticated();
                continue;
            }
            _ = sleep_until(deadline), if !authenticated => {
                tracing::info!(%peer, "no authentication within the login grace time");
                break;
            }
            _ = state.changed.notified(), if authenticated => continue,
            _ = sleep_until(idle_at.unwrap_or(deadline)), if idle_at.is_some() => {
                tracing::info!(%peer, idle = %humantime::format_duration(config.limits.idle), "closing a connection with no session open");
                break;
            }
            _ = daemon.shutdown.cancelled() => {
                // Sessions close themselves with a message; give them a moment before the
                // connection itself goes.
                let _ = timeout(SHUTDOWN_SESSION_GRACE, &mut session).await;
                break;
            }
        }
    }
    let _ = timeout(
        Duration::from_millis(500),
        handle.disconnect(russh::Disconnect::ByApplication, "bye".into(), "en".into()),
    )
    .await;
    if timeout(Duration::from_millis(500), &mut session)
        .await
        .is_err()
    {
        cutoff.cut();
    }
}

/// Counts connections against the `[limits]`.
struct Admission {
    limits: Limits,
    state: Arc<Mutex<Counts>>,
    logged: Mutex<HashMap<(IpAddr, &'static str), std::time::Instant>>,
}

#[derive(Default)]
struct Counts {
    connections: usize,
    unauthenticated: usize,
    unauthenticated_by_source: HashMap<IpAddr, usize>,
}

/// One admitted connection's place in the counts, given back on drop.
struct Ticket {
    state: Arc<Mutex<Counts>>,
    source: IpAddr,
    unauthenticated: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a few counter updates: a panic cannot leave them half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Admission {
    fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            state: Arc::default(),
            logged: Mutex::default(),
        }
    }

    /// A ticket for a new connection from `source`, or the name of the limit it is over.
    fn admit(&self, source: IpAddr) -> Result<Ticket, &'static str> {
        let mut counts = lock(&self.state);
        if counts.connections >= self.limits.connections {
            return Err("connections");
        }
        if counts.unauthenticated >= self.limits.unauthenticated {
            return Err("unauthenticated");
        }
        let from_source = counts.unauthenticated_by_source.entry(source).or_default();
        if *from_source >= self.limits.unauthenticated_per_source {
            return Err("unauthenticated_per_source");
        }
        *from_source += 1;
        counts.unauthenticated += 1;
        counts.connections += 1;
        Ok(Ticket {
            state: self.state.clone(),
            source,
            unauthenticated: true,
        })
    }

    /// Whether a refusal of `source` over `limit` should be logged now.
    fn should_log(&self, source: IpAddr, limit: &'static str) -> bool {
        let now = std::time::Instant::now();
        let mut logged = lock(&self.logged);
        if logged.len() >= REFUSAL_LOG_SOURCES {
            logged.retain(|_, at| now.duration_since(*at) < REFUSAL_LOG_INTERVAL);
            if logged.len() >= REFUSAL_LOG_SOURCES {
                // A flood from that many sources: log nothing more until entries age out.
                return false;
            }
        }
        match logged.get(&(source, limit)) {
            Some(at) if now.duration_since(*at) < REFUSAL_LOG_INTERVAL => false,
            _ => {
                logged.insert((source, limit), now);
                true
            }
        }
    }
}

impl Ticket {
    /// The connection authenticated: it no longer counts as unauthenticated.
    fn authenticated(&mut self) {
        if std::mem::replace(&mut self.unauthenticated, false) {
            release_unauthenticated(&mut lock(&self.state), self.source);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = lock(&self.state);
        counts.connections -= 1;
        if self.unauthenticated {
            release_unauthenticated(&mut counts, self.source);
        }
    }
}

fn release_unauthenticated(counts: &mut Counts, source: IpAddr) {
    counts.unauthenticated -= 1;
    if let Some(n) = counts.unauthenticated_by_source.get_mut(&source) {
        *n -= 1;
        if *n == 0 {
            counts.unauthenticated_by_source.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            unauthenticated: 4,
            unauthenticated_per_source: 2,
            connections: 5,
            ..Limits::default()
        }
    }

    #[test]
    fn per_source_total_and_connection_limits_hold_and_tickets_give_back() {
        let admission = Admission::new(limits());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let c: IpAddr = "127.0.0.4".parse().unwrap();
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some("unauthenticated_per_source"));
        let mut b1 = admission.admit(b).unwrap();
        let _b2 = admission.admit(b).unwrap();
        assert_eq!(admission.admit(c).err(), Some("unauthenticated"));
        // Authenticating frees the unauthenticated place, not the connection.
        b1.authenticated();
        let _c1 = admission.admit(c).unwrap();
        assert_eq!(admission.admit(c).err(), Some("connections"));
        drop(a1);
        assert!(admission.admit(a).is_ok());
        let counts = lock(&admission.state);
        assert_eq!(counts.unauthenticated_by_source.get(&a), Some(&1));
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_source_and_limit() {
        let admission = Admission::new(limits());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(admission.should_log(a, "unauthenticated_per_source"));
        assert!(!admission.should_log(a, "unauthenticated_per_source"));
        assert!(admission.should_log(a, "connections"));
        assert!(admission.should_log("127.0.0.5".parse().unwrap(), "connections"));
    }
}
