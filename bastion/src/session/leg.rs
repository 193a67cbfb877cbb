//! The two sides a session joins, as the supervisor sees them: a target leg (an SSH host
//! today, a Kubernetes pod next) and the user's side (a channel on the bastion's SSH server).
//!
//! The supervisor drives both through these traits and never names a protocol library's
//! types, so a new kind of target or of user connection is one new implementation, not a
//! change threaded through the session code. The traits return boxed futures so that the
//! supervisor can hold them as trait objects; one allocation per chunk of output is noise
//! next to the copy and the encryption of the chunk itself.

use bytes::Bytes;
use futures::future::BoxFuture;

/// Which stream a chunk of a target's output belongs to. A terminal session has only
/// `Stdout` (the terminal's output); a command without a terminal has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How the command or shell on the target ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(u32),
    /// It was killed by a signal (name without `SIG`, as SSH names them).
    Signal {
        name: String,
        core_dumped: bool,
        message: String,
    },
}

/// Something a target leg reports, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEvent {
    Output {
        stream: OutputStream,
        data: Bytes,
    },
    /// The target will send no more output.
    Eof,
    /// The command's end; more output may still follow until `Closed`.
    Exit(Exit),
    /// The leg is gone: nothing more will come.
    Closed,
}

/// Signals a user may send to the target's command (the SSH set, RFC 4254 6.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Abrt,
    Alrm,
    Fpe,
    Hup,
    Ill,
    Int,
    Kill,
    Pipe,
    Quit,
    Segv,
    Term,
    Usr1,
    /// Any other name a client sent; passed on as it came.
    Other(String),
}

impl Signal {
    /// The SSH name (`INT`, `KILL`, ...).
    pub fn name(&self) -> &str {
        match self {
            Signal::Abrt => "ABRT",
            Signal::Alrm => "ALRM",
            Signal::Fpe => "FPE",
            Signal::Hup => "HUP",
            Signal::Ill => "ILL",
            Signal::Int => "INT",
            Signal::Kill => "KILL",
            Signal::Pipe => "PIPE",
            Signal::Quit => "QUIT",
            Signal::Segv => "SEGV",
            Signal::Term => "TERM",
            Signal::Usr1 => "USR1",
            Signal::Other(name) => name,
        }
    }

    pub fn from_name(name: &str) -> Signal {
        match name {
            "ABRT" => Signal::Abrt,
            "ALRM" => Signal::Alrm,
            "FPE" => Signal::Fpe,
            "HUP" => Signal::Hup,
            "ILL" => Signal::Ill,
            "INT" => Signal::Int,
            "KILL" => Signal::Kill,
            "PIPE" => Signal::Pipe,
            "QUIT" => Signal::Quit,
            "SEGV" => Signal::Segv,
            "TERM" => Signal::Term,
            "USR1" => Signal::Usr1,
            other => Signal::Other(other.to_string()),
        }
    }
}

/// A terminal size in characters and pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
}

/// The target leg seen from the user's input direction and from the supervisor's end path.
/// Shared (behind an `Arc`) between the input path and the supervisor.
pub trait TargetControl: Send + Sync + 'static {
    /// Passes the user's bytes on; resolves once the target's flow control took them, so a
    /// slow target pushes back on the user. Err: the leg is gone.
    fn send(&self, data: Bytes) -> BoxFuture<'_, Result<(), LegClosed>>;
    /// The end of the user's input.
    fn eof(&self) -> BoxFuture<'_, ()>;
    fn resize(&self, size: TermSize) -> BoxFuture<'_, ()>;
    fn signal(&self, signal: Signal) -> BoxFuture<'_, ()>;
    /// Ends the leg: with `kill`, the command is killed first (a command without a terminal
    /// would otherwise outlive its connection). Completes within a bounded time whatever the
    /// target does: past a short grace the connection is severed.
    fn end(&self, kill: bool) -> BoxFuture<'_, ()>;
}

/// The target's output direction, read by one task (the pump).
pub trait TargetOutput: Send + 'static {
    /// The next event; `Closed` (and then `Closed` forever) once the leg is gone.
    fn next(&mut self) -> BoxFuture<'_, TargetEvent>;
}

/// The user's side of a session: where the target's output, the bastion's notices and the
/// end of the session go.
pub trait UserSide: Send + Sync + 'static {
    /// Sends output, waiting for the user's flow control; Err when the user is gone. May wait
    /// forever on a client that stopped reading: the supervisor never awaits it directly.
    fn output(&self, stream: OutputStream, data: Bytes) -> BoxFuture<'_, Result<(), LegClosed>>;
    /// One line from the bastion on the user's stderr (queued, never waits on flow control
    /// for long; the caller bounds it with a timeout).
    fn notice(&self, line: String) -> BoxFuture<'_, ()>;
    /// End of output.
    fn eof(&self) -> BoxFuture<'_, ()>;
    /// How the target's command ended.
    fn exit(&self, exit: Exit) -> BoxFuture<'_, ()>;
    /// Closes the user's side of the session (the last thing sent on it).
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Resolves once the user's client has closed its side (or its connection is gone).
    fn closed(&self) -> BoxFuture<'_, ()>;
    /// Whether the last output to the user was still waiting on their flow control when it
    /// was given up: a client that stopped reading, which only severing can end.
    fn blocked(&self) -> bool;
    /// Severs the user's connection without their client's cooperation: for a client that
    /// stopped reading, whatever carries the connection (a TCP socket, an outer channel).
    fn sever(&self);
}

/// The other side of a leg is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session's connection is closed")]
pub struct LegClosed;
