//! The outbound leg: an SSH client connection from the bastion to a target, with the
//! bastion's own credential, host key verification, and a [`Cutoff`] for the kill.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, Pty};

use super::known_targets::{HostKeyCheck, KnownTargets};
use crate::config::Target;
use crate::session::cutoff::Cutoff;

/// How long reaching a target may take before the user is told it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The terminal the client asked for, passed on to the target.
#[derive(Debug, Clone)]
pub struct PtySpec {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
    pub modes: Vec<(Pty, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to {0}")]
    Timeout(String),
    #[error(
        "host key of {target} changed (expected {expected}, got {presented}); refusing to connect"
    )]
    HostKeyMismatch {
        target: String,
        expected: String,
        presented: String,
    },
    #[error("cannot check the host key of {target}: {source}")]
    KnownTargets {
        target: String,
        source: std::io::Error,
    },
    #[error("cannot read the identity {path}: {source}")]
    Identity {
        path: String,
        source: russh::keys::Error,
    },
    #[error("{target} refused the bastion's key for login {login}")]
    AuthRejected { target: String, login: String },
    #[error("{target} refused the session: {what}")]
    Refused { target: String, what: &'static str },
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
}

/// Verifies the target's host key during the handshake.
pub struct TargetHandler {
    target: String,
    pinned: Option<russh::keys::PublicKey>,
    known: KnownTargets,
}

impl client::Handler for TargetHandler {
    type Error = TargetError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                russh::keys::PublicKey::from(cert.public_key().clone())
            }
        };
        let check = self
            .known
            .check(&self.target, self.pinned.as_ref(), &key)
            .await
            .map_err(|source| TargetError::KnownTargets {
                target: self.target.clone(),
                source,
            })?;
        match check {
            HostKeyCheck::Known => Ok(true),
            HostKeyCheck::Learned => {
                tracing::warn!(target_name = %self.target, "trusting host key on first use");
                Ok(true)
            }
            HostKeyCheck::Mismatch {
                expected,
                presented,
            } => Err(TargetError::HostKeyMismatch {
                target: self.target.clone(),
                expected,
                presented,
            }),
        }
    }
}

/// Algorithms for the target leg: AES-GCM first, since the CPUs a bastion runs on have AES
/// instructions and aws-lc's AES-GCM is several times faster than ChaCha20-Poly1305 there.
/// (On the user leg the user's client chooses; OpenSSH prefers ChaCha20-Poly1305.)
fn target_preferred() -> russh::Preferred {
    use russh::cipher;
    russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(&[
            cipher::AES_256_GCM,
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_CTR,
        ]),
        ..Default::default()
    }
}

/// A live connection to a target and the one session channel opened on it.
pub struct TargetSession {
    pub handle: client::Handle<TargetHandler>,
    pub channel: Channel<client::Msg>,
    pub cutoff: Cutoff,
    /// Output that arrived before the reply to exec/shell, to be passed on first.
    pub early: Vec<russh::ChannelMsg>,
}

/// Connects to `target` as `login`, opens a session channel and starts `command` (or a
/// shell), with a PTY when `pty` is given.
pub async fn open(
    target: &Target,
    login: &str,
    known: &KnownTargets,
    pty: Option<&PtySpec>,
    command: Option<&str>,
) -> Result<TargetSession, TargetError> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        open_inner(target, login, known, pty, command),
    )
    .await
    .map_err(|_| TargetError::Timeout(target.address.clone()))?
}

async fn open_inner(
    target: &Target,
    login: &str,
    known: &KnownTargets,
    pty: Option<&PtySpec>,
    command: Option<&str>,
) -> Result<TargetSession, TargetError> {
    let key = russh::keys::load_secret_key(&target.identity, None).map_err(|source| {
        TargetError::Identity {
            path: target.identity.display().to_string(),
            source,
        }
    })?;
    let tcp = tokio::net::TcpStream::connect(&target.address)
        .await
        .map_err(|source| TargetError::Connect {
            address: target.address.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let (tcp, cutoff) = Cutoff::attach(tcp).map_err(|source| TargetError::Connect {
        address: target.address.clone(),
        source,
    })?;
    let config = Arc::new(client::Config {
        nodelay: true,
        preferred: target_preferred(),
        // The session supervisor decides when a session ends, not an idle timer.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        ..Default::default()
    });
    let handler = TargetHandler {
        target: target.name.clone(),
        pinned: target.host_key.clone(),
        known: known.clone(),
    };
    let mut handle = client::connect_stream(config, tcp, handler).await?;
    let hash = handle.best_supported_rsa_hash().await?.flatten();
    let auth = handle
        .authenticate_publickey(login, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await?;
    if !auth.success() {
        return Err(TargetError::AuthRejected {
            target: target.name.clone(),
            login: login.to_string(),
        });
    }
    let channel = handle.channel_open_session().await?;
    if let Some(pty) = pty {
        channel
            .request_pty(
                false,
                &pty.term,
                pty.cols,
                pty.rows,
                pty.pix_width,
                pty.pix_height,
                &pty.modes,
            )
            .await?;
    }
    match command {
        Some(command) => channel.exec(true, command.as_bytes()).await?,
        None => channel.request_shell(true).await?,
    }
    let mut channel = channel;
    // Wait for the reply to exec/shell. Window adjustments may come first; so, in theory,
    // may output, which is kept for the pump rather than lost.
    let mut early = Vec::new();
    loop {
        match channel.wait().await {
            Some(russh::ChannelMsg::Success) => break,
            Some(russh::ChannelMsg::Failure) => {
                return Err(TargetError::Refused {
                    target: target.name.clone(),
                    what: if command.is_some() { "exec" } else { "shell" },
                });
            }
            Some(russh::ChannelMsg::WindowAdjusted { .. }) => {}
            Some(
                msg @ (russh::ChannelMsg::Data { .. } | russh::ChannelMsg::ExtendedData { .. }),
            ) => early.push(msg),
            Some(_) | None => {
                return Err(TargetError::Refused {
                    target: target.name.clone(),
                    what: "channel",
                });
            }
        }
    }
    Ok(TargetSession {
        handle,
        channel,
        cutoff,
        early,
    })
}
