//! The user-to-target direction of a live session: keystrokes, window changes, signals, EOF.
//!
//! Called from the user's connection. Awaiting the target's flow control here pauses reading
//! from the user's connection, so a slow target pushes back on the user instead of filling
//! the bastion's memory.

use std::sync::Arc;

use bytes::Bytes;
use recorder::{RecordingWriter, Stream};
use tokio::sync::mpsc;

use super::EndReason;
use super::leg::{Signal, TargetControl, TermSize};

/// The input side of one live session.
pub struct SessionInput {
    pub(super) target: Arc<dyn TargetControl>,
    /// `None` when the target is not recorded.
    pub(super) recording: Option<RecordingWriter>,
    /// How the user's bytes are recorded: typed into a terminal, or a command's stdin.
    pub(super) stream: Stream,
    /// Fail-open targets keep running when the recording breaks; others end.
    pub(super) fail_open: bool,
    /// Tells the supervisor to end the session.
    pub(super) end: mpsc::UnboundedSender<EndReason>,
}

impl SessionInput {
    /// Records `data` as input and passes it to the target.
    pub async fn data(&self, data: &[u8]) {
        if let Some(recording) = &self.recording
            && let Err(e) = recording.write(self.stream, data).await
            && !self.fail_open
        {
            let _ = self.end.send(EndReason::RecordingFailed(e.to_string()));
            return;
        }
        // An error means the target side is gone; the supervisor sees that itself.
        let _ = self.target.send(Bytes::copy_from_slice(data)).await;
    }

    /// Passes on the end of the user's input (e.g. the end of a piped `tar`).
    pub async fn eof(&self) {
        self.target.eof().await;
    }

    /// Passes on a terminal resize and records it.
    pub async fn resize(&self, size: TermSize) {
        self.target.resize(size).await;
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        if let Some(recording) = &self.recording
            && let Err(e) = recording.resize(clamp(size.cols), clamp(size.rows)).await
            && !self.fail_open
        {
            let _ = self.end.send(EndReason::RecordingFailed(e.to_string()));
        }
    }

    /// Passes on a signal the user's client sent (OpenSSH sends none by itself; other
    /// clients forward Ctrl-C this way when there is no PTY).
    pub async fn signal(&self, signal: Signal) {
        self.target.signal(signal).await;
    }

    /// The user closed the channel or the connection.
    pub fn client_closed(&self) {
        let _ = self.end.send(EndReason::ClientClosed);
    }
}
