//! The real `bastion` binary run as an admin would, in a test's own directory with its
//! `bastion.toml`: no inherited `BASTION_CONFIG`, a fixed invoking user (`carol`).

use std::path::Path;
use std::process::{Command, Output};

/// Runs `bastion ARGS --config bastion.toml` in `dir`.
pub fn admin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bastion"))
        .args(args)
        .args(["--config", "bastion.toml"])
        .current_dir(dir)
        .env_remove("BASTION_CONFIG")
        .env_remove("SUDO_USER")
        .env("USER", "carol")
        .output()
        .unwrap()
}
