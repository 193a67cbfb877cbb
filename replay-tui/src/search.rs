//! Search over the recordings' text (typed commands and output lines from each recording's
//! index), run in the background: documents arrive while the catalog loads, queries arrive as
//! the reviewer types, and every query is answered again as more documents come in, so results
//! grow while indexes load. Matching is case-insensitive substring matching; each hit carries
//! the output lines around it as context.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use crate::source::TimedText;

/// Hits returned per query at most (the counts per recording stay exact).
pub const MAX_HITS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    Command,
    Output,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: String,
    pub t: f64,
    pub kind: HitKind,
    pub text: String,
    /// Output lines just before and after the hit.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One recording's searchable text, with lower-cased copies made once.
#[derive(Debug, Clone)]
pub struct SearchDoc {
    pub id: String,
    /// The recording has no index to search.
    pub missing: bool,
    commands: Vec<TimedText>,
    output: Vec<TimedText>,
    commands_lower: Vec<String>,
    output_lower: Vec<String>,
}

impl SearchDoc {
    pub fn new(id: &str, commands: Vec<TimedText>, mut output: Vec<TimedText>) -> SearchDoc {
        output.sort_by(|a, b| a.t.total_cmp(&b.t));
        SearchDoc {
            id: id.to_string(),
            missing: false,
            commands_lower: commands.iter().map(|l| l.text.to_lowercase()).collect(),
            output_lower: output.iter().map(|l| l.text.to_lowercase()).collect(),
            commands,
            output,
        }
    }

    pub fn missing(id: &str) -> SearchDoc {
        let mut doc = SearchDoc::new(id, Vec::new(), Vec::new());
        doc.missing = true;
        doc
    }

    fn context(&self, t: f64) -> (Option<String>, Option<String>) {
        let at = self.output.partition_point(|l| l.t < t);
        let before = at.checked_sub(1).map(|i| self.output[i].text.clone());
        let after = self.output.get(at).map(|l| l.text.clone());
        (before, after)
    }

    fn search(&self, needle: &str, hits: &mut Vec<SearchHit>) -> usize {
        let mut count = 0;
        for (line, lower) in self.commands.iter().zip(&self.commands_lower) {
            if lower.contains(needle) {
                count += 1;
                if hits.len() < MAX_HITS {
                    let (before, after) = self.context(line.t);
                    hits.push(SearchHit {
                        id: self.id.clone(),
                        t: line.t,
                        kind: HitKind::Command,
                        text: line.text.clone(),
                        before,
                        after,
                    });
                }
            }
        }
        for (i, (line, lower)) in self.output.iter().zip(&self.output_lower).enumerate() {
            if lower.contains(needle) {
                count += 1;
                if hits.len() < MAX_HITS {
                    hits.push(SearchHit {
                        id: self.id.clone(),
                        t: line.t,
                        kind: HitKind::Output,
                        text: line.text.clone(),
                        before: i.checked_sub(1).map(|p| self.output[p].text.clone()),
                        after: self.output.get(i + 1).map(|l| l.text.clone()),
                    });
                }
            }
        }
        count
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    /// Which query this answers (the UI drops answers to older ones).
    pub generation: u64,
    pub query: String,
    /// Hits ordered by recording (in the order indexes loaded) then time.
    pub hits: Vec<SearchHit>,
    /// Hits per recording id.
    pub counts: HashMap<String, usize>,
    /// Recordings searched / without an index.
    pub searched: usize,
    pub missing: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub generation: u64,
    pub query: String,
}

/// Runs `query` over `docs`.
pub fn run_query(docs: &[Arc<SearchDoc>], query: &SearchQuery) -> SearchResults {
    let needle = query.query.trim().to_lowercase();
    let mut results = SearchResults {
        generation: query.generation,
        query: query.query.clone(),
        ..SearchResults::default()
    };
    for doc in docs {
        if doc.missing {
            results.missing += 1;
            continue;
        }
        results.searched += 1;
        if needle.is_empty() {
            continue;
        }
        let start = results.hits.len();
        let count = doc.search(&needle, &mut results.hits);
        results.hits[start..].sort_by(|a, b| a.t.total_cmp(&b.t));
        if count > 0 {
            results.counts.insert(doc.id.clone(), count);
        }
    }
    results
}

/// While indexes stream in, a query is answered again at most this often: each answer scans
/// everything loaded, so answering per arriving document would be quadratic.
const RERUN_INTERVAL: Duration = Duration::from_millis(300);

/// The search task: owns the documents, answers queries (newest only) until both inputs close.
pub async fn run(
    mut docs: UnboundedReceiver<SearchDoc>,
    mut queries: UnboundedReceiver<SearchQuery>,
    results: UnboundedSender<SearchResults>,
) {
    let mut corpus: Vec<Arc<SearchDoc>> = Vec::new();
    let mut current: Option<SearchQuery> = None;
    let mut docs_open = true;
    // New documents arrived since the last answer.
    let mut stale = false;
    let mut last_answer = Instant::now();
    loop {
        let rerun_at = last_answer + RERUN_INTERVAL;
        tokio::select! {
            doc = docs.recv(), if docs_open => {
                match doc {
                    Some(doc) => corpus.push(Arc::new(doc)),
                    None => docs_open = false,
                }
                stale = true;
                continue;
            }
            query = queries.recv() => match query {
                Some(mut query) => {
                    while let Ok(newer) = queries.try_recv() {
                        query = newer;
                    }
                    current = Some(query);
                }
                None => return,
            },
            () = tokio::time::sleep_until(rerun_at), if stale && current.is_some() => {}
        }
        stale = false;
        let Some(query) = current.clone() else {
            continue;
        };
        let snapshot = corpus.clone();
        let answer = tokio::task::spawn_blocking(move || run_query(&snapshot, &query)).await;
        last_answer = Instant::now();
        match answer {
            Ok(answer) => {
                if results.send(answer).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: f64, text: &str) -> TimedText {
        TimedText {
            t,
            text: text.to_string(),
        }
    }

    #[test]
    fn hits_are_case_insensitive_counted_and_carry_context() {
        let a = SearchDoc::new(
            "a",
            vec![line(5.0, "psql -c 'DROP TABLE users'")],
            vec![
                line(1.0, "welcome"),
                line(6.0, "drop table"),
                line(7.0, "ERROR: no"),
            ],
        );
        let b = SearchDoc::new("b", vec![line(1.0, "ls")], vec![]);
        let docs = vec![Arc::new(a), Arc::new(b), Arc::new(SearchDoc::missing("c"))];
        let results = run_query(
            &docs,
            &SearchQuery {
                generation: 7,
                query: "Drop Table".to_string(),
            },
        );
        assert_eq!(results.generation, 7);
        assert_eq!(results.counts.get("a"), Some(&2));
        assert_eq!(results.counts.get("b"), None);
        assert_eq!((results.searched, results.missing), (2, 1));
        let times: Vec<f64> = results.hits.iter().map(|h| h.t).collect();
        assert_eq!(times, vec![5.0, 6.0]);
        assert_eq!(results.hits[0].kind, HitKind::Command);
        assert_eq!(results.hits[0].before.as_deref(), Some("welcome"));
        assert_eq!(results.hits[0].after.as_deref(), Some("drop table"));
        assert_eq!(results.hits[1].after.as_deref(), Some("ERROR: no"));
    }
}
