//! A real S3-compatible server for the tests: a `moto_server` process (PyPI `moto[server]`) on a
//! free port, with a fresh bucket. Each test starts its own, so stopping one (`SIGSTOP`) to fake
//! an outage disturbs nothing else.
//!
//! Missing `moto_server` fails the test in CI (`CI=true`) and skips it loudly elsewhere.
//! `MOTO_SERVER` overrides the program path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use recorder::{S3Options, StoreConfig};
use tempfile::TempDir;

pub const BUCKET: &str = "recordings";

pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: TempDir,
}

fn program() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

impl Moto {
    /// A running server with bucket [`BUCKET`]; `None` (after saying SKIP) when moto is not
    /// installed outside CI.
    pub fn start(test: &str) -> Option<Moto> {
        let Some(program) = program() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "moto_server is required in CI (pip install 'moto[server]')"
            );
            eprintln!("SKIP {test}: moto_server is not installed (pip install 'moto[server]')");
            return None;
        };
        // The port is free when probed but may be taken before moto binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Moto::spawn(&program) {
                Ok(moto) => return Some(moto),
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start {}: {last_error}", program.display());
    }

    fn spawn(program: &Path) -> Result<Moto, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("exited with {status}: {}", moto.log()));
            }
            // moto accepts an unsigned bucket creation; the answer also says it is ready.
            match moto.raw_request(&format!("PUT /{BUCKET} HTTP/1.1")) {
                Ok(status) if status.contains(" 200 ") => return Ok(moto),
                Ok(status) => return Err(format!("bucket creation answered {status}")),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(format!("not ready after 60 s: {e}")),
            }
        }
    }

    /// Sends one bodiless HTTP request and returns the status line.
    fn raw_request(&self, request_line: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{request_line}\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.lines().next().unwrap_or_default().to_string())
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Path-style options pointing at this server (moto accepts any credentials).
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".to_string()),
            access_key_id: Some("testing".to_string()),
            secret_access_key: Some("testing".to_string()),
            allow_http: Some(true),
            virtual_hosted_style: Some(false),
        }
    }

    /// A store config for `s3://BUCKET/{prefix}` with its spool under `dir`.
    pub fn config(&self, dir: &Path, prefix: &str) -> StoreConfig {
        StoreConfig {
            url: format!("s3://{BUCKET}/{prefix}"),
            spool_dir: dir.join("spool"),
            segment_interval: Duration::from_secs(3600),
            s3: self.s3_options(),
            ..StoreConfig::default()
        }
    }

    /// The server's request log (one werkzeug line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Freezes the server (`SIGSTOP`): connections are still accepted by the kernel but nothing
    /// answers, like a hung or partitioned store.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} {} failed", self.child.id());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
