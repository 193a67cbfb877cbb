//! The russh server handler for one user connection: public-key authentication, session
//! channels, and the refusal of everything a grant cannot allow (shells on the bastion,
//! port forwarding, agent and X11 forwarding, subsystems).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::PublicKey;
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Pty};

use super::connect::{self, Refusal, SessionRequest};
use super::menu;
use super::request::{self, Request};
pub use super::state::ConnectionState;
use super::user_side::ChannelUser;
use super::verb;
use crate::audit::AuditEvent;
use crate::cutoff::Sever;
use crate::daemon::Daemon;
use crate::session::input::SessionInput;
use crate::session::leg::TermSize;
use crate::targets::ssh::{PtySpec, from_russh};

/// Session channels one connection may hold open at once (OpenSSH multiplexing uses several).
/// Channels that ended, however they ended, no longer count.
const MAX_CHANNELS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
}

/// One session channel of the connection, before and after it became a proxied session.
struct Slot {
    user: Arc<ChannelUser>,
    pty: Option<PtySpec>,
    input: Option<SessionInput>,
    /// Set once a shell or exec request was answered; a channel runs one thing.
    started: bool,
}

/// The state of one user connection.
pub struct Connection {
    daemon: Arc<Daemon>,
    peer: SocketAddr,
    /// Severs this connection (a TCP socket today).
    cutoff: Arc<dyn Sever>,
    user: Option<String>,
    /// Shared with the connection task, which enforces the login grace and idle times.
    state: Arc<ConnectionState>,
    channels: HashMap<ChannelId, Slot>,
}

impl Connection {
    pub fn new(
        daemon: Arc<Daemon>,
        peer: SocketAddr,
        cutoff: Arc<dyn Sever>,
        state: Arc<ConnectionState>,
    ) -> Connection {
        Connection {
            daemon,
            peer,
            cutoff,
            user: None,
            state,
            channels: HashMap::new(),
        }
    }

    fn key_allowed(&self, user: &str, key: &PublicKey) -> bool {
        self.daemon
            .config
            .user(user)
            .is_some_and(|u| u.keys.iter().any(|k| k.key_data() == key.key_data()))
    }

    fn publickey_only() -> Auth {
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        Auth::Reject {
            proceed_with_methods: Some(methods),
            partial_success: false,
        }
    }

    /// Answers a channel without a session: `text` on stdout (status 0) or stderr, then EOF,
    /// exit status and close. The channel is over: its slot is freed at once.
    fn answer(&mut self, session: &mut Session, channel: ChannelId, text: &str, status: u32) {
        let pty = self
            .channels
            .get(&channel)
            .is_some_and(|slot| slot.pty.is_some());
        Self::write_answer(session, channel, pty, text, status);
        if let Some(slot) = self.channels.remove(&channel) {
            slot.user.mark_finished();
        }
    }

    fn write_answer(session: &mut Session, channel: ChannelId, pty: bool, text: &str, status: u32) {
        let text = if pty {
            format!("{}\r\n", text.replace('\n', "\r\n"))
        } else {
            format!("{text}\n")
        };
        let stream = if status == 0 { None } else { Some(1) };
        let _ = match stream {
            None => session.data(channel, text.into_bytes()),
            Some(ext) => session.extended_data(channel, ext, text.into_bytes()),
        };
        // The exit status before EOF: see session::pump for why this order.
        let _ = session.exit_status_request(channel, status);
        let _ = session.eof(channel);
        let _ = session.close(channel);
    }

    async fn start_session(
        &mut self,
        channel: ChannelId,
        request: Request,
        session: &mut Session,
    ) -> Result<(), HandlerError> {
        let Some(user) = self.user.clone() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let Some(slot) = self.channels.get_mut(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if slot.started {
            session.channel_failure(channel)?;
            return Ok(());
        }
        slot.started = true;
        session.channel_success(channel)?;
        let (target, login, command) = match request {
            Request::Builtin(builtin) => {
                let text = menu::answer(&self.daemon, &user, builtin).await;
                self.answer(session, channel, &text, 0);
                return Ok(());
            }
            Request::Verb(line) => {
                match crate::verbs::parse_ssh(&line) {
                    crate::verbs::Parsed::Verb(verb) => verb::spawn(
                        self.daemon.clone(),
                        user,
                        self.peer.to_string(),
                        verb,
                        slot.user.clone(),
                        slot.pty.is_some(),
                    ),
                    crate::verbs::Parsed::Usage { text, status } => {
                        self.answer(session, channel, &text, status);
                    }
                }
                return Ok(());
            }
            Request::Connect {
                target,
                login,
                command,
            } => (target, login, command),
        };
        let client = slot.user.clone();
        let pty_spec = slot.pty.clone();
        let result = connect::open(
            &self.daemon,
            SessionRequest {
                user: &user,
                target: &target,
                login: login.as_deref(),
                command: command.as_deref(),
                pty: pty_spec.as_ref(),
                client_addr: self.peer.to_string(),
            },
            client,
        )
        .await;
        match result {
            Ok(input) => {
                if let Some(slot) = self.channels.get_mut(&channel) {
                    slot.input = Some(input);
                }
            }
            Err(Refusal {
                message,
                exit_status,
            }) => self.answer(session, channel, &message, exit_status),
        }
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The connection is gone: every session on it ends now.
        for slot in self.channels.values() {
            if let Some(input) = &slot.input {
                input.client_closed();
            }
            slot.user.client_closed();
        }
    }
}

impl server::Handler for Connection {
    type Error = HandlerError;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::publickey_only())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.daemon
            .audit
            .auth_failure(self.peer, user, "password authentication is not offered");
        Ok(Self::publickey_only())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.key_allowed(user, offer.public_key) {
            return Ok(Auth::Accept);
        }
        self.daemon.audit.auth_failure(
            self.peer,
            user,
            &format!(
                "key {} is not allowed",
                offer.public_key.fingerprint(Default::default())
            ),
        );
        Ok(Self::publickey_only())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.key_allowed(user, key.public_key) {
            return Ok(Self::publickey_only());
        }
        self.user = Some(user.to_string());
        self.state.set_authenticated();
        self.daemon.audit.record(AuditEvent::AuthSuccess {
            user: user.to_string(),
            key: key.public_key.fingerprint(Default::default()).to_string(),
            client: self.peer.to_string(),
        });
        tracing::info!(user, client = %self.peer, "authenticated");
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Channels the bastion closed are over even though russh never reports the client's
        // answering close: free them before counting.
        self.channels.retain(|_, slot| !slot.user.is_finished());
        if self.user.is_none() || self.state.open_channels() >= MAX_CHANNELS {
            tracing::info!(user = ?self.user, client = %self.peer, open = self.state.open_channels(), "refused a session channel over the per-connection limit");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let id = channel.id();
        // Input arrives through the handler callbacks; the read half is dropped so an unread
        // queue can never stall the connection.
        let (_read, tx) = channel.split();
        let user = ChannelUser::new(
            session.handle(),
            id,
            tx,
            self.cutoff.clone(),
            self.state.clone(),
        );
        self.channels.insert(
            id,
            Slot {
                user: Arc::new(user),
                pty: None,
                input: None,
                started: false,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::warn!(user = ?self.user, host = %crate::text::capped(host), port, "refused port forwarding");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Environment variables are not passed on: they can change what a target's shell runs.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(slot) if !slot.started => {
                slot.pty = Some(PtySpec {
                    term: term.chars().take(64).collect(),
                    cols,
                    rows,
                    pix_width,
                    pix_height,
                    modes: modes.to_vec(),
                });
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // `ssh bastion` alone: never a shell here, only the menu.
        self.start_session(channel, Request::Builtin(request::Builtin::Help), session)
            .await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match request::parse(data) {
            Ok(request) => self.start_session(channel, request, session).await,
            Err(e) => {
                session.channel_success(channel)?;
                let text =
                    format!("bastion: {e}; usage: ssh -t bastion [LOGIN@]TARGET [-- COMMAND]");
                self.answer(session, channel, &text, 2);
                Ok(())
            }
        }
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(user = ?self.user, subsystem = %crate::text::capped(name), "refused subsystem");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(input) = self.channels.get(&channel).and_then(|s| s.input.as_ref()) {
            input.data(data).await;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: russh::Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(input) = self.channels.get(&channel).and_then(|s| s.input.as_ref()) {
            input.signal(from_russh(&signal)).await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(input) = self.channels.get(&channel).and_then(|s| s.input.as_ref()) {
            input.eof().await;
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(slot) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if let Some(pty) = &mut slot.pty {
            pty.cols = cols;
            pty.rows = rows;
        }
        if let Some(input) = &slot.input {
            input
                .resize(TermSize {
                    cols,
                    rows,
                    pix_width,
                    pix_height,
                })
                .await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(slot) = self.channels.remove(&channel) {
            if let Some(input) = &slot.input {
                input.client_closed();
            }
            slot.user.client_closed();
        }
        Ok(())
    }
}
