//! `bastion sessions end`: asking the daemon to end a live session. The request goes through
//! the database (any daemon sharing it sees it), so the CLI needs no connection to the daemon.
//! `bastion sessions list [--live] [--stale]`: the sessions of every node, and which of the
//! open ones belong to a node that has gone silent (crashed, cut off) longer than
//! `[nodes] stale_after`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::table::{Table, utc};
use super::{
    CliError, SessionEndArgs, SessionListArgs, invoking_user, open_audit, open_store, print,
};
use crate::access::{Field, check_name};
use crate::audit::AuditEvent;
use crate::config::Config;
use crate::db::{DbError, EndRequestOutcome, SessionRow, StaleSession, human_time};
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
                client: None,
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

/// The `--json` shape of one session.
#[derive(Serialize)]
struct SessionLine<'a> {
    id: &'a str,
    user: &'a str,
    target: &'a str,
    login: &'a str,
    node: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    end: Option<OffsetDateTime>,
    end_reason: Option<&'a str>,
    /// Open, and its node has been silent longer than `[nodes] stale_after`.
    stale: bool,
    /// Seconds since its node last said it was alive (stale sessions only; `None` when the
    /// node never registered).
    node_silent_secs: Option<u64>,
}

pub(super) async fn list(config: &Config, args: SessionListArgs) -> Result<(), CliError> {
    let store = open_store(config).await?;
    let stale_after = config.nodes.stale_after;
    let read = async {
        let stale = store.stale_sessions(stale_after).await?;
        let rows = if args.stale {
            Vec::new()
        } else {
            store.list_sessions().await?
        };
        Ok::<_, DbError>((rows, stale))
    }
    .await;
    store.close().await;
    let (rows, stale) = read?;
    let silent: HashMap<&str, &StaleSession> =
        stale.iter().map(|s| (s.session.id.as_str(), s)).collect();
    let shown: Vec<&SessionRow> = if args.stale {
        // Newest first, like the full list.
        stale.iter().rev().map(|s| &s.session).collect()
    } else {
        rows.iter()
            .filter(|row| !args.live || row.ended_at.is_none())
            .collect()
    };

    if args.json {
        let mut out = String::new();
        for row in &shown {
            let stale = silent.get(row.id.as_str());
            let line = SessionLine {
                id: &row.id,
                user: &row.user,
                target: &row.target,
                login: &row.login,
                node: row.node.as_deref(),
                start: row.started_at,
                end: row.ended_at,
                end_reason: row.end_reason.as_deref(),
                stale: stale.is_some(),
                node_silent_secs: stale.and_then(|s| s.silent_for).map(|d| d.as_secs()),
            };
            let mut text =
                serde_json::to_string(&line).map_err(|err| CliError::Output(err.into()))?;
            text.push('\n');
            out.push_str(&text);
        }
        return print(&out);
    }
    if shown.is_empty() {
        eprintln!(
            "{}",
            if args.stale {
                format!(
                    "no open sessions of nodes silent longer than {}",
                    humantime::format_duration(stale_after)
                )
            } else if args.live {
                "no live sessions".to_string()
            } else {
                "no sessions".to_string()
            }
        );
        return Ok(());
    }
    let mut table = Table::new(&["ID", "USER", "TARGET", "NODE", "START (UTC)", "STATE"]);
    for row in shown {
        let node = row.node.as_deref().unwrap_or("-");
        let state = match (silent.get(row.id.as_str()), &row.end_reason) {
            (_, Some(reason)) => format!("ended ({})", escape_controls(reason)),
            (Some(stale), None) => match stale.silent_for {
                Some(silent) => format!(
                    "stale: node {} silent for {}",
                    escape_controls(node),
                    humantime::format_duration(Duration::from_secs(silent.as_secs()))
                ),
                None => format!("stale: node {} never registered", escape_controls(node)),
            },
            (None, None) => "running".to_string(),
        };
        table.row(vec![
            escape_controls(&row.id),
            escape_controls(&row.user),
            escape_controls(&row.target),
            escape_controls(node),
            utc(row.started_at),
            state,
        ]);
    }
    print(&table.render())
}
