//! The keys of the remote faces: `[api]` (the HTTP API), `[slack]` (interactive approvals),
//! `[[notify]]` (webhooks told about requests and decisions) and `[nodes]` (how long a node
//! may be silent before its sessions count as stale).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::check::Checker;
use super::raw::{RawApi, RawNodes, RawNotify, RawSlack};
use super::{ConfigError, Principal, User};

/// The environment variable that supplies `[slack] signing_secret` (and wins over the file),
/// so the secret can stay out of a file others may read.
pub const SLACK_SECRET_ENV: &str = "BASTION_SLACK_SIGNING_SECRET";

/// A request body larger than this is refused with 413 unless `[api] max_body` says otherwise.
const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Slack's own interaction payloads stay far below this.
const MAX_MAX_BODY: usize = 16 * 1024 * 1024;
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// `[api]`: the HTTP API, off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// PEM certificate chain and key; without them the API is plain HTTP, which is only
    /// allowed on a loopback address (behind a reverse proxy).
    pub tls: Option<TlsFiles>,
    /// The largest request body accepted (413 above it).
    pub max_body: usize,
    /// Who may act on every user's grants and sessions and read the audit trail through the
    /// API (`admins`: user names and `group:NAME`). Everyone else acts on their own, and as
    /// approver on what their policies let them decide.
    pub admins: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[slack]`: what Slack's interactive messages need. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SlackSettings {
    /// The app's signing secret (from the file or `BASTION_SLACK_SIGNING_SECRET`); without it
    /// the interaction endpoint refuses every call.
    pub signing_secret: Option<String>,
}

impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "(hidden)"),
            )
            .finish()
    }
}

/// Which chat format a webhook takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// A Slack incoming webhook: Block Kit with Approve/Deny buttons.
    Slack,
    /// A Microsoft Teams workflow/incoming webhook: an Adaptive Card.
    Teams,
}

/// One `[[notify]]` entry. Its `Debug` shows only the URL's scheme and host: the rest of a
/// webhook URL is its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Notify {
    pub url: String,
    pub kind: NotifyKind,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = url::Url::parse(&self.url).map_or_else(
            |_| "(invalid)".to_string(),
            |u| format!("{}://{}/...", u.scheme(), u.host_str().unwrap_or("")),
        );
        f.debug_struct("Notify")
            .field("url", &shown)
            .field("kind", &self.kind)
            .finish()
    }
}

/// `[nodes]`: several bastion nodes sharing one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSettings {
    /// A node that has not said it is alive for this long is stale: `bastion sessions list
    /// --stale` shows its open sessions.
    pub stale_after: Duration,
}

impl Default for NodeSettings {
    fn default() -> NodeSettings {
        NodeSettings {
            stale_after: DEFAULT_STALE_AFTER,
        }
    }
}

pub(super) fn api(
    check: &Checker<'_>,
    raw: Option<RawApi>,
    users: &[User],
) -> Result<Option<ApiSettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let Some(listen_text) = raw.listen else {
        if raw.tls_cert.is_some()
            || raw.tls_key.is_some()
            || raw.max_body.is_some()
            || !raw.admins.is_empty()
        {
            return Err(check.err(
                "api.listen",
                "must be set to serve the API (e.g. \"127.0.0.1:8080\")",
            ));
        }
        return Ok(None);
    };
    let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
        check.err(
            "api.listen",
            format!(
                "invalid socket address {listen_text:?} (expected ip:port, e.g. \"127.0.0.1:8080\")"
            ),
        )
    })?;
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: check.path("api.tls_cert", &cert)?,
            key: check.path("api.tls_key", &key)?,
        }),
        (Some(_), None) => {
            return Err(check.err("api.tls_key", "must be set together with api.tls_cert"));
        }
        (None, Some(_)) => {
            return Err(check.err("api.tls_cert", "must be set together with api.tls_key"));
        }
        (None, None) => None,
    };
    if tls.is_none() && !listen.ip().is_loopback() {
        return Err(check.err(
            "api.listen",
            format!(
                "{listen} is not a loopback address: plain HTTP would carry bearer tokens in the clear; set api.tls_cert and api.tls_key, or listen on 127.0.0.1 behind a TLS reverse proxy"
            ),
        ));
    }
    let max_body = match &raw.max_body {
        Some(size) => {
            let n = super::validate::byte_size(size)
                .map_err(|reason| check.err("api.max_body", reason))?;
            if !(1024..=MAX_MAX_BODY).contains(&n) {
                return Err(check.err(
                    "api.max_body",
                    format!("must be between 1KiB and 16MiB (got {n} bytes)"),
                ));
            }
            n
        }
        None => DEFAULT_MAX_BODY,
    };
    let admins = super::policy::principals(check, "api.admins", raw.admins, users)?;
    Ok(Some(ApiSettings {
        listen,
        tls,
        max_body,
        admins,
    }))
}

pub(super) fn slack(
    check: &Checker<'_>,
    raw: Option<RawSlack>,
) -> Result<SlackSettings, ConfigError> {
    let from_file = match raw.and_then(|raw| raw.signing_secret) {
        Some(secret) if secret.trim().is_empty() => {
            return Err(check.err("slack.signing_secret", "must not be empty"));
        }
        other => other,
    };
    let from_env = std::env::var(SLACK_SECRET_ENV)
        .ok()
        .filter(|secret| !secret.trim().is_empty());
    Ok(SlackSettings {
        signing_secret: from_env.or(from_file),
    })
}

pub(super) fn notify(check: &Checker<'_>, raw: Vec<RawNotify>) -> Result<Vec<Notify>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let kind = match entry.kind.as_deref() {
                Some("slack") => NotifyKind::Slack,
                Some("teams") => NotifyKind::Teams,
                Some(other) => {
                    return Err(check.err(
                        format!("notify[{i}].kind"),
                        format!("unknown kind {other:?} (expected \"slack\" or \"teams\")"),
                    ));
                }
                None => {
                    return Err(check.err(
                        format!("notify[{i}].kind"),
                        "must be set: \"slack\" or \"teams\"",
                    ));
                }
            };
            let Some(url) = entry.url else {
                return Err(check.err(format!("notify[{i}].url"), "must be set"));
            };
            match url::Url::parse(url.trim()) {
                Ok(parsed) if parsed.scheme() == "https" && parsed.has_host() => {}
                // The URL is the webhook's secret: plain http only to this machine (a relay).
                Ok(parsed) if parsed.scheme() == "http" && is_loopback(&parsed) => {}
                _ => {
                    return Err(check.err(
                        format!("notify[{i}].url"),
                        format!(
                            "invalid webhook url {:?} (expected https://...)",
                            super::redact_url(&url)
                        ),
                    ));
                }
            }
            Ok(Notify {
                url: url.trim().to_string(),
                kind,
            })
        })
        .collect()
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

pub(super) fn nodes(
    check: &Checker<'_>,
    raw: Option<RawNodes>,
) -> Result<NodeSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    Ok(NodeSettings {
        stale_after: match raw.stale_after.as_deref() {
            Some(text) => check.duration("nodes.stale_after", text)?,
            None => DEFAULT_STALE_AFTER,
        },
    })
}
