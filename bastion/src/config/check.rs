//! The checks every configuration key goes through, each error naming file, key and reason.

use std::path::PathBuf;
use std::time::Duration;

use russh::keys::PublicKey;

use super::ConfigError;

/// Collects the file name so each check only states key and reason.
pub(super) struct Checker<'a> {
    file: &'a str,
}

impl<'a> Checker<'a> {
    pub(super) fn new(file: &'a str) -> Checker<'a> {
        Checker { file }
    }

    pub(super) fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(super) fn duration(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        let value = humantime::parse_duration(text.trim()).map_err(|err| {
            self.err(
                key,
                format!("invalid duration {text:?}: {err} (expected e.g. \"90s\", \"5m\", \"1h\")"),
            )
        })?;
        if value.is_zero() {
            return Err(self.err(key, format!("duration {text:?} must be greater than zero")));
        }
        Ok(value)
    }

    pub(super) fn name(&self, key: &str, name: &str) -> Result<(), ConfigError> {
        if is_valid_name(name) {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!("invalid name {name:?} (allowed: letters, digits, '.', '_', '-')"),
            ))
        }
    }

    pub(super) fn public_key(&self, key: &str, text: &str) -> Result<PublicKey, ConfigError> {
        PublicKey::from_openssh(text.trim())
            .map_err(|err| self.err(key, format!("invalid public key: {err} (expected an OpenSSH line like \"ssh-ed25519 AAAA... comment\")")))
    }

    pub(super) fn path(&self, key: &str, text: &str) -> Result<PathBuf, ConfigError> {
        if text.is_empty() {
            return Err(self.err(key, "path must not be empty"));
        }
        Ok(PathBuf::from(text))
    }
}

/// User and target names: they appear in SSH user names, CLI arguments and object keys.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
