//! `bastion token create|list|revoke`: the bearer tokens of the HTTP API. A token is printed
//! once, alone on stdout, when it is created; the database keeps only its hash.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::table::{Table, utc};
use super::{CliError, invoking_user, open_audit, open_store, parse_duration, print};
use crate::access::{Field, check_name};
use crate::audit::AuditEvent;
use crate::config::{Config, is_valid_name};
use crate::db::{ApiToken, MAX_TOKEN_LIFETIME, TokenRevocation, is_token_id};
use crate::text::escape_controls;

/// Ninety days: long enough for automation, short enough that a forgotten token dies.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token acting as a user; prints the token alone on stdout, once
    Create(CreateArgs),
    /// List tokens (never their secrets) with their state
    List(ListArgs),
    /// Revoke a token by id (or by name, when one live token has it); calls with it get 401
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// The [[users]] entry every call with the token acts as
    #[arg(long)]
    user: String,
    /// How long the token is valid, e.g. 90d (default 90d, at most 366d)
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// A name for the token, shown in listings and in the audit trail of every call (e.g. ci)
    #[arg(long, default_value = "default")]
    name: String,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// One JSON object per line instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct RevokeArgs {
    /// Token id (tok-...) or name
    token: String,
    /// Who revokes it (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

pub(super) async fn run(config: &Config, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create(args) => create(config, args).await,
        TokenCommand::List(args) => list(config, args).await,
        TokenCommand::Revoke(args) => revoke(config, args).await,
    }
}

async fn create(config: &Config, args: CreateArgs) -> Result<(), CliError> {
    if config.user(&args.user).is_none() {
        return Err(CliError::Rejected(format!(
            "unknown user {:?}: add it to [[users]] in {} first",
            escape_controls(&args.user),
            config.source
        )));
    }
    if !is_valid_name(&args.name) {
        return Err(CliError::Rejected(format!(
            "invalid --name {:?} (allowed: letters, digits, '.', '_', '-', at most 64)",
            escape_controls(&args.name)
        )));
    }
    let lifetime = args.duration.unwrap_or(DEFAULT_LIFETIME);
    if lifetime > MAX_TOKEN_LIFETIME {
        return Err(CliError::Rejected(format!(
            "--for {} is longer than a token may live ({})",
            humantime::format_duration(lifetime),
            humantime::format_duration(MAX_TOKEN_LIFETIME)
        )));
    }
    let by = invoking_user();
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let created = store
        .create_token(&args.user, &args.name, lifetime, &by)
        .await;
    store.close().await;
    let created = created?;
    audit.record(AuditEvent::TokenCreated {
        token: created.token.id.clone(),
        name: created.token.name.clone(),
        user: created.token.user.clone(),
        expires_at: created.token.expires_at,
        by,
    });
    eprintln!(
        "created token {} ({:?}) acting as {} until {}; it is shown only now",
        created.token.id,
        created.token.name,
        created.token.user,
        utc(created.token.expires_at)
    );
    print(&format!("{}\n", created.secret))
}

#[derive(Serialize)]
struct TokenLine<'a> {
    #[serde(flatten)]
    token: &'a ApiToken,
    state: &'static str,
}

fn state(token: &ApiToken, now: time::OffsetDateTime) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if now >= token.expires_at {
        "expired"
    } else {
        "active"
    }
}

async fn list(config: &Config, args: ListArgs) -> Result<(), CliError> {
    let store = open_store(config).await?;
    let tokens = store.list_tokens().await;
    let now = store.now().await;
    store.close().await;
    let (tokens, now) = (tokens?, now?);
    if args.json {
        let mut out = String::new();
        for token in &tokens {
            let line = TokenLine {
                token,
                state: state(token, now),
            };
            out.push_str(
                &serde_json::to_string(&line).map_err(|err| CliError::Output(err.into()))?,
            );
            out.push('\n');
        }
        return print(&out);
    }
    if tokens.is_empty() {
        eprintln!("no tokens (create one with: bastion token create --user NAME --name ci)");
        return Ok(());
    }
    let mut table = Table::new(&["ID", "NAME", "USER", "STATE", "EXPIRES", "LAST USED"]);
    for token in &tokens {
        table.row(vec![
            token.id.clone(),
            escape_controls(&token.name),
            escape_controls(&token.user),
            state(token, now).to_string(),
            utc(token.expires_at),
            token.last_used_at.map_or_else(|| "never".into(), utc),
        ]);
    }
    print(&table.render())
}

async fn revoke(config: &Config, args: RevokeArgs) -> Result<(), CliError> {
    let by = args.by.unwrap_or_else(invoking_user);
    check_name(Field::By, &by)?;
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let result = async {
        let found = store.find_token(&args.token).await?;
        let token = match found.as_slice() {
            [] => {
                return Err(CliError::Rejected(format!(
                    "no token {:?} (see bastion token list)",
                    escape_controls(&args.token)
                )));
            }
            [one] => one.clone(),
            _ if is_token_id(&args.token) => found
                .into_iter()
                .find(|t| t.id == args.token)
                .ok_or_else(|| CliError::Rejected("token vanished".into()))?,
            _ => {
                return Err(CliError::Rejected(format!(
                    "several live tokens are named {:?}: revoke one by id (see bastion token list)",
                    escape_controls(&args.token)
                )));
            }
        };
        if token.revoked_at.is_some() {
            return print(&format!(
                "token {} was already revoked by {}\n",
                token.id,
                escape_controls(token.revoked_by.as_deref().unwrap_or("unknown"))
            ));
        }
        match store.revoke_token(&token.id, &by).await? {
            Some(TokenRevocation::Revoked(revoked)) => audit.record(AuditEvent::TokenRevoked {
                token: revoked.id.clone(),
                name: revoked.name.clone(),
                user: revoked.user.clone(),
                by,
            }),
            // Another revocation got there first: it was audited, and it says so.
            Some(TokenRevocation::AlreadyRevoked(other)) => {
                return print(&format!(
                    "token {} was already revoked by {}\n",
                    other.id,
                    escape_controls(other.revoked_by.as_deref().unwrap_or("unknown"))
                ));
            }
            None => {
                return Err(CliError::Rejected(format!("no token {}", token.id)));
            }
        }
        print(&format!(
            "revoked token {} ({:?}, acting as {}); calls with it now get 401\n",
            token.id,
            escape_controls(&token.name),
            escape_controls(&token.user)
        ))
    }
    .await;
    store.close().await;
    result
}
