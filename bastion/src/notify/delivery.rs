//! Posting to webhooks, off every request's and session's path: one bounded queue and one
//! worker task per `[[notify]]` entry, so a webhook that hangs or fails delays only its own
//! messages. Each message is tried up to [`MAX_ATTEMPTS`] times with exponential backoff and
//! jitter, then given up; a full queue drops the message at once. Whatever is given up or
//! dropped is logged and counted ([`NotifyStats`]).
//!
//! A webhook URL carries its secret in the path, so logs name a webhook by scheme and host
//! only, and `reqwest` errors are stripped of their URL before they are logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Notify, NotifyKind};

/// Messages waiting for one webhook at most; beyond it new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 256;
/// Tries per message, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// Connecting and the whole exchange, each; a webhook slower than this counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The wait after the first failed try; it doubles after each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error response is quoted in the log.
const MAX_ERROR_BODY: usize = 200;

/// What delivery has done since the daemon started; shared with whoever reports health.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Messages a webhook accepted (2xx).
    pub delivered: AtomicU64,
    /// Messages given up: every try failed, the webhook refused it for good (4xx), or its
    /// queue was full.
    pub failed: AtomicU64,
    /// Tries that failed and were tried again.
    pub retried: AtomicU64,
}

/// A reading of [`NotifyStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NotifyCounts {
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
}

impl NotifyStats {
    pub fn counts(&self) -> NotifyCounts {
        NotifyCounts {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

/// One message for one webhook.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// The JSON body.
    pub body: Vec<u8>,
    /// The audit event it reports, for logs.
    pub event: &'static str,
    pub request: String,
}

/// The sending side of one webhook's queue.
#[derive(Debug)]
pub(super) struct Webhook {
    queue: mpsc::Sender<Outgoing>,
    kind: NotifyKind,
    /// Scheme and host: what logs call it.
    shown: String,
    stats: Arc<NotifyStats>,
}

impl Webhook {
    /// Starts the worker for `notify` on `tracker`; it stops at `shutdown`, dropping what is
    /// still queued.
    pub(super) fn start(
        notify: &Notify,
        client: reqwest::Client,
        stats: Arc<NotifyStats>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Webhook {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shown = shown(&notify.url);
        let worker = Worker {
            url: notify.url.clone(),
            shown: shown.clone(),
            client,
            stats: stats.clone(),
            shutdown,
        };
        tracker.spawn(worker.run(receiver));
        Webhook {
            queue,
            kind: notify.kind,
            shown,
            stats,
        }
    }

    pub(super) fn kind(&self) -> NotifyKind {
        self.kind
    }

    /// Queues `outgoing` without waiting: a full queue (the webhook is far behind) drops it,
    /// logged and counted as failed.
    pub(super) fn offer(&self, outgoing: Outgoing) {
        if let Err(err) = self.queue.try_send(outgoing) {
            let (outgoing, why) = match err {
                mpsc::error::TrySendError::Full(o) => (o, "its queue is full"),
                mpsc::error::TrySendError::Closed(o) => (o, "its worker has stopped"),
            };
            let failed = self.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                webhook = %self.shown,
                event = outgoing.event,
                request = %outgoing.request,
                failed_total = failed,
                "webhook notification dropped: {why}"
            );
        }
    }
}

/// The shared HTTP client: short timeouts, no redirects (a webhook answers itself).
pub(super) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bastion/", env!("CARGO_PKG_VERSION")))
        .build()
}

struct Worker {
    url: String,
    shown: String,
    client: reqwest::Client,
    stats: Arc<NotifyStats>,
    shutdown: CancellationToken,
}

/// Why one try failed, and whether another may do better.
struct Failure {
    reason: String,
    retry: bool,
}

impl Worker {
    async fn run(self, mut receiver: mpsc::Receiver<Outgoing>) {
        loop {
            let outgoing = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                next = receiver.recv() => match next {
                    Some(outgoing) => outgoing,
                    None => return,
                },
            };
            self.deliver(outgoing).await;
        }
    }

    async fn deliver(&self, outgoing: Outgoing) {
        let mut attempt = 1;
        let failure = loop {
            let tried = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                tried = self.post(&outgoing.body) => tried,
            };
            let failure = match tried {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(webhook = %self.shown, event = outgoing.event, request = %outgoing.request, attempt, "webhook notified");
                    return;
                }
                Err(failure) => failure,
            };
            if !failure.retry || attempt >= MAX_ATTEMPTS {
                break failure;
            }
            let delay = backoff(attempt);
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                webhook = %self.shown,
                event = outgoing.event,
                request = %outgoing.request,
                attempt,
                error = %failure.reason,
                "webhook delivery failed; retrying in {delay:?}"
            );
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
        };
        let failed = self.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            webhook = %self.shown,
            event = outgoing.event,
            request = %outgoing.request,
            attempts = attempt,
            error = %failure.reason,
            failed_total = failed,
            "webhook delivery failed; giving up"
        );
    }

    async fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|err| Failure {
                reason: chain(&err.without_url()),
                retry: true,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Overloaded or broken for now: worth another try. Any other refusal (a revoked
        // webhook, a payload it rejects) will be refused again.
        let retry = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        let mut response = response;
        let quoted = match response.chunk().await {
            Ok(Some(bytes)) => {
                let text =
                    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ERROR_BODY)]).into_owned();
                format!(": {}", crate::text::capped(text.trim()))
            }
            _ => String::new(),
        };
        Err(Failure {
            reason: format!("HTTP {status}{quoted}"),
            retry,
        })
    }
}

/// `err` and its causes, `: `-joined ("error sending request: operation timed out"); the
/// URL is already stripped from `err`, and its causes (connection errors) do not carry it.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The wait after failed try `attempt` (1-based): `FIRST_BACKOFF` doubled per try, capped,
/// plus up to half again at random so webhooks failing together do not retry together.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let jitter_ms = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
    base + Duration::from_millis(jitter_ms)
}

/// `https://hooks.slack.com`: the webhook without the path that holds its secret.
pub(super) fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}", parsed.scheme()),
            _ => parsed.scheme().to_string(),
        },
        Err(_) => "(unparsable webhook url)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (queue, mut receiver) = mpsc::channel(1);
        let stats = Arc::new(NotifyStats::default());
        let webhook = Webhook {
            queue,
            kind: NotifyKind::Slack,
            shown: shown("https://hooks.slack.com/services/SECRET"),
            stats: stats.clone(),
        };
        let outgoing = |request: &str| Outgoing {
            body: b"{}".to_vec(),
            event: "request.filed",
            request: request.to_string(),
        };
        webhook.offer(outgoing("r-aaaa"));
        webhook.offer(outgoing("r-bbbb"));
        assert_eq!(
            stats.counts(),
            NotifyCounts {
                delivered: 0,
                failed: 1,
                retried: 0
            }
        );
        assert_eq!(receiver.try_recv().unwrap().request, "r-aaaa");
        assert!(receiver.try_recv().is_err(), "the second was dropped");
        drop(receiver);
        webhook.offer(outgoing("r-cccc"));
        assert_eq!(stats.counts().failed, 2, "a stopped worker counts too");
    }

    #[test]
    fn logs_never_show_the_secret_path() {
        assert_eq!(
            shown("https://hooks.slack.com/services/T000/B000/SECRET"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            shown("http://user:pw@127.0.0.1:8080/hook?token=SECRET"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 1..=8 {
            let base = (FIRST_BACKOFF * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
            let delay = backoff(attempt);
            assert!(
                delay >= base && delay <= base + base / 2,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(backoff(u32::MAX) <= MAX_BACKOFF + MAX_BACKOFF / 2);
    }
}
