//! The recording keys of the configuration: `signing_key`, `[recording] spool_max_bytes` and the
//! `[s3]` table, their defaults, their errors (file, dotted key, reason) and what reaches the
//! recorder's `StoreConfig`.

use std::path::Path;

use bastion::config::{Config, ConfigError};

fn invalid(text: &str) -> (String, String) {
    match Config::parse(text, "bastion.toml") {
        Err(ConfigError::Invalid { file, key, reason }) => {
            assert_eq!(file, "bastion.toml");
            (key, reason)
        }
        other => panic!("expected an invalid-key error for {text:?}, got {other:?}"),
    }
}

#[test]
fn defaults_live_in_the_data_dir_and_leave_s3_to_the_environment() {
    let config = Config::parse("data_dir = \"/var/lib/bastion\"\n", "bastion.toml").unwrap();
    assert_eq!(
        config.signing_key,
        Path::new("/var/lib/bastion/signing_ed25519_key")
    );
    assert_eq!(config.recording.spool_max_bytes, 1 << 30);
    let s3 = config.store_config().s3;
    assert_eq!(
        (
            s3.endpoint,
            s3.region,
            s3.access_key_id,
            s3.secret_access_key
        ),
        (None, None, None, None)
    );
    assert_eq!((s3.allow_http, s3.virtual_hosted_style), (None, None));
}

#[test]
fn s3_table_reaches_the_store_config_and_hides_the_secret() {
    let text = r#"
recordings = "s3://recordings/bastion"
signing_key = "keys/sign"

[recording]
spool_max_bytes = "64MiB"

[s3]
endpoint = "http://127.0.0.1:9000"
region = "eu-west-1"
access_key_id = "AKIAEXAMPLE"
secret_access_key = "very-secret-value"
allow_http = true
virtual_hosted_style = false
"#;
    let config = Config::parse(text, "bastion.toml").unwrap();
    assert_eq!(config.signing_key, Path::new("keys/sign"));
    assert_eq!(config.recording.spool_max_bytes, 64 << 20);
    let store = config.store_config();
    assert_eq!(store.url, "s3://recordings/bastion");
    assert_eq!(store.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(store.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(store.s3.access_key_id.as_deref(), Some("AKIAEXAMPLE"));
    assert_eq!(
        store.s3.secret_access_key.as_deref(),
        Some("very-secret-value")
    );
    assert_eq!(store.s3.allow_http, Some(true));
    assert_eq!(store.s3.virtual_hosted_style, Some(false));
    for debug in [format!("{config:?}"), format!("{store:?}")] {
        assert!(!debug.contains("very-secret-value"), "{debug}");
    }
}

#[test]
fn bad_recording_keys_are_named() {
    let cases = [
        (
            "[s3]\nendpoint = \"minio:9000\"\n",
            "s3.endpoint",
            "invalid endpoint \"minio:9000\"",
        ),
        (
            "[s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = false\n",
            "s3.allow_http",
            "is false but s3.endpoint \"http://127.0.0.1:9000\" is plain http",
        ),
        (
            "[s3]\naccess_key_id = \"AKIA\"\n",
            "s3.access_key_id",
            "must be set together with s3.secret_access_key",
        ),
        (
            "[s3]\nsecret_access_key = \"x\"\n",
            "s3.secret_access_key",
            "must be set together with s3.access_key_id",
        ),
        ("[s3]\nregion = \" \"\n", "s3.region", "must not be empty"),
        ("[s3]\nbucket = \"b\"\n", "s3.bucket", "unknown key"),
        (
            "[s3]\nallow_http = \"yes\"\n",
            "s3.allow_http",
            "invalid type",
        ),
        (
            "[recording]\nspool_max_bytes = \"lots\"\n",
            "recording.spool_max_bytes",
            "invalid size \"lots\"",
        ),
        (
            "[recording]\nspool_max_bytes = 0\n",
            "recording.spool_max_bytes",
            "size must be greater than zero",
        ),
        (
            "signing_key = \"\"\n",
            "signing_key",
            "path must not be empty",
        ),
    ];
    for (text, key, reason) in cases {
        let (got_key, got_reason) = invalid(text);
        assert_eq!(got_key, key, "{text:?}");
        assert!(got_reason.starts_with(reason), "{text:?}: {got_reason}");
    }
}
