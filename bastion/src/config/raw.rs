//! The configuration file exactly as written: serde structs that mirror the TOML keys, plus the
//! translation of TOML/serde error positions into dotted key paths (`targets[1].logins`).
//!
//! Nothing here is validated beyond its TOML type; `validate.rs` turns these into `Config`.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub database_url: Option<String>,
    pub recordings: Option<String>,
    pub warn_before: Option<Vec<String>>,
    pub audit_log: Option<String>,
    pub host_key: Option<String>,
    pub signing_key: Option<String>,
    pub access_hint: Option<String>,
    pub grant_poll: Option<String>,
    pub node_id: Option<String>,
    pub login_grace: Option<String>,
    pub limits: Option<RawLimits>,
    pub recording: Option<RawRecording>,
    pub replay: Option<RawReplay>,
    pub s3: Option<RawS3>,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
    pub api: Option<RawApi>,
    pub slack: Option<RawSlack>,
    #[serde(default)]
    pub notify: Vec<RawNotify>,
    pub nodes: Option<RawNodes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub max_body: Option<RawByteSize>,
    #[serde(default)]
    pub admins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlack {
    pub signing_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub url: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNodes {
    pub stale_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub unauthenticated: Option<i64>,
    pub unauthenticated_per_source: Option<i64>,
    pub connections: Option<i64>,
    pub sessions_per_user: Option<i64>,
    pub idle: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecording {
    pub segment_interval: Option<String>,
    pub segment_bytes: Option<RawByteSize>,
    pub spool_max_bytes: Option<RawByteSize>,
}

/// `[replay]`: read by bastion-replay; accepted here so one file serves both programs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReplay {
    #[serde(default)]
    pub allow_end_session: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawS3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
}

/// `segment_bytes = 1048576` and `segment_bytes = "1MiB"` are both accepted.
#[derive(Debug)]
pub(super) enum RawByteSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of bytes or a size like \"1MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawByteSize, E> {
                Ok(RawByteSize::Bytes(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawByteSize, E> {
                i64::try_from(v)
                    .map(RawByteSize::Bytes)
                    .map_err(|_| E::custom(format!("size {v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawByteSize, E> {
                Ok(RawByteSize::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub name: String,
    pub keys: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's Slack member id (`U0123ABC`), for approvals from Slack.
    pub slack_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub name: String,
    pub address: String,
    pub logins: Vec<String>,
    pub identity: String,
    pub host_key: Option<String>,
    #[serde(default)]
    pub fail_open: bool,
    #[serde(default = "yes")]
    pub record: bool,
}

/// A `[[policies]]` entry. Keys the file must have are `Option` or default to empty so the
/// error names the key and says what to write, instead of serde's "missing field".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub name: Option<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub requesters: Vec<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
    pub approvals: Option<i64>,
    pub max_duration: Option<String>,
    #[serde(default)]
    pub logins: Vec<String>,
    #[serde(default = "yes")]
    pub require_reason: bool,
    pub request_ttl: Option<String>,
    #[serde(default)]
    pub auto_approve: Vec<RawAutoApprove>,
    #[serde(default)]
    pub break_glass: Vec<String>,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default = "yes")]
    pub pty: bool,
}

/// One rule of a policy's `auto_approve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutoApprove {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub logins: Vec<String>,
    pub max_duration: Option<String>,
}

fn yes() -> bool {
    true
}

/// The dotted key path of the innermost key or value whose source span contains `span`,
/// e.g. `targets[1].logins[0]`; empty when the span lies outside every key (top level).
pub(super) fn key_path_at(root: &DeTable<'_>, span: &Range<usize>) -> String {
    let mut path = String::new();
    walk_table(root, span, &mut path);
    path
}

fn walk_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut String) {
    for (key, value) in table.iter() {
        let on_key = contains(&key.span(), span);
        if on_key || contains(&value.span(), span) || value_contains(value, span) {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key.get_ref());
            if !on_key {
                walk_value(value, span, path);
            }
            return;
        }
    }
}

fn walk_value(value: &Spanned<DeValue<'_>>, span: &Range<usize>, path: &mut String) {
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, span, path),
        DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                if contains(&item.span(), span) || value_contains(item, span) {
                    path.push_str(&format!("[{index}]"));
                    walk_value(item, span, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Whether any key or value nested inside `value` contains `span`. Needed because the span of an
/// `[[array]]` element or a `[table]` does not always cover the keys written under its header.
fn value_contains(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => table.iter().any(|(key, value)| {
            contains(&key.span(), span)
                || contains(&value.span(), span)
                || value_contains(value, span)
        }),
        DeValue::Array(array) => array
            .iter()
            .any(|item| contains(&item.span(), span) || value_contains(item, span)),
        _ => false,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// 1-based line and column of byte offset `at` in `text`.
pub(super) fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
