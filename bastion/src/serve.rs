//! `bastion serve`: the daemon. Opens the grant store, the recording store and the audit
//! log, loads (or creates) the host key, accepts SSH connections, and on SIGTERM/SIGINT
//! drains: stops accepting, ends sessions with a message, finishes their recordings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use recorder::RecordingStore;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::{AuditEvent, AuditLog};
use crate::config::Config;
use crate::db::{Database, DbError};
use crate::session::cutoff::Cutoff;
use crate::session::registry::Registry;
use crate::ssh::handler::Connection;
use crate::ssh::host_key::{self, HostKeyError};
use crate::ssh::known_targets::KnownTargets;

/// A connection must authenticate within this time (OpenSSH's LoginGraceTime is 120 s; a
/// bastion has no reason to be as patient with strangers).
const LOGIN_GRACE: Duration = Duration::from_secs(30);
/// How long shutdown waits for sessions to close and recordings to be sealed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What every connection and session of the daemon shares. Each field is a handle that is
/// cheap to clone and safe to use from any task; there is no lock around the whole.
pub struct Daemon {
    pub config: Arc<Config>,
    pub store: Database,
    pub recordings: RecordingStore,
    pub audit: AuditLog,
    /// Live sessions by grant, for the grant watcher.
    pub sessions: Registry,
    pub known_targets: KnownTargets,
    /// Cancelled when the daemon starts shutting down.
    pub shutdown: CancellationToken,
    /// Every connection and session task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot open recording store: {0}")]
    Recordings(#[from] recorder::StoreError),
    #[error("cannot open audit log {path}: {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    #[error(transparent)]
    SigningKey(#[from] crate::recordings::signing::SigningKeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let store = Database::open(&config.database_url).await?;
    let (store_config, key_created) = crate::recordings::signing::store_config(&config)?;
    if key_created {
        tracing::info!(path = %config.signing_key.display(), "generated a new recording signing key");
    }
    let recordings = RecordingStore::open(store_config).await?;
    let audit = AuditLog::open(&config.audit_log).map_err(|source| ServeError::Audit {
        path: config.audit_log.display().to_string(),
        source,
    })?;
    // Before accepting anything: every open session of this node belongs to a dead process.
    close_interrupted_sessions(&store, &audit, &config.node_id).await?;
    for target in config.targets.iter().filter(|t| !t.record) {
        tracing::warn!(
            target_name = %target.name,
            "recording is OFF for this target (record = false): its sessions leave no recording"
        );
    }
    let (host_key, created) = host_key::load_or_generate(&config.host_key)?;
    if created {
        tracing::info!(path = %config.host_key.display(), "generated a new host key");
    }
    tracing::info!(
        fingerprint = %host_key.public_key().fingerprint(Default::default()),
        "host key"
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(config = %config.source, "listening on {local}");
    if config.users.is_empty() || config.targets.is_empty() {
        tracing::warn!(
            users = config.users.len(),
            targets = config.targets.len(),
            "no users or no targets configured: nobody can reach anything yet (see config/bastion.example.toml)"
        );
    }

    let daemon = Arc::new(Daemon {
        known_targets: KnownTargets::new(config.data_dir.join("known_targets")),
        config: Arc::new(config),
        store,
        recordings,
        audit,
        sessions: Registry::default(),
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
    });
    daemon
        .tracker
        .spawn(crate::session::watch::run(daemon.clone()));
    // Search index of finished recordings, off the sessions' path.
    daemon.tracker.spawn(crate::recordings::indexer::run(
        daemon.store.clone(),
        daemon.recordings.clone(),
        daemon.shutdown.clone(),
    ));

    let ssh_config = Arc::new(crate::ssh::server_config(host_key));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    daemon.tracker.spawn(connection(daemon.clone(), ssh_config.clone(), tcp, peer));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(
        sessions = daemon.sessions.len(),
        "shutting down: ending sessions"
    );
    daemon.shutdown.cancel();
    daemon.tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, daemon.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timed out with sessions still closing");
    }
    daemon.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Ends, in the index and the audit log, the sessions of `node` that a crash left open: their
/// recordings then get indexed and pruned like any other and `recordings verify` tells how far
/// they go.
async fn close_interrupted_sessions(
    store: &Database,
    audit: &AuditLog,
    node: &str,
) -> Result<(), ServeError> {
    for row in store.interrupt_open_sessions(node).await? {
        tracing::warn!(
            session = %row.id,
            user = %row.user,
            target = %row.target,
            "session was cut off when bastion last stopped; marked interrupted"
        );
        audit.record(AuditEvent::SessionEnd {
            session: row.id,
            user: row.user,
            target: row.target,
            reason: crate::db::INTERRUPTED.to_string(),
            bytes: 0,
            recording_complete: false,
        });
    }
    Ok(())
}

/// Serves one user connection until it ends, the login grace passes without
/// authentication, or the daemon shuts down.
async fn connection(
    daemon: Arc<Daemon>,
    ssh_config: Arc<russh::server::Config>,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let _ = tcp.set_nodelay(true);
    let (tcp, cutoff) = match Cutoff::attach(tcp) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot set up connection");
            return;
        }
    };
    let cutoff = Arc::new(cutoff);
    let authenticated = Arc::new(AtomicBool::new(false));
    let handler = Connection::new(daemon.clone(), peer, cutoff.clone(), authenticated.clone());
    let session = match russh::server::run_stream(ssh_config, tcp, handler).await {
        Ok(session) => session,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
    };
    let handle = session.handle();
    tokio::pin!(session);
    tokio::select! {
        result = &mut session => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = tokio::time::sleep(LOGIN_GRACE), if !authenticated.load(Ordering::Relaxed) => {
            if !authenticated.load(Ordering::Relaxed) {
                tracing::info!(%peer, "no authentication within the login grace time");
            }
        }
        _ = daemon.shutdown.cancelled() => {
            // Sessions close themselves with a message; give them a moment before the
            // connection itself goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut session).await;
        }
    }
    if authenticated.load(Ordering::Relaxed) && !daemon.shutdown.is_cancelled() {
        // The grace timer fired after a successful login: keep serving.
        let _ = (&mut session).await;
        return;
    }
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        handle.disconnect(russh::Disconnect::ByApplication, "bye".into(), "en".into()),
    )
    .await;
    if tokio::time::timeout(Duration::from_millis(500), &mut session)
        .await
        .is_err()
    {
        cutoff.cut();
    }
}
