//! `bastion recordings list|export`: finding a session and getting its asciicast file.

use serde::Serialize;
use time::OffsetDateTime;

use super::table::{Table, utc};
use super::{CliError, RecordingsExportArgs, RecordingsListArgs, open_store, print};
use crate::config::Config;
use crate::grants::{GrantId, SessionRow};

/// The `--json` shape: the names scripts rely on (`start`, `end`, `end_reason`, `bytes`) first.
#[derive(Serialize)]
struct RecordingLine<'a> {
    id: &'a str,
    user: &'a str,
    target: &'a str,
    login: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    end: Option<OffsetDateTime>,
    end_reason: Option<&'a str>,
    bytes: Option<u64>,
    grant: GrantId,
    command: Option<&'a str>,
    interactive: bool,
    client: &'a str,
    recording: &'a str,
    recording_complete: Option<bool>,
}

impl<'a> From<&'a SessionRow> for RecordingLine<'a> {
    fn from(row: &'a SessionRow) -> Self {
        RecordingLine {
            id: &row.id,
            user: &row.user,
            target: &row.target,
            login: &row.login,
            start: row.started_at,
            end: row.ended_at,
            end_reason: row.end_reason.as_deref(),
            bytes: row.bytes,
            grant: row.grant_id,
            command: row.command.as_deref(),
            interactive: row.interactive,
            client: &row.client,
            recording: &row.recording,
            recording_complete: row.recording_complete,
        }
    }
}

pub(super) async fn list(config: &Config, args: RecordingsListArgs) -> Result<(), CliError> {
    let store = open_store(config).await?;
    let sessions = store.list_sessions().await?;
    store.close().await;

    if args.json {
        let mut out = String::new();
        for row in &sessions {
            let line = serde_json::to_string(&RecordingLine::from(row))
                .map_err(|err| CliError::Output(err.into()))?;
            out.push_str(&line);
            out.push('\n');
        }
        return print(&out);
    }
    if sessions.is_empty() {
        eprintln!("no recordings");
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "USER",
        "TARGET",
        "LOGIN",
        "START (UTC)",
        "END (UTC)",
        "END REASON",
        "BYTES",
    ]);
    for row in &sessions {
        let end_reason = match (&row.end_reason, row.recording_complete) {
            (Some(reason), Some(false)) => format!("{reason} (recording incomplete)"),
            (Some(reason), _) => reason.clone(),
            (None, _) => "running".to_string(),
        };
        table.row(vec![
            row.id.clone(),
            row.user.clone(),
            row.target.clone(),
            row.login.clone(),
            utc(row.started_at),
            row.ended_at.map(utc).unwrap_or_else(|| "-".to_string()),
            end_reason,
            row.bytes.map_or_else(|| "-".to_string(), |b| b.to_string()),
        ]);
    }
    print(&table.render())
}

pub(super) async fn export(config: &Config, args: RecordingsExportArgs) -> Result<(), CliError> {
    let recordings = recorder::RecordingStore::open(config.store_config()).await?;
    let bytes = recordings.write_cast(&args.id, &args.output).await?;
    eprintln!(
        "wrote recording {} to {} ({bytes} bytes)",
        args.id,
        args.output.display()
    );
    Ok(())
}
