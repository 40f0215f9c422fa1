//! The host CA: a key of its own (`[host_ca] key_file`) that signs host certificates and
//! nothing else, as [`super::CertificateAuthority`] signs user certificates and nothing
//! else. The two are different types with one signing method each, so no code path can
//! ask one CA for the other's kind of certificate; and the host CA refuses to open a key
//! that is the user CA's.
//!
//! The key file follows the rules of `[ca]`'s (`keyfile.rs`: created once with mode 0600
//! and never overwritten, refused when unsafe, optionally passphrase-encrypted). It is
//! never logged: `Debug` shows the fingerprint only.

use ssh_key::certificate::CertType;
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey, SshSig};

use super::{CaError, keyfile, prepared::PreparedKey};
use crate::config::HostCaSettings;
use crate::names::{HostPrincipal, Serial};
use crate::pubkey::SubjectKey;

/// The comment of host CA keys countersign makes and of the public key it serves.
pub const HOST_KEY_COMMENT: &str = "countersign-host-ca";

/// Everything a host certificate says.
#[derive(Debug, Clone)]
pub struct HostGrant<'a> {
    /// Random, non-zero, unique serial.
    pub serial: Serial,
    /// Key ID (shown by `ssh -v` and `ssh-keygen -L`).
    pub key_id: String,
    /// The host's public key.
    pub subject: &'a SubjectKey,
    /// Names and addresses; never empty, never wildcards.
    pub principals: &'a [HostPrincipal],
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
}

/// The host CA's key, in memory.
pub struct HostAuthority {
    key: PrivateKey,
    prepared: Option<PreparedKey>,
}

impl std::fmt::Debug for HostAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostAuthority")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl HostAuthority {
    /// Opens the key `settings` names (creating it when missing and `create`); refuses
    /// the user CA's key (`user_ca`). Returns whether a key was created.
    pub fn open(
        settings: &HostCaSettings,
        user_ca: &KeyData,
        create: bool,
    ) -> Result<(Self, bool), CaError> {
        let passphrase = match &settings.passphrase_file {
            Some(p) => Some(keyfile::read_passphrase(
                &p.resolve().map_err(CaError::Setting)?,
            )?),
            None => None,
        };
        let passphrase = passphrase.as_ref().map(|p| p.as_slice());
        let path = &settings.key_file;
        let (key, created) = match std::fs::symlink_metadata(path) {
            Ok(_) => (keyfile::load(path, passphrase)?, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => (
                keyfile::create_named(path, passphrase, HOST_KEY_COMMENT)?,
                true,
            ),
            Err(source) => {
                return Err(CaError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if key.public_key().key_data() == user_ca {
            return Err(CaError::Unsafe {
                path: path.to_owned(),
                message: "is the user CA's key: the host CA needs a key of its own \
                          (ssh-keygen -t ed25519), so that no user certificate can pass for a \
                          host's"
                    .into(),
            });
        }
        let prepared = PreparedKey::new(&key);
        Ok((HostAuthority { key, prepared }, created))
    }

    /// The public half of the key file `settings` names, without decrypting it.
    pub fn public_key(settings: &HostCaSettings) -> Result<PublicKey, CaError> {
        let key = keyfile::read(&settings.key_file)?;
        Ok(PublicKey::new(
            key.public_key().key_data().clone(),
            HOST_KEY_COMMENT,
        ))
    }

    /// The public key, with the host CA's comment.
    pub fn public(&self) -> PublicKey {
        PublicKey::new(self.key.public_key().key_data().clone(), HOST_KEY_COMMENT)
    }

    /// The key material (for the host KRL and comparisons).
    pub fn public_key_data(&self) -> &KeyData {
        self.key.public_key().key_data()
    }

    /// The line clients put after `@cert-authority PATTERN` in `known_hosts`.
    pub fn public_key_line(&self) -> String {
        self.public()
            .to_openssh()
            .unwrap_or_else(|_| self.fingerprint())
    }

    /// `SHA256:...` of the public key.
    pub fn fingerprint(&self) -> String {
        self.key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    /// Whether `key` is the host CA's own public key (never certified).
    pub fn is_own_key(&self, key: &SubjectKey) -> bool {
        key.key_data() == self.public_key_data()
    }

    /// An SSHSIG over `msg` in `namespace` (the host KRL's signature, challenges).
    pub fn sign_message(&self, namespace: &str, msg: &[u8]) -> Result<SshSig, CaError> {
        SshSig::sign(&self.key, namespace, HashAlg::Sha512, msg).map_err(CaError::Sign)
    }

    /// Signs a host certificate exactly as the grant says: type host, the principals,
    /// no critical options, no extensions.
    pub fn sign_host(&self, grant: &HostGrant<'_>) -> Result<Certificate, CaError> {
        let b = super::started(
            CertType::Host,
            self.public_key_data(),
            &super::Started {
                serial: grant.serial,
                key_id: &grant.key_id,
                subject: grant.subject,
                principals: grant.principals.iter().map(ToString::to_string).collect(),
                valid_after: grant.valid_after,
                valid_before: grant.valid_before,
            },
        )?;
        match &self.prepared {
            Some(p) => b.sign(p),
            None => b.sign(&self.key),
        }
        .map_err(CaError::Sign)
    }
}
