//! Target legs: how the bastion reaches what a grant allows. Each kind of target implements
//! the session's leg traits (`session::leg`), so the session supervisor drives every kind the
//! same way.
//!
//! - [`ssh`]: an SSH host, reached with russh as a client with the bastion's own key;
//! - [`known_hosts`]: target host keys, pinned or trusted on first use.

pub mod known_hosts;
pub mod ssh;
