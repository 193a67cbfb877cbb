//! End-to-end test harness for bastion: starts a real OpenSSH `sshd` as the target, the real
//! `bastion serve` binary in front of it, and drives both with the real OpenSSH client (plain
//! processes for exec sessions, tmux for interactive PTY sessions).
//!
//! Everything a test starts lives in its own temp dir on its own free port and is killed on
//! drop, so tests run in parallel. `TestBed` wires the usual trio (target, bastion, user key).

pub mod bastion;
pub mod cast;
pub mod child;
pub mod client;
pub mod http;
pub mod keys;
pub mod postgres;
pub mod prereq;
pub mod procs;
pub mod sshd;
pub mod testbed;
pub mod webhook;

// Shared with the other crates' tests, examples and benchmarks.
pub use testkit::{moto, net, tmux};

pub use bastion::{Bastion, GrantSpec, Options, Pin, Recording};
pub use client::{Ssh, SshOutput};
pub use sshd::Sshd;
pub use testbed::TestBed;
pub use tmux::Tmux;
