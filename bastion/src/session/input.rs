//! The user-to-target direction of a live session: keystrokes, window changes and EOF.
//!
//! Called from the SSH handler of the user's connection. Awaiting the target's window here
//! pauses reading from the user's socket, so a slow target pushes back on the user instead
//! of filling the bastion's memory.

use std::sync::Arc;

use recorder::RecordingWriter;
use russh::ChannelWriteHalf;
use russh::client;
use tokio::sync::mpsc;

use super::EndReason;

/// The input side of one live session.
pub struct SessionInput {
    pub(super) target: Arc<ChannelWriteHalf<client::Msg>>,
    /// `None` when the target is not recorded.
    pub(super) recording: Option<RecordingWriter>,
    /// Fail-open targets keep running when the recording breaks; others end.
    pub(super) fail_open: bool,
    /// Tells the supervisor to end the session.
    pub(super) end: mpsc::UnboundedSender<EndReason>,
}

impl SessionInput {
    /// Records `data` as input and passes it to the target.
    pub async fn data(&self, data: &[u8]) {
        if let Some(recording) = &self.recording
            && let Err(e) = recording.input(data).await
            && !self.fail_open
        {
            let _ = self.end.send(EndReason::RecordingFailed(e.to_string()));
            return;
        }
        // An error means the target side is gone; the supervisor sees that itself.
        let _ = self
            .target
            .data_bytes(bytes::Bytes::copy_from_slice(data))
            .await;
    }

    /// Passes on the end of the user's input (e.g. the end of a piped `tar`).
    pub async fn eof(&self) {
        let _ = self.target.eof().await;
    }

    /// Passes on a terminal resize and records it.
    pub async fn resize(&self, cols: u32, rows: u32, pix_width: u32, pix_height: u32) {
        let _ = self
            .target
            .window_change(cols, rows, pix_width, pix_height)
            .await;
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        if let Some(recording) = &self.recording
            && let Err(e) = recording.resize(clamp(cols), clamp(rows)).await
            && !self.fail_open
        {
            let _ = self.end.send(EndReason::RecordingFailed(e.to_string()));
        }
    }

    /// Passes on a signal the user's client sent (OpenSSH sends none by itself; other
    /// clients forward Ctrl-C this way when there is no PTY).
    pub async fn signal(&self, signal: russh::Sig) {
        let _ = self.target.signal(signal).await;
    }

    /// The user closed the channel or the connection.
    pub fn client_closed(&self) {
        let _ = self.end.send(EndReason::ClientClosed);
    }
}
