//! The browser's state: the recordings loaded so far, filters, sort order, the selection, and
//! the text search with its hits. Pure: rows and search results come in as values, and the
//! visible list is recomputed from them.

use std::cmp::Ordering;

use super::field::{Form, TextField};
use crate::catalog::{CatalogEvent, CatalogRow};
use crate::search::{SearchHit, SearchResults};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Start,
    User,
    Target,
    Login,
    Duration,
    EndReason,
    Size,
}

impl SortKey {
    pub const ALL: [SortKey; 7] = [
        SortKey::Start,
        SortKey::User,
        SortKey::Target,
        SortKey::Login,
        SortKey::Duration,
        SortKey::EndReason,
        SortKey::Size,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Start => "start",
            SortKey::User => "user",
            SortKey::Target => "target",
            SortKey::Login => "login",
            SortKey::Duration => "duration",
            SortKey::EndReason => "end reason",
            SortKey::Size => "size",
        }
    }

    fn compare(self, a: &CatalogRow, b: &CatalogRow) -> Ordering {
        match self {
            SortKey::Start => a.started_at.cmp(&b.started_at),
            SortKey::User => a.user.cmp(&b.user),
            SortKey::Target => a.target.cmp(&b.target),
            SortKey::Login => a.login.cmp(&b.login),
            SortKey::Duration => a
                .duration
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.duration.unwrap_or(f64::INFINITY)),
            SortKey::EndReason => a.end_reason.cmp(&b.end_reason),
            SortKey::Size => a.stored_bytes.cmp(&b.stored_bytes),
        }
    }
}

/// The filter form's fields, in order.
pub const FILTER_USER: usize = 0;
pub const FILTER_TARGET: usize = 1;
pub const FILTER_FROM: usize = 2;
pub const FILTER_TO: usize = 3;
pub const FILTER_REASON: usize = 4;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub user: String,
    pub target: String,
    /// `YYYY-MM-DD`, inclusive.
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl Filters {
    pub fn form(&self) -> Form {
        Form::new(vec![
            TextField::new("user", &self.user),
            TextField::new("target", &self.target),
            TextField::new("from (YYYY-MM-DD)", &self.from),
            TextField::new("to (YYYY-MM-DD)", &self.to),
            TextField::new("end reason", &self.reason),
        ])
    }

    pub fn from_form(form: &Form) -> Filters {
        Filters {
            user: form.value(FILTER_USER).trim().to_string(),
            target: form.value(FILTER_TARGET).trim().to_string(),
            from: form.value(FILTER_FROM).trim().to_string(),
            to: form.value(FILTER_TO).trim().to_string(),
            reason: form.value(FILTER_REASON).trim().to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// A date that does not parse filters nothing (the form shows it as invalid).
    pub fn matches(&self, row: &CatalogRow) -> bool {
        let contains = |field: &str, wanted: &str| {
            wanted.is_empty() || field.to_lowercase().contains(&wanted.to_lowercase())
        };
        let date = row.started_at.map(|s| s.date());
        let after =
            crate::units::parse_date(&self.from).is_none_or(|from| date.is_some_and(|d| d >= from));
        let before =
            crate::units::parse_date(&self.to).is_none_or(|to| date.is_some_and(|d| d <= to));
        contains(&row.user, &self.user)
            && contains(&row.target, &self.target)
            && contains(row.end_reason.as_deref().unwrap_or(""), &self.reason)
            && after
            && before
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserFocus {
    Table,
    Hits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrowserState {
    pub rows: Vec<CatalogRow>,
    /// Indices into `rows` in display order.
    pub visible: Vec<usize>,
    /// Position in `visible`.
    pub selected: usize,
    pub sort: SortKey,
    pub descending: bool,
    pub filters: Filters,
    pub filter_form: Option<Form>,
    /// The search box while it is being typed in.
    pub search_field: Option<TextField>,
    pub query: String,
    pub query_generation: u64,
    pub results: Option<SearchResults>,
    pub focus: BrowserFocus,
    pub hit_selected: usize,
    /// Recordings listed / expected, for the loading indicator.
    pub total: Option<usize>,
    pub error: Option<String>,
}

impl Default for BrowserState {
    fn default() -> Self {
        BrowserState {
            rows: Vec::new(),
            visible: Vec::new(),
            selected: 0,
            sort: SortKey::Start,
            descending: true,
            filters: Filters::default(),
            filter_form: None,
            search_field: None,
            query: String::new(),
            query_generation: 0,
            results: None,
            focus: BrowserFocus::Table,
            hit_selected: 0,
            total: None,
            error: None,
        }
    }
}

impl BrowserState {
    pub fn apply(&mut self, event: CatalogEvent) {
        match event {
            CatalogEvent::Listed { total } => self.total = Some(total),
            CatalogEvent::Rows(rows) => {
                self.rows.extend(rows);
                self.refresh();
            }
            CatalogEvent::Verified { id, verified } => {
                if let Some(row) = self.rows.iter_mut().find(|r| r.id == id) {
                    row.verified = verified;
                }
            }
            CatalogEvent::Failed(error) => self.error = Some(error),
        }
    }

    /// Results for the current query only; answers to older queries are dropped.
    pub fn apply_results(&mut self, results: SearchResults) {
        if results.generation == self.query_generation {
            self.results = Some(results);
            self.hit_selected = 0;
            self.refresh();
        }
    }

    /// The search answer matching the current query, if any.
    pub fn active_results(&self) -> Option<&SearchResults> {
        self.results
            .as_ref()
            .filter(|r| !self.query.is_empty() && r.query == self.query)
    }

    /// Starts a new query; the caller sends it to the search task.
    pub fn set_query(&mut self, query: &str) -> crate::search::SearchQuery {
        self.query = query.trim().to_string();
        self.query_generation += 1;
        self.refresh();
        crate::search::SearchQuery {
            generation: self.query_generation,
            query: self.query.clone(),
        }
    }

    /// Recomputes the visible rows, keeping the selected recording selected if still shown.
    pub fn refresh(&mut self) {
        let selected_id = self.selected_row().map(|r| r.id.clone());
        let counts = self.active_results().map(|r| &r.counts);
        let searching = !self.query.is_empty();
        let mut visible: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.filters.matches(&self.rows[i]))
            .filter(|&i| !searching || counts.is_some_and(|c| c.contains_key(&self.rows[i].id)))
            .collect();
        let (sort, descending) = (self.sort, self.descending);
        visible.sort_by(|&a, &b| {
            let order = sort
                .compare(&self.rows[a], &self.rows[b])
                .then_with(|| self.rows[a].id.cmp(&self.rows[b].id));
            if descending { order.reverse() } else { order }
        });
        self.visible = visible;
        self.selected = selected_id
            .and_then(|id| self.visible.iter().position(|&i| self.rows[i].id == id))
            .unwrap_or(0)
            .min(self.visible.len().saturating_sub(1));
    }

    pub fn selected_row(&self) -> Option<&CatalogRow> {
        self.visible.get(self.selected).map(|&i| &self.rows[i])
    }

    /// Hits of the selected recording.
    pub fn selected_hits(&self) -> Vec<&SearchHit> {
        let (Some(results), Some(row)) = (self.active_results(), self.selected_row()) else {
            return Vec::new();
        };
        results.hits.iter().filter(|h| h.id == row.id).collect()
    }

    pub fn move_selection(&mut self, delta: isize) {
        match self.focus {
            BrowserFocus::Table => {
                let last = self.visible.len().saturating_sub(1);
                self.selected = self.selected.saturating_add_signed(delta).min(last);
                self.hit_selected = 0;
            }
            BrowserFocus::Hits => {
                let last = self.selected_hits().len().saturating_sub(1);
                self.hit_selected = self.hit_selected.saturating_add_signed(delta).min(last);
            }
        }
    }

    pub fn sort_next(&mut self) {
        let at = SortKey::ALL
            .iter()
            .position(|k| *k == self.sort)
            .unwrap_or(0);
        self.sort = SortKey::ALL[(at + 1) % SortKey::ALL.len()];
        self.refresh();
    }

    pub fn sort_reverse(&mut self) {
        self.descending = !self.descending;
        self.refresh();
    }

    /// What Enter opens: the selected recording, at the selected hit (or the first hit).
    pub fn open_target(&self) -> Option<(String, Option<f64>)> {
        let row = self.selected_row()?;
        let hits = self.selected_hits();
        let at = match self.focus {
            BrowserFocus::Hits => hits.get(self.hit_selected).map(|h| h.t),
            BrowserFocus::Table => hits.first().map(|h| h.t),
        };
        Some((row.id.clone(), at))
    }

    pub fn clear(&mut self) {
        self.filters = Filters::default();
        self.query.clear();
        self.results = None;
        self.focus = BrowserFocus::Table;
        self.refresh();
    }

    /// Forgets the loaded rows before a reload.
    pub fn reset_rows(&mut self) {
        self.rows.clear();
        self.visible.clear();
        self.selected = 0;
        self.total = None;
        self.error = None;
    }
}
