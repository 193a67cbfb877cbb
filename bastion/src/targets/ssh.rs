//! The SSH target leg: a russh client connection from the bastion to a target host, with the
//! bastion's own credential, host key verification, and a [`Cutoff`] for the kill. It
//! implements the session's leg traits, so the supervisor never sees a russh type.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty, Sig};

use super::known_hosts::{HostKeyCheck, KnownTargets, KnownTargetsError};
use crate::config::Target;
use crate::cutoff::Cutoff;
use crate::session::leg::{
    Exit, LegClosed, OutputStream, Signal, TargetControl, TargetEvent, TargetOutput, TermSize,
};

/// How long reaching a target may take before the user is told it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the target gets to act on the kill signal and disconnect before its socket is cut.
const TARGET_CLOSE_GRACE: Duration = Duration::from_millis(200);

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
        source: KnownTargetsError,
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
    address: String,
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
            .check(&self.target, &self.address, self.pinned.as_ref(), &key)
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

/// A live connection to a target and the one session channel opened on it, as the two
/// halves the session drives.
pub struct TargetSession {
    pub control: Arc<SshControl>,
    pub output: SshOutput,
}

/// The input direction and the end of an SSH target leg.
pub struct SshControl {
    /// Taken when the leg ends.
    handle: Mutex<Option<client::Handle<TargetHandler>>>,
    tx: ChannelWriteHalf<client::Msg>,
    cutoff: Cutoff,
}

/// The output direction of an SSH target leg.
pub struct SshOutput {
    /// Output that arrived before the reply to exec/shell, passed on first.
    early: VecDeque<ChannelMsg>,
    rx: ChannelReadHalf,
    closed: bool,
}

impl SshControl {
    /// Severs the connection at once (used when a session cannot start after all).
    pub fn cut(&self) {
        self.cutoff.cut();
    }
}

impl TargetControl for SshControl {
    fn send(&self, data: Bytes) -> BoxFuture<'_, Result<(), LegClosed>> {
        async move { self.tx.data_bytes(data).await.map_err(|_| LegClosed) }.boxed()
    }

    fn eof(&self) -> BoxFuture<'_, ()> {
        async move {
            let _ = self.tx.eof().await;
        }
        .boxed()
    }

    fn resize(&self, size: TermSize) -> BoxFuture<'_, ()> {
        async move {
            let _ = self
                .tx
                .window_change(size.cols, size.rows, size.pix_width, size.pix_height)
                .await;
        }
        .boxed()
    }

    fn signal(&self, signal: Signal) -> BoxFuture<'_, ()> {
        async move {
            let _ = self.tx.signal(to_russh(&signal)).await;
        }
        .boxed()
    }

    fn end(&self, kill: bool) -> BoxFuture<'_, ()> {
        async move {
            let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
            let polite = async {
                let Some(mut handle) = handle else { return };
                if kill {
                    let _ = self.tx.signal(Sig::KILL).await;
                }
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "session ended by bastion",
                        "en",
                    )
                    .await;
                // The handle resolves once the connection task has written the disconnect and
                // ended; cutting before that would drop the kill signal unsent.
                let _ = (&mut handle).await;
            };
            let _ = tokio::time::timeout(TARGET_CLOSE_GRACE, polite).await;
            self.cutoff.cut();
        }
        .boxed()
    }
}

impl TargetOutput for SshOutput {
    fn next(&mut self) -> BoxFuture<'_, TargetEvent> {
        async move {
            loop {
                if self.closed {
                    return TargetEvent::Closed;
                }
                let msg = match self.early.pop_front() {
                    Some(msg) => msg,
                    None => match self.rx.wait().await {
                        Some(msg) => msg,
                        None => ChannelMsg::Close,
                    },
                };
                return match msg {
                    ChannelMsg::Data { data } => TargetEvent::Output {
                        stream: OutputStream::Stdout,
                        data,
                    },
                    // SSH defines one extended stream, stderr (1); any other is shown there too.
                    ChannelMsg::ExtendedData { data, .. } => TargetEvent::Output {
                        stream: OutputStream::Stderr,
                        data,
                    },
                    ChannelMsg::Eof => TargetEvent::Eof,
                    ChannelMsg::ExitStatus { exit_status } => {
                        TargetEvent::Exit(Exit::Status(exit_status))
                    }
                    ChannelMsg::ExitSignal {
                        signal_name,
                        core_dumped,
                        error_message,
                        ..
                    } => TargetEvent::Exit(Exit::Signal {
                        name: from_russh(&signal_name).name().to_string(),
                        core_dumped,
                        message: error_message,
                    }),
                    ChannelMsg::Close => {
                        self.closed = true;
                        TargetEvent::Closed
                    }
                    _ => continue,
                };
            }
        }
        .boxed()
    }
}

/// The russh signal for a session signal.
pub fn to_russh(signal: &Signal) -> Sig {
    match signal {
        Signal::Abrt => Sig::ABRT,
        Signal::Alrm => Sig::ALRM,
        Signal::Fpe => Sig::FPE,
        Signal::Hup => Sig::HUP,
        Signal::Ill => Sig::ILL,
        Signal::Int => Sig::INT,
        Signal::Kill => Sig::KILL,
        Signal::Pipe => Sig::PIPE,
        Signal::Quit => Sig::QUIT,
        Signal::Segv => Sig::SEGV,
        Signal::Term => Sig::TERM,
        Signal::Usr1 => Sig::USR1,
        Signal::Other(name) => Sig::Custom(name.clone()),
    }
}

/// The session signal for a russh signal.
pub fn from_russh(sig: &Sig) -> Signal {
    match sig {
        Sig::ABRT => Signal::Abrt,
        Sig::ALRM => Signal::Alrm,
        Sig::FPE => Signal::Fpe,
        Sig::HUP => Signal::Hup,
        Sig::ILL => Signal::Ill,
        Sig::INT => Signal::Int,
        Sig::KILL => Signal::Kill,
        Sig::PIPE => Signal::Pipe,
        Sig::QUIT => Signal::Quit,
        Sig::SEGV => Signal::Segv,
        Sig::TERM => Signal::Term,
        Sig::USR1 => Signal::Usr1,
        Sig::Custom(name) => Signal::from_name(name),
    }
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
        address: target.address.clone(),
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
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) => {
                return Err(TargetError::Refused {
                    target: target.name.clone(),
                    what: if command.is_some() { "exec" } else { "shell" },
                });
            }
            Some(ChannelMsg::WindowAdjusted { .. }) => {}
            Some(msg @ (ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. })) => {
                early.push(msg)
            }
            Some(_) | None => {
                return Err(TargetError::Refused {
                    target: target.name.clone(),
                    what: "channel",
                });
            }
        }
    }
    let (rx, tx) = channel.split();
    Ok(TargetSession {
        control: Arc::new(SshControl {
            handle: Mutex::new(Some(handle)),
            tx,
            cutoff,
        }),
        output: SshOutput {
            early: early.into(),
            rx,
            closed: false,
        },
    })
}
