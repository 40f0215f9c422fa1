//! Refresh tokens at rest: sealed with AES-256-GCM under a key derived from the client
//! secret, bound to the user they are for. A copy of the database (a backup) holds no
//! usable refresh token without the secret, which stays in its file on the CA hosts; a
//! token moved to another user's row does not open.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What a sealed token starts with (the version of this format).
const PREFIX: &str = "v1.";

/// The sealing key of a client secret.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// The key derived from `secret` (high-entropy: a client secret).
    pub fn from_secret(secret: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"countersign refresh-token seal v1\0");
        h.update(secret.as_bytes());
        SealKey(h.finalize().into())
    }

    /// `token` sealed for `user`.
    pub fn seal(&self, token: &str, user: &str) -> String {
        let cipher = Aes256Gcm::new(&self.0.into());
        let nonce: [u8; 12] = rand::random();
        let payload = Payload {
            msg: token.as_bytes(),
            aad: user.as_bytes(),
        };
        // Encrypting to memory cannot fail for a message this small.
        let sealed = cipher.encrypt(&nonce.into(), payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The token `sealed` holds for `user`, if it opens (sealed under this key, for this
    /// user, untouched).
    pub fn open(&self, sealed: &str, user: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let cipher = Aes256Gcm::new(&self.0.into());
        let payload = Payload {
            msg: body,
            aad: user.as_bytes(),
        };
        let plain = cipher.decrypt(&nonce.into(), payload).ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_for_its_user() {
        let key = SealKey::from_secret("s3cret");
        let sealed = key.seal("refresh-token-1", "alice");
        assert!(!sealed.contains("refresh-token-1"));
        assert_eq!(
            key.open(&sealed, "alice").as_deref(),
            Some("refresh-token-1")
        );
        assert_eq!(
            key.open(&sealed, "bob"),
            None,
            "moved to another user's row"
        );
        assert_eq!(SealKey::from_secret("other").open(&sealed, "alice"), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open(&tampered, "alice"), None);
        assert_eq!(key.open("garbage", "alice"), None);
        assert_ne!(
            key.seal("x", "alice"),
            key.seal("x", "alice"),
            "fresh nonces"
        );
    }
}
