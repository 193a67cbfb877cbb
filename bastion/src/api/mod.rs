//! The HTTP face (`[api]`): the access workflow (request, approve, deny, revoke, extend, end a
//! session, audit) as versioned JSON endpoints, and Slack's interactive buttons.
//!
//! It calls the same grant service (`access::Access`) as `ssh bastion VERB` and the admin
//! command, so the three faces cannot drift. Calls are authenticated by bearer tokens
//! (`bastion token create`), attributed to the token's user and audited with its name.
//! The document in `bastion/api/openapi.json` describes every endpoint and is served at
//! `/v1/openapi.json`; the end-to-end tests check the server against it.
//!
//! Serving: TLS with rustls when `tls_cert`/`tls_key` are set, else plain HTTP on loopback
//! only (config validation refuses anything else). What a peer can hold is bounded: 512
//! connections in all and 32 per source address, 10 s for the TLS handshake and for each
//! request's headers, two minutes per connection, `max_body` bytes of body, 30 s of waiting
//! per request (whose work, once started, always completes and is audited).

mod audit;
mod auth;
mod body;
mod error;
mod grants;
mod requests;
mod sessions;
mod slack;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::Access;
use crate::config::{ApiSettings, TlsFiles};
use crate::notify::NotifyStats;

pub use error::ApiError;
pub use slack::{signature as slack_signature, verify_signature as verify_slack_signature};

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../api/openapi.json");

/// Connections the API holds at once; more are closed at once.
const MAX_CONNECTIONS: usize = 512;
/// Connections one source address may hold, so one client cannot take every place.
const MAX_CONNECTIONS_PER_SOURCE: usize = 32;
/// A connection is asked to close after this long (between requests), and cut 10 s later:
/// a client that stops reading holds its place no longer than this.
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(120);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub access: Access,
    /// For posting to Slack's `response_url`.
    pub http: reqwest::Client,
    pub node_id: String,
    /// What the webhooks delivered and gave up, for `/healthz`.
    pub notify: Arc<NotifyStats>,
}

/// The peer's address, put on each request by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Why the API could not start; the daemon then does not start either.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("cannot listen on {addr} (api.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read TLS {what} {path} (api.{key}): {reason}")]
    Tls {
        what: &'static str,
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A bound API listener, ready to serve.
pub struct ApiListener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    max_body: usize,
}

impl ApiListener {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Loads the TLS files and binds `settings.listen`.
pub async fn bind(settings: &ApiSettings) -> Result<ApiListener, ApiStartError> {
    let tls = settings.tls.as_ref().map(acceptor).transpose()?;
    let tcp = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ApiStartError::Bind {
            addr: settings.listen,
            source,
        })?;
    Ok(ApiListener {
        tcp,
        tls,
        max_body: settings.max_body,
    })
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ApiStartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_error = |what, key, path: &std::path::Path, reason: String| ApiStartError::Tls {
        what,
        key,
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| tls_error("certificate", "tls_cert", &files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(
            "certificate",
            "tls_cert",
            &files.cert,
            "no PEM certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_error("key", "tls_key", &files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| tls_error("key", "tls_key", &files.key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The state handlers share, with the HTTP client Slack replies go through.
pub fn state(
    access: Access,
    node_id: String,
    notify: Arc<NotifyStats>,
) -> Result<ApiState, ApiStartError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ApiStartError::Client(e.to_string()))?;
    Ok(ApiState {
        access,
        http,
        node_id,
        notify,
    })
}

/// Every route.
pub fn router(state: ApiState, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/requests", post(requests::file).get(requests::list))
        .route("/v1/requests/{id}", get(requests::show))
        .route("/v1/requests/{id}/approve", post(requests::approve))
        .route("/v1/requests/{id}/deny", post(requests::deny))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/grants", get(grants::list))
        .route("/v1/grants/{id}", axum::routing::delete(grants::revoke))
        .route("/v1/grants/{id}/extend", post(grants::extend))
        .route("/v1/sessions", get(sessions::list))
        .route("/v1/sessions/{id}/end", post(sessions::end))
        .route("/v1/audit", get(audit::page))
        .route("/v1/slack/interactions", post(slack::interactions))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(deadline))
        .with_state(state)
}

/// Runs each request in a task of its own, so a step that changed the database always goes
/// on to write its audit event, even when the client hangs up or the answer times out; the
/// client waits at most `REQUEST_TIMEOUT`.
async fn deadline(request: Request, next: Next) -> Response {
    let work = tokio::spawn(next.run(request));
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "api: a request's task failed");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed; it is logged",
            )
            .into_response()
        }
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; it may still complete: check its result before retrying",
        )
        .into_response(),
    }
}

/// Places held per source address.
#[derive(Default)]
struct Sources {
    held: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One source's place, given back on drop.
struct SourceSlot {
    sources: Arc<Sources>,
    ip: std::net::IpAddr,
}

impl Sources {
    fn take(self: &Arc<Sources>, ip: std::net::IpAddr) -> Option<SourceSlot> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(ip).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            sources: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self
            .sources
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

async fn healthz(State(state): State<ApiState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "node": state.node_id,
        "notifications": state.notify.counts(),
    }))
    .into_response()
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// Serves until `shutdown`; each connection is a task on `tracker`.
pub async fn serve(
    listener: ApiListener,
    state: ApiState,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let router = router(state, listener.max_body);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let sources = Arc::new(Sources::default());
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "api: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = slots.clone().try_acquire_owned().ok();
        let source = sources.take(peer.ip());
        let (Some(slot), Some(source)) = (slot, source) else {
            // At most one line a minute: a flood must not flood the log too.
            if last_refusal_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                last_refusal_log = Some(tokio::time::Instant::now());
                tracing::warn!(%peer, "api: connection limit reached (in total or for this source); refusing connections");
            }
            continue;
        };
        let service = router.clone().layer(axum::Extension(Peer(peer)));
        let tls = listener.tls.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _slot = (slot, source);
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(TokioIo::new(stream), service, shutdown).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "api: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "api: TLS handshake timed out"),
                    }
                }
                None => connection(TokioIo::new(tcp), service, shutdown).await,
            }
        });
    }
}

async fn connection<I>(io: I, service: Router, shutdown: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "api: connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => {}
    }
    // Finish the request in flight (its work goes on in its own task anyway), then close.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
}
