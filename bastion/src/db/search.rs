//! The searchable text of recordings: typed command lines, output lines and markers with their
//! time offsets, full-text indexed by the database (SQLite FTS5, PostgreSQL tsvector + GIN).
//!
//! A query matches a line holding its words consecutively, in order, case folded: both
//! databases split text into runs of letters and digits, so `DROP TABLE` finds
//! `drop table users;` and `DROP  TABLE`. When the query has other characters (`rm -rf /`,
//! `/etc/shadow`) the index narrows the candidates and a case-insensitive substring test keeps
//! only exact occurrences; a query without any word (`&&`) is a substring scan, slower but
//! still correct.

use serde::Serialize;
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use super::DbError;
use super::store::{Database, Pool, from_millis, on_pool};

/// Rows per INSERT: 4 binds each, far below both databases' bind-parameter limits.
const INSERT_BATCH: usize = 500;

/// What a line of recording text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    /// A command line the user typed (or the session's remote command).
    Command,
    /// A line the target printed, escape sequences removed.
    Output,
    /// A marker event (warnings, the end reason).
    Marker,
}

impl TextKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TextKind::Command => "command",
            TextKind::Output => "output",
            TextKind::Marker => "marker",
        }
    }

    fn parse(text: &str) -> Option<TextKind> {
        match text {
            "command" => Some(TextKind::Command),
            "output" => Some(TextKind::Output),
            "marker" => Some(TextKind::Marker),
            _ => None,
        }
    }
}

/// One searchable line: `t` seconds after the recording started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextLine {
    pub t: f64,
    pub kind: TextKind,
    pub text: String,
}

/// A session with lines matching a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchMatch {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// The first matching lines in time order (at most the `hits_per_session` asked for).
    pub hits: Vec<TextLine>,
    /// How many lines matched in all, `hits` included.
    pub total_hits: u64,
}

#[derive(sqlx::FromRow)]
struct HitRecord {
    session_id: String,
    user_name: String,
    target: String,
    login: String,
    started_at: i64,
    t: f64,
    kind: String,
    text: String,
    total: i64,
}

/// How a query string is looked up.
struct Query {
    /// The query's words joined by single spaces; empty when it has none.
    words: String,
    /// Exact (case-folded) substring to require, when the words alone would be too loose.
    substring: Option<String>,
}

impl Query {
    fn new(text: &str) -> Query {
        let trimmed = text.trim();
        let words = trimmed
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let substring = (words != trimmed).then(|| trimmed.to_lowercase());
        Query { words, substring }
    }
}

impl Database {
    /// Replaces the searchable text of session `id` with `lines` in one transaction, and marks
    /// the session indexed when `complete` (otherwise it stays in `sessions_to_index`). Fails
    /// with `SessionPruned` if the session was pruned meanwhile.
    pub async fn replace_recording_text(
        &self,
        id: &str,
        lines: &[TextLine],
        complete: bool,
    ) -> Result<(), DbError> {
        // Updating the row first also locks it, so two indexers of one session take turns
        // instead of both inserting.
        let mark = self.sql(
            "UPDATE sessions SET indexed_at = CASE WHEN $2 THEN {now} ELSE NULL END \
             WHERE id = $1 AND pruned_at IS NULL",
        );
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let marked = sqlx::query(AssertSqlSafe(mark))
                .bind(id)
                .bind(complete)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if marked == 0 {
                tx.rollback().await?;
                return Err(match self.session(id).await? {
                    Some(_) => DbError::SessionPruned(id.to_string()),
                    None => DbError::NoSuchSession(id.to_string()),
                });
            }
            sqlx::query("DELETE FROM recording_text WHERE session_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for chunk in lines.chunks(INSERT_BATCH) {
                let values = (0..chunk.len())
                    .map(|i| {
                        format!(
                            "(${}, ${}, ${}, ${})",
                            4 * i + 1,
                            4 * i + 2,
                            4 * i + 3,
                            4 * i + 4
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO recording_text (session_id, t, kind, text) VALUES {values}"
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for line in chunk {
                    query = query
                        .bind(id)
                        .bind(line.t)
                        .bind(line.kind.as_str())
                        .bind(&line.text);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The searchable lines of session `id` in time order.
    pub async fn recording_text(&self, id: &str) -> Result<Vec<TextLine>, DbError> {
        let sql = "SELECT t, kind, text FROM recording_text WHERE session_id = $1 ORDER BY t, id";
        let rows: Vec<(f64, String, String)> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_all(pool)
            .await?);
        rows.into_iter()
            .map(|(t, kind, text)| {
                let kind = TextKind::parse(&kind).ok_or_else(|| DbError::Corrupt {
                    table: "recording_text",
                    id: id.to_string(),
                    reason: format!("unknown kind {kind:?}"),
                })?;
                Ok(TextLine { t, kind, text })
            })
            .collect()
    }

    /// Sessions with lines matching `query` (see the module doc), newest first, at most
    /// `max_sessions`, each with its first `hits_per_session` hits. Pruned sessions have no text
    /// left, so they never match.
    pub async fn search(
        &self,
        query: &str,
        max_sessions: u32,
        hits_per_session: u32,
    ) -> Result<Vec<SearchMatch>, DbError> {
        let query = Query::new(query);
        if query.words.is_empty() && query.substring.as_deref().is_none_or(str::is_empty) {
            return Ok(Vec::new());
        }
        // $1: words, $2: substring (or NULL), $3: sessions, $4: hits per session. Every bind
        // appears in the statement, or PostgreSQL cannot type it.
        let sqlite = matches!(self.pool, Pool::Sqlite(_));
        let words = match (sqlite, query.words.is_empty()) {
            (_, true) => "CAST($1 AS TEXT) IS NOT NULL",
            (true, false) => {
                "r.id IN (SELECT rowid FROM recording_text_fts WHERE recording_text_fts MATCH $1)"
            }
            (false, false) => "r.words @@ phraseto_tsquery('simple', $1)",
        };
        let substring = match (sqlite, query.substring.is_some(), query.words.is_empty()) {
            (_, false, _) => "CAST($2 AS TEXT) IS NULL",
            // Among the few rows the index found, compare case-folded.
            (true, true, false) => "instr(lower(r.text), $2) > 0",
            (false, true, false) => "strpos(lower(r.text), $2) > 0",
            // A scan of every row: without letters or digits case does not matter, and
            // skipping lower() makes the scan several times faster.
            (true, true, true) => "instr(r.text, $2) > 0",
            (false, true, true) => "strpos(r.text, $2) > 0",
        };
        let sql = format!(
            "WITH hits AS ( \
                 SELECT r.id, r.session_id, r.t, r.kind, r.text FROM recording_text r \
                 WHERE {words} AND {substring}), \
             matched AS ( \
                 SELECT s.id, s.user_name, s.target, s.login, s.started_at FROM sessions s \
                 WHERE s.id IN (SELECT session_id FROM hits) \
                 ORDER BY s.started_at DESC, s.id DESC LIMIT $3), \
             ranked AS ( \
                 SELECT m.id AS session_id, m.user_name, m.target, m.login, m.started_at, \
                        h.t, h.kind, h.text, \
                        ROW_NUMBER() OVER (PARTITION BY h.session_id ORDER BY h.t, h.id) AS n, \
                        COUNT(*) OVER (PARTITION BY h.session_id) AS total \
                 FROM hits h JOIN matched m ON m.id = h.session_id) \
             SELECT session_id, user_name, target, login, started_at, t, kind, text, total \
             FROM ranked WHERE n <= $4 \
             ORDER BY started_at DESC, session_id DESC, t, n"
        );
        // FTS5 reads a double-quoted string as one phrase; words hold no quotes.
        let phrase = if sqlite {
            format!("\"{}\"", query.words)
        } else {
            query.words.clone()
        };
        let records: Vec<HitRecord> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(&phrase)
            .bind(query.substring.as_deref())
            .bind(i64::from(max_sessions))
            .bind(i64::from(hits_per_session))
            .fetch_all(pool)
            .await?);
        group_hits(records)
    }
}

/// Folds hit rows (ordered by session, then time) into one `SearchMatch` per session.
fn group_hits(records: Vec<HitRecord>) -> Result<Vec<SearchMatch>, DbError> {
    let mut matches: Vec<SearchMatch> = Vec::new();
    for record in records {
        let corrupt = |reason: String| DbError::Corrupt {
            table: "recording_text",
            id: record.session_id.clone(),
            reason,
        };
        let kind = TextKind::parse(&record.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", record.kind)))?;
        let line = TextLine {
            t: record.t,
            kind,
            text: record.text,
        };
        match matches.last_mut() {
            Some(last) if last.id == record.session_id => last.hits.push(line),
            _ => {
                let start = from_millis(record.started_at).ok_or_else(|| {
                    corrupt(format!("started_at out of range: {}", record.started_at))
                })?;
                matches.push(SearchMatch {
                    id: record.session_id,
                    user: record.user_name,
                    target: record.target,
                    login: record.login,
                    start,
                    hits: vec![line],
                    total_hits: u64::try_from(record.total).unwrap_or(0),
                });
            }
        }
    }
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn queries_split_into_words_and_keep_exact_text_when_needed() {
        let q = Query::new("  DROP TABLE ");
        assert_eq!((q.words.as_str(), q.substring), ("DROP TABLE", None));
        let q = Query::new("rm -rf /");
        assert_eq!(q.words, "rm rf");
        assert_eq!(q.substring.as_deref(), Some("rm -rf /"));
        let q = Query::new("&&");
        assert_eq!((q.words.as_str(), q.substring.as_deref()), ("", Some("&&")));
        let q = Query::new("say \"hi\"");
        assert_eq!(q.words, "say hi", "quotes never reach the FTS5 phrase");
    }
}
