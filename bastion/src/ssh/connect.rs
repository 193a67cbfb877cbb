//! From "alice asks for db-1" to a live, recorded session: check the grant, reach the
//! target, begin the recording, hand over to the supervisor. Any refusal is a value the
//! handler shows the user as one line.

use std::sync::Arc;

use recorder::RecordingMeta;

use super::target::{self, PtySpec};
use crate::audit::AuditEvent;
use crate::db::{Decision, SessionStart};
use crate::serve::Daemon;
use crate::session::GrantState;
use crate::session::input::SessionInput;
use crate::session::supervisor::{self, ClientSide, SessionInfo};

/// A request the bastion will not (or cannot) carry out, said to the user in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub exit_status: u32,
}

/// Exit status of a denied request: the same "permission denied" status sudo-like tools use.
pub const DENIED_STATUS: u32 = 77;
/// Exit status when the bastion itself failed (target unreachable, storage down).
pub const UNAVAILABLE_STATUS: u32 = 69;

/// What the user asked for, with everything the handler knows about their channel.
pub struct SessionRequest<'a> {
    pub user: &'a str,
    pub target: &'a str,
    pub login: Option<&'a str>,
    pub command: Option<&'a str>,
    pub pty: Option<&'a PtySpec>,
    pub client_addr: String,
}

/// Opens a session or says why not.
pub async fn open(
    daemon: &Arc<Daemon>,
    request: SessionRequest<'_>,
    client: ClientSide,
) -> Result<SessionInput, Refusal> {
    let config = &daemon.config;
    let deny = |why: String| {
        daemon.audit.record(AuditEvent::AccessDenied {
            user: request.user.to_string(),
            target: request.target.to_string(),
            login: request.login.map(str::to_string),
            reason: why.clone(),
            client: request.client_addr.clone(),
        });
        Refusal {
            message: format!(
                "bastion: access denied to {}: {why}; {}",
                request.target,
                config.access_hint_for(request.user, request.target)
            ),
            exit_status: DENIED_STATUS,
        }
    };
    let Some(target) = config.target(request.target) else {
        return Err(deny("no such target".to_string()));
    };
    if let Some(login) = request.login
        && !target.logins.iter().any(|l| l == login)
    {
        return Err(deny(format!(
            "login {login:?} is not offered on this target (offered: {})",
            target.logins.join(", ")
        )));
    }
    // Sessions that are not recorded, or may go on unrecorded, do not depend on the spool.
    let fail_open = target.fail_open || !target.record;
    if !fail_open && crate::session::watch::storage_degraded(daemon) {
        return Err(unavailable(
            "recordings cannot be stored safely right now (recording spool full), so no new session may start; try again later",
        ));
    }
    // Fail closed: if the grant cannot be checked, nobody gets in.
    let decision = daemon
        .store
        .authorize(request.user, &target.name, request.login)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot check grants");
            unavailable("cannot check your grant right now (grant store unavailable)")
        })?;
    let (grant, login) = match decision {
        Decision::Allow { grant, login } => (grant, login),
        Decision::Deny(denial) => return Err(deny(denial.to_string())),
    };

    let target_session = target::open(
        target,
        &login,
        &daemon.known_targets,
        request.pty,
        request.command,
    )
    .await
    .map_err(|e| {
        tracing::error!(target_name = %target.name, error = %e, "cannot reach target");
        unavailable(&format!("cannot reach {}: {e}", target.name))
    })?;

    let id = uuid::Uuid::now_v7().to_string();
    let (width, height) = request
        .pty
        .map(|p| (clamp(p.cols), clamp(p.rows)))
        .unwrap_or((80, 24));
    let recording = if target.record {
        let meta = RecordingMeta {
            id: id.clone(),
            user: request.user.to_string(),
            target: target.name.clone(),
            login: login.clone(),
            grant_id: Some(grant.id),
            command: request.command.map(str::to_string),
            width,
            height,
            term: request.pty.map(|p| p.term.clone()),
            started_at: time::OffsetDateTime::now_utc(),
        };
        let writer = daemon.recordings.begin(meta).map_err(|e| {
            tracing::error!(error = %e, "cannot begin recording");
            target_session.cutoff.cut();
            unavailable("cannot record the session right now, so it may not start")
        })?;
        Some(writer)
    } else {
        None
    };

    let start = SessionStart {
        id: id.clone(),
        user: request.user.to_string(),
        target: target.name.clone(),
        login: login.clone(),
        grant_id: grant.id,
        command: request.command.map(str::to_string),
        interactive: request.pty.is_some(),
        client: request.client_addr.clone(),
        recording: match recording {
            Some(_) => daemon.recordings.location(&id),
            None => String::new(),
        },
        recorded: target.record,
        node: config.node_id.clone(),
    };
    if let Err(e) = daemon.store.session_started(&start).await {
        tracing::error!(error = %e, "cannot record session start");
        target_session.cutoff.cut();
        if let Some(recording) = &recording {
            let _ = recording.finish("not_started").await;
        }
        return Err(unavailable(
            "cannot register the session right now (grant store unavailable)",
        ));
    }
    daemon.audit.record(AuditEvent::SessionStart {
        session: id.clone(),
        user: request.user.to_string(),
        target: target.name.clone(),
        login: login.clone(),
        grant: grant.id,
        client: request.client_addr.clone(),
        interactive: request.pty.is_some(),
        command: request.command.map(str::to_string),
        recorded: target.record,
    });
    tracing::info!(session = %id, user = %request.user, target = %target.name, login = %login, grant = grant.id, recorded = target.record, "session started");

    let state = GrantState {
        expires_at: grant.expires_at,
        revoked: None,
        unverifiable: false,
    };
    let info = SessionInfo {
        id,
        user: request.user.to_string(),
        target: target.name.clone(),
        login,
        grant: grant.id,
        interactive: request.pty.is_some(),
        fail_open,
    };
    Ok(supervisor::start(
        daemon.clone(),
        info,
        client,
        target_session,
        recording,
        state,
    ))
}

fn unavailable(why: &str) -> Refusal {
    Refusal {
        message: format!("bastion: {why}"),
        exit_status: UNAVAILABLE_STATUS,
    }
}

fn clamp(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}
