//! TLS with rustls and its `ring` provider, for the server and the CLI client.

/// Makes `ring` the process-wide rustls provider (reqwest and the server both use it).
/// Call before building any HTTP client; calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
