//! ed25519 signing of segments and manifests.
//!
//! The recorder knows no SSH key formats: bastion loads its OpenSSH ed25519 host or signing key
//! and hands over the 32-byte seed. Signatures are over short, domain-separated binary
//! statements (never over JSON as written), so a signature made for one purpose or one recording
//! cannot be replayed as another:
//! - segment: `"bastion-segment-v1\0" || id || "\0" || seq (big-endian u32) || chain (32 bytes)`;
//!   the chain covers this segment's data frame and, through `prev`, every segment before it.
//! - manifest: `"bastion-manifest-v1\0" || canonical manifest bytes` (see
//!   [`crate::Manifest::signed_bytes`]).

use ed25519_dalek::{Signature, Signer};

const SEGMENT_DOMAIN: &[u8] = b"bastion-segment-v1\0";
const MANIFEST_DOMAIN: &[u8] = b"bastion-manifest-v1\0";

/// The private half, used by the writer. Debug output never shows the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// The public half, used to verify recordings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

/// Bytes that are not an ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid ed25519 public key: not a point on the curve")]
    NotAPoint,
    #[error("invalid ed25519 public key: expected 64 hex digits")]
    BadHex,
}

impl SigningKey {
    /// The key whose 32-byte secret seed is `seed` (an OpenSSH ed25519 private key holds it as
    /// the first half of its 64-byte private part).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    pub(crate) fn sign_segment(&self, id: &str, seq: u32, chain: &[u8; 32]) -> [u8; 64] {
        self.0.sign(&segment_statement(id, seq, chain)).to_bytes()
    }

    pub(crate) fn sign_manifest(&self, canonical: &[u8]) -> [u8; 64] {
        self.0.sign(&manifest_statement(canonical)).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.verifying_key().to_hex())
    }
}

impl VerifyingKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Result<VerifyingKey, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(VerifyingKey)
            .map_err(|_| KeyError::NotAPoint)
    }

    /// Parses the form [`VerifyingKey::to_hex`] prints (as found in a manifest's `public_key`).
    pub fn from_hex(hex_key: &str) -> Result<VerifyingKey, KeyError> {
        let bytes: [u8; 32] = hex::decode(hex_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::BadHex)?;
        VerifyingKey::from_bytes(bytes)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Strict verification: rejects the malleable and small-order forms plain `verify` allows.
    pub(crate) fn verify_segment(&self, id: &str, seq: u32, chain: &[u8; 32], sig: &[u8]) -> bool {
        self.verify(&segment_statement(id, seq, chain), sig)
    }

    pub(crate) fn verify_manifest(&self, canonical: &[u8], sig: &[u8]) -> bool {
        self.verify(&manifest_statement(canonical), sig)
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", self.to_hex())
    }
}

impl std::fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn segment_statement(id: &str, seq: u32, chain: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_DOMAIN.len() + id.len() + 1 + 4 + 32);
    out.extend_from_slice(SEGMENT_DOMAIN);
    out.extend_from_slice(id.as_bytes());
    out.push(0);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(chain);
    out
}

fn manifest_statement(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MANIFEST_DOMAIN.len() + canonical.len());
    out.extend_from_slice(MANIFEST_DOMAIN);
    out.extend_from_slice(canonical);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_signatures_bind_id_seq_and_chain() {
        let key = SigningKey::from_seed([7; 32]);
        let public = key.verifying_key();
        let chain = [1; 32];
        let sig = key.sign_segment("rec-1", 3, &chain);
        assert!(public.verify_segment("rec-1", 3, &chain, &sig));
        assert!(!public.verify_segment("rec-1", 4, &chain, &sig));
        assert!(!public.verify_segment("rec-2", 3, &chain, &sig));
        assert!(!public.verify_segment("rec-1", 3, &[2; 32], &sig));
        assert!(!public.verify_segment("rec-1", 3, &chain, &sig[..63]));
        // A segment signature is not a manifest signature, even over the same bytes.
        assert!(!public.verify_manifest(&segment_statement("rec-1", 3, &chain), &sig));
        let other = SigningKey::from_seed([8; 32]).verifying_key();
        assert!(!other.verify_segment("rec-1", 3, &chain, &sig));
    }

    #[test]
    fn keys_round_trip_through_hex_and_debug_hides_the_seed() {
        let key = SigningKey::from_seed([9; 32]);
        let public = key.verifying_key();
        assert_eq!(VerifyingKey::from_hex(&public.to_hex()), Ok(public));
        assert_eq!(VerifyingKey::from_bytes(public.to_bytes()), Ok(public));
        assert_eq!(VerifyingKey::from_hex("abcd"), Err(KeyError::BadHex));
        assert!(!format!("{key:?}").contains(&hex::encode([9u8; 32])));
    }
}
