//! Turns the file as written (`RawConfig`) into a `Config`, applying defaults and rejecting
//! anything the daemon could not use, each error naming its dotted key.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::check::{Checker, is_valid_name};
use super::raw::{RawByteSize, RawConfig, RawS3, RawTarget, RawUser};
use super::{
    Config, ConfigError, DEFAULT_ACCESS_HINT, RESERVED_NAMES, RecordingSettings, ReplaySettings,
    Target, User,
};

const DEFAULT_LISTEN: &str = "127.0.0.1:2222";
const DEFAULT_DATA_DIR: &str = "data";
const DEFAULT_WARN_BEFORE: [&str; 2] = ["5m", "1m"];
const DEFAULT_GRANT_POLL: &str = "1s";
/// OpenSSH waits 120 s; a bastion has no reason to be as patient with strangers.
const DEFAULT_LOGIN_GRACE: &str = "30s";
const DEFAULT_SEGMENT_INTERVAL: &str = "5s";
const DEFAULT_SEGMENT_BYTES: usize = 1024 * 1024;
const DEFAULT_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;

pub(super) fn validate(raw: RawConfig, file: &str) -> Result<Config, ConfigError> {
    let check = Checker::new(file);

    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
        check.err(
            "listen",
            format!(
                "invalid socket address {listen_text:?} (expected ip:port, e.g. \"0.0.0.0:2222\")"
            ),
        )
    })?;

    let data_dir = check.path(
        "data_dir",
        raw.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR),
    )?;
    let database_url = match raw.database_url {
        Some(url) => {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(check.err(
                    "database_url",
                    format!(
                        "unsupported database url {:?} (expected sqlite://PATH or postgres://...)",
                        redact_url(&url)
                    ),
                ));
            }
            url
        }
        None => format!("sqlite://{}", data_dir.join("bastion.db").display()),
    };
    let recordings = match raw.recordings {
        Some(url) if url.contains("://") => url,
        Some(url) => {
            return Err(check.err(
                "recordings",
                format!(
                    "invalid recordings url {url:?} (expected file://PATH or s3://BUCKET/PREFIX)"
                ),
            ));
        }
        None => format!("file://{}", data_dir.join("recordings").display()),
    };

    let warn_before = match &raw.warn_before {
        Some(list) => {
            let mut values = Vec::with_capacity(list.len());
            for (i, text) in list.iter().enumerate() {
                values.push(check.duration(&format!("warn_before[{i}]"), text)?);
            }
            values
        }
        None => DEFAULT_WARN_BEFORE
            .iter()
            .map(|text| check.duration("warn_before", text))
            .collect::<Result<_, _>>()?,
    };
    let mut warn_before = warn_before;
    warn_before.sort_unstable_by(|a, b| b.cmp(a));
    warn_before.dedup();

    let audit_log = match &raw.audit_log {
        Some(path) => check.path("audit_log", path)?,
        None => data_dir.join("audit.jsonl"),
    };
    let host_key = match &raw.host_key {
        Some(path) => check.path("host_key", path)?,
        None => data_dir.join("host_ed25519_key"),
    };
    let signing_key = match &raw.signing_key {
        Some(path) => check.path("signing_key", path)?,
        None => data_dir.join("signing_ed25519_key"),
    };
    let access_hint = match raw.access_hint {
        Some(hint) if hint.trim().is_empty() => {
            return Err(check.err("access_hint", "must not be empty"));
        }
        Some(hint) => hint,
        None => DEFAULT_ACCESS_HINT.to_string(),
    };
    let grant_poll = check.duration(
        "grant_poll",
        raw.grant_poll.as_deref().unwrap_or(DEFAULT_GRANT_POLL),
    )?;

    let raw_recording = raw.recording.unwrap_or_default();
    let segment_interval = check.duration(
        "recording.segment_interval",
        raw_recording
            .segment_interval
            .as_deref()
            .unwrap_or(DEFAULT_SEGMENT_INTERVAL),
    )?;
    let segment_bytes = match &raw_recording.segment_bytes {
        Some(size) => {
            byte_size(size).map_err(|reason| check.err("recording.segment_bytes", reason))?
        }
        None => DEFAULT_SEGMENT_BYTES,
    };
    let spool_max_bytes = match &raw_recording.spool_max_bytes {
        Some(size) => byte_size(size)
            .map(|n| n as u64)
            .map_err(|reason| check.err("recording.spool_max_bytes", reason))?,
        None => DEFAULT_SPOOL_MAX_BYTES,
    };
    let s3 = s3(&check, raw.s3.unwrap_or_default())?;
    let node_id = match raw.node_id {
        Some(id) => {
            check.name("node_id", &id)?;
            id
        }
        None => default_node_id(),
    };
    let replay = ReplaySettings {
        allow_end_session: raw.replay.unwrap_or_default().allow_end_session,
    };

    let login_grace = check.duration(
        "login_grace",
        raw.login_grace.as_deref().unwrap_or(DEFAULT_LOGIN_GRACE),
    )?;
    let limits = super::limits::validate(&check, raw.limits.unwrap_or_default())?;

    let users = users(&check, raw.users)?;
    let targets = targets(&check, raw.targets)?;
    let policies = super::policy::policies(&check, raw.policies, &users, &targets)?;
    let api = super::api::api(&check, raw.api, &users)?;
    let slack = super::api::slack(&check, raw.slack)?;
    let notify = super::api::notify(&check, raw.notify)?;
    let nodes = super::api::nodes(&check, raw.nodes)?;

    Ok(Config {
        login_grace,
        limits,
        source: file.to_string(),
        listen,
        spool_dir: data_dir.join("spool"),
        data_dir,
        database_url,
        recordings,
        warn_before,
        audit_log,
        host_key,
        signing_key,
        access_hint,
        grant_poll,
        node_id,
        recording: RecordingSettings {
            segment_interval,
            segment_bytes,
            spool_max_bytes,
        },
        s3,
        replay,
        users,
        targets,
        policies,
        api,
        slack,
        notify,
        nodes,
    })
}

/// The machine's host name, or `bastion` if it has none a name check would accept: two nodes
/// sharing one PostgreSQL database must set `node_id` themselves if their host names collide.
fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| is_valid_name(name))
        .unwrap_or_else(|| "bastion".to_string())
}

/// The `[s3]` table. Unset keys stay `None` so the `AWS_*` environment variables fill them.
fn s3(check: &Checker<'_>, raw: RawS3) -> Result<recorder::S3Options, ConfigError> {
    let not_empty = |key: &str, value: Option<String>| match value {
        Some(text) if text.trim().is_empty() => Err(check.err(key, "must not be empty")),
        other => Ok(other),
    };
    let endpoint = not_empty("s3.endpoint", raw.endpoint)?;
    if let Some(endpoint) = &endpoint {
        let rest = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"));
        if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
            return Err(check.err(
                "s3.endpoint",
                format!(
                    "invalid endpoint {endpoint:?} (expected a URL like \"https://s3.eu-west-1.amazonaws.com\" or \"http://127.0.0.1:9000\")"
                ),
            ));
        }
        if endpoint.starts_with("http://") && raw.allow_http == Some(false) {
            return Err(check.err(
                "s3.allow_http",
                format!("is false but s3.endpoint {endpoint:?} is plain http"),
            ));
        }
    }
    let access_key_id = not_empty("s3.access_key_id", raw.access_key_id)?;
    let secret_access_key = not_empty("s3.secret_access_key", raw.secret_access_key)?;
    match (&access_key_id, &secret_access_key) {
        (Some(_), None) => {
            return Err(check.err(
                "s3.access_key_id",
                "must be set together with s3.secret_access_key",
            ));
        }
        (None, Some(_)) => {
            return Err(check.err(
                "s3.secret_access_key",
                "must be set together with s3.access_key_id",
            ));
        }
        _ => {}
    }
    Ok(recorder::S3Options {
        endpoint,
        region: not_empty("s3.region", raw.region)?,
        access_key_id,
        secret_access_key,
        allow_http: raw.allow_http,
        virtual_hosted_style: raw.virtual_hosted_style,
    })
}

fn users(check: &Checker<'_>, raw: Vec<RawUser>) -> Result<Vec<User>, ConfigError> {
    let mut seen = HashSet::new();
    let mut seen_slack = HashSet::new();
    let mut users = Vec::with_capacity(raw.len());
    for (i, user) in raw.into_iter().enumerate() {
        check.name(&format!("users[{i}].name"), &user.name)?;
        if !seen.insert(user.name.clone()) {
            return Err(check.err(
                format!("users[{i}].name"),
                format!("duplicate user name {:?}", user.name),
            ));
        }
        if user.keys.is_empty() {
            return Err(check.err(
                format!("users[{i}].keys"),
                "must list at least one public key",
            ));
        }
        let keys = user
            .keys
            .iter()
            .enumerate()
            .map(|(k, text)| check.public_key(&format!("users[{i}].keys[{k}]"), text))
            .collect::<Result<_, _>>()?;
        let groups = super::policy::groups(check, &format!("users[{i}].groups"), user.groups)?;
        let slack_id = match user.slack_id {
            Some(id) => {
                let key = format!("users[{i}].slack_id");
                if !is_slack_id(&id) {
                    return Err(check.err(
                        key,
                        format!("invalid Slack member id {id:?} (expected e.g. \"U0123ABCD\")"),
                    ));
                }
                if !seen_slack.insert(id.clone()) {
                    return Err(check.err(key, format!("{id:?} is already another user's")));
                }
                Some(id)
            }
            None => None,
        };
        users.push(User {
            name: user.name,
            keys,
            groups,
            slack_id,
        });
    }
    Ok(users)
}

fn targets(check: &Checker<'_>, raw: Vec<RawTarget>) -> Result<Vec<Target>, ConfigError> {
    let mut seen = HashSet::new();
    let mut targets = Vec::with_capacity(raw.len());
    for (i, target) in raw.into_iter().enumerate() {
        check.name(&format!("targets[{i}].name"), &target.name)?;
        if !seen.insert(target.name.clone()) {
            return Err(check.err(
                format!("targets[{i}].name"),
                format!("duplicate target name {:?}", target.name),
            ));
        }
        // `ssh alice@bastion help` must stay the command, never a session to a host.
        if RESERVED_NAMES.contains(&target.name.as_str()) {
            return Err(check.err(
                format!("targets[{i}].name"),
                format!(
                    "{:?} is a bastion command name; choose another",
                    target.name
                ),
            ));
        }
        if !is_valid_target_address(&target.address) {
            return Err(check.err(
                format!("targets[{i}].address"),
                format!(
                    "invalid socket address {:?} (expected host:port)",
                    target.address
                ),
            ));
        }
        if target.logins.is_empty() {
            return Err(check.err(
                format!("targets[{i}].logins"),
                "must list at least one login",
            ));
        }
        let mut logins: Vec<String> = Vec::with_capacity(target.logins.len());
        for (l, login) in target.logins.into_iter().enumerate() {
            if !is_valid_login(&login) {
                return Err(check.err(
                    format!("targets[{i}].logins[{l}]"),
                    format!("invalid unix user name {login:?}"),
                ));
            }
            if !logins.contains(&login) {
                logins.push(login);
            }
        }
        let identity = check.path(&format!("targets[{i}].identity"), &target.identity)?;
        let host_key = target
            .host_key
            .as_deref()
            .map(|text| check.public_key(&format!("targets[{i}].host_key"), text))
            .transpose()?;
        targets.push(Target {
            name: target.name,
            address: target.address,
            logins,
            identity,
            host_key,
            fail_open: target.fail_open,
            record: target.record,
        });
    }
    Ok(targets)
}

/// A portable unix user name: 1-32 characters, starting with a letter or '_', then letters,
/// digits, '.', '_' or '-', optionally ending in '$' (Samba machine accounts).
/// Slack member ids: an upper-case letter and upper-case letters or digits (`U0123ABCD`).
fn is_slack_id(id: &str) -> bool {
    (2..=32).contains(&id.len())
        && id.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

pub fn is_valid_login(login: &str) -> bool {
    let body = login.strip_suffix('$').unwrap_or(login);
    let mut bytes = body.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    login.len() <= 32
        && (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `host:port` with a non-zero port; the host is an IPv4 address, a bracketed IPv6 address or a
/// DNS name.
fn is_valid_target_address(address: &str) -> bool {
    if address.parse::<SocketAddr>().is_ok() {
        return address
            .rsplit_once(':')
            .is_some_and(|(_, port)| port != "0");
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && host_ok
}

/// Bytes as an integer, or a string with an optional B/KiB/MiB/GiB (or KB/MB/GB, also 1024-based)
/// suffix.
pub(super) fn byte_size(size: &RawByteSize) -> Result<usize, String> {
    let bytes = match size {
        RawByteSize::Bytes(n) => {
            u64::try_from(*n).map_err(|_| format!("invalid size {n} (must be positive)"))?
        }
        RawByteSize::Text(text) => {
            let trimmed = text.trim();
            let split = trimmed
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(trimmed.len());
            let (digits, unit) = trimmed.split_at(split);
            let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" | "kib" => 1024,
                "m" | "mb" | "mib" => 1024 * 1024,
                "g" | "gb" | "gib" => 1024 * 1024 * 1024,
                _ => {
                    return Err(format!(
                        "invalid size {text:?} (expected bytes, or a number with KiB, MiB or GiB)"
                    ));
                }
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(multiplier))
                .ok_or_else(|| {
                    format!(
                        "invalid size {text:?} (expected bytes, or a number with KiB, MiB or GiB)"
                    )
                })?
        }
    };
    if bytes == 0 {
        return Err("size must be greater than zero".to_string());
    }
    usize::try_from(bytes).map_err(|_| format!("size {bytes} is too large"))
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _secret)) => {
                format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names() {
        for ok in ["app", "root", "_svc", "deploy-bot", "a.b", "host$", "A1"] {
            assert!(is_valid_login(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "1abc",
            "a b",
            "a:b",
            "$",
            "verylongname_verylongname_verylong",
        ] {
            assert!(!is_valid_login(bad), "{bad}");
        }
    }

    #[test]
    fn target_addresses() {
        for ok in [
            "10.0.0.5:22",
            "db-1.internal:2222",
            "[::1]:22",
            "localhost:22",
        ] {
            assert!(is_valid_target_address(ok), "{ok}");
        }
        for bad in [
            "10.0.0.5", "db:0", "db:", ":22", "db:99999", "-db:22", "a b:22", "::1:22",
        ] {
            assert!(!is_valid_target_address(bad), "{bad}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size(&RawByteSize::Bytes(4096)), Ok(4096));
        assert_eq!(byte_size(&RawByteSize::Text("1MiB".into())), Ok(1 << 20));
        assert_eq!(byte_size(&RawByteSize::Text("64 KiB".into())), Ok(64 << 10));
        assert_eq!(byte_size(&RawByteSize::Text("512".into())), Ok(512));
        assert!(byte_size(&RawByteSize::Text("1.5MiB".into())).is_err());
        assert!(byte_size(&RawByteSize::Text("MiB".into())).is_err());
        assert!(byte_size(&RawByteSize::Bytes(0)).is_err());
        assert!(byte_size(&RawByteSize::Bytes(-1)).is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
