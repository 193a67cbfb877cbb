//! The `bastion` command line: `serve`, `grant add|list|revoke`,
//! `recordings list|export|verify|search|prune|hold|release`, `sessions end`, `audit export`.
//!
//! The interface is a contract (scripts and the end-to-end tests drive it): grant ids alone on
//! stdout for `grant add`, one JSON object per line for `--json`, `bastion: <message>` on stderr
//! with exit code 1 on failure, 2 for usage errors, 3 for a recording that verifies as intact
//! but truncated.

mod audit;
mod grant;
mod recordings;
mod requests;
mod sessions;
mod table;
mod tokens;

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::audit::AuditLog;
use crate::config::{Config, ConfigError};
use crate::db::{Database, DbError, GrantId};
use crate::verbs::{self, Verb};

#[derive(Debug, Parser)]
#[command(
    name = "bastion",
    version,
    about = "Session-recording SSH jump host with time-boxed grants"
)]
pub struct Cli {
    /// Configuration file; without it the embedded defaults are used (no users, no targets)
    #[arg(long, global = true, env = "BASTION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the SSH jump host
    Serve,
    /// Create, list and revoke access grants
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// List, export, verify, search and prune session recordings
    Recordings {
        #[command(subcommand)]
        command: RecordingsCommand,
    },
    /// Act on live sessions
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Create, list and revoke the bearer tokens of the HTTP API
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
    },
    /// Export the audit events every node stored in the database
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// File an access request on behalf of a user (as `ssh bastion request` does)
    Request {
        #[command(flatten)]
        who: AsUser,
        #[command(flatten)]
        args: verbs::RequestArgs,
    },
    /// List the pending requests a user may decide
    Requests {
        #[command(flatten)]
        who: AsUser,
    },
    /// Approve a pending request as one of its approvers
    Approve {
        #[command(flatten)]
        who: AsUser,
        #[command(flatten)]
        args: verbs::ApproveArgs,
    },
    /// Deny a pending request as one of its approvers
    Deny {
        #[command(flatten)]
        who: AsUser,
        #[command(flatten)]
        args: verbs::DenyArgs,
    },
    /// Withdraw a user's pending request
    Cancel {
        #[command(flatten)]
        who: AsUser,
        #[command(flatten)]
        args: verbs::CancelArgs,
    },
    /// Ask for more time on a user's grant
    Extend {
        #[command(flatten)]
        who: AsUser,
        #[command(flatten)]
        args: verbs::ExtendArgs,
    },
    /// Take emergency access on behalf of a user the policy names in break_glass
    #[command(name = "break-glass")]
    BreakGlass {
        #[command(flatten)]
        who: AsUser,
        #[command(flatten)]
        args: verbs::BreakGlassArgs,
    },
    /// List break-glass grants waiting for a review
    Reviews,
    /// Acknowledge a break-glass grant (as an approver with --as, else as the administrator)
    Review {
        /// Review as this user, who must be an approver of the grant's policy
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        args: verbs::ReviewArgs,
    },
}

/// The configured user an administrator acts for.
#[derive(Debug, Args)]
struct AsUser {
    /// Act as this [[users]] entry: the same rules apply as to that user over SSH
    #[arg(long = "as", value_name = "USER")]
    user: String,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print audit events in the order they happened, as JSON lines or CSV (to stdout)
    Export(audit::ExportArgs),
}

#[derive(Debug, Subcommand)]
enum GrantCommand {
    /// Grant a user time-boxed access to a target; prints the new grant's id
    Add(GrantAddArgs),
    /// List grants with their status (active, pending, expired, revoked)
    List(GrantListArgs),
    /// Revoke a grant; its live sessions end on every node within `grant_poll` (at once on
    /// PostgreSQL)
    Revoke(GrantRevokeArgs),
}

#[derive(Debug, Args)]
struct GrantAddArgs {
    /// User to grant access to (a `[[users]]` name)
    #[arg(long)]
    user: String,
    /// Target to grant access to (a `[[targets]]` name)
    #[arg(long)]
    target: String,
    /// Login allowed on the target (repeatable; default: the target's first login)
    #[arg(long = "login", value_name = "LOGIN")]
    logins: Vec<String>,
    /// How long the grant lasts, e.g. 30m, 1h, 2h30m
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    duration: Duration,
    /// Delay before the grant starts, e.g. 10m (default: now)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_or_zero)]
    starts_in: Option<Duration>,
    /// Why access is needed (ticket, incident...)
    #[arg(long)]
    reason: String,
    /// Who approved it (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    approved_by: Option<String>,
    /// Allow only commands matching this pattern, whole (repeatable; `*` any characters, `?`
    /// one): `ssh bastion TARGET -- CMD` only, no shell; commands with ; & | ` $( < > are refused
    #[arg(long = "command", value_name = "PATTERN")]
    commands: Vec<String>,
    /// Allow no terminal (PTY) on the target
    #[arg(long)]
    no_pty: bool,
}

#[derive(Debug, Args)]
struct GrantListArgs {
    /// Only grants usable right now
    #[arg(long)]
    active: bool,
    /// One JSON object per line instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct GrantRevokeArgs {
    /// Id of the grant to revoke
    id: GrantId,
    /// Who revokes it (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RecordingsCommand {
    /// List recorded sessions, newest first
    List(RecordingsListArgs),
    /// Export a recording as an asciicast v2 file
    Export(RecordingsExportArgs),
    /// Check a recording's hash chain and signatures; exit 0 complete and intact, 3 intact but
    /// truncated, 1 tampered or corrupt
    Verify(RecordingsVerifyArgs),
    /// Find sessions whose typed commands or output contain a phrase, newest first
    Search(RecordingsSearchArgs),
    /// Delete recordings of sessions that ended long ago (never one under legal hold)
    Prune(RecordingsPruneArgs),
    /// Put a recording under legal hold: prune never deletes it
    Hold(RecordingsHoldArgs),
    /// Lift a recording's legal hold
    Release(RecordingsReleaseArgs),
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// Ask the node running a live session to end it; it does so within `grant_poll` (at once
    /// on PostgreSQL)
    End(SessionEndArgs),
    /// List sessions of every node, newest first; --stale: open ones of silent nodes
    List(SessionListArgs),
}

#[derive(Debug, Args)]
struct SessionListArgs {
    /// Only sessions that are still open
    #[arg(long)]
    live: bool,
    /// Only open sessions of nodes silent longer than `[nodes] stale_after`
    #[arg(long)]
    stale: bool,
    /// One JSON object per line instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RecordingsListArgs {
    /// One JSON object per line instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RecordingsVerifyArgs {
    /// Session (recording) id, as shown by `recordings list`
    id: String,
}

#[derive(Debug, Args)]
struct RecordingsSearchArgs {
    /// Words or text to find, e.g. 'DROP TABLE' (case-insensitive, words in this order)
    query: String,
    /// One JSON object per matching session per line instead of text
    #[arg(long)]
    json: bool,
    /// Most sessions to show
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: u32,
    /// Most hits to show per session
    #[arg(long, default_value_t = 20, value_name = "N")]
    hits: u32,
}

#[derive(Debug, Args)]
struct RecordingsPruneArgs {
    /// Delete recordings of sessions that ended longer ago than this, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Duration,
    /// Show what would be deleted, delete nothing
    #[arg(long)]
    dry_run: bool,
    /// Who prunes (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Args)]
struct RecordingsHoldArgs {
    /// Session (recording) id
    id: String,
    /// Why it must be kept (case, ticket...)
    #[arg(long)]
    reason: String,
    /// Who places the hold (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Args)]
struct RecordingsReleaseArgs {
    /// Session (recording) id
    id: String,
    /// Who lifts the hold (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Args)]
struct SessionEndArgs {
    /// Session id, as shown by `recordings list`
    id: String,
    /// Who ends it (default: $SUDO_USER, else $USER, else root)
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Args)]
struct RecordingsExportArgs {
    /// Session (recording) id, as shown by `recordings list`
    id: String,
    /// Output file, e.g. session.cast
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

/// Why a command failed; shown as `bastion: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    // Boxed: these carry russh key errors, which would make every `Result` here large.
    #[error(transparent)]
    Serve(Box<crate::serve::ServeError>),
    #[error(transparent)]
    RecordingStore(#[from] recorder::StoreError),
    #[error(transparent)]
    Recording(#[from] recorder::ReadError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot open audit log {path}: {source}")]
    AuditLog {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid BASTION_LOG filter: {0}")]
    LogFilter(String),
    #[error("{0}")]
    Rejected(String),
    /// A workflow verb's refusal or decision, with its exit status (77 refused or denied,
    /// 75 expired undecided, 69 grant store unavailable).
    #[error("{text}")]
    Verb { text: String, status: u8 },
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    #[error(transparent)]
    SigningKey(Box<crate::recordings::signing::SigningKeyError>),
    /// `recordings verify` found the recording truncated (exit 3) or tampered (exit 1); the
    /// details were printed on stdout.
    #[error("recording {id} is {state}")]
    NotIntact {
        id: String,
        state: crate::db::VerifyState,
    },
}

impl From<crate::serve::ServeError> for CliError {
    fn from(err: crate::serve::ServeError) -> Self {
        CliError::Serve(Box::new(err))
    }
}

impl From<crate::access::Rejection> for CliError {
    fn from(rejection: crate::access::Rejection) -> Self {
        CliError::Access(rejection.into())
    }
}

impl From<crate::recordings::signing::SigningKeyError> for CliError {
    fn from(err: crate::recordings::signing::SigningKeyError) -> Self {
        CliError::SigningKey(Box::new(err))
    }
}

impl CliError {
    /// A closed stdout (`bastion grant list | head`) is not a failure worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(err) if err.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The process exit code for this failure: 3 for a truncated recording, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NotIntact {
                state: crate::db::VerifyState::Truncated,
                ..
            } => 3,
            CliError::Verb { status, .. } => *status,
            _ => 1,
        }
    }
}

/// Parses the command line (exiting with code 2 on usage errors) and runs the command.
pub fn run() -> Result<(), CliError> {
    // Before anything is created: every file and folder of ours is owner-only.
    crate::files::private_umask();
    let cli = Cli::parse();
    let config = Config::load_or_default(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(config),
        Command::Grant { command } => block_on(async move {
            match command {
                GrantCommand::Add(args) => grant::add(&config, args).await,
                GrantCommand::List(args) => grant::list(&config, args).await,
                GrantCommand::Revoke(args) => grant::revoke(&config, args).await,
            }
        }),
        Command::Recordings { command } => block_on(async move {
            match command {
                RecordingsCommand::List(args) => recordings::list(&config, args).await,
                RecordingsCommand::Export(args) => recordings::export(&config, args).await,
                RecordingsCommand::Verify(args) => recordings::verify(&config, args).await,
                RecordingsCommand::Search(args) => recordings::search(&config, args).await,
                RecordingsCommand::Prune(args) => recordings::prune(&config, args).await,
                RecordingsCommand::Hold(args) => recordings::hold(&config, args).await,
                RecordingsCommand::Release(args) => recordings::release(&config, args).await,
            }
        }),
        Command::Sessions { command } => block_on(async move {
            match command {
                SessionsCommand::End(args) => sessions::end(&config, args).await,
                SessionsCommand::List(args) => sessions::list(&config, args).await,
            }
        }),
        Command::Token { command } => block_on(async move { tokens::run(&config, command).await }),
        Command::Audit { command } => block_on(async move {
            match command {
                AuditCommand::Export(args) => audit::export(&config, args).await,
            }
        }),
        Command::Request { who, args } => verb(config, Some(who.user), Verb::Request(args)),
        Command::Requests { who } => verb(config, Some(who.user), Verb::Requests),
        Command::Approve { who, args } => verb(config, Some(who.user), Verb::Approve(args)),
        Command::Deny { who, args } => verb(config, Some(who.user), Verb::Deny(args)),
        Command::Cancel { who, args } => verb(config, Some(who.user), Verb::Cancel(args)),
        Command::Extend { who, args } => verb(config, Some(who.user), Verb::Extend(args)),
        Command::BreakGlass { who, args } => verb(config, Some(who.user), Verb::BreakGlass(args)),
        Command::Reviews => verb(config, None, Verb::Reviews),
        Command::Review { user, args } => verb(config, user, Verb::Review(args)),
    }
}

fn verb(config: Config, user: Option<String>, verb: Verb) -> Result<(), CliError> {
    block_on(async move { requests::run(&config, user, verb).await })
}

fn serve(config: Config) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::INFO.into())
        .with_env_var("BASTION_LOG")
        .from_env()
        .map_err(|err| CliError::LogFilter(err.to_string()))?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for people: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(crate::serve::serve(config))?;
    Ok(())
}

tokio::task_local! {
    /// The audit logs the running command opened: their database copies are flushed before
    /// the runtime (and with it the writer task) goes away.
    static OPENED_AUDIT_LOGS: RefCell<Vec<AuditLog>>;
}

/// Admin commands do a few queries: a single-threaded runtime is plenty.
fn block_on<F: Future<Output = Result<(), CliError>>>(future: F) -> Result<(), CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(OPENED_AUDIT_LOGS.scope(RefCell::new(Vec::new()), async {
            let result = future.await;
            flush_audit_logs().await;
            result
        }))
}

/// Waits for the events this command recorded to reach the database; warns on stderr about
/// those that reached only the file (the command itself succeeded: the file is the record).
async fn flush_audit_logs() {
    let logs = OPENED_AUDIT_LOGS.with(RefCell::take);
    for log in logs {
        log.flush().await;
        if let Some(copy) = log.database_copy()
            && copy.lost > 0
        {
            eprintln!(
                "bastion: warning: {} audit event(s) were written to {} but not to the database: {}",
                copy.lost,
                log.path().display(),
                copy.last_error.as_deref().unwrap_or("unknown error")
            );
        }
    }
}

async fn open_store(config: &Config) -> Result<Database, CliError> {
    Ok(Database::open(&config.database_url).await?)
}

/// Opens the audit log with its database copy; the database is opened only when an event is
/// recorded, after the command's own store (which runs the migrations).
fn open_audit(config: &Config) -> Result<AuditLog, CliError> {
    let audit = AuditLog::open(&config.audit_log).map_err(|source| CliError::AuditLog {
        path: config.audit_log.display().to_string(),
        source,
    })?;
    audit.attach_database_url(config.database_url.clone());
    // Every command runs inside `block_on`, which holds the scope.
    let _ = OPENED_AUDIT_LOGS.try_with(|logs| logs.borrow_mut().push(audit.clone()));
    Ok(audit)
}

/// The grant service for one command. The audit log is opened before the database, so
/// nothing is written when it cannot be.
async fn open_access(config: &Config) -> Result<crate::access::Access, CliError> {
    let audit = open_audit(config)?;
    let db = open_store(config).await?;
    Ok(crate::access::Access::new(
        std::sync::Arc::new(config.clone()),
        db,
        audit,
    ))
}

/// The person running the command, for `--approved-by` and `--by`.
fn invoking_user() -> String {
    ["SUDO_USER", "USER"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "root".to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_or_zero(text)?;
    if duration.is_zero() {
        return Err("duration must be greater than zero".to_string());
    }
    Ok(duration)
}

fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("invalid duration {text:?}: {err} (expected e.g. 30m, 1h, 2h30m)"))
}

/// Writes `text` to stdout, reporting a closed pipe as `CliError::Output`.
fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}
