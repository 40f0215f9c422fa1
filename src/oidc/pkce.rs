//! The secrets of one sign-in: `state`, `nonce` and the PKCE verifier (RFC 7636).

/// What a sign-in started with and must be finished with: kept by countersign between
/// the two legs (never sent to the browser but the `state`).
#[derive(Debug, Clone)]
pub struct Pending {
    /// Echoed by the provider; ties the callback to this sign-in.
    pub state: String,
    /// Must come back inside the ID token.
    pub nonce: String,
    /// The PKCE verifier whose S256 challenge the provider was sent.
    pub pkce_verifier: String,
}

impl Pending {
    /// Fresh random values.
    pub fn new() -> Self {
        Pending {
            state: random_token(),
            nonce: random_token(),
            pkce_verifier: random_token(),
        }
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

/// 256 random bits, base64url: a state, nonce, verifier or one-time code.
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier` (RFC 7636): base64url(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}
