//! `bastion grant add|list|revoke`: what an approver runs. The rules live in `access`; this
//! module turns arguments into requests and outcomes into text.

use serde::Serialize;

use super::table::{Table, one_line, utc};
use super::{
    CliError, GrantAddArgs, GrantListArgs, GrantRevokeArgs, invoking_user, open_access, open_store,
    print,
};
use crate::access::{Field, GrantRequest, Revocation, check_name};
use crate::config::Config;
use crate::db::{Grant, GrantStatus, human_time};
use crate::text::escape_controls;

pub(super) async fn add(config: &Config, args: GrantAddArgs) -> Result<(), CliError> {
    let request = GrantRequest {
        user: args.user,
        target: args.target,
        logins: args.logins,
        starts_in: args.starts_in.unwrap_or_default(),
        duration: args.duration,
        reason: args.reason,
        approved_by: args.approved_by.unwrap_or_else(invoking_user),
        commands: args.commands,
        pty: !args.no_pty,
    };
    // The rules first, so a refused request creates neither a database nor an audit log.
    request.validate(config)?;
    let access = open_access(config).await?;
    let grant = access.create_grant(request).await;
    access.db().close().await;
    let grant = grant?;
    eprintln!(
        "granted {} access to {} as {} from {} until {} (an administrator's grant, outside every policy; grant {})",
        escape_controls(&grant.user),
        escape_controls(&grant.target),
        escape_controls(&grant.logins.join(", ")),
        human_time(grant.starts_at),
        human_time(grant.expires_at),
        grant.id
    );
    if !grant.commands.is_empty() || !grant.pty {
        eprintln!("scope: {}", escape_controls(&scope(&grant)));
    }
    print(&format!("{}\n", grant.id))
}

#[derive(Serialize)]
struct GrantLine<'a> {
    #[serde(flatten)]
    grant: &'a Grant,
    status: GrantStatus,
}

pub(super) async fn list(config: &Config, args: GrantListArgs) -> Result<(), CliError> {
    let store = open_store(config).await?;
    let grants = store.list_grants(args.active).await?;
    let now = store.now().await?;
    store.close().await;

    if args.json {
        // JSON escapes control characters itself: values stay exactly as stored.
        let mut out = String::new();
        for grant in &grants {
            let line = GrantLine {
                grant,
                status: grant.status_at(now),
            };
            out.push_str(
                &serde_json::to_string(&line).map_err(|err| CliError::Output(err.into()))?,
            );
            out.push('\n');
        }
        return print(&out);
    }
    if grants.is_empty() {
        eprintln!(
            "{}",
            if args.active {
                "no active grants"
            } else {
                "no grants"
            }
        );
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "USER",
        "TARGET",
        "LOGINS",
        "STARTS (UTC)",
        "EXPIRES (UTC)",
        "STATUS",
        "PTY",
        "COMMANDS",
        "APPROVED BY",
        "REASON",
    ]);
    for grant in &grants {
        table.row(vec![
            grant.id.to_string(),
            grant.user.clone(),
            grant.target.clone(),
            grant.logins.join(","),
            utc(grant.starts_at),
            utc(grant.expires_at),
            grant.status_at(now).to_string(),
            if grant.pty { "yes" } else { "no" }.to_string(),
            commands_cell(&grant.commands),
            grant.approved_by.clone(),
            one_line(&grant.reason),
        ]);
    }
    print(&table.render())
}

pub(super) async fn revoke(config: &Config, args: GrantRevokeArgs) -> Result<(), CliError> {
    let by = args.by.unwrap_or_else(invoking_user);
    check_name(Field::By, &by)?;
    let access = open_access(config).await?;
    let outcome = access.revoke_grant(args.id, &by).await;
    access.db().close().await;
    match outcome? {
        Revocation::Revoked(grant) => print(&format!(
            "revoked grant {} ({} on {}); live sessions end within {}\n",
            grant.id,
            escape_controls(&grant.user),
            escape_controls(&grant.target),
            humantime::format_duration(config.grant_poll)
        )),
        Revocation::AlreadyRevoked(grant) => print(&format!(
            "grant {} was already revoked at {} by {}\n",
            grant.id,
            grant.revoked_at.map_or_else(|| "?".to_string(), human_time),
            escape_controls(grant.revoked_by.as_deref().unwrap_or("unknown"))
        )),
    }
}

/// The allowed command patterns, `;`-separated (no pattern contains one); `(any)` when the
/// grant does not restrict commands.
fn commands_cell(commands: &[String]) -> String {
    if commands.is_empty() {
        "(any)".to_string()
    } else {
        commands.join("; ")
    }
}

/// What a scoped grant admits, in words, for `grant add`.
fn scope(grant: &Grant) -> String {
    let commands = if grant.commands.is_empty() {
        "any command".to_string()
    } else {
        format!("only the commands {}", grant.commands.join("; "))
    };
    let pty = if grant.pty { "" } else { ", no terminal" };
    format!("{commands}{pty}")
}
