//! `bastion recordings list|export|verify|search|prune|hold|release`: finding a session,
//! getting its asciicast file, checking it was not tampered with, and keeping or deleting it.

use serde::Serialize;
use time::OffsetDateTime;

use super::table::{Table, one_line, utc};
use super::{
    CliError, RecordingsExportArgs, RecordingsHoldArgs, RecordingsListArgs, RecordingsPruneArgs,
    RecordingsReleaseArgs, RecordingsSearchArgs, RecordingsVerifyArgs, invoking_user, open_audit,
    open_store, print,
};
use crate::access::{Field, check_name, check_reason};
use crate::audit::AuditEvent;
use crate::config::Config;
use crate::db::{DbError, GrantId, SessionRow, VerifyState, human_time};
use crate::recordings::prune::{PruneOutcome, PruneRequest};
use crate::recordings::signing;
use crate::text::escape_controls;

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
    /// False when the target had `record = false`: there is no recording.
    recorded: bool,
    /// The bastion node that ran the session.
    node: Option<&'a str>,
    recording_complete: Option<bool>,
    /// Same as `recording_complete`: whether every segment and the manifest were stored.
    complete: Option<bool>,
    /// Outcome of the last `recordings verify`, if it was ever run.
    verified: Option<VerifyState>,
    legal_hold: bool,
    hold_reason: Option<&'a str>,
    /// The recording was deleted by `recordings prune` (the session row stays).
    pruned: bool,
    /// The recording's text is in the search index.
    indexed: bool,
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
            recorded: row.recorded,
            node: row.node.as_deref(),
            recording_complete: row.recording_complete,
            complete: row.recording_complete,
            verified: row.verify_status,
            legal_hold: row.legal_hold,
            hold_reason: row.hold_reason.as_deref(),
            pruned: row.pruned_at.is_some(),
            indexed: row.indexed_at.is_some(),
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
            out.push_str(&json_line(&RecordingLine::from(row))?);
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
        "VERIFIED",
        "HOLD",
        "BYTES",
    ]);
    for row in &sessions {
        let end_reason = match (&row.end_reason, row.recording_complete) {
            (Some(reason), _) if !row.recorded => format!("{reason} (not recorded)"),
            (None, _) if !row.recorded => "running (not recorded)".to_string(),
            (Some(reason), Some(false)) => format!("{reason} (recording incomplete)"),
            (Some(reason), _) => reason.clone(),
            (None, _) => "running".to_string(),
        };
        let verified = match (row.pruned_at, row.verify_status) {
            (Some(_), _) => "pruned".to_string(),
            (None, Some(state)) => state.to_string(),
            (None, None) => "-".to_string(),
        };
        table.row(vec![
            row.id.clone(),
            row.user.clone(),
            row.target.clone(),
            row.login.clone(),
            utc(row.started_at),
            row.ended_at.map(utc).unwrap_or_else(|| "-".to_string()),
            end_reason,
            verified,
            if row.legal_hold { "held" } else { "-" }.to_string(),
            row.bytes.map_or_else(|| "-".to_string(), |b| b.to_string()),
        ]);
    }
    print(&table.render())
}

/// The store, read-only, for reading recording `id`. A local store directory that does not
/// exist yet holds no recordings: that is "recording not found", not a directory error.
async fn reader_for(config: &Config, id: &str) -> Result<recorder::RecordingStore, CliError> {
    match recorder::RecordingStore::open_reader(config.store_config()).await {
        Err(recorder::StoreError::LocalDir { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(recorder::ReadError::NotFound { id: id.to_string() }.into())
        }
        opened => Ok(opened?),
    }
}

/// A session that exists but was never recorded gets its own error instead of "not found".
async fn refuse_unrecorded(config: &Config, id: &str) -> Result<(), CliError> {
    let store = open_store(config).await?;
    let row = store.session(id).await;
    store.close().await;
    match row? {
        Some(row) if !row.recorded => Err(CliError::Rejected(format!(
            "session {} was not recorded: target {} has record = false",
            escape_controls(id),
            escape_controls(&row.target)
        ))),
        _ => Ok(()),
    }
}

pub(super) async fn export(config: &Config, args: RecordingsExportArgs) -> Result<(), CliError> {
    refuse_unrecorded(config, &args.id).await?;
    let recordings = reader_for(config, &args.id).await?;
    let bytes = recordings.write_cast(&args.id, &args.output).await?;
    eprintln!(
        "wrote recording {} to {} ({bytes} bytes)",
        escape_controls(&args.id),
        escape_controls(&args.output.display().to_string())
    );
    Ok(())
}

/// The keys a recording may be signed with: every key a node registered in the database, and
/// this config's own key (which the daemon registers, but a CLI may run before it ever did),
/// each named by its node.
async fn signing_keys(
    config: &Config,
    store: &crate::db::Database,
) -> Result<Vec<(String, recorder::VerifyingKey)>, CliError> {
    let mut keys = Vec::new();
    for registered in store.node_signing_keys().await? {
        match recorder::VerifyingKey::from_hex(&registered.key) {
            Ok(key) => keys.push((registered.node_id, key)),
            Err(err) => eprintln!(
                "warning: ignoring the signing key node {} registered: {err}",
                escape_controls(&registered.node_id)
            ),
        }
    }
    if let Some(local) = signing::verifying_key(config)?
        && !keys.iter().any(|(_, key)| *key == local)
    {
        keys.push((config.node_id.clone(), local));
    }
    Ok(keys)
}

pub(super) async fn verify(config: &Config, args: RecordingsVerifyArgs) -> Result<(), CliError> {
    // The local key file is checked first, so a broken one is reported as such.
    signing::verifying_key(config)?;
    let audit = open_audit(config)?;
    refuse_unrecorded(config, &args.id).await?;
    let recordings = reader_for(config, &args.id).await?;
    let store = open_store(config).await?;
    let keys = match signing_keys(config, &store).await {
        Ok(keys) => keys,
        Err(err) => {
            store.close().await;
            return Err(err);
        }
    };
    let verification = recordings.verify_by_any(&args.id, &keys).await;
    let verification = match verification {
        Ok(v) => v,
        Err(err) => {
            store.close().await;
            return Err(err.into());
        }
    };
    let state = match verification.status {
        recorder::VerifyStatus::Complete => VerifyState::Complete,
        recorder::VerifyStatus::Truncated => VerifyState::Truncated,
        recorder::VerifyStatus::Tampered => VerifyState::Tampered,
    };
    let recorded = store.record_verification(&args.id, state).await;
    store.close().await;
    recorded?;
    audit.record(AuditEvent::RecordingVerified {
        session: args.id.clone(),
        status: state.to_string(),
        segments_ok: verification.segments_ok,
        first_bad: verification.first_bad,
        signed: verification.signed,
        by: invoking_user(),
    });

    let id = escape_controls(&args.id);
    let mut out = match state {
        VerifyState::Complete => format!("recording {id}: complete and intact"),
        VerifyState::Truncated => format!("recording {id}: intact but truncated"),
        VerifyState::Tampered => format!("recording {id}: TAMPERED or corrupt"),
    };
    out.push_str(&format!(
        "\n  segments verified: {}\n",
        verification.segments_ok
    ));
    if let Some(seq) = verification.first_bad {
        out.push_str(&format!("  first bad segment: {seq}\n"));
    }
    if !verification.detail.is_empty() {
        out.push_str(&format!("  detail: {}\n", one_line(&verification.detail)));
    }
    let signer = verification
        .signer
        .as_ref()
        .and_then(|name| keys.iter().find(|(node, _)| node == name));
    out.push_str(&match (signer, verification.signed) {
        (Some((node, key)), true) => format!(
            "  signed: yes, by key {} (node {})\n",
            key.to_hex(),
            escape_controls(node)
        ),
        (None, true) => "  signed: yes\n".to_string(),
        (_, false) if keys.is_empty() => format!(
            "  signed: not checked: no signing key at {} and none registered by a node\n",
            config.signing_key.display()
        ),
        (_, false) => "  signed: no\n".to_string(),
    });
    print(&out)?;
    match state {
        VerifyState::Complete => Ok(()),
        state => Err(CliError::NotIntact { id: args.id, state }),
    }
}

pub(super) async fn search(config: &Config, args: RecordingsSearchArgs) -> Result<(), CliError> {
    if args.query.trim().is_empty() {
        return Err(CliError::Rejected(
            "the search text must not be empty".to_string(),
        ));
    }
    let store = open_store(config).await?;
    let found = store.search(&args.query, args.limit, args.hits).await;
    store.close().await;
    let found = found?;
    if args.json {
        let mut out = String::new();
        for found in &found {
            out.push_str(&json_line(found)?);
        }
        return print(&out);
    }
    if found.is_empty() {
        eprintln!("no recordings match {:?}", args.query);
        return Ok(());
    }
    let mut out = String::new();
    for (i, found) in found.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}  {} on {} as {}, started {} UTC\n",
            escape_controls(&found.id),
            escape_controls(&found.user),
            escape_controls(&found.target),
            escape_controls(&found.login),
            utc(found.start)
        ));
        for hit in &found.hits {
            out.push_str(&format!(
                "  {:>10}  {:<7}  {}\n",
                offset(hit.t),
                hit.kind.as_str(),
                // Recorded output is full of escape sequences: shown, never obeyed.
                escape_controls(&shorten(&hit.text, 160))
            ));
        }
        let more = found.total_hits.saturating_sub(found.hits.len() as u64);
        if more > 0 {
            out.push_str(&format!("  ... and {more} more\n"));
        }
    }
    print(&out)
}

pub(super) async fn prune(config: &Config, args: RecordingsPruneArgs) -> Result<(), CliError> {
    let request = PruneRequest {
        older_than: args.older_than,
        by: args.by.unwrap_or_else(invoking_user),
        dry_run: args.dry_run,
    };
    check_name(Field::By, &request.by)?;
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let recordings = recorder::RecordingStore::open_reader(config.store_config()).await?;
    let outcomes = crate::recordings::prune::prune(&store, &recordings, &audit, &request).await;
    store.close().await;
    let outcomes = outcomes?;

    let age = crate::recordings::prune::age_text(request.older_than);
    let mut out = String::new();
    let (mut pruned, mut objects, mut held, mut failed) = (0, 0, 0, 0);
    for outcome in &outcomes {
        let describe = |s: &SessionRow| {
            format!(
                "{} ({} on {}, ended {})",
                escape_controls(&s.id),
                escape_controls(&s.user),
                escape_controls(&s.target),
                s.ended_at.map_or_else(|| "?".to_string(), human_time)
            )
        };
        let line = match outcome {
            PruneOutcome::Pruned {
                session,
                objects: n,
            } => {
                pruned += 1;
                objects += n;
                format!("pruned {}: {n} objects deleted", describe(session))
            }
            PruneOutcome::WouldPrune { session } => {
                pruned += 1;
                format!("would prune {}", describe(session))
            }
            PruneOutcome::Held { session } => {
                held += 1;
                format!(
                    "kept {}: legal hold ({})",
                    describe(session),
                    one_line(session.hold_reason.as_deref().unwrap_or("no reason given"))
                )
            }
            PruneOutcome::Raced { session } => {
                held += 1;
                format!("kept {}: held or pruned meanwhile", describe(session))
            }
            PruneOutcome::Failed { session, error } => {
                failed += 1;
                format!("FAILED {}: {}", describe(session), escape_controls(error))
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&if request.dry_run {
        format!(
            "dry run: would prune {pruned} recordings of sessions that ended more than {age} ago; {held} kept under legal hold\n"
        )
    } else {
        format!(
            "pruned {pruned} recordings ({objects} objects) of sessions that ended more than {age} ago; {held} kept under legal hold; {failed} failed\n"
        )
    });
    print(&out)?;
    if failed > 0 {
        return Err(CliError::Rejected(format!(
            "{failed} recordings could not be deleted; run prune again to retry"
        )));
    }
    Ok(())
}

pub(super) async fn hold(config: &Config, args: RecordingsHoldArgs) -> Result<(), CliError> {
    check_reason(Field::Reason, &args.reason)?;
    let by = args.by.unwrap_or_else(invoking_user);
    check_name(Field::By, &by)?;
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let outcome = store.hold(&args.id, &args.reason, &by).await;
    store.close().await;
    let outcome = outcome.map_err(session_error)?;
    audit.record(AuditEvent::RecordingHold {
        session: args.id.clone(),
        reason: args.reason.clone(),
        by: by.clone(),
    });
    let verb = if outcome.was_held {
        "updated the legal hold on"
    } else {
        "placed a legal hold on"
    };
    print(&format!(
        "{verb} recording {} ({} on {}): {}\n",
        escape_controls(&args.id),
        escape_controls(&outcome.row.user),
        escape_controls(&outcome.row.target),
        one_line(&args.reason)
    ))
}

pub(super) async fn release(config: &Config, args: RecordingsReleaseArgs) -> Result<(), CliError> {
    let by = args.by.unwrap_or_else(invoking_user);
    check_name(Field::By, &by)?;
    let audit = open_audit(config)?;
    let store = open_store(config).await?;
    let outcome = store.release(&args.id).await;
    store.close().await;
    let outcome = outcome.map_err(session_error)?;
    if !outcome.was_held {
        return print(&format!(
            "recording {} was not under legal hold\n",
            escape_controls(&args.id)
        ));
    }
    audit.record(AuditEvent::RecordingRelease {
        session: args.id.clone(),
        by,
    });
    print(&format!(
        "released the legal hold on recording {}\n",
        escape_controls(&args.id)
    ))
}

fn session_error(err: DbError) -> CliError {
    match err {
        DbError::NoSuchSession(id) => {
            CliError::Rejected(format!("no session with id {}", escape_controls(&id)))
        }
        other => other.into(),
    }
}

fn json_line<T: Serialize>(value: &T) -> Result<String, CliError> {
    let mut line = serde_json::to_string(value).map_err(|err| CliError::Output(err.into()))?;
    line.push('\n');
    Ok(line)
}

/// A time offset as people read it: `12.3s`, `4:05.2`, `1:02:03.0`.
fn offset(t: f64) -> String {
    let tenths = (t.max(0.0) * 10.0).round() as u64;
    let (secs, tenth) = (tenths / 10, tenths % 10);
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}.{tenth}s"),
        (0, m, s) => format!("{m}:{s:02}.{tenth}"),
        (h, m, s) => format!("{h}:{m:02}:{s:02}.{tenth}"),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_like_a_player_clock() {
        assert_eq!(offset(0.04), "0.0s");
        assert_eq!(offset(12.34), "12.3s");
        assert_eq!(offset(245.2), "4:05.2");
        assert_eq!(offset(3723.0), "1:02:03.0");
    }
}
