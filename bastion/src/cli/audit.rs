//! `bastion audit export`: every node's audit events, from the database, in the order they
//! happened, as JSON lines or as CSV for an auditor's spreadsheet.
//!
//! JSON lines are the lines the nodes wrote to their audit log files, byte for byte. The CSV
//! (RFC 4180, CRLF line ends) has a header row and one row per event; its `details` column is
//! the whole JSON line, so a column that does not fit an event loses nothing. A cell that a
//! spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
//! return) gets a leading `'`: the event text is shown, never evaluated. Only those cells
//! differ from the recorded values; `details` (a JSON object, starting with `{`) never does.

use std::io::{BufWriter, Write};

use clap::{Args, ValueEnum};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CliError, open_store};
use crate::config::Config;
use crate::db::{AuditFilter, AuditRecord, Database, DbError, MAX_AUDIT_PAGE};
use crate::text::escape_controls;

/// The CSV columns, in order. `by` is who acted: an event's `by`, else its `approved_by`.
pub const CSV_COLUMNS: [&str; 11] = [
    "ts", "event", "user", "target", "session", "grant", "request", "client", "by", "reason",
    "details",
];

/// Events read from the database at a time.
const PAGE: u32 = 1000;

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// Events at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or a duration ago (24h, 7d)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Events before this time: RFC 3339 or a duration ago
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only events naming this user
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Only events naming this target
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
    /// jsonl: the recorded JSON lines; csv: a header row and one row per event
    #[arg(long, value_enum)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

pub(super) async fn export(config: &Config, args: ExportArgs) -> Result<(), CliError> {
    let now = OffsetDateTime::now_utc();
    let filter = AuditFilter {
        since: args
            .since
            .as_deref()
            .map(|text| parse_time("--since", text, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|text| parse_time("--until", text, now))
            .transpose()?,
        user: args.user,
        target: args.target,
    };
    let store = open_store(config).await?;
    let written = write_events(&store, &filter, args.format).await;
    store.close().await;
    written
}

/// Writes the matching events to stdout, one page in memory at a time.
async fn write_events(
    store: &Database,
    filter: &AuditFilter,
    format: Format,
) -> Result<(), CliError> {
    let out = BufWriter::new(std::io::stdout());
    let mut csv = None;
    let mut jsonl = None;
    match format {
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            writer.write_record(CSV_COLUMNS).map_err(csv_error)?;
            csv = Some(writer);
        }
        Format::Jsonl => jsonl = Some(out),
    }
    let mut after = None;
    loop {
        let page = store
            .audit_events_page(filter, after, PAGE.min(MAX_AUDIT_PAGE))
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.cursor());
        for record in &page {
            if let Some(writer) = &mut csv {
                writer.write_record(csv_row(record)?).map_err(csv_error)?;
            }
            if let Some(out) = &mut jsonl {
                out.write_all(record.json.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(CliError::Output)?;
            }
        }
    }
    if let Some(mut writer) = csv {
        writer.flush().map_err(CliError::Output)?;
    }
    if let Some(mut out) = jsonl {
        out.flush().map_err(CliError::Output)?;
    }
    Ok(())
}

/// `text` as an instant: an RFC 3339 time, or a duration (`24h`, `7d`) meaning that long
/// before `now`.
fn parse_time(flag: &str, text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, CliError> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|ago| time::Duration::try_from(ago).ok())
        .and_then(|ago| now.checked_sub(ago))
        .ok_or_else(|| {
            CliError::Rejected(format!(
                "invalid {flag} \"{}\": expected an RFC 3339 time (e.g. 2026-12-01T00:00:00Z) \
                 or a duration ago (e.g. 24h, 7d)",
                escape_controls(text)
            ))
        })
}

/// One CSV row for `record`, cells in [`CSV_COLUMNS`] order.
fn csv_row(record: &AuditRecord) -> Result<Vec<String>, CliError> {
    let fields: serde_json::Map<String, Value> =
        serde_json::from_str(&record.json).map_err(|err| {
            CliError::Database(DbError::Corrupt {
                table: "audit_events",
                id: record.id.to_string(),
                reason: format!("event_json is not a JSON object: {err}"),
            })
        })?;
    let cell = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let row = CSV_COLUMNS.iter().map(|&column| match column {
        "by" if !fields.contains_key("by") => cell("approved_by"),
        "details" => record.json.clone(),
        _ => cell(column),
    });
    Ok(row.map(neutralise_formula).collect())
}

/// A cell a spreadsheet would evaluate, shown as text instead (see the module doc).
fn neutralise_formula(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn csv_error(err: csv::Error) -> CliError {
    match err.into_kind() {
        csv::ErrorKind::Io(err) => CliError::Output(err),
        other => CliError::Output(std::io::Error::other(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn record(json: &str) -> AuditRecord {
        AuditRecord {
            id: 7,
            at: datetime!(2026-12-02 10:00 UTC),
            event: "grant.created".into(),
            user: Some("alice".into()),
            target: Some("db-1".into()),
            json: json.into(),
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now = datetime!(2026-12-02 10:00 UTC);
        assert_eq!(
            parse_time("--since", "2026-12-01T08:30:00+01:00", now).unwrap(),
            datetime!(2026-12-01 07:30 UTC)
        );
        assert_eq!(
            parse_time("--since", "24h", now).unwrap(),
            datetime!(2026-12-01 10:00 UTC)
        );
        assert_eq!(
            parse_time("--until", "1h 30m", now).unwrap(),
            datetime!(2026-12-02 08:30 UTC)
        );
        let err = parse_time("--since", "yesterday\x1b[2J", now)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid --since \"yesterday\\x1b[2J\":"),
            "{err}"
        );
        assert!(!err.contains('\n') && !err.contains('\x1b'), "{err}");
    }

    #[test]
    fn rows_follow_the_header_and_keep_the_whole_event() {
        let json = r#"{"ts":"2026-12-02T10:00:00Z","event":"grant.created","grant":3,"user":"alice","target":"db-1","logins":["app"],"approved_by":"carol","reason":"INC-1"}"#;
        let row = csv_row(&record(json)).unwrap();
        assert_eq!(row.len(), CSV_COLUMNS.len());
        let by_name: std::collections::HashMap<_, _> =
            CSV_COLUMNS.iter().copied().zip(row.iter()).collect();
        assert_eq!(by_name["ts"], "2026-12-02T10:00:00Z");
        assert_eq!(by_name["event"], "grant.created");
        assert_eq!(by_name["grant"], "3");
        assert_eq!(by_name["by"], "carol");
        assert_eq!(by_name["session"], "");
        assert_eq!(by_name["details"], json);
    }

    #[test]
    fn formula_cells_are_shown_as_text() {
        let json = r#"{"ts":"t","event":"recording.hold","session":"@SUM(A1)","reason":"=HYPERLINK(\"http://x\")","by":"-1+2"}"#;
        let row = csv_row(&record(json)).unwrap();
        assert_eq!(row[4], "'@SUM(A1)");
        assert_eq!(row[8], "'-1+2");
        assert_eq!(row[9], "'=HYPERLINK(\"http://x\")");
        assert_eq!(row[10], json, "details is the JSON object, never a formula");
        assert_eq!(neutralise_formula("+1".into()), "'+1");
        assert_eq!(neutralise_formula("\tx".into()), "'\tx");
        assert_eq!(neutralise_formula("a=b".into()), "a=b");
    }

    #[test]
    fn a_row_that_is_not_json_is_reported_as_corrupt() {
        let err = csv_row(&record("not json")).unwrap_err().to_string();
        assert!(err.starts_with("corrupt audit_events row 7:"), "{err}");
    }
}
