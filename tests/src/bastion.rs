//! The real `bastion serve` daemon in a temp dir, configured in front of one `Sshd`, plus the
//! admin CLI run against the same config (grants, recordings, audit log).
//!
//! Users: `alice` and `bob`, each with a fresh key. Targets: `db-1` (logins root, app) and
//! `db-2` (login root), both pointing at the same sshd. The daemon's stderr goes to a file that
//! survives restarts, so failures can show it.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use tempfile::TempDir;

use crate::child::{self, Finished, Input};
use crate::client::Ssh;
use crate::keys::KeyPair;
use crate::net;
use crate::prereq;
use crate::procs::limit_process;
use crate::sshd::Sshd;

/// Knobs of the generated config; `Default` is what most tests want.
#[derive(Debug, Clone)]
pub struct Options {
    pub warn_before: Vec<String>,
    pub grant_poll: String,
    pub segment_interval: String,
    pub segment_bytes: u64,
    /// `targets.host_key` of db-1.
    pub db1_host_key: Pin,
    /// `database_url`; `None` = the default SQLite file in data_dir.
    pub database_url: Option<String>,
    /// `record = false` on db-2: its sessions are not recorded.
    pub db2_unrecorded: bool,
    /// Extra top-level keys, written before the first table (`login_grace = "5s"`).
    pub extra_keys: String,
    /// Extra tables, written at the end (`[limits]\nidle = "2s"`).
    pub extra_tables: String,
    /// Start the daemon with this soft and hard open-file limit (`ulimit -n`).
    pub open_files: Option<u64>,
    /// Start the daemon (and the CLI) with this umask instead of the test's own.
    pub umask: Option<u32>,
    /// `groups` of each user, by name; a name other than alice and bob adds that user with a
    /// key of its own (reach it with `Bastion::user`).
    pub groups: Vec<(String, Vec<String>)>,
    /// Extra `[[users]]` keys, by user name (`("bob", "slack_id = \"UBOB\"")`).
    pub user_keys: Vec<(String, String)>,
    /// `recordings`; `None` = `file://` a directory in data_dir. Several daemons given the
    /// same store act as nodes sharing it.
    pub recordings: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            warn_before: vec!["5m".into(), "1m".into()],
            grant_poll: "1s".into(),
            segment_interval: "10s".into(),
            segment_bytes: 1 << 20,
            db1_host_key: Pin::None,
            database_url: None,
            db2_unrecorded: false,
            extra_keys: String::new(),
            extra_tables: String::new(),
            open_files: None,
            umask: None,
            groups: Vec::new(),
            user_keys: Vec::new(),
            recordings: None,
        }
    }
}

/// How db-1's host key is pinned in the config.
#[derive(Debug, Clone, Default)]
pub enum Pin {
    /// No `host_key`: trust on first use.
    #[default]
    None,
    /// The sshd's real host key.
    TargetsOwn,
    /// Some other key (`ssh-ed25519 AAAA...`), i.e. a man in the middle from the bastion's view.
    Key(String),
}

/// One row of `bastion recordings list --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Recording {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub start: serde_json::Value,
    pub end: Option<serde_json::Value>,
    pub end_reason: Option<String>,
    /// Known once the session has ended.
    pub bytes: Option<u64>,
    /// False for a target with `record = false`.
    pub recorded: bool,
}

/// Arguments of `bastion grant add`.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub user: String,
    pub target: String,
    pub logins: Vec<String>,
    /// Duration text as the CLI takes it: "6s", "1h".
    pub duration: String,
    pub starts_in: Option<String>,
    pub reason: String,
    /// `--command` patterns: the grant admits only commands matching one.
    pub commands: Vec<String>,
    /// `--no-pty`.
    pub no_pty: bool,
}

impl GrantSpec {
    /// `user` may reach `target` for `duration`, default login.
    pub fn new(user: &str, target: &str, duration: &str) -> GrantSpec {
        GrantSpec {
            user: user.into(),
            target: target.into(),
            logins: Vec::new(),
            duration: duration.into(),
            starts_in: None,
            reason: "e2e test".into(),
            commands: Vec::new(),
            no_pty: false,
        }
    }

    /// Admit only commands matching `pattern` (repeatable).
    pub fn command(mut self, pattern: &str) -> GrantSpec {
        self.commands.push(pattern.into());
        self
    }

    /// Allow no terminal.
    pub fn no_pty(mut self) -> GrantSpec {
        self.no_pty = true;
        self
    }

    pub fn login(mut self, login: &str) -> GrantSpec {
        self.logins.push(login.into());
        self
    }

    pub fn starts_in(mut self, delay: &str) -> GrantSpec {
        self.starts_in = Some(delay.into());
        self
    }
}

pub struct Bastion {
    dir: TempDir,
    child: Option<Child>,
    /// Process limits the daemon starts with (`Options::open_files`, `Options::umask`).
    open_files: Option<u64>,
    umask: Option<u32>,
    pub port: u16,
    pub config: PathBuf,
    pub alice: KeyPair,
    pub bob: KeyPair,
    /// Users from `Options::groups` besides alice and bob.
    others: Vec<(String, KeyPair)>,
    known_hosts: PathBuf,
    stderr_log: PathBuf,
}

impl Bastion {
    /// Writes a config in front of `sshd` (authorizing the bastion's identity key there) and
    /// starts the daemon.
    pub fn start(sshd: &Sshd, options: &Options) -> Result<Bastion> {
        let dir = tempfile::Builder::new().prefix("bastion-e2e-").tempdir()?;
        let alice = KeyPair::generate(dir.path(), "alice")?;
        let bob = KeyPair::generate(dir.path(), "bob")?;
        let identity = KeyPair::generate(dir.path(), "bastion-identity")?;
        sshd.authorize(&identity)?;
        let mut others = Vec::new();
        for (name, _) in &options.groups {
            if name != "alice" && name != "bob" {
                others.push((name.clone(), KeyPair::generate(dir.path(), name)?));
            }
        }
        let mut bastion = Bastion {
            others,
            config: dir.path().join("bastion.toml"),
            known_hosts: dir.path().join("known_hosts"),
            stderr_log: dir.path().join("bastion.stderr"),
            dir,
            child: None,
            open_files: options.open_files,
            umask: options.umask,
            port: 0,
            alice,
            bob,
        };
        let mut last_error = None;
        for _ in 0..3 {
            bastion.port = net::free_port()?;
            let config = bastion.config_text(sshd, &identity, options);
            std::fs::write(&bastion.config, config).context("writing bastion config")?;
            match bastion.launch() {
                Ok(()) => {
                    bastion.trust_host_key()?;
                    return Ok(bastion);
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("bastion did not start")))
    }

    fn config_text(&self, sshd: &Sshd, identity: &KeyPair, options: &Options) -> String {
        let dir = self.dir.path();
        let quoted = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!(
            "listen = \"127.0.0.1:{port}\"\n\
             data_dir = {data:?}\n\
             recordings = {recordings:?}\n\
             warn_before = [{warn}]\n\
             audit_log = {audit:?}\n\
             grant_poll = {poll:?}\n",
            port = self.port,
            data = dir.join("data").display().to_string(),
            recordings = options.recordings.clone().unwrap_or_else(|| format!(
                "file://{}",
                dir.join("data").join("recordings").display()
            )),
            warn = quoted(&options.warn_before),
            audit = dir.join("audit.log").display().to_string(),
            poll = options.grant_poll,
        );
        if let Some(url) = &options.database_url {
            let _ = writeln!(text, "database_url = {url:?}");
        }
        text.push_str(&options.extra_keys);
        if !options.extra_keys.ends_with('\n') && !options.extra_keys.is_empty() {
            text.push('\n');
        }
        let _ = write!(
            text,
            "\n[recording]\nsegment_interval = {:?}\nsegment_bytes = {}\n",
            options.segment_interval, options.segment_bytes
        );
        let users = [("alice", &self.alice), ("bob", &self.bob)]
            .into_iter()
            .chain(self.others.iter().map(|(name, key)| (name.as_str(), key)));
        for (name, key) in users {
            let groups = options
                .groups
                .iter()
                .find(|(user, _)| user == name)
                .map(|(_, groups)| quoted(groups))
                .unwrap_or_default();
            let _ = write!(
                text,
                "\n[[users]]\nname = {name:?}\nkeys = [{:?}]\ngroups = [{groups}]\n",
                key.public
            );
            for (_, line) in options.user_keys.iter().filter(|(user, _)| user == name) {
                let _ = writeln!(text, "{line}");
            }
        }
        let db1_pin = match &options.db1_host_key {
            Pin::None => None,
            Pin::TargetsOwn => Some(sshd.host_public_key.clone()),
            Pin::Key(key) => Some(key.clone()),
        };
        for (name, logins, pin) in [
            ("db-1", "[\"root\", \"app\"]", db1_pin.as_deref()),
            ("db-2", "[\"root\"]", None),
        ] {
            let _ = write!(
                text,
                "\n[[targets]]\nname = {name:?}\naddress = {addr:?}\nlogins = {logins}\nidentity = {id:?}\n",
                addr = sshd.address(),
                id = identity.private.display().to_string(),
            );
            if let Some(pin) = pin {
                let _ = writeln!(text, "host_key = {pin:?}");
            }
            if name == "db-2" && options.db2_unrecorded {
                text.push_str("record = false\n");
            }
        }
        if !options.extra_tables.is_empty() {
            let _ = write!(text, "\n{}\n", options.extra_tables);
        }
        text
    }

    /// Starts `bastion serve` on the configured port and waits until it logs that it listens
    /// there. The log line, not a successful connect, is the signal: a connect could reach some
    /// other process that holds the port while our daemon failed to bind it.
    fn launch(&mut self) -> Result<()> {
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        let seen_before = self.stderr().matches(&listening).count();
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .context("opening bastion stderr log")?;
        let mut command = Command::new(prereq::bastion_bin());
        limit_process(&mut command, self.open_files, self.umask);
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("spawning bastion serve")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "bastion serve exited with {status} before listening; stderr:\n{}",
                    self.stderr()
                );
            }
            if self.stderr().matches(&listening).count() > seen_before {
                net::wait_accepting(self.port, Duration::from_secs(5))?;
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                child::terminate(&mut child, Duration::from_secs(1));
                bail!(
                    "bastion serve did not log {listening:?} within 20s; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Records the daemon's host key (via ssh-keyscan) as the only trusted key for its port.
    fn trust_host_key(&self) -> Result<()> {
        let keys = self.scan_host_key()?;
        std::fs::write(&self.known_hosts, keys).context("writing bastion known_hosts")
    }

    /// The host key lines `ssh-keyscan` sees on the daemon's port.
    pub fn scan_host_key(&self) -> Result<String> {
        let out = child::run(
            Command::new(prereq::tool("ssh-keyscan"))
                .args(["-T", "10", "-t", "ed25519", "-p"])
                .arg(self.port.to_string())
                .arg("127.0.0.1"),
            Input::Null,
            Duration::from_secs(20),
        )?;
        let keys: String = out
            .stdout_str()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        ensure!(
            !keys.is_empty(),
            "ssh-keyscan found no ed25519 host key on the bastion: {}",
            out.stderr_str()
        );
        Ok(keys)
    }

    /// SIGKILL, as in a crash. `restart` brings it back on the same config and data dir.
    pub fn kill9(&mut self) -> Result<()> {
        let mut child = self.child.take().context("bastion is not running")?;
        child.kill().context("killing bastion")?;
        child.wait().context("reaping bastion")?;
        Ok(())
    }

    /// SIGTERM and wait up to `grace` for a clean exit; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("bastion is not running")?;
        child::signal(child.id(), libc::SIGTERM);
        match child::wait_deadline(&mut child, Instant::now() + grace)? {
            Some(status) => Ok(status),
            None => bail!("bastion did not exit within {grace:?} of SIGTERM"),
        }
    }

    /// Starts the daemon again on the same port, config and data dir.
    pub fn restart(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "bastion is still running");
        self.launch()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the daemon wrote to stderr so far (all runs).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir().join("recordings")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// ssh to the bastion as `user` with `key`.
    pub fn ssh(&self, key: &KeyPair, user: &str) -> Ssh {
        Ssh::new(&key.private, &self.known_hosts, self.port, user)
    }

    /// ssh to the bastion as alice.
    pub fn alice(&self) -> Ssh {
        self.ssh(&self.alice, "alice")
    }

    /// ssh to the bastion as `name`: alice, bob or a user from `Options::groups`.
    pub fn user(&self, name: &str) -> Ssh {
        let key = match name {
            "alice" => &self.alice,
            "bob" => &self.bob,
            _ => match self.others.iter().find(|(user, _)| user == name) {
                Some((_, key)) => key,
                None => panic!("no test user {name:?} (add it to Options::groups)"),
            },
        };
        self.ssh(key, name)
    }

    /// Runs the admin CLI: `bastion GROUP ACTION --config FILE ARGS...`.
    pub fn cli(&self, group: &str, action: &str, args: &[&str]) -> Result<Finished> {
        let mut words = vec![group, action, "--config"];
        let config = self.config.display().to_string();
        words.push(&config);
        words.extend_from_slice(args);
        self.admin(&words)
    }

    /// Runs the admin CLI with exactly these words (`bastion WORDS...`); `--config FILE` is
    /// passed through `BASTION_CONFIG`.
    pub fn admin(&self, words: &[&str]) -> Result<Finished> {
        let mut command = Command::new(prereq::bastion_bin());
        limit_process(&mut command, None, self.umask);
        child::run(
            command
                .args(words)
                .current_dir(self.dir.path())
                .env("BASTION_CONFIG", &self.config)
                .env("NO_COLOR", "1"),
            Input::Null,
            Duration::from_secs(30),
        )
    }

    /// Like `cli`, but fails unless the command exits 0.
    pub fn cli_ok(&self, group: &str, action: &str, args: &[&str]) -> Result<Finished> {
        let out = self.cli(group, action, args)?;
        ensure!(
            out.status.success(),
            "bastion {group} {action} {args:?} failed ({}):\n{}{}",
            out.status,
            out.stdout_str(),
            out.stderr_str()
        );
        Ok(out)
    }

    /// `bastion grant add`; returns the grant id it printed.
    pub fn grant(&self, spec: &GrantSpec) -> Result<String> {
        let mut args = vec![
            "--user",
            &spec.user,
            "--target",
            &spec.target,
            "--for",
            &spec.duration,
        ];
        for login in &spec.logins {
            args.extend(["--login", login]);
        }
        if let Some(delay) = &spec.starts_in {
            args.extend(["--starts-in", delay]);
        }
        for pattern in &spec.commands {
            args.extend(["--command", pattern]);
        }
        if spec.no_pty {
            args.push("--no-pty");
        }
        args.extend(["--reason", &spec.reason]);
        let out = self.cli_ok("grant", "add", &args)?;
        let id = out.stdout_str().trim().to_string();
        ensure!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "grant add should print the grant id alone on stdout, printed {:?}",
            out.stdout_str()
        );
        Ok(id)
    }

    pub fn revoke(&self, id: &str) -> Result<()> {
        self.cli_ok("grant", "revoke", &[id]).map(drop)
    }

    /// `bastion grant list --json [--active]`, one JSON object per grant.
    pub fn grants(&self, active_only: bool) -> Result<Vec<serde_json::Value>> {
        let args: &[&str] = if active_only {
            &["--json", "--active"]
        } else {
            &["--json"]
        };
        json_rows(&self.cli_ok("grant", "list", args)?.stdout_str())
    }

    /// `bastion recordings list --json`.
    pub fn recordings(&self) -> Result<Vec<Recording>> {
        let out = self.cli_ok("recordings", "list", &["--json"])?;
        json_rows(&out.stdout_str())?
            .into_iter()
            .map(|row| {
                serde_json::from_value(row.clone()).with_context(|| format!("recording row {row}"))
            })
            .collect()
    }

    /// Polls `recordings list` until a finished recording (one with an end_reason) satisfies
    /// `wanted`. Sessions are finalized asynchronously, so tests wait rather than read once.
    pub fn wait_recording(
        &self,
        timeout: Duration,
        wanted: impl Fn(&Recording) -> bool,
    ) -> Result<Recording> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.recordings()?;
            if let Some(found) = rows.iter().find(|r| r.end_reason.is_some() && wanted(r)) {
                return Ok(found.clone());
            }
            if Instant::now() >= deadline {
                bail!(
                    "no matching finished recording within {timeout:?}; recordings list:\n{rows:#?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `bastion recordings export ID -o FILE`.
    pub fn export(&self, id: &str, path: &Path) -> Result<()> {
        let path = path.display().to_string();
        self.cli_ok("recordings", "export", &[id, "-o", &path])
            .map(drop)
    }

    /// All audit log lines so far, parsed.
    pub fn audit_events(&self) -> Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(self.audit_log()).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .with_context(|| format!("audit log line is not JSON: {l:?}"))
            })
            .collect()
    }

    /// Polls the audit log until an event named `event` satisfies `wanted`.
    pub fn wait_audit(
        &self,
        event: &str,
        timeout: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.audit_events()?;
            if let Some(found) = events.iter().find(|e| e["event"] == event && wanted(e)) {
                return Ok(found.clone());
            }
            if Instant::now() >= deadline {
                let all: Vec<String> = events.iter().map(|e| e.to_string()).collect();
                bail!(
                    "no matching {event:?} audit event within {timeout:?}; audit log:\n{}",
                    all.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child::terminate(&mut child, Duration::from_secs(3));
        }
    }
}

/// Whether a JSON id field (a grant id is a number, a session id a string) is `id` as the CLI
/// printed it.
pub fn is_id(value: &serde_json::Value, id: &str) -> bool {
    value.as_str() == Some(id) || (value.as_u64().is_some() && value.as_u64() == id.parse().ok())
}

/// Parses CLI `--json` output: JSON lines, or a single JSON array.
pub fn json_rows(text: &str) -> Result<Vec<serde_json::Value>> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(trimmed).context("parsing JSON array")?;
        return Ok(rows);
    }
    trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l:?}")))
        .collect()
}
