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

/// Where the host CA's private key is.
// One instance per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum HostKey {
    /// In memory, from the key file, with its expanded signing key.
    File(PrivateKey, Option<PreparedKey>),
    /// In an SSH agent (`[host_ca] agent = true`); this process holds the public key.
    Agent(super::AgentSigner),
}

/// The host CA's key, in memory or in an SSH agent, and its public half.
pub struct HostAuthority {
    key: HostKey,
    public: PublicKey,
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
        if settings.agent {
            let path = settings.agent_public_key.as_deref().ok_or_else(|| {
                CaError::Setting("[host_ca] agent = true needs agent_public_key".into())
            })?;
            let public = super::read_public_line(path)?;
            if public.key_data() == user_ca {
                return Err(same_as_user_ca(path));
            }
            let socket = super::AgentSigner::socket_from_env()?;
            let signer = super::AgentSigner::connect(&socket, public.key_data().clone())?;
            let public = PublicKey::new(public.key_data().clone(), HOST_KEY_COMMENT);
            let key = HostKey::Agent(signer);
            return Ok((HostAuthority { key, public }, false));
        }
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
            return Err(same_as_user_ca(path));
        }
        let prepared = PreparedKey::new(&key);
        let public = PublicKey::new(key.public_key().key_data().clone(), HOST_KEY_COMMENT);
        let key = HostKey::File(key, prepared);
        Ok((HostAuthority { key, public }, created))
    }

    /// The public key `settings` name, without the private key: the agent's
    /// `agent_public_key` line, or the public half of the key file (never decrypted).
    pub fn public_key(settings: &HostCaSettings) -> Result<PublicKey, CaError> {
        let data = match (&settings.agent_public_key, settings.agent) {
            (Some(path), true) => super::read_public_line(path)?.key_data().clone(),
            _ => keyfile::read(&settings.key_file)?
                .public_key()
                .key_data()
                .clone(),
        };
        Ok(PublicKey::new(data, HOST_KEY_COMMENT))
    }

    /// The public key, with the host CA's comment.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key material (for the host KRL and comparisons).
    pub fn public_key_data(&self) -> &KeyData {
        self.public.key_data()
    }

    /// The line clients put after `@cert-authority PATTERN` in `known_hosts`.
    pub fn public_key_line(&self) -> String {
        self.public()
            .to_openssh()
            .unwrap_or_else(|_| self.fingerprint())
    }

    /// `SHA256:...` of the public key.
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Whether `key` is the host CA's own public key (never certified).
    pub fn is_own_key(&self, key: &SubjectKey) -> bool {
        key.material() == crate::pubkey::material_of(self.public_key_data())
    }

    /// An SSHSIG over `msg` in `namespace` (the host KRL's signature, challenges).
    pub fn sign_message(&self, namespace: &str, msg: &[u8]) -> Result<SshSig, CaError> {
        match &self.key {
            HostKey::File(k, _) => SshSig::sign(k, namespace, HashAlg::Sha512, msg),
            HostKey::Agent(a) => SshSig::sign(a, namespace, HashAlg::Sha512, msg),
        }
        .map_err(CaError::Sign)
    }

    /// Signs a host certificate exactly as the grant says: type host, the principals,
    /// no critical options, no extensions.
    pub fn sign_host(&self, grant: &HostGrant<'_>) -> Result<Certificate, CaError> {
        let b = super::started(
            CertType::Host,
            self.public_key_data(),
            super::Started {
                serial: grant.serial,
                key_id: &grant.key_id,
                subject: grant.subject,
                principals: grant.principals.iter().map(ToString::to_string).collect(),
                valid_after: grant.valid_after,
                valid_before: grant.valid_before,
            },
        )?;
        match &self.key {
            HostKey::File(_, Some(p)) => b.sign(p),
            HostKey::File(k, None) => b.sign(k),
            HostKey::Agent(a) => b.sign(a),
        }
        .map_err(CaError::Sign)
    }
}

/// The refusal of a host CA key that is the user CA's.
fn same_as_user_ca(path: &std::path::Path) -> CaError {
    CaError::Unsafe {
        path: path.to_owned(),
        message: "is the user CA's key: the host CA needs a key of its own (ssh-keygen -t \
                  ed25519), so that no user certificate can pass for a host's"
            .into(),
    }
}
