//! Development-only kit shared by bastion's tests, examples and benchmarks, never by a shipped
//! binary: a real S3-compatible server per test ([`moto`]), a private tmux server giving a
//! program a real terminal ([`tmux`]), deterministic log and terminal text ([`logtext`]), and
//! free local ports ([`net`]).
//!
//! It depends on none of the workspace's crates, so each of them can take it as a
//! dev-dependency; what is specific to one crate (its config types) stays in that crate's test
//! support and is built from what this kit hands out.

pub mod logtext;
pub mod moto;
pub mod net;
pub mod tmux;
pub mod tool;
