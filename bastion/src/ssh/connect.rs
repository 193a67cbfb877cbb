//! From "alice asks for db-1" to a live, recorded session: check the grant, reach the
//! target, begin the recording, hand over to the supervisor. Any refusal is a value the
//! handler shows the user as one line.

use std::sync::Arc;

use super::user_side::ChannelUser;
use crate::access::{Allowed, Verdict};
use crate::daemon::Daemon;
use crate::session::GrantState;
use crate::session::facts::{SessionFacts, Terminal};
use crate::session::input::SessionInput;
use crate::session::supervisor::{self, Legs};
use crate::targets::ssh::{self as ssh_target, PtySpec};

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
    client: Arc<ChannelUser>,
) -> Result<SessionInput, Refusal> {
    let config = &daemon.config;
    let denied = |why: &str| Refusal {
        message: format!(
            "bastion: access denied to {}: {why}; {}",
            request.target,
            config.access_hint_for(request.user, request.target)
        ),
        exit_status: DENIED_STATUS,
    };
    // Fail closed: if the grant cannot be checked, nobody gets in.
    let verdict = daemon
        .access
        .decide(
            request.user,
            request.target,
            request.login,
            &request.client_addr,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot check grants");
            unavailable("cannot check your grant right now (grant store unavailable)")
        })?;
    let Allowed {
        target,
        grant,
        login,
    } = match verdict {
        Verdict::Allow(allowed) => allowed,
        Verdict::Deny(denied_) => return Err(denied(&denied_.reason)),
    };
    // The grant's scope, on every channel: its reason carries its own way forward, so the
    // hint about asking for a grant is left out.
    daemon
        .access
        .check_command(
            &grant,
            &login,
            request.command,
            request.pty.is_some(),
            &request.client_addr,
        )
        .map_err(|refused| Refusal {
            message: format!(
                "bastion: access denied to {}: {}",
                request.target, refused.reason
            ),
            exit_status: DENIED_STATUS,
        })?;
    let live = daemon.sessions.count_for_user(request.user);
    if live >= config.limits.sessions_per_user {
        return Err(unavailable(&format!(
            "you already have {live} live sessions on this bastion (the limit, [limits] sessions_per_user, is {}); end one and try again",
            config.limits.sessions_per_user
        )));
    }
    // Sessions that are not recorded, or may go on unrecorded, do not depend on the spool.
    let fail_open = target.fail_open || !target.record;
    if !fail_open && daemon.storage_degraded() {
        return Err(unavailable(
            "recordings cannot be stored safely right now (recording spool full), so no new session may start; try again later",
        ));
    }

    let target_session = ssh_target::open(
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

    let facts = SessionFacts {
        id: uuid::Uuid::now_v7().to_string(),
        user: request.user.to_string(),
        target: target.name.clone(),
        login,
        grant: grant.id,
        request: grant.request.clone(),
        command: request.command.map(str::to_string),
        terminal: request.pty.map(|p| Terminal {
            term: p.term.clone(),
            cols: clamp(p.cols),
            rows: clamp(p.rows),
        }),
        client: request.client_addr.clone(),
        node: config.node_id.clone(),
        recorded: target.record,
        fail_open,
        started_at: time::OffsetDateTime::now_utc(),
    };
    let recording = if facts.recorded {
        let writer = daemon
            .recordings
            .begin(facts.recording_meta())
            .map_err(|e| {
                tracing::error!(error = %e, "cannot begin recording");
                target_session.control.cut();
                unavailable("cannot record the session right now, so it may not start")
            })?;
        Some(writer)
    } else {
        None
    };
    let location = match recording {
        Some(_) => daemon.recordings.location(&facts.id),
        None => String::new(),
    };
    if let Err(e) = daemon.db.session_started(&facts.index_row(location)).await {
        tracing::error!(error = %e, "cannot record session start");
        target_session.control.cut();
        if let Some(recording) = &recording {
            let _ = recording.finish("not_started").await;
        }
        return Err(unavailable(
            "cannot register the session right now (grant store unavailable)",
        ));
    }
    daemon.audit.record(facts.start_event());
    tracing::info!(session = %facts.id, user = %facts.user, target = %facts.target, login = %facts.login, grant = grant.id, recorded = facts.recorded, "session started");

    let state = GrantState {
        expires_at: grant.expires_at,
        revoked: None,
        unverifiable: false,
    };
    let legs = Legs {
        target: target_session.control,
        output: Box::new(target_session.output),
        user: client,
    };
    Ok(supervisor::start(
        daemon.session_context(),
        facts,
        legs,
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
