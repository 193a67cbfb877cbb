//! What `ssh bastion` says without a target: who you are, your grants, how to use them.

use time::OffsetDateTime;

use super::request::Builtin;
use crate::daemon::Daemon;
use crate::db::{GrantStatus, human_time};

/// The text answering a bastion command for `user`.
pub async fn answer(daemon: &Daemon, user: &str, builtin: Builtin) -> String {
    let grants = grants_text(daemon, user).await;
    match builtin {
        Builtin::Grants => grants,
        Builtin::Help => format!(
            "bastion: you are {user}. This host gives no shell of its own.\n\
             {grants}\n\
             usage:\n  \
             ssh -t bastion TARGET               interactive shell on TARGET\n  \
             ssh -t bastion LOGIN@TARGET         ... as one of the logins your grant allows\n  \
             ssh bastion TARGET -- COMMAND       run one command\n  \
             ssh bastion grants                  list your grants\n\
             to get access: {}",
            daemon.config.access_hint_for(user, "TARGET")
        ),
    }
}

async fn grants_text(daemon: &Daemon, user: &str) -> String {
    let grants = match daemon.db.list_grants(false).await {
        Ok(grants) => grants,
        Err(e) => {
            tracing::error!(error = %e, "cannot list grants");
            return "your grants: unavailable right now".to_string();
        }
    };
    // Statuses by the database clock, like every other grant decision.
    let now = daemon
        .db
        .now()
        .await
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let lines: Vec<String> = grants
        .iter()
        .filter(|g| g.user == user)
        .filter(|g| matches!(g.status_at(now), GrantStatus::Active | GrantStatus::Pending))
        .map(|g| {
            format!(
                "  {:<16} logins {:<16} {} until {} (grant {})",
                g.target,
                g.logins.join(","),
                g.status_at(now),
                human_time(g.expires_at),
                g.id
            )
        })
        .collect();
    if lines.is_empty() {
        "your grants: none active".to_string()
    } else {
        format!("your grants:\n{}", lines.join("\n"))
    }
}
