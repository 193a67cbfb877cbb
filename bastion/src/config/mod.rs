//! The bastion's configuration: one TOML file, checked once into a `Config` that cannot be
//! invalid, so the daemon and the CLI never re-check names, keys, addresses or durations.
//!
//! Errors name the file, the dotted key (`targets[1].logins`) and the reason. Relative paths in
//! the file (and in a `sqlite://` or `file://` URL) are relative to the process's current
//! directory, not to the file: that is what a systemd `WorkingDirectory=` or a shell expects.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use russh::keys::PublicKey;
use toml::de::DeTable;

use raw::RawConfig;
pub(crate) use validate::redact_url;

/// Where the configuration came from when no file was given.
pub const EMBEDDED_SOURCE: &str = "<embedded defaults>";

/// The denial hint used when `access_hint` is not set; `{user}` and `{target}` are filled in.
pub const DEFAULT_ACCESS_HINT: &str = "ask an approver to run: bastion grant add --user {user} --target {target} --for 1h --reason '...'";

/// A validated configuration. Construct it with `Config::load`, `Config::load_or_default` or
/// `Config::embedded_defaults`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the file it was read from, or `<embedded defaults>`.
    pub source: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub recordings: String,
    /// When to warn a session before its grant expires, longest first, without duplicates.
    pub warn_before: Vec<Duration>,
    pub audit_log: PathBuf,
    pub host_key: PathBuf,
    /// `<data_dir>/spool`: recording segments not yet uploaded.
    pub spool_dir: PathBuf,
    pub access_hint: String,
    /// How often live sessions re-check their grant (the revocation latency).
    pub grant_poll: Duration,
    pub recording: RecordingSettings,
    pub users: Vec<User>,
    pub targets: Vec<Target>,
}

/// How recordings are cut into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSettings {
    pub segment_interval: Duration,
    pub segment_bytes: usize,
}

/// A person who may log in to the bastion with one of `keys`.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub keys: Vec<PublicKey>,
}

/// A host behind the bastion.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    /// `host:port`; the host may be a name, resolved when connecting.
    pub address: String,
    /// Logins a grant may give; never empty, the first is the default.
    pub logins: Vec<String>,
    /// The bastion's private key for logging in to the target; read when connecting.
    pub identity: PathBuf,
    /// Pinned host key; `None` means trust on first use.
    pub host_key: Option<PublicKey>,
    /// Let sessions run unrecorded when the recording fails.
    pub fail_open: bool,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read configuration: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl Config {
    /// Reads and validates the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::parse(&text, &file)
    }

    /// Validates TOML `text`; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let tree = DeTable::parse(text).map_err(|err| {
            let (line, column) = raw::line_column(text, err.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                file: file.to_string(),
                line,
                column,
                message: first_line(err.message()),
            }
        })?;
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let key = err
                .span()
                .map(|span| raw::key_path_at(tree.get_ref(), &span))
                .filter(|key| !key.is_empty())
                .unwrap_or_else(|| "(top level)".to_string());
            ConfigError::Invalid {
                file: file.to_string(),
                key,
                // serde says "field"; the file has keys.
                reason: first_line(err.message()).replace("unknown field", "unknown key"),
            }
        })?;
        validate::validate(raw, file)
    }

    /// The configuration used when no file is given: listen on 127.0.0.1:2222, everything under
    /// `data/`, warnings 5 and 1 minutes before expiry, no users and no targets.
    pub fn embedded_defaults() -> Config {
        match validate::validate(RawConfig::default(), EMBEDDED_SOURCE) {
            Ok(config) => config,
            // The defaults are constants checked by the unit tests; failing here is a bug.
            Err(err) => panic!("embedded default configuration is invalid: {err}"),
        }
    }

    /// `Config::load(path)` when a path is given, else the embedded defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::load(path),
            None => Ok(Config::embedded_defaults()),
        }
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|user| user.name == name)
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|target| target.name == name)
    }

    /// The "how to get access" sentence shown with a denial, for this user and target.
    pub fn access_hint_for(&self, user: &str, target: &str) -> String {
        self.access_hint
            .replace("{user}", user)
            .replace("{target}", target)
    }

    /// Settings for the recording store (`recorder::RecordingStore::open`).
    pub fn store_config(&self) -> recorder::StoreConfig {
        recorder::StoreConfig {
            url: self.recordings.clone(),
            spool_dir: self.spool_dir.clone(),
            segment_interval: self.recording.segment_interval,
            segment_bytes: self.recording.segment_bytes,
            s3: Default::default(),
            finish_timeout: Duration::from_secs(10),
            ..Default::default()
        }
    }
}

impl Target {
    /// The login used when a grant or a connection names none.
    pub fn default_login(&self) -> &str {
        // Validation guarantees at least one login.
        self.logins.first().map_or("", String::as_str)
    }
}

/// TOML error messages can span several lines (with a source excerpt); keep the first.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}
