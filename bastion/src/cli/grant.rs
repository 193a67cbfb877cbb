//! `bastion grant add|list|revoke`: what an approver runs.

use serde::Serialize;

use super::table::{Table, one_line, utc};
use super::{
    CliError, GrantAddArgs, GrantListArgs, GrantRevokeArgs, invoking_user, open_store, print,
};
use crate::audit::{AuditEvent, AuditLog};
use crate::config::Config;
use crate::db::{Grant, GrantStatus, NewGrant, human_time};

pub(super) async fn add(config: &Config, args: GrantAddArgs) -> Result<(), CliError> {
    let GrantAddArgs {
        user,
        target,
        logins,
        duration,
        starts_in,
        reason,
        approved_by,
    } = args;
    if config.user(&user).is_none() {
        return Err(CliError::Rejected(format!(
            "unknown user {user:?} (not a [[users]] entry in {})",
            config.source
        )));
    }
    let Some(target_config) = config.target(&target) else {
        return Err(CliError::Rejected(format!(
            "unknown target {target:?} (not a [[targets]] entry in {})",
            config.source
        )));
    };
    let logins = if logins.is_empty() {
        vec![target_config.default_login().to_string()]
    } else {
        let mut unique: Vec<String> = Vec::with_capacity(logins.len());
        for login in logins {
            if !target_config.logins.contains(&login) {
                return Err(CliError::Rejected(format!(
                    "login {login:?} is not allowed on target {target:?} (allowed: {})",
                    target_config.logins.join(", ")
                )));
            }
            if !unique.contains(&login) {
                unique.push(login);
            }
        }
        unique
    };
    if reason.trim().is_empty() {
        return Err(CliError::Rejected("--reason must not be empty".to_string()));
    }
    let approved_by = approved_by.unwrap_or_else(invoking_user);

    // Open the audit log before writing the grant, so a grant never exists unaudited because
    // the log was unwritable.
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let grant = store
        .add_grant(NewGrant {
            user,
            target,
            logins,
            starts_in: starts_in.unwrap_or_default(),
            duration,
            approved_by,
            reason,
        })
        .await?;
    audit.record(AuditEvent::GrantCreated {
        grant: grant.id,
        user: grant.user.clone(),
        target: grant.target.clone(),
        logins: grant.logins.clone(),
        starts_at: grant.starts_at,
        expires_at: grant.expires_at,
        approved_by: grant.approved_by.clone(),
        reason: grant.reason.clone(),
    });
    store.close().await;
    eprintln!(
        "granted {} access to {} as {} from {} until {}",
        grant.user,
        grant.target,
        grant.logins.join(", "),
        human_time(grant.starts_at),
        human_time(grant.expires_at)
    );
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
            grant.approved_by.clone(),
            one_line(&grant.reason),
        ]);
    }
    print(&table.render())
}

pub(super) async fn revoke(config: &Config, args: GrantRevokeArgs) -> Result<(), CliError> {
    let by = args.by.unwrap_or_else(invoking_user);
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let before = store.grant(args.id).await?;
    let Some(before) = before else {
        return Err(CliError::NoSuchGrant(args.id));
    };
    if let Some(at) = before.revoked_at {
        store.close().await;
        return print(&format!(
            "grant {} was already revoked at {} by {}\n",
            before.id,
            human_time(at),
            before.revoked_by.as_deref().unwrap_or("unknown")
        ));
    }
    let grant = store
        .revoke_grant(args.id, &by)
        .await?
        .ok_or(CliError::NoSuchGrant(args.id))?;
    store.close().await;
    // A concurrent revoke may have won the race: audit only the revocation that took effect.
    if grant.revoked_by.as_deref() == Some(by.as_str()) {
        audit.record(AuditEvent::GrantRevoked {
            grant: grant.id,
            by: by.clone(),
        });
    }
    print(&format!(
        "revoked grant {} ({} on {}); live sessions end within {}\n",
        grant.id,
        grant.user,
        grant.target,
        humantime::format_duration(config.grant_poll)
    ))
}

fn open_audit(config: &Config) -> Result<AuditLog, CliError> {
    AuditLog::open(&config.audit_log).map_err(|source| CliError::AuditLog {
        path: config.audit_log.display().to_string(),
        source,
    })
}
