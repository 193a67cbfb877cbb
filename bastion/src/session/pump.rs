//! The target-to-user direction of a live session: output recorded first, then passed on,
//! and at the end the one order every SSH client can rely on: output, EOF, exit status (or
//! signal), close.
//!
//! The pump is the only writer of that direction, so nothing can overtake the output: a
//! target's exit status is held until the target closes (sshd may send it before its last
//! output or its EOF), and the close is sent only after the exit status.

use std::sync::Arc;

use recorder::RecordingWriter;

use super::EndReason;
use super::leg::{Exit, TargetEvent, TargetOutput, UserSide};

/// Copies the target's output to the user, recording it first. Returns why it stopped.
pub(super) async fn run(
    mut target: Box<dyn TargetOutput>,
    user: Arc<dyn UserSide>,
    recording: Option<RecordingWriter>,
    fail_open: bool,
) -> EndReason {
    let mut recording = recording;
    let mut exit: Option<Exit> = None;
    let mut eof_sent = false;
    loop {
        match target.next().await {
            TargetEvent::Output { stream, data } => {
                if let Some(writer) = &recording
                    && let Err(e) = writer.output(&data).await
                {
                    if !fail_open {
                        return EndReason::RecordingFailed(e.to_string());
                    }
                    tracing::error!(error = %e, "recording failed; target is fail-open, session goes on unrecorded");
                    recording = None;
                }
                if user.output(stream, data).await.is_err() {
                    return EndReason::ClientClosed;
                }
            }
            TargetEvent::Eof => {
                if !eof_sent {
                    eof_sent = true;
                    user.eof().await;
                }
            }
            // Held until the close: see the module doc.
            TargetEvent::Exit(e) => exit = Some(e),
            TargetEvent::Closed => break,
        }
    }
    if !eof_sent {
        user.eof().await;
    }
    let reason = match &exit {
        Some(Exit::Status(code)) => EndReason::Exit(*code),
        Some(Exit::Signal { name, .. }) => EndReason::Signal(name.clone()),
        None => EndReason::TargetClosed,
    };
    if let Some(exit) = exit {
        user.exit(exit).await;
    }
    user.close().await;
    reason
}
