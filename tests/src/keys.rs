//! SSH key pairs generated with the real `ssh-keygen`, so every key format the tests use is
//! exactly what an OpenSSH user would have.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::child::{self, Input};
use crate::prereq;

/// An ed25519 key pair on disk.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// Private key file (OpenSSH format, mode 0600).
    pub private: PathBuf,
    /// Public key line: `ssh-ed25519 AAAA... comment`.
    pub public: String,
}

impl KeyPair {
    /// Generates `dir/name` and `dir/name.pub`.
    pub fn generate(dir: &Path, name: &str) -> Result<KeyPair> {
        let private = dir.join(name);
        let out = child::run(
            Command::new(prereq::tool("ssh-keygen"))
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(name)
                .arg("-f")
                .arg(&private),
            Input::Null,
            Duration::from_secs(20),
        )?;
        ensure!(
            out.status.success(),
            "ssh-keygen for {name} failed: {}",
            out.stderr_str()
        );
        let public = std::fs::read_to_string(private.with_extension("pub"))
            .with_context(|| format!("reading public key of {name}"))?
            .trim()
            .to_string();
        Ok(KeyPair { private, public })
    }

    /// The public key without its comment (`ssh-ed25519 AAAA...`), as configs pin it.
    pub fn public_without_comment(&self) -> String {
        self.public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }
}
