//! Runs an access-workflow verb (`ssh bastion request db-1 ...`) on one session channel, in
//! its own task: a `--wait` may block for as long as the request's TTL without holding up the
//! connection's other channels.

use std::sync::Arc;

use bytes::Bytes;

use super::user_side::ChannelUser;
use crate::daemon::Daemon;
use crate::session::leg::{Exit, OutputStream, UserSide};
use crate::verbs::{self, Verb};

/// Answers `verb` of `user` (connected from `client`) on `channel`, then closes it.
pub fn spawn(
    daemon: Arc<Daemon>,
    user: String,
    client: String,
    verb: Verb,
    channel: Arc<ChannelUser>,
    pty: bool,
) {
    let tracker = daemon.tracker.clone();
    tracker.spawn(async move {
        let reply = verbs::run(&daemon.access, &user, &client, verb, false).await;
        let last = match &reply.wait {
            None => reply,
            Some(wait) => {
                write(&channel, &reply.text, 0, pty).await;
                let stop = {
                    let channel = channel.clone();
                    let shutdown = daemon.shutdown.clone();
                    async move {
                        tokio::select! {
                            () = channel.closed() => {}
                            () = shutdown.cancelled() => {}
                        }
                    }
                };
                verbs::wait(&daemon.access, wait, daemon.config.grant_poll, stop).await
            }
        };
        write(&channel, &last.text, last.status, pty).await;
        // The exit status before EOF: see session::pump for why this order.
        channel.exit(Exit::Status(last.status)).await;
        channel.eof().await;
        channel.close().await;
    });
}

/// Writes `text` as lines: stdout for status 0, else stderr; CR LF under a terminal.
async fn write(channel: &ChannelUser, text: &str, status: u32, pty: bool) {
    let text = if pty {
        format!("{}\r\n", text.replace('\n', "\r\n"))
    } else {
        format!("{text}\n")
    };
    let stream = if status == 0 {
        OutputStream::Stdout
    } else {
        OutputStream::Stderr
    };
    let _ = channel.output(stream, Bytes::from(text)).await;
}
