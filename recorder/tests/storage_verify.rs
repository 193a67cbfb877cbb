//! Tamper evidence on the local store: every way of altering a stored recording is caught and
//! the first bad segment named, crashes verify as truncated, and the trailers stay invisible to
//! the real `zstd` binary.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use recorder::{RecordingStore, SigningKey, Verification, VerifyStatus, segment_name};
use support::{Fixture, meta, signing_key};

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A signed fixture whose recordings have about ten segments.
async fn signed_fixture() -> anyhow::Result<Fixture> {
    Fixture::new(|cfg| {
        cfg.segment_bytes = 1000;
        cfg.signing_key = Some(signing_key());
    })
    .await
}

/// Records a fixed session and returns its number of segments.
async fn record(store: &RecordingStore, id: &str) -> anyhow::Result<u32> {
    let writer = store.begin(meta(id))?;
    for i in 0..40u64 {
        let line = format!("line {i:02} {}\r\n", "z".repeat(200));
        writer.output_at(ms(100 * i), line.as_bytes()).await?;
    }
    let summary = writer.finish_at(ms(5000), "logout").await?;
    assert!(summary.complete && summary.uploaded);
    assert!(summary.segments >= 6, "only {} segments", summary.segments);
    Ok(summary.segments)
}

fn seg(fx: &Fixture, id: &str, seq: u32) -> PathBuf {
    fx.store_root().join(id).join(segment_name(seq))
}

fn flip(path: &Path, at: impl FnOnce(usize) -> usize) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(path)?;
    let at = at(bytes.len());
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes)?;
    Ok(())
}

async fn data_frame_len(fx: &Fixture, id: &str, seq: u32) -> anyhow::Result<usize> {
    Ok(fx.store.read_segment(id, seq).await?.frame()?.len())
}

fn assert_tampered(v: &Verification, first_bad: Option<u32>, says: &str) {
    assert_eq!(v.status, VerifyStatus::Tampered, "{v:?}");
    assert_eq!(v.first_bad, first_bad, "{v:?}");
    assert!(
        v.detail.contains(says),
        "expected {says:?} in {:?}",
        v.detail
    );
    assert!(!v.signed, "{v:?}");
    assert_eq!(v.segments_ok, first_bad.unwrap_or(v.segments_ok), "{v:?}");
}

#[tokio::test]
async fn intact_signed_recording_verifies_complete() -> anyhow::Result<()> {
    let fx = signed_fixture().await?;
    let segments = record(&fx.store, "intact-1").await?;
    let key = signing_key().verifying_key();
    let v = fx.store.verify("intact-1", Some(&key)).await?;
    assert_eq!(v.status, VerifyStatus::Complete, "{v:?}");
    assert_eq!(
        (v.segments_ok, v.first_bad, v.signed),
        (segments, None, true)
    );
    assert!(v.detail.contains(&key.to_hex()), "{}", v.detail);
    let manifest = fx.store.read_manifest("intact-1").await?.expect("manifest");
    assert_eq!(manifest.public_key, Some(key.to_hex()));

    // Without a key only the chain is checked, and the result says so.
    let v = fx.store.verify("intact-1", None).await?;
    assert_eq!((v.status, v.signed), (VerifyStatus::Complete, false));
    assert!(v.detail.contains("signatures not checked"), "{}", v.detail);
    assert!(matches!(
        fx.store.verify("nope", None).await,
        Err(recorder::ReadError::NotFound { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn altered_bytes_are_caught_in_data_and_trailer() -> anyhow::Result<()> {
    let fx = signed_fixture().await?;
    let key = signing_key().verifying_key();
    for id in [
        "flip-data",
        "flip-sig",
        "flip-chain",
        "flip-time",
        "flip-unsigned",
    ] {
        record(&fx.store, id).await?;
    }
    let frame = data_frame_len(&fx, "flip-data", 2).await?;
    flip(&seg(&fx, "flip-data", 2), |_| frame / 2)?;
    let v = fx.store.verify("flip-data", Some(&key)).await?;
    assert_tampered(&v, Some(2), "segment 2");

    // The trailer ends with `...","sig":"HEX"}`: a hex digit of the signature.
    flip(&seg(&fx, "flip-sig", 3), |len| len - 5)?;
    let v = fx.store.verify("flip-sig", Some(&key)).await?;
    assert_tampered(&v, Some(3), "bad signature");

    let text = std::fs::read(seg(&fx, "flip-chain", 1))?;
    let at = find(&text, b"\"chain\":\"")? + 12;
    flip(&seg(&fx, "flip-chain", 1), |_| at)?;
    let v = fx.store.verify("flip-chain", Some(&key)).await?;
    assert_tampered(&v, Some(1), "wrong chain value");

    // Times are not signed, so they are checked against the events themselves.
    let segment = fx.store.read_segment("flip-time", 4).await?;
    let mut trailer = segment.trailer()?.expect("trailer");
    trailer.t1 = trailer.t1.map(|t| t + 0.5);
    let mut object = segment.frame()?.to_vec();
    let json = serde_json::to_vec(&trailer)?;
    object.extend_from_slice(&recorder::TRAILER_MAGIC.to_le_bytes());
    object.extend_from_slice(&(json.len() as u32).to_le_bytes());
    object.extend_from_slice(&json);
    std::fs::write(seg(&fx, "flip-time", 4), object)?;
    let v = fx.store.verify("flip-time", Some(&key)).await?;
    assert_tampered(&v, Some(4), "event times");

    // Without a key, the chain alone still catches changed data.
    let frame = data_frame_len(&fx, "flip-unsigned", 0).await?;
    flip(&seg(&fx, "flip-unsigned", 0), |_| frame - 3)?;
    let v = fx.store.verify("flip-unsigned", None).await?;
    assert_eq!(
        (v.status, v.first_bad),
        (VerifyStatus::Tampered, Some(0)),
        "{v:?}"
    );
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> anyhow::Result<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or_else(|| anyhow::anyhow!("{} not found", String::from_utf8_lossy(needle)))
}

#[tokio::test]
async fn removed_reordered_replayed_and_foreign_segments_are_named() -> anyhow::Result<()> {
    let fx = signed_fixture().await?;
    let key = signing_key().verifying_key();
    let mut counts = std::collections::HashMap::new();
    for id in [
        "gap", "tail", "swap", "replay", "append", "foreign", "victim", "bare",
    ] {
        counts.insert(id, record(&fx.store, id).await?);
    }

    std::fs::remove_file(seg(&fx, "gap", 2))?;
    let v = fx.store.verify("gap", Some(&key)).await?;
    assert_tampered(&v, Some(2), "segment 2 is missing");

    // The newest segment removed: only the manifest knows it existed.
    let last = counts["tail"] - 1;
    std::fs::remove_file(seg(&fx, "tail", last))?;
    let v = fx.store.verify("tail", Some(&key)).await?;
    assert_tampered(
        &v,
        Some(last),
        &format!("segment {last} listed in the manifest is missing"),
    );

    let (one, two) = (seg(&fx, "swap", 1), seg(&fx, "swap", 2));
    let (a, b) = (std::fs::read(&one)?, std::fs::read(&two)?);
    std::fs::write(&one, b)?;
    std::fs::write(&two, a)?;
    let v = fx.store.verify("swap", Some(&key)).await?;
    assert_tampered(&v, Some(1), "segment 1 is segment 2 moved out of place");

    std::fs::copy(seg(&fx, "replay", 1), seg(&fx, "replay", 2))?;
    let v = fx.store.verify("replay", Some(&key)).await?;
    assert_tampered(&v, Some(2), "segment 2 is a replayed copy of segment 1");

    let next = counts["append"];
    std::fs::copy(seg(&fx, "append", 3), seg(&fx, "append", next))?;
    let v = fx.store.verify("append", Some(&key)).await?;
    assert_tampered(&v, Some(next), "replayed copy of segment 3");

    // Same content, same key, but recorded under another id.
    std::fs::copy(seg(&fx, "foreign", 1), seg(&fx, "victim", 1))?;
    let v = fx.store.verify("victim", Some(&key)).await?;
    assert_tampered(&v, Some(1), "belongs to recording \"foreign\"");

    // A trailer stripped off (the bare frame remains).
    let frame = fx.store.read_segment("bare", 0).await?.frame()?.to_vec();
    std::fs::write(seg(&fx, "bare", 0), frame)?;
    let v = fx.store.verify("bare", Some(&key)).await?;
    assert_tampered(&v, Some(0), "segment 0 has no trailer");
    Ok(())
}

#[tokio::test]
async fn forged_manifests_and_wrong_keys_are_caught() -> anyhow::Result<()> {
    let fx = signed_fixture().await?;
    let key = signing_key().verifying_key();
    for id in ["forged", "unsigned-manifest", "garbage", "wrong-key"] {
        record(&fx.store, id).await?;
    }
    let manifest_path = |id: &str| fx.store_root().join(id).join(recorder::MANIFEST_NAME);

    let mut manifest = fx.store.read_manifest("forged").await?.expect("manifest");
    manifest.end_reason = "logout (nothing to see)".to_string();
    std::fs::write(manifest_path("forged"), serde_json::to_vec(&manifest)?)?;
    let v = fx.store.verify("forged", Some(&key)).await?;
    assert_tampered(&v, None, "manifest has a bad signature");

    let mut manifest = fx
        .store
        .read_manifest("unsigned-manifest")
        .await?
        .expect("manifest");
    manifest.signature = None;
    std::fs::write(
        manifest_path("unsigned-manifest"),
        serde_json::to_vec(&manifest)?,
    )?;
    let v = fx.store.verify("unsigned-manifest", Some(&key)).await?;
    assert_tampered(&v, None, "manifest is not signed");

    std::fs::write(manifest_path("garbage"), b"{\"format\": 2")?;
    let v = fx.store.verify("garbage", Some(&key)).await?;
    assert_tampered(&v, None, "manifest is not valid");

    let other = SigningKey::from_seed([7; 32]).verifying_key();
    let v = fx.store.verify("wrong-key", Some(&other)).await?;
    assert_tampered(&v, Some(0), "segment 0 has a bad signature");
    Ok(())
}

#[tokio::test]
async fn unsigned_recordings_fail_when_a_key_is_expected() -> anyhow::Result<()> {
    let fx = Fixture::new(|cfg| cfg.segment_bytes = 1000).await?;
    let segments = record(&fx.store, "plain-1").await?;
    let v = fx.store.verify("plain-1", None).await?;
    assert_eq!(v.status, VerifyStatus::Complete, "{v:?}");
    assert_eq!((v.segments_ok, v.signed), (segments, false));
    // Stripping signatures must not be a way around them.
    let key = signing_key().verifying_key();
    let v = fx.store.verify("plain-1", Some(&key)).await?;
    assert_tampered(&v, Some(0), "segment 0 is not signed");
    Ok(())
}

#[tokio::test]
async fn crashes_and_incomplete_recordings_verify_as_truncated() -> anyhow::Result<()> {
    let fx = signed_fixture().await?;
    let key = signing_key().verifying_key();
    let segments = record(&fx.store, "crashed-1").await?;
    // A crash: no manifest, and the newest segments never made it.
    std::fs::remove_file(
        fx.store_root()
            .join("crashed-1")
            .join(recorder::MANIFEST_NAME),
    )?;
    for seq in segments - 2..segments {
        std::fs::remove_file(seg(&fx, "crashed-1", seq))?;
    }
    let v = fx.store.verify("crashed-1", Some(&key)).await?;
    assert_eq!(v.status, VerifyStatus::Truncated, "{v:?}");
    assert_eq!(
        (v.segments_ok, v.first_bad, v.signed),
        (segments - 2, None, true)
    );
    let last = fx.store.read_segment("crashed-1", segments - 3).await?;
    let t1 = last.trailer()?.expect("trailer").t1.expect("events");
    let says = format!("intact up to segment {} at {t1:.3} s", segments - 3);
    assert!(v.detail.contains("no manifest"), "{}", v.detail);
    assert!(
        v.detail.contains(&says),
        "expected {says:?} in {}",
        v.detail
    );

    // A spool failure mid-session: the manifest says incomplete.
    let writer = fx.store.begin(meta("broken-1"))?;
    writer.output(&[b'a'; 1500]).await?;
    let seg0 = seg(&fx, "broken-1", 0);
    assert!(support::eventually(Duration::from_secs(5), || seg0.exists()).await);
    let spooled = fx.spool_root().join("broken-1");
    std::fs::remove_dir_all(&spooled)?;
    std::fs::write(&spooled, b"in the way")?;
    for _ in 0..100 {
        if writer.output(&[b'b'; 1500]).await.is_err() {
            break;
        }
        tokio::time::sleep(ms(10)).await;
    }
    std::fs::remove_file(&spooled)?;
    std::fs::create_dir(&spooled)?;
    let summary = writer.finish("spool failure").await?;
    assert!(!summary.complete);
    let v = fx.store.verify("broken-1", Some(&key)).await?;
    assert_eq!(v.status, VerifyStatus::Truncated, "{v:?}");
    assert_eq!(v.segments_ok, summary.segments);
    assert!(v.detail.contains("incomplete"), "{}", v.detail);
    Ok(())
}

#[tokio::test]
async fn real_zstd_decodes_the_concatenated_segments_to_the_cast() -> anyhow::Result<()> {
    if std::process::Command::new("zstd")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the zstd binary is required in CI (apt-get install zstd)"
        );
        eprintln!("SKIP real_zstd_decodes_the_concatenated_segments_to_the_cast: no zstd binary");
        return Ok(());
    }
    let fx = signed_fixture().await?;
    let segments = record(&fx.store, "zstd-1").await?;
    let dir = fx.store_root().join("zstd-1");
    let script = format!("cat '{}'/seg-*.zst | zstd -dc", dir.display());
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, fx.store.read_cast("zstd-1").await?);
    // Each segment alone is a valid zstd file too, trailer and all.
    let one = std::process::Command::new("zstd")
        .arg("-t")
        .arg(seg(&fx, "zstd-1", segments - 1))
        .output()?;
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    Ok(())
}
