//! bastion: a session-recording SSH jump host with time-boxed grants.
//!
//! The binary (`main.rs`) only parses the command line and maps `run()` to an exit code.
//! Everything else lives here, one module per concern; see ARCHITECTURE.md for the map.

pub mod accept;
pub mod access;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod cutoff;
pub mod daemon;
pub mod db;
pub mod files;
pub mod notify;
pub mod recordings;
pub mod serve;
pub mod session;
pub mod ssh;
pub mod targets;
pub mod text;
pub mod verbs;
pub mod wildcard;
