//! The SSH face of the bastion: the server users connect to (authentication, session
//! channels, the menu, refusals). The client legs to targets are `target`'s.
//!
//! This module knows nothing of SQL or object storage: it asks `grants` for decisions and
//! hands bytes to a `recorder` writer.

pub mod connect;
pub mod handler;
pub mod host_key;
pub mod menu;
pub mod request;
mod state;
pub mod user_side;
mod verb;

use std::time::Duration;

use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet};

/// The russh server configuration for user connections.
pub fn server_config(host_key: PrivateKey) -> russh::server::Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    russh::server::Config {
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-bastion_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods,
        // Rejections cost a constant second, except OpenSSH's initial `none` probe, which
        // every client sends and which reveals nothing.
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 6,
        // Interactive latency: no Nagle delay on keystrokes and echoes.
        nodelay: true,
        // Sessions end by grant, not by idleness; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        ..Default::default()
    }
}
