//! The target-to-user direction of a live session: output recorded first, then passed on,
//! and the end of the channel in the order every SSH client relies on: the exit status (or
//! signal) before EOF, EOF before close.
//!
//! OpenSSH (also as a multiplexing master) and PuTTY close their side of a channel as soon as
//! both directions saw EOF; an exit status that arrives after the client's close is lost
//! (measured: plink reported 0 instead of 4 in 1 of 20 runs, OpenSSH's mux client 255). So
//! the target's EOF is held until its exit status was passed on, or until the target closes
//! without one. The exit status itself is passed on when it comes, as sshd does: before
//! output that may still follow it. The pump is the only writer of this direction, so nothing
//! can overtake anything.

use std::sync::Arc;

use recorder::{RecordingWriter, Stream};

use super::EndReason;
use super::leg::{Exit, OutputStream, TargetEvent, TargetOutput, UserSide};

/// Copies the target's output to the user, recording it first. Returns why it stopped.
pub(super) async fn run(
    mut target: Box<dyn TargetOutput>,
    user: Arc<dyn UserSide>,
    recording: Option<RecordingWriter>,
    fail_open: bool,
    interactive: bool,
) -> EndReason {
    let mut recording = recording;
    let mut exit: Option<Exit> = None;
    let mut eof_held = false;
    loop {
        match target.next().await {
            TargetEvent::Output { stream, data } => {
                let tag = match (interactive, stream) {
                    (true, _) => Stream::TerminalOutput,
                    (false, OutputStream::Stdout) => Stream::Stdout,
                    (false, OutputStream::Stderr) => Stream::Stderr,
                };
                if let Some(writer) = &recording
                    && let Err(e) = writer.write(tag, &data).await
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
            // Held until the exit status was passed on: see the module doc.
            TargetEvent::Eof => eof_held = true,
            TargetEvent::Exit(e) if exit.is_none() => {
                user.exit(e.clone()).await;
                exit = Some(e);
                if std::mem::take(&mut eof_held) {
                    user.eof().await;
                }
            }
            TargetEvent::Exit(_) => {}
            TargetEvent::Closed => break,
        }
    }
    if exit.is_none() || eof_held {
        user.eof().await;
    }
    user.close().await;
    match exit {
        Some(Exit::Status(code)) => EndReason::Exit(code),
        Some(Exit::Signal { name, .. }) => EndReason::Signal(name),
        None => EndReason::TargetClosed,
    }
}
