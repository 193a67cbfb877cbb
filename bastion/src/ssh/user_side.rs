//! The user's side of a session when the user came over SSH: one session channel on the
//! bastion's russh server, implementing [`UserSide`] for the supervisor.
//!
//! Output goes through the channel's write half, which waits for the client's window
//! (`Handle::data` would queue without bound inside russh when a client stops reading).
//! Control messages go through the same write half, so they can never overtake output.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelWriteHalf};
use tokio::sync::Notify;

use super::state::ConnectionState;
use crate::cutoff::Sever;
use crate::session::leg::{Exit, LegClosed, OutputStream, Signal, UserSide};
use crate::targets::ssh::to_russh;

/// SSH's extended data type for stderr (RFC 4254 5.2).
const STDERR: u32 = 1;

/// One session channel of a user's connection.
pub struct ChannelUser {
    handle: Handle,
    channel: ChannelId,
    tx: ChannelWriteHalf<Msg>,
    /// Severs the whole connection, whatever carries it.
    cutoff: Arc<dyn Sever>,
    /// Set when the client closed the channel or the connection went away.
    client_closed: AtomicBool,
    closed_notify: Notify,
    /// Set once the bastion sent its close: the channel is over and its slot can be freed
    /// (russh does not report the client's answering close).
    finished: AtomicBool,
    /// An output call was waiting on the client's window when it was dropped.
    blocked: AtomicBool,
    /// Counts this channel as open until it is over.
    connection: Arc<ConnectionState>,
    released: AtomicBool,
}

impl ChannelUser {
    pub fn new(
        handle: Handle,
        channel: ChannelId,
        tx: ChannelWriteHalf<Msg>,
        cutoff: Arc<dyn Sever>,
        connection: Arc<ConnectionState>,
    ) -> ChannelUser {
        connection.channel_opened();
        ChannelUser {
            connection,
            released: AtomicBool::new(false),
            handle,
            channel,
            tx,
            cutoff,
            client_closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
            finished: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
        }
    }

    /// The client closed this channel, or its connection is gone.
    pub fn client_closed(&self) {
        self.client_closed.store(true, Ordering::Release);
        self.closed_notify.notify_waiters();
        self.release();
    }

    /// Whether the channel is over on the bastion's side (its slot may be freed).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) || self.client_closed.load(Ordering::Acquire)
    }

    /// Marks the channel over without a session (a menu answer or a refusal sent by the
    /// handler itself).
    pub fn mark_finished(&self) {
        self.finished.store(true, Ordering::Release);
        self.release();
    }

    /// Stops counting this channel as open (once).
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.connection.channel_finished();
        }
    }
}

impl Drop for ChannelUser {
    fn drop(&mut self) {
        self.release();
    }
}

impl UserSide for ChannelUser {
    fn output(&self, stream: OutputStream, data: Bytes) -> BoxFuture<'_, Result<(), LegClosed>> {
        async move {
            // Stays set if this future is dropped while waiting: the pump was aborted on a
            // client that stopped reading.
            self.blocked.store(true, Ordering::Release);
            let sent = match stream {
                OutputStream::Stdout => self.tx.data_bytes(data).await,
                OutputStream::Stderr => self.tx.extended_data_bytes(STDERR, data).await,
            };
            self.blocked.store(false, Ordering::Release);
            sent.map_err(|_| LegClosed)
        }
        .boxed()
    }

    fn notice(&self, line: String) -> BoxFuture<'_, ()> {
        async move {
            // Through the handle, not the window-bound write half: a one-line notice must get
            // out even when the window is full (russh keeps it pending for the channel).
            let _ = self
                .handle
                .extended_data(self.channel, STDERR, Bytes::from(line))
                .await;
        }
        .boxed()
    }

    fn eof(&self) -> BoxFuture<'_, ()> {
        async move {
            let _ = self.tx.eof().await;
        }
        .boxed()
    }

    fn exit(&self, exit: Exit) -> BoxFuture<'_, ()> {
        async move {
            match exit {
                Exit::Status(code) => {
                    let _ = self.tx.exit_status(code).await;
                }
                Exit::Signal {
                    name,
                    core_dumped,
                    message,
                } => {
                    let _ = self
                        .handle
                        .exit_signal_request(
                            self.channel,
                            to_russh(&Signal::from_name(&name)),
                            core_dumped,
                            message,
                            "en".into(),
                        )
                        .await;
                }
            }
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            let _ = self.tx.close().await;
            self.finished.store(true, Ordering::Release);
            self.release();
        }
        .boxed()
    }

    fn closed(&self) -> BoxFuture<'_, ()> {
        async move {
            let notified = self.closed_notify.notified();
            if self.client_closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
        .boxed()
    }

    fn blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire)
    }

    fn sever(&self) {
        self.cutoff.sever();
    }
}
