//! The one narrow door to ssh-key: the CA key on disk, and [`Grant`] -> signed certificate.
//!
//! # Security
//! - The key file is created once with mode 0600 and never overwritten; an existing file
//!   that is group- or world-accessible, or a symlink, is refused.
//! - [`CertificateAuthority::sign`] always sets explicit principals (never "all principals
//!   valid"), refuses an empty list, a zero serial and the CA's own key as subject, and puts
//!   `force-command`/`source-address` in critical options, where sshd enforces them.
//! - The key ID is built by the caller from validated server-side values only, because
//!   sshd logs it unescaped.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey};

use crate::names::Principal;
use crate::pubkey::SubjectKey;

/// Why the CA key could not be used or a certificate not signed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing the key file failed.
    #[error("CA key {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file is unsafe or not what we expect; the message says how to fix it.
    #[error("CA key {path}: {message}")]
    Unsafe { path: PathBuf, message: String },
    /// ssh-key refused the key or the certificate.
    #[error("CA key {path}: {message}")]
    Key {
        path: PathBuf,
        message: String,
        #[source]
        source: ssh_key::Error,
    },
    /// The grant itself is unusable (a bug upstream, never user input).
    #[error("refusing to sign: {0}")]
    BadGrant(String),
    /// Signing failed inside ssh-key.
    #[error("signing failed")]
    Sign(#[source] ssh_key::Error),
}

/// Everything a certificate says, decided by the policy before it reaches the CA.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// Random, non-zero, unique serial.
    pub serial: u64,
    /// Key ID as sshd will log it.
    pub key_id: String,
    /// The key the certificate is for.
    pub subject: &'a SubjectKey,
    /// Login names; never empty.
    pub principals: &'a [Principal],
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// Standard extensions, e.g. `permit-pty`.
    pub extensions: &'a [String],
    /// `force-command` critical option.
    pub force_command: Option<&'a str>,
    /// `source-address` critical option.
    pub source_address: &'a [IpNet],
}

/// The CA: an Ed25519 private key kept in memory for signing.
pub struct CertificateAuthority {
    key: PrivateKey,
    prepared: PreparedKey,
}

/// The Ed25519 signing key expanded once at load, so each certificate costs one
/// signature and not a key derivation plus a signature (ssh-key re-derives the dalek key
/// from a `PrivateKey` on every call). ed25519-dalek zeroizes it on drop.
struct PreparedKey {
    signing: ed25519_dalek::SigningKey,
    public: ssh_key::public::KeyData,
}

impl PreparedKey {
    fn new(key: &PrivateKey) -> Option<PreparedKey> {
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
            .map_err(|_| signature::Error::new())
    }
}

impl From<&PreparedKey> for ssh_key::public::KeyData {
    fn from(k: &PreparedKey) -> Self {
        k.public.clone()
    }
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the key at `path`, creating it (mode 0600) if it does not exist and `create`
    /// is set. Returns whether it was created.
    pub fn load_or_create(path: &Path, create: bool) -> Result<(Self, bool), CaError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                Ok((Self::create(path)?, true))
            }
            Err(source) => Err(CaError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Loads an existing key, refusing unsafe files.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let io = |source| CaError::Io {
            path: path.to_owned(),
            source,
        };
        let unsafe_file = |message: String| CaError::Unsafe {
            path: path.to_owned(),
            message,
        };
        let meta = std::fs::symlink_metadata(path).map_err(io)?;
        if meta.file_type().is_symlink() {
            return Err(unsafe_file(
                "is a symlink; point key_file at the real file".into(),
            ));
        }
        if !meta.is_file() {
            return Err(unsafe_file("is not a regular file".into()));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(unsafe_file(format!(
                "is accessible by group or others (mode {:o}); run: chmod 600 {}",
                meta.mode() & 0o777,
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let key = PrivateKey::from_openssh(text).map_err(|source| CaError::Key {
            path: path.to_owned(),
            message: "not an OpenSSH private key".into(),
            source,
        })?;
        if key.is_encrypted() {
            return Err(unsafe_file(
                "is encrypted; countersign needs an unencrypted key".into(),
            ));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(unsafe_file(format!(
                "is {}, countersign signs with Ed25519 only",
                key.algorithm().as_str()
            )));
        }
        Self::from_key(key, path)
    }

    fn from_key(key: PrivateKey, path: &Path) -> Result<Self, CaError> {
        let prepared = PreparedKey::new(&key).ok_or_else(|| CaError::Unsafe {
            path: path.to_owned(),
            message: "is not an Ed25519 key".into(),
        })?;
        Ok(Self { key, prepared })
    }

    /// Generates a new Ed25519 key and writes it with `O_EXCL` and mode 0600.
    pub fn create(path: &Path) -> Result<Self, CaError> {
        let io = |source| CaError::Io {
            path: path.to_owned(),
            source,
        };
        let key =
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(CaError::Sign)?;
        let mut key = key;
        key.set_comment("countersign-ca");
        let pem = key.to_openssh(LineEnding::LF).map_err(CaError::Sign)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Self::from_key(key, path)
    }

    /// The line servers put in `TrustedUserCAKeys`.
    pub fn public_key_line(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| self.fingerprint())
    }

    /// `SHA256:...` of the CA public key.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The CA public key material (for KRLs and signature checks).
    pub fn public_key_data(&self) -> &ssh_key::public::KeyData {
        self.key.public_key().key_data()
    }

    /// An SSH signature (SSHSIG) over `msg` in `namespace`, as `ssh-keygen -Y sign` makes.
    /// The namespace keeps these signatures apart from certificate signatures.
    pub fn sign_message(&self, namespace: &str, msg: &[u8]) -> Result<ssh_key::SshSig, CaError> {
        self.key
            .sign(namespace, HashAlg::Sha512, msg)
            .map_err(CaError::Sign)
    }

    /// Whether `key` is the CA's own public key (never certified).
    pub fn is_ca_key(&self, key: &SubjectKey) -> bool {
        key.key_data() == self.key.public_key().key_data()
    }

    /// Signs a user certificate exactly as the grant says.
    pub fn sign(&self, grant: &Grant<'_>) -> Result<Certificate, CaError> {
        if grant.principals.is_empty() {
            return Err(CaError::BadGrant("no principals".into()));
        }
        if grant.serial == 0 {
            return Err(CaError::BadGrant(
                "serial 0 cannot be revoked by serial".into(),
            ));
        }
        if self.is_ca_key(grant.subject) {
            return Err(CaError::BadGrant("the subject is the CA key".into()));
        }
        if grant.valid_before <= grant.valid_after {
            return Err(CaError::BadGrant("empty validity window".into()));
        }
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rng(),
            grant.subject.key_data().clone(),
            grant.valid_after,
            grant.valid_before,
        )
        .map_err(CaError::Sign)?;
        b.serial(grant.serial).map_err(CaError::Sign)?;
        b.cert_type(CertType::User).map_err(CaError::Sign)?;
        b.key_id(grant.key_id.clone()).map_err(CaError::Sign)?;
        for p in grant.principals {
            b.valid_principal(p.as_str()).map_err(CaError::Sign)?;
        }
        if let Some(cmd) = grant.force_command {
            b.critical_option("force-command", cmd)
                .map_err(CaError::Sign)?;
        }
        if !grant.source_address.is_empty() {
            let list: Vec<String> = grant
                .source_address
                .iter()
                .map(ToString::to_string)
                .collect();
            b.critical_option("source-address", list.join(","))
                .map_err(CaError::Sign)?;
        }
        for ext in grant.extensions {
            b.extension(ext.as_str(), "").map_err(CaError::Sign)?;
        }
        b.sign(&self.prepared).map_err(CaError::Sign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUED_AT: u64 = 1_800_000_000;

    fn subject() -> SubjectKey {
        let k = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        SubjectKey::from_key_data(k.public_key().key_data().clone()).unwrap()
    }

    fn grant<'a>(subject: &'a SubjectKey, principals: &'a [Principal]) -> Grant<'a> {
        Grant {
            serial: 42,
            key_id: "countersign:r-aaaaaaaaaaaa:alice:prod-db".into(),
            subject,
            principals,
            valid_after: ISSUED_AT - 60,
            valid_before: ISSUED_AT + 1800,
            extensions: &[],
            force_command: Some("/usr/local/bin/db-shell"),
            source_address: &[],
        }
    }

    #[test]
    fn created_key_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca_key");
        let (ca, created) = CertificateAuthority::load_or_create(&path, true).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let (again, created) = CertificateAuthority::load_or_create(&path, true).unwrap();
        assert!(!created);
        assert_eq!(ca.fingerprint(), again.fingerprint());
        assert!(CertificateAuthority::create(&path).is_err());
    }

    #[test]
    fn group_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca_key");
        CertificateAuthority::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = CertificateAuthority::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn signs_exactly_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&dir.path().join("k")).unwrap();
        let subject = subject();
        let principals = [Principal::parse("postgres").unwrap()];
        let cert = ca.sign(&grant(&subject, &principals)).unwrap();
        assert_eq!(cert.serial(), 42);
        assert_eq!(cert.valid_principals(), ["postgres"]);
        assert_eq!(cert.valid_after(), ISSUED_AT - 60);
        assert_eq!(cert.cert_type(), CertType::User);
        assert!(cert.critical_options().contains_key("force-command"));
        assert!(cert.extensions().is_empty());
        cert.validate_at(ISSUED_AT, &[ca.key.fingerprint(HashAlg::Sha256)])
            .unwrap();
    }

    #[test]
    fn refuses_empty_principals_zero_serial_and_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&dir.path().join("k")).unwrap();
        let subject = subject();
        let principals = [Principal::parse("postgres").unwrap()];
        assert!(ca.sign(&grant(&subject, &[])).is_err());
        let mut g = grant(&subject, &principals);
        g.serial = 0;
        assert!(ca.sign(&g).is_err());
        let own = SubjectKey::from_key_data(ca.key.public_key().key_data().clone()).unwrap();
        assert!(ca.sign(&grant(&own, &principals)).is_err());
    }
}
