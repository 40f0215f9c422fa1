//! The Ed25519 signing key expanded once at load.
//!
//! ssh-key signs through a `PrivateKey` by re-deriving the ed25519-dalek key on every
//! signature, which costs about as much as the signature itself (docs/benchmark.md, "Lab
//! notes"); keeping the dalek key costs one expansion at start. ed25519-dalek zeroizes it
//! on drop.

use ssh_key::public::KeyData;
use ssh_key::{Algorithm, PrivateKey};

/// A ready-to-sign Ed25519 key and its public half.
pub(super) struct PreparedKey {
    signing: ed25519_dalek::SigningKey,
    public: KeyData,
}

impl PreparedKey {
    /// `None` for anything but an Ed25519 key.
    pub(super) fn new(key: &PrivateKey) -> Option<PreparedKey> {
        let pair = key.key_data().ed25519()?;
        Some(PreparedKey {
            signing: ed25519_dalek::SigningKey::from(&pair.private),
            public: key.public_key().key_data().clone(),
        })
    }
}

impl signature::Signer<ssh_key::Signature> for PreparedKey {
    fn try_sign(&self, msg: &[u8]) -> signature::Result<ssh_key::Signature> {
        let sig = ed25519_dalek::Signer::sign(&self.signing, msg);
        ssh_key::Signature::new(Algorithm::Ed25519, sig.to_bytes().to_vec())
            .map_err(signature::Error::from_source)
    }
}

impl From<&PreparedKey> for KeyData {
    fn from(k: &PreparedKey) -> Self {
        k.public.clone()
    }
}
