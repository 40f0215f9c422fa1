//! TLS with rustls and its `ring` provider: the server's certificate and key from PEM
//! files, and the private CA a CLI client may be told to trust (`COUNTERSIGN_CA_CERT`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("TLS file {path}: {message}")]
    Pem {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The PEM parser's error, when it was one.
        #[source]
        source: Option<rustls_pki_types::pem::Error>,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("TLS certificate {cert} and key {key} cannot be used together")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// Makes `ring` the process-wide rustls provider (reqwest and the server both use it).
/// Call before building any HTTP client; calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Every certificate in a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |message: &str, source| TlsError::Pem {
        path: path.to_owned(),
        message: message.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem("cannot read certificates", Some(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("not a PEM certificate file", Some(e)))?;
    if certs.is_empty() {
        return Err(pem("holds no CERTIFICATE block", None));
    }
    Ok(certs)
}

/// The server side: HTTP/1.1 over TLS 1.2/1.3 with the configured certificate and key.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    install_crypto_provider();
    let certs = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        message: "no usable private key (PKCS#8, PKCS#1 or SEC1 PEM)".into(),
        source: Some(e),
    })?;
    let config_error = |source| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(config_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
