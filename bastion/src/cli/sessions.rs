//! `bastion sessions end`: asking the daemon to end a live session. The request goes through
//! the database (any daemon sharing it sees it), so the CLI needs no connection to the daemon.

use super::{CliError, SessionEndArgs, invoking_user, open_audit, open_store, print};
use crate::access::{Field, check_name};
use crate::audit::AuditEvent;
use crate::config::Config;
use crate::db::{DbError, EndRequestOutcome, human_time};
use crate::text::escape_controls;

pub(super) async fn end(config: &Config, args: SessionEndArgs) -> Result<(), CliError> {
    let by = args.by.unwrap_or_else(invoking_user);
    // The name is shown to the user whose session ends ("ended by ..."): no control
    // characters may reach their terminal through it.
    check_name(Field::By, &by)?;
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let outcome = store.request_end(&args.id, &by).await;
    store.close().await;
    let outcome = match outcome {
        Err(DbError::NoSuchSession(id)) => {
            return Err(CliError::Rejected(format!(
                "no session with id {}",
                escape_controls(&id)
            )));
        }
        other => other?,
    };
    match outcome {
        EndRequestOutcome::Requested(row) => {
            audit.record(AuditEvent::SessionEndRequested {
                session: row.id.clone(),
                by,
            });
            print(&format!(
                "asked to end session {} ({} on {} as {}); it ends within {}\n",
                escape_controls(&row.id),
                escape_controls(&row.user),
                escape_controls(&row.target),
                escape_controls(&row.login),
                humantime::format_duration(config.grant_poll)
            ))
        }
        EndRequestOutcome::AlreadyRequested(row) => print(&format!(
            "session {} was already asked to end at {} by {}\n",
            escape_controls(&row.id),
            row.end_requested_at
                .map_or_else(|| "?".to_string(), human_time),
            escape_controls(row.end_requested_by.as_deref().unwrap_or("unknown"))
        )),
        EndRequestOutcome::AlreadyEnded(row) => print(&format!(
            "session {} already ended at {} ({})\n",
            escape_controls(&row.id),
            row.ended_at.map_or_else(|| "?".to_string(), human_time),
            escape_controls(row.end_reason.as_deref().unwrap_or("unknown reason"))
        )),
    }
}
