//! Verifying with the keys of several bastion nodes: a recording verifies when any one key
//! made all of its signatures, the verdict names that key, and a recording whose segments
//! were signed by two different keys (spliced from two nodes) does not verify.

mod support;

use std::time::Duration;

use recorder::{RecordingStore, SigningKey, VerifyStatus, VerifyingKey, segment_name};
use support::{Fixture, meta};

async fn recorded_with(seed: u8, ids: &[&str]) -> anyhow::Result<Fixture> {
    let fx = Fixture::new(|cfg| {
        cfg.segment_bytes = 1000;
        cfg.signing_key = Some(SigningKey::from_seed([seed; 32]));
    })
    .await?;
    for id in ids {
        record(&fx.store, id).await?;
    }
    Ok(fx)
}

async fn record(store: &RecordingStore, id: &str) -> anyhow::Result<()> {
    let writer = store.begin(meta(id))?;
    for i in 0..20u64 {
        let line = format!("line {i:02} {}\r\n", "k".repeat(200));
        writer
            .output_at(Duration::from_millis(100 * i), line.as_bytes())
            .await?;
    }
    let summary = writer.finish_at(Duration::from_secs(3), "logout").await?;
    assert!(summary.complete && summary.segments >= 3, "{summary:?}");
    Ok(())
}

fn key(seed: u8) -> VerifyingKey {
    SigningKey::from_seed([seed; 32]).verifying_key()
}

fn named(keys: &[(&str, u8)]) -> Vec<(String, VerifyingKey)> {
    keys.iter()
        .map(|(name, seed)| (name.to_string(), key(*seed)))
        .collect()
}

#[tokio::test]
async fn any_listed_key_verifies_and_is_named() -> anyhow::Result<()> {
    let fx = recorded_with(2, &["by-b"]).await?;
    let keys = named(&[("node-a", 1), ("node-b", 2), ("node-c", 3)]);
    let v = fx.store.verify_by_any("by-b", &keys).await?;
    assert_eq!(v.status, VerifyStatus::Complete, "{v:?}");
    assert!(v.signed, "{v:?}");
    assert_eq!(v.signer.as_deref(), Some("node-b"));
    assert!(v.detail.contains("signed by node-b"), "{}", v.detail);

    // The single-key form still works and names the key by its hex.
    let v = fx.store.verify("by-b", Some(&key(2))).await?;
    assert_eq!(v.status, VerifyStatus::Complete, "{v:?}");
    assert_eq!(v.signer, Some(key(2).to_hex()));

    // None of the keys: tampered at segment 0, the message says how many keys were tried.
    let v = fx
        .store
        .verify_by_any("by-b", &named(&[("node-a", 1), ("node-c", 3)]))
        .await?;
    assert_eq!(
        (v.status, v.first_bad, v.signed),
        (VerifyStatus::Tampered, Some(0), false)
    );
    assert!(v.detail.contains("any of the 2 keys given"), "{}", v.detail);
    assert_eq!(v.signer, None);

    // No keys: the chain only, and nobody named.
    let v = fx.store.verify_by_any("by-b", &[]).await?;
    assert_eq!(
        (v.status, v.signed, v.signer),
        (VerifyStatus::Complete, false, None)
    );
    Ok(())
}

#[tokio::test]
async fn segments_signed_by_two_keys_do_not_verify() -> anyhow::Result<()> {
    // The same recording id made twice, by two nodes: identical content gives the same hash
    // chain, so only the signatures differ. Splicing segment 1 of one into the other must
    // fail even though both keys are trusted.
    let a = recorded_with(1, &["same"]).await?;
    let b = recorded_with(2, &["same"]).await?;
    let spliced = b.store_root().join("same").join(segment_name(1));
    std::fs::copy(a.store_root().join("same").join(segment_name(1)), &spliced)?;
    let keys = named(&[("node-a", 1), ("node-b", 2)]);
    let v = b.store.verify_by_any("same", &keys).await?;
    assert_eq!(
        (v.status, v.first_bad),
        (VerifyStatus::Tampered, Some(1)),
        "{v:?}"
    );
    assert!(v.detail.contains("node-b's key"), "{}", v.detail);
    Ok(())
}
