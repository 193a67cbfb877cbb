//! A private OpenSSH `sshd` playing the target host: own temp dir, host key, config and free
//! port on 127.0.0.1, one authorized_keys file for every login. Killed on drop.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::child;
use crate::keys::KeyPair;
use crate::net;
use crate::prereq;

pub struct Sshd {
    dir: TempDir,
    child: Child,
    pub port: u16,
    /// The host key sshd presents, as `ssh-ed25519 AAAA...` (no comment).
    pub host_public_key: String,
    authorized_keys: PathBuf,
    log: PathBuf,
}

impl Sshd {
    /// Starts sshd and waits until it accepts connections.
    pub fn start() -> Result<Sshd> {
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let dir = tempfile::Builder::new().prefix("bastion-sshd-").tempdir()?;
        // sshd reads authorized_keys as the target user (e.g. `app`), so the dir must be readable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let host_key = KeyPair::generate(dir.path(), "ssh_host_ed25519_key")?;
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, "")?;
        std::fs::set_permissions(&authorized_keys, std::fs::Permissions::from_mode(0o644))?;
        let log = dir.path().join("sshd.log");

        let mut last_error = None;
        for _ in 0..5 {
            let port = net::free_port()?;
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                sshd_config(port, &host_key, &authorized_keys, &dir),
            )?;
            let mut child = Command::new(prereq::tool("sshd"))
                .arg("-D")
                .arg("-E")
                .arg(&log)
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning sshd")?;
            match wait_listening(&mut child, &log, port) {
                Ok(()) => {
                    return Ok(Sshd {
                        host_public_key: host_key.public_without_comment(),
                        dir,
                        child,
                        port,
                        authorized_keys,
                        log,
                    });
                }
                Err(err) => {
                    child::terminate(&mut child, Duration::from_secs(1));
                    last_error = Some(format!(
                        "sshd on port {port} did not come up: {err:#}; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                }
            }
        }
        bail!("{}", last_error.unwrap_or_default())
    }

    /// Lets `key` log in as any login (root, app).
    pub fn authorize(&self, key: &KeyPair) -> Result<()> {
        let mut keys = std::fs::read_to_string(&self.authorized_keys)?;
        let _ = writeln!(keys, "{}", key.public);
        std::fs::write(&self.authorized_keys, keys).context("writing authorized_keys")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A known_hosts file holding this sshd's host key, for clients that check it strictly.
    pub fn known_hosts(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("known_hosts");
        let line = format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key);
        std::fs::write(&path, line).context("writing sshd known_hosts")?;
        Ok(path)
    }

    /// sshd's own log (LogLevel VERBOSE), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        child::terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// Waits for sshd's own "Server listening" line for `port` (a successful connect alone could
/// reach another process holding the port), then for the port to accept.
fn wait_listening(child: &mut Child, log: &std::path::Path, port: u16) -> Result<()> {
    let line = format!("Server listening on 127.0.0.1 port {port}.");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("sshd exited with {status}");
        }
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains(&line)) {
            return net::wait_accepting(port, Duration::from_secs(5));
        }
        if std::time::Instant::now() >= deadline {
            bail!("no {line:?} in the sshd log within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sshd_config(
    port: u16,
    host_key: &KeyPair,
    authorized_keys: &std::path::Path,
    dir: &TempDir,
) -> String {
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         StrictModes no\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\n\
         AllowTcpForwarding yes\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         MaxStartups 200\n\
         MaxSessions 200\n\
         LogLevel VERBOSE\n",
        host_key = host_key.private.display(),
        pid = dir.path().join("sshd.pid").display(),
        authorized_keys = authorized_keys.display(),
    )
}
