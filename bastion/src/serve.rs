//! `bastion serve`: the daemon. Opens the database, the recording store and the audit log,
//! loads (or creates) the host key, builds the [`Daemon`], runs the accept loop, and on
//! SIGTERM/SIGINT drains: stops accepting, ends sessions with a message, finishes their
//! recordings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use recorder::RecordingStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::{self, Listener};
use crate::access::Access;
use crate::audit::{AuditEvent, AuditLog};
use crate::config::Config;
use crate::daemon::Daemon;
use crate::db::{Database, DbError, NodeLockError, NodeStart};
use crate::session::registry::Registry;
use crate::ssh::host_key::{self, HostKeyError};
use crate::targets::known_hosts::KnownTargets;

/// How long shutdown waits for sessions to close and recordings to be sealed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    SingleNode(#[from] NodeLockError),
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
    #[error(transparent)]
    Api(#[from] crate::api::ApiStartError),
    #[error(
        "node_id {node_id:?} is in use by a live bastion (host {host}, pid {pid}, seen {silent_secs}s ago): give every node its own node_id"
    )]
    NodeInUse {
        node_id: String,
        host: String,
        pid: u32,
        silent_secs: u64,
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
    crate::files::warn_exposed(&config.data_dir);
    if !config.audit_log.starts_with(&config.data_dir) {
        crate::files::warn_exposed(&config.audit_log);
    }
    raise_open_file_limit();
    // Held until the process exits: a second daemon on the same SQLite file would mark this
    // one's sessions interrupted.
    let _sqlite_lock = crate::db::lock_sqlite(&config.database_url)?;
    let db = Database::open(&config.database_url).await?;
    let (store_config, key_created) = crate::recordings::signing::store_config(&config)?;
    if key_created {
        tracing::info!(path = %config.signing_key.display(), "generated a new recording signing key");
    }
    let signing_key = store_config
        .signing_key
        .as_ref()
        .map(|key| key.verifying_key().to_hex());
    let recordings = RecordingStore::open(store_config).await?;
    let audit = AuditLog::open(&config.audit_log).map_err(|source| ServeError::Audit {
        path: config.audit_log.display().to_string(),
        source,
    })?;
    // Every event from here on also goes to the database, where any node can export it.
    audit.attach_database(db.clone());
    // Another live process under this node_id would have its sessions closed below.
    refuse_live_namesake(&db, &config).await?;
    // Before accepting anything: every open session of this node belongs to a dead process.
    close_interrupted_sessions(&db, &audit, &config.node_id).await?;
    register_node(&db, &config, signing_key).await?;
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
    // Before "listening on" is logged: a SIGTERM from then on drains instead of killing.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    // The API first: a bad certificate or a taken port stops the start, not a running daemon.
    let api_listener = match &config.api {
        Some(settings) => Some(crate::api::bind(settings).await?),
        None => None,
    };
    let tcp = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = tcp.local_addr().unwrap_or(config.listen);
    tracing::info!(config = %config.source, "listening on {local}");
    if config.users.is_empty() || config.targets.is_empty() {
        tracing::warn!(
            users = config.users.len(),
            targets = config.targets.len(),
            "no users or no targets configured: nobody can reach anything yet (see config/bastion.example.toml)"
        );
    }

    let config = Arc::new(config);
    let daemon = Arc::new(Daemon {
        known_targets: KnownTargets::new(
            db.clone(),
            &config.node_id,
            config.data_dir.join("known_targets"),
        ),
        access: Access::new(config.clone(), db.clone(), audit.clone()),
        config,
        db,
        recordings,
        audit,
        sessions: Registry::default(),
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
    });
    daemon.tracker.spawn(crate::session::watch::run(
        daemon.session_context(),
        daemon.access.clone(),
        daemon.recordings.clone(),
        daemon.config.grant_poll,
        daemon.config.recording.spool_max_bytes,
    ));
    // Repeated authentication failures are written as one line per source and window.
    daemon.tracker.spawn({
        let (audit, shutdown) = (daemon.audit.clone(), daemon.shutdown.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => audit.flush_aggregated(),
                }
            }
            audit.flush_aggregated();
        }
    });
    daemon.tracker.spawn(heartbeat(
        daemon.db.clone(),
        daemon.config.node_id.clone(),
        daemon.config.nodes.stale_after,
        daemon.shutdown.clone(),
    ));
    // Search index of finished recordings, off the sessions' path.
    daemon.tracker.spawn(crate::recordings::indexer::run(
        daemon.db.clone(),
        daemon.recordings.clone(),
        daemon.shutdown.clone(),
    ));
    // Webhooks told of requests and decisions, from the audit events of every face and node.
    let notify_stats = crate::notify::spawn(
        &daemon.tracker,
        daemon.db.clone(),
        daemon.config.clone(),
        daemon.shutdown.clone(),
    );

    if let Some(listener) = api_listener {
        let state = crate::api::state(
            daemon.access.clone(),
            daemon.config.node_id.clone(),
            notify_stats.clone(),
        )?;
        tracing::info!(
            "api listening on {}://{}",
            if listener.is_tls() { "https" } else { "http" },
            listener
                .local_addr()
                .map_or_else(|| "?".to_string(), |a| a.to_string())
        );
        daemon.tracker.spawn(crate::api::serve(
            listener,
            state,
            daemon.shutdown.clone(),
            daemon.tracker.clone(),
        ));
    }
    let signalled = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let listener = Listener {
        tcp,
        ssh: Arc::new(crate::ssh::server_config(host_key)),
    };
    accept::run(daemon.clone(), listener, signalled).await;
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
    if tokio::time::timeout(DRAIN_TIMEOUT, daemon.audit.flush())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown timed out storing audit events in the database (they are in the audit log file)"
        );
    }
    daemon.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: each session holds several
/// descriptors (the user's socket, the target's, their duplicates for severing, the
/// recording's spool file), and the `[limits]` decide how many connections there are, not
/// an accidental default of 1024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, properly sized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::debug!("cannot raise the open-file limit");
            }
        }
    }
}

/// Registers this node and its signing key, so other nodes verify its recordings and see it
/// alive; warns when the `node_id` looks taken by another live process.
/// Refuses to start when another process that is still alive holds this `node_id`: starting
/// would mark its running sessions interrupted. A previous process on this host that is gone
/// (a crash, a restart) is not in the way, however recently it was seen.
async fn refuse_live_namesake(db: &Database, config: &Config) -> Result<(), ServeError> {
    let Some(previous) = db.node(&config.node_id).await? else {
        return Ok(());
    };
    let here = crate::db::host_name();
    let me = std::process::id();
    let alive = if previous.host == here {
        previous.pid != me && process_exists(previous.pid)
    } else {
        previous.silent_for < config.nodes.stale_after
    };
    if alive {
        return Err(ServeError::NodeInUse {
            node_id: config.node_id.clone(),
            host: previous.host,
            pid: previous.pid,
            silent_secs: previous.silent_for.as_secs(),
        });
    }
    Ok(())
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

async fn register_node(
    db: &Database,
    config: &Config,
    signing_key: Option<String>,
) -> Result<(), ServeError> {
    let start = NodeStart {
        node_id: config.node_id.clone(),
        signing_key,
        host: crate::db::host_name(),
        pid: std::process::id(),
    };
    let previous = db.register_node(&start).await?;
    if let Some(previous) = previous.filter(|p| {
        p.silent_for < config.nodes.stale_after && (p.host != start.host || p.pid != start.pid)
    }) {
        tracing::warn!(
            node_id = %config.node_id,
            host = %previous.host,
            pid = previous.pid,
            "another process with this node_id was alive moments ago; every node needs its own node_id"
        );
    }
    Ok(())
}

/// Says this node is alive every `stale_after / 4`, so `sessions list --stale` can tell a
/// silent node from a live one.
async fn heartbeat(
    db: Database,
    node_id: String,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval((stale_after / 4).max(Duration::from_millis(250)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match db.node_heartbeat(&node_id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%node_id, "this node's registration is gone from the database")
            }
            Err(e) => tracing::warn!(error = %e, "cannot tell the database this node is alive"),
        }
    }
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
