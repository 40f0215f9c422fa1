//! The one narrow door to ssh-key: the CA key, and [`Grant`] -> signed certificate.
//!
//! The key is either an OpenSSH key file (`ca/keyfile.rs`, optionally passphrase-encrypted)
//! or held by an SSH agent (`ca/agent.rs`), so that it can live in a hardware token and
//! never in this process. Both sign through the same [`CertificateAuthority::sign`].
//!
//! # Security
//! - The key file is created once with mode 0600 and never overwritten; an existing file
//!   that is a symlink, not owned by the user countersign runs as, or group- or
//!   world-accessible is refused, with a message saying how to fix it.
//! - The key is never logged, put in an error or sent anywhere: [`CertificateAuthority`]'s
//!   `Debug` shows only the fingerprint, and errors carry paths and ssh-key's messages,
//!   which never include key material. The file's text, the passphrase and the decrypted
//!   key are zeroized when dropped (ssh-key zeroizes private keys on drop).
//! - [`CertificateAuthority::sign`] always sets explicit principals (never "all principals
//!   valid"), refuses an empty list and the CA's own key as subject (a zero serial cannot
//!   be written: [`Serial`] is never 0), and puts
//!   `force-command`/`source-address` in critical options, where sshd enforces them.
//! - The key ID is built by the caller from validated server-side values only, because
//!   sshd logs it unescaped.

mod agent;
mod host;
mod keyfile;
mod prepared;

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, Certificate, HashAlg, PrivateKey, PublicKey, SshSig};

pub use agent::{AgentError, AgentSigner};
pub use host::{HOST_KEY_COMMENT, HostAuthority, HostGrant};

use crate::config::CaSettings;
use crate::names::{Principal, Serial};
use crate::pubkey::SubjectKey;

/// Reads a secret file (its first line) under the rules of the CA passphrase file: a
/// regular file (a symlink to one is fine), owned by us or root, private, not empty.
/// The error names the file and how to fix it.
pub fn read_secret_file(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    keyfile::read_passphrase(path).map_err(|e| match e {
        CaError::Unsafe { path, message } => {
            format!(
                "{}: {}",
                path.display(),
                message.replace("passphrase", "secret")
            )
        }
        CaError::Io { path, source } => format!("{}: {source}", path.display()),
        other => other.to_string(),
    })
}

/// The comment of the CA keys countersign makes and of the public key it serves.
pub const KEY_COMMENT: &str = "countersign-ca";

/// Why the CA key could not be used or a certificate not signed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing the key file failed.
    #[error("CA key {path}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The key file is unsafe or not what we expect; the message says how to fix it.
    #[error("CA key {path}: {message}")]
    Unsafe {
        /// The key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// ssh-key refused the key or the certificate.
    #[error("CA key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with the key, in words.
        message: String,
        /// What ssh-key said.
        #[source]
        source: ssh_key::Error,
    },
    /// The `[ca]` settings cannot be used as they are (e.g. a credential folder not set).
    #[error("[ca] {0}")]
    Setting(String),
    /// The SSH agent could not be used.
    #[error("CA key in the SSH agent")]
    Agent(#[from] AgentError),
    /// The grant itself is unusable (a bug upstream, never user input).
    #[error("refusing to sign: {0}")]
    BadGrant(String),
    /// Signing failed inside ssh-key (or in the agent).
    #[error("signing failed")]
    Sign(#[source] ssh_key::Error),
}

/// Everything a certificate says, decided by the policy before it reaches the CA.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// Random, non-zero, unique serial.
    pub serial: Serial,
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

/// Where the private key is.
// One instance per process: the size difference does not matter, and boxing would only
// add another move of the key's bytes.
#[allow(clippy::large_enum_variant)]
enum Key {
    /// In memory, loaded from the key file (zeroized on drop by ssh-key), with the
    /// expanded signing key certificates are signed with.
    File(PrivateKey, Option<prepared::PreparedKey>),
    /// In an SSH agent; this process only holds the public key.
    Agent(AgentSigner),
}

/// The CA: an Ed25519 key, in memory or in an SSH agent, and its public half.
pub struct CertificateAuthority {
    key: Key,
    public: PublicKey,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .field("agent", &matches!(self.key, Key::Agent(_)))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Opens the CA the `[ca]` settings describe: the agent, or the key file (decrypted
    /// with the passphrase file, created if missing and `create`). Returns whether a key
    /// was created.
    pub fn open(settings: &CaSettings, create: bool) -> Result<(Self, bool), CaError> {
        if settings.agent {
            let public = settings
                .agent_public_key
                .as_deref()
                .ok_or_else(|| CaError::Setting("agent = true needs agent_public_key".into()))?;
            let socket = AgentSigner::socket_from_env()?;
            return Ok((Self::from_agent(&socket, public)?, false));
        }
        let passphrase = match &settings.passphrase_file {
            Some(p) => Some(keyfile::read_passphrase(
                &p.resolve().map_err(CaError::Setting)?,
            )?),
            None => None,
        };
        let passphrase = passphrase.as_ref().map(|p| p.as_slice());
        let path = &settings.key_file;
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((Self::from_key(keyfile::load(path, passphrase)?), false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                Ok((Self::from_key(keyfile::create(path, passphrase)?), true))
            }
            Err(source) => Err(CaError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The CA public key the `[ca]` settings name, without the private key: the agent's
    /// `agent_public_key` line, or the public half of the key file (never decrypted, so
    /// no passphrase is needed). For commands that only need to know which CA this is.
    pub fn public_key(settings: &CaSettings) -> Result<PublicKey, CaError> {
        let public = if settings.agent {
            let path = settings
                .agent_public_key
                .as_deref()
                .ok_or_else(|| CaError::Setting("agent = true needs agent_public_key".into()))?;
            read_public_line(path)?
        } else {
            keyfile::read(&settings.key_file)?.public_key().clone()
        };
        Ok(PublicKey::new(public.key_data().clone(), KEY_COMMENT))
    }

    /// Whether the key file is one countersign made (`init`/`serve` name it
    /// [`KEY_COMMENT`]), rather than one brought from `ssh-keygen` or an agent. An
    /// encrypted key's comment is not readable: `false`.
    pub fn made_by_countersign(settings: &CaSettings) -> bool {
        !settings.agent
            && keyfile::read(&settings.key_file)
                .is_ok_and(|k| AsRef::<[u8]>::as_ref(k.comment()) == KEY_COMMENT.as_bytes())
    }

    /// Loads an existing unencrypted key file, refusing unsafe files.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        Ok(Self::from_key(keyfile::load(path, None)?))
    }

    /// Generates a new unencrypted Ed25519 key and writes it with `O_EXCL` and mode 0600.
    pub fn create(path: &Path) -> Result<Self, CaError> {
        Ok(Self::from_key(keyfile::create(path, None)?))
    }

    /// Uses the key of the agent at `socket` whose public key is in `public_key_file`.
    pub fn from_agent(socket: &Path, public_key_file: &Path) -> Result<Self, CaError> {
        let public = read_public_line(public_key_file)?;
        let signer = AgentSigner::connect(socket, public.key_data().clone())?;
        Ok(CertificateAuthority {
            key: Key::Agent(signer),
            public: PublicKey::new(public.key_data().clone(), KEY_COMMENT),
        })
    }

    fn from_key(key: PrivateKey) -> Self {
        let public = key.public_key().clone();
        let prepared = prepared::PreparedKey::new(&key);
        CertificateAuthority {
            key: Key::File(key, prepared),
            public,
        }
    }

    /// The line servers put in `TrustedUserCAKeys`.
    pub fn public_key_line(&self) -> String {
        self.public().public_key_line()
    }

    /// `SHA256:...` of the CA public key.
    pub fn fingerprint(&self) -> String {
        self.public().fingerprint()
    }

    /// The public half alone, for whoever must not sign.
    pub fn public(&self) -> CaPublic {
        CaPublic {
            key: self.public.clone(),
        }
    }

    /// The CA public key material (for KRLs and signature checks).
    pub fn public_key_data(&self) -> &ssh_key::public::KeyData {
        self.public.key_data()
    }

    /// An SSH signature (SSHSIG) over `msg` in `namespace`, as `ssh-keygen -Y sign` makes.
    /// The namespace keeps these signatures apart from certificate signatures.
    pub fn sign_message(&self, namespace: &str, msg: &[u8]) -> Result<SshSig, CaError> {
        match &self.key {
            Key::File(k, _) => SshSig::sign(k, namespace, HashAlg::Sha512, msg),
            Key::Agent(a) => SshSig::sign(a, namespace, HashAlg::Sha512, msg),
        }
        .map_err(CaError::Sign)
    }

    /// Whether `key` is the CA's own public key (never certified).
    pub fn is_ca_key(&self, key: &SubjectKey) -> bool {
        key.material() == crate::pubkey::material_of(self.public.key_data())
    }

    /// Signs a user certificate exactly as the grant says.
    pub fn sign(&self, grant: &Grant<'_>) -> Result<Certificate, CaError> {
        let mut b = started(
            CertType::User,
            self.public.key_data(),
            Started {
                serial: grant.serial,
                key_id: &grant.key_id,
                subject: grant.subject,
                principals: grant
                    .principals
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect(),
                valid_after: grant.valid_after,
                valid_before: grant.valid_before,
            },
        )?;
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
        match &self.key {
            Key::File(_, Some(p)) => b.sign(p),
            Key::File(k, None) => b.sign(k),
            Key::Agent(a) => b.sign(a),
        }
        .map_err(CaError::Sign)
    }
}

/// What both CAs put in every certificate.
struct Started<'a> {
    serial: Serial,
    key_id: &'a str,
    subject: &'a SubjectKey,
    principals: Vec<String>,
    valid_after: u64,
    valid_before: u64,
}

/// A certificate of `kind` begun with what `s` says, after the checks both CAs make:
/// principals named (never "all"), not the signing CA's own key (`own`), a validity
/// window that is not empty.
fn started(
    kind: CertType,
    own: &ssh_key::public::KeyData,
    s: Started<'_>,
) -> Result<Builder, CaError> {
    if s.principals.is_empty() {
        return Err(CaError::BadGrant("no principals".into()));
    }
    if s.subject.key_data() == own {
        return Err(CaError::BadGrant("the subject is the CA key".into()));
    }
    if s.valid_before <= s.valid_after {
        return Err(CaError::BadGrant("empty validity window".into()));
    }
    let mut b = Builder::new_with_random_nonce(
        &mut rand::rng(),
        s.subject.key_data().clone(),
        s.valid_after,
        s.valid_before,
    )
    .map_err(CaError::Sign)?;
    b.serial(s.serial.get()).map_err(CaError::Sign)?;
    b.cert_type(kind).map_err(CaError::Sign)?;
    b.key_id(s.key_id).map_err(CaError::Sign)?;
    for p in s.principals {
        b.valid_principal(p).map_err(CaError::Sign)?;
    }
    Ok(b)
}

/// An Ed25519 OpenSSH public key line from `path`.
fn read_public_line(path: &Path) -> Result<PublicKey, CaError> {
    let text = std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })?;
    let public = PublicKey::from_openssh(text.trim()).map_err(|source| CaError::Key {
        path: path.to_owned(),
        message: "not an OpenSSH public key line".into(),
        source,
    })?;
    if public.algorithm() != Algorithm::Ed25519 {
        return Err(CaError::Unsafe {
            path: path.to_owned(),
            message: format!(
                "is {}, countersign signs with Ed25519 only",
                public.algorithm().as_str()
            ),
        });
    }
    Ok(public)
}

/// The public half of the CA: what servers trust, and what front ends show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPublic {
    key: PublicKey,
}

impl CaPublic {
    /// The line servers put in `TrustedUserCAKeys`.
    pub fn public_key_line(&self) -> String {
        self.key.to_openssh().unwrap_or_else(|_| self.fingerprint())
    }

    /// `SHA256:...` of the CA public key.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
}

#[cfg(test)]
mod tests;
