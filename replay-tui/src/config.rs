//! The few keys of the bastion configuration file that bastion-replay needs, read with a
//! tolerant reader of its own.
//!
//! bastion-replay must not depend on the `bastion` crate (a reviewer's tool should not pull in
//! the SSH server), so it does not use bastion's strict loader. It reads the TOML and picks
//! `data_dir`, `recordings`, `[s3]`, `[recording].segment_interval`, `signing_key` and
//! `[replay].allow_end_session`; every other key is ignored, so a newer bastion configuration
//! still opens. Defaults and path rules are bastion's: relative paths are relative to the
//! current directory, `recordings` defaults to `file://<data_dir>/recordings`, `signing_key` to
//! `<data_dir>/signing_ed25519_key`.
//!
//! Whether a reviewer may end a live session is the configuration's decision
//! (`[replay] allow_end_session`, default false); `--no-end-session` can only narrow it.
//! [`EndSessions`] carries that decision, with the reason shown when `E` is refused.
//!
//! Only the public half of the signing key is needed (to mark recordings as verified): it is
//! read from `<signing_key>.pub` (an OpenSSH public key line, which the daemon writes next to
//! the key) or, failing that, from the unencrypted public part of the OpenSSH private key file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use recorder::{S3Options, StoreConfig, VerifyingKey};

const DEFAULT_DATA_DIR: &str = "data";
const DEFAULT_SEGMENT_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration {path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// What bastion-replay takes from the configuration.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub path: PathBuf,
    pub data_dir: PathBuf,
    pub recordings: String,
    pub s3: S3Options,
    /// How often a recording being written gains a segment: the follow poll interval.
    pub segment_interval: Duration,
    pub signing_key: PathBuf,
    /// `[replay].allow_end_session`: reviewers may end live sessions from the player.
    pub allow_end_session: bool,
}

/// Whether the player's `E` key may end a live session; when not, the reason the reviewer is
/// shown, naming what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSessions {
    Allowed,
    Refused(String),
}

impl EndSessions {
    /// The configuration allows it (`[replay] allow_end_session = true`) and the command line
    /// did not take it back (`--no-end-session`).
    pub fn decide(config: Option<&ReplayConfig>, no_end_session_flag: bool) -> EndSessions {
        match config {
            None => EndSessions::Refused(
                "ending sessions needs the bastion configuration (--config)".to_string(),
            ),
            Some(config) if !config.allow_end_session => {
                let mut reason = format!(
                    "ending sessions is off: set [replay] allow_end_session = true in {}",
                    config.path.display()
                );
                if no_end_session_flag {
                    reason.push_str(" and drop --no-end-session");
                }
                EndSessions::Refused(reason)
            }
            Some(_) if no_end_session_flag => EndSessions::Refused(
                "ending sessions is off: bastion-replay was started with --no-end-session"
                    .to_string(),
            ),
            Some(_) => EndSessions::Allowed,
        }
    }

    pub fn allowed(&self) -> bool {
        *self == EndSessions::Allowed
    }
}

impl ReplayConfig {
    pub fn load(path: &Path) -> Result<ReplayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ReplayConfig::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ReplayConfig, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: e.message().to_string(),
                })?;
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let string =
            |table: &toml::Table, key: &str, full: &str| -> Result<Option<String>, ConfigError> {
                match table.get(key) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(invalid(full, "must be a string")),
                }
            };
        let boolean =
            |table: &toml::Table, key: &str, full: &str| -> Result<Option<bool>, ConfigError> {
                match table.get(key) {
                    None => Ok(None),
                    Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
                    Some(_) => Err(invalid(full, "must be true or false")),
                }
            };
        let subtable = |key: &str| -> Result<toml::Table, ConfigError> {
            match table.get(key) {
                None => Ok(toml::Table::new()),
                Some(toml::Value::Table(t)) => Ok(t.clone()),
                Some(_) => Err(invalid(key, "must be a table")),
            }
        };
        let data_dir = PathBuf::from(
            string(&table, "data_dir", "data_dir")?.unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
        );
        let recordings = string(&table, "recordings", "recordings")?
            .unwrap_or_else(|| format!("file://{}", data_dir.join("recordings").display()));
        let s3_table = subtable("s3")?;
        let s3 = S3Options {
            endpoint: string(&s3_table, "endpoint", "s3.endpoint")?,
            region: string(&s3_table, "region", "s3.region")?,
            access_key_id: string(&s3_table, "access_key_id", "s3.access_key_id")?,
            secret_access_key: string(&s3_table, "secret_access_key", "s3.secret_access_key")?,
            allow_http: boolean(&s3_table, "allow_http", "s3.allow_http")?,
            virtual_hosted_style: boolean(
                &s3_table,
                "virtual_hosted_style",
                "s3.virtual_hosted_style",
            )?,
        };
        let recording = subtable("recording")?;
        let segment_interval =
            match string(&recording, "segment_interval", "recording.segment_interval")? {
                Some(text) => humantime::parse_duration(&text)
                    .map_err(|e| invalid("recording.segment_interval", &e.to_string()))?,
                None => DEFAULT_SEGMENT_INTERVAL,
            };
        let signing_key = string(&table, "signing_key", "signing_key")?
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("signing_ed25519_key"));
        let replay = subtable("replay")?;
        let allow_end_session =
            boolean(&replay, "allow_end_session", "replay.allow_end_session")?.unwrap_or(false);
        Ok(ReplayConfig {
            path: path.to_path_buf(),
            data_dir,
            recordings,
            s3,
            segment_interval,
            signing_key,
            allow_end_session,
        })
    }

    /// Store settings for a read-only store (`RecordingStore::open_reader`).
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            url: self.recordings.clone(),
            spool_dir: self.data_dir.join("spool"),
            segment_interval: self.segment_interval,
            s3: self.s3.clone(),
            ..StoreConfig::default()
        }
    }

    /// The public signing key, if the daemon has one; an error says why a present key is
    /// unusable.
    pub fn verifying_key(&self) -> Result<Option<VerifyingKey>, String> {
        let mut public = self.signing_key.as_os_str().to_os_string();
        public.push(".pub");
        let public = PathBuf::from(public);
        let (path, blob) = if let Ok(text) = std::fs::read_to_string(&public) {
            (public.clone(), public_line_blob(&text))
        } else if let Ok(text) = std::fs::read_to_string(&self.signing_key) {
            (self.signing_key.clone(), private_file_blob(&text))
        } else {
            return Ok(None);
        };
        let blob = blob.ok_or_else(|| format!("{}: not an OpenSSH ed25519 key", path.display()))?;
        let bytes = ed25519_from_blob(&blob)
            .ok_or_else(|| format!("{}: not an ed25519 key", path.display()))?;
        VerifyingKey::from_bytes(bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// `ssh-ed25519 AAAA... comment` → the decoded key blob.
fn public_line_blob(text: &str) -> Option<Vec<u8>> {
    let mut words = text.split_whitespace();
    let _kind = words.next()?;
    base64::engine::general_purpose::STANDARD
        .decode(words.next()?)
        .ok()
}

/// The public key blob stored in clear inside an `openssh-key-v1` private key file.
fn private_file_blob(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let data = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let mut rest = data.strip_prefix(b"openssh-key-v1\0")?;
    // ciphername, kdfname, kdfoptions, then the number of keys and the first public key.
    for _ in 0..3 {
        take_string(&mut rest)?;
    }
    let count = take_u32(&mut rest)?;
    (count >= 1).then_some(())?;
    take_string(&mut rest).map(<[u8]>::to_vec)
}

/// The 32 key bytes of an `ssh-ed25519` public key blob.
fn ed25519_from_blob(blob: &[u8]) -> Option<[u8; 32]> {
    let mut rest = blob;
    if take_string(&mut rest)? != b"ssh-ed25519" {
        return None;
    }
    take_string(&mut rest)?.try_into().ok()
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    let (head, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(u32::from_be_bytes(*head))
}

fn take_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(rest)? as usize;
    if rest.len() < len {
        return None;
    }
    let (value, tail) = rest.split_at(len);
    *rest = tail;
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ed25519 key pair made with `ssh-keygen -t ed25519 -N ''` for this test only.
    const PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBl9naTXXi5b6spcyeVl/yq07to5AJVmmc594ntnZyswQAAAJBZK2DhWStg
4QAAAAtzc2gtZWQyNTUxOQAAACBl9naTXXi5b6spcyeVl/yq07to5AJVmmc594ntnZyswQ
AAAEALc6FOseG6GKdy4rOMuwkYu/k92JK9heYdHM49+9ozP2X2dpNdeLlvqylzJ5WX/KrT
u2jkAlWaZzn3ie2dnKzBAAAACnRlc3RAbG9jYWwBAgM=
-----END OPENSSH PRIVATE KEY-----
";
    const PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGX2dpNdeLlvqylzJ5WX/KrTu2jkAlWaZzn3ie2dnKzB test@local\n";

    #[test]
    fn only_needed_keys_are_read_and_unknown_ones_ignored() {
        let text = r#"
            listen = "127.0.0.1:2222"
            data_dir = "/srv/bastion"
            some_future_key = [1, 2]
            [s3]
            endpoint = "http://127.0.0.1:9000"
            allow_http = true
            [recording]
            segment_interval = "2s"
            spool_max_bytes = "1GiB"
            [[targets]]
            name = "db-1"
        "#;
        let config = ReplayConfig::parse(text, Path::new("b.toml")).unwrap();
        assert_eq!(config.recordings, "file:///srv/bastion/recordings");
        assert_eq!(config.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.s3.allow_http, Some(true));
        assert_eq!(config.segment_interval, Duration::from_secs(2));
        assert_eq!(
            config.signing_key,
            PathBuf::from("/srv/bastion/signing_ed25519_key")
        );
        assert_eq!(
            config.store_config().spool_dir,
            PathBuf::from("/srv/bastion/spool")
        );

        let defaults = ReplayConfig::parse("", Path::new("e.toml")).unwrap();
        assert_eq!(defaults.recordings, "file://data/recordings");
        let err = ReplayConfig::parse("recordings = 3", Path::new("x.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration x.toml: recordings: must be a string"
        );
    }

    #[test]
    fn bastions_example_configuration_is_readable() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bastion.example.toml");
        let config = ReplayConfig::load(&path).unwrap();
        assert_eq!(config.recordings, "file://data/recordings");
        assert_eq!(config.segment_interval, Duration::from_secs(5));
        assert!(!config.allow_end_session);
    }

    #[test]
    fn ending_sessions_is_the_configurations_decision_and_the_flag_only_narrows_it() {
        let path = Path::new("/etc/bastion/bastion.toml");
        let allowing = ReplayConfig::parse("[replay]\nallow_end_session = true\n", path).unwrap();
        assert!(allowing.allow_end_session);
        assert_eq!(
            EndSessions::decide(Some(&allowing), false),
            EndSessions::Allowed
        );
        assert_eq!(
            EndSessions::decide(Some(&allowing), true),
            EndSessions::Refused(
                "ending sessions is off: bastion-replay was started with --no-end-session"
                    .to_string()
            )
        );

        let silent = ReplayConfig::parse("[replay]\n", path).unwrap();
        assert!(!silent.allow_end_session);
        let refusal = "ending sessions is off: set [replay] allow_end_session = true in /etc/bastion/bastion.toml";
        assert_eq!(
            EndSessions::decide(Some(&silent), false),
            EndSessions::Refused(refusal.to_string())
        );
        assert_eq!(
            EndSessions::decide(Some(&silent), true),
            EndSessions::Refused(format!("{refusal} and drop --no-end-session"))
        );
        assert!(!EndSessions::decide(None, false).allowed());

        let err = ReplayConfig::parse("[replay]\nallow_end_session = \"yes\"\n", path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration /etc/bastion/bastion.toml: replay.allow_end_session: must be true or false"
        );
        let err = ReplayConfig::parse("replay = true\n", path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration /etc/bastion/bastion.toml: replay: must be a table"
        );
    }

    #[test]
    fn public_key_comes_from_pub_file_or_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("signing_ed25519_key");
        let config = ReplayConfig::parse(
            &format!("signing_key = {:?}", key.display().to_string()),
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(config.verifying_key().unwrap().is_none());
        std::fs::write(&key, PRIVATE).unwrap();
        let from_private = config.verifying_key().unwrap().unwrap();
        std::fs::write(dir.path().join("signing_ed25519_key.pub"), PUBLIC).unwrap();
        let from_public = config.verifying_key().unwrap().unwrap();
        assert_eq!(from_private.to_hex(), from_public.to_hex());
        std::fs::write(dir.path().join("signing_ed25519_key.pub"), "garbage").unwrap();
        assert!(config.verifying_key().is_err());
    }
}
