//! The usual arrangement of a test: a target sshd, a bastion in front of it, and helpers to
//! reach the target directly (for comparisons) or through the bastion.

use anyhow::Result;

use crate::bastion::{Bastion, Options};
use crate::client::Ssh;
use crate::keys::KeyPair;
use crate::prereq;
use crate::sshd::Sshd;

pub struct TestBed {
    // Field order is drop order: the bastion goes before the sshd it talks to.
    pub bastion: Bastion,
    pub sshd: Sshd,
    /// A key sshd accepts for every login, for direct (non-bastion) sessions.
    pub direct_key: KeyPair,
    _keys: tempfile::TempDir,
}

impl TestBed {
    /// Starts sshd and bastion; `Ok(None)` when a prerequisite is missing outside CI (the
    /// SKIP line has been printed), a panic when it is missing in CI.
    pub fn start(options: Options) -> Result<Option<TestBed>> {
        if !(prereq::require_root()
            && prereq::require(prereq::TOOLS)
            && prereq::require_login("app"))
        {
            return Ok(None);
        }
        let sshd = Sshd::start()?;
        let keys = tempfile::Builder::new()
            .prefix("bastion-direct-")
            .tempdir()?;
        let direct_key = KeyPair::generate(keys.path(), "direct")?;
        sshd.authorize(&direct_key)?;
        let bastion = Bastion::start(&sshd, &options)?;
        Ok(Some(TestBed {
            bastion,
            sshd,
            direct_key,
            _keys: keys,
        }))
    }

    /// ssh straight to the target sshd as `login`, bypassing the bastion.
    pub fn direct(&self, login: &str) -> Result<Ssh> {
        Ok(Ssh::new(
            &self.direct_key.private,
            &self.sshd.known_hosts()?,
            self.sshd.port,
            login,
        ))
    }
}
