//! `[host_ca]`: the separate key that signs host certificates, their lifetimes, and the
//! names join tokens may give hosts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::settings::CredentialPath;
use super::{Builder, ConfigError, raw};
use crate::names::{HostPattern, HostPrincipal};

/// The longest lifetime a host certificate may have: a host renews itself, so a short
/// one costs nothing, and a stolen host key stops working when its certificate ends.
pub const HOST_MAX_TTL_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[host_ca]`.
#[derive(Debug, Clone)]
pub struct HostCaSettings {
    /// OpenSSH private key file (Ed25519), never the user CA's.
    pub key_file: PathBuf,
    /// Where the passphrase of an encrypted key file is read from.
    pub passphrase_file: Option<CredentialPath>,
    /// Sign through the SSH agent at `SSH_AUTH_SOCK`; the key file is then not used.
    pub agent: bool,
    /// With `agent`: the host CA public key (one OpenSSH line) the agent must hold.
    pub agent_public_key: Option<PathBuf>,
    /// Lifetime when an enrollment or renewal asks for none.
    pub cert_ttl: Duration,
    /// The longest lifetime an enrollment or renewal may ask for.
    pub max_ttl: Duration,
    /// What join tokens may name.
    pub allowed_principals: Vec<HostPattern>,
}

impl HostCaSettings {
    /// Whether `p` is inside `allowed_principals`.
    pub fn allows(&self, p: &HostPrincipal) -> bool {
        self.allowed_principals.iter().any(|a| a.allows(p))
    }
}

impl Builder<'_> {
    /// Validates `[host_ca]`; the key file resolves against `data_dir` like `[ca]`'s.
    pub(super) fn host_ca(
        &mut self,
        raw: raw::RawHostCa,
        data_dir: &Path,
        base: &Path,
        user_ca_key: &Path,
    ) -> Result<HostCaSettings, ConfigError> {
        let key_file = data_dir.join(raw.key_file.as_deref().unwrap_or("host_ca_key"));
        if key_file == user_ca_key {
            return Err(self.err(
                "host_ca.key_file",
                "is the [ca] key file: the host CA needs a key of its own, so that a user \
                 certificate can never pass for a host's (or the other way)",
            ));
        }
        let passphrase_file = match raw.passphrase_file.as_deref() {
            Some(p) => Some(
                CredentialPath::parse(p, base)
                    .map_err(|e| self.err("host_ca.passphrase_file", e))?,
            ),
            None => None,
        };
        let agent_public_key = raw.agent_public_key.as_deref().map(|p| data_dir.join(p));
        match (raw.agent, &passphrase_file, &agent_public_key) {
            (true, Some(_), _) => {
                return Err(self.err(
                    "host_ca.passphrase_file",
                    "not used with agent = true: the agent holds the key; remove one of them",
                ));
            }
            (true, None, None) => {
                return Err(self.err(
                    "host_ca.agent_public_key",
                    "required with agent = true: the host CA public key file (e.g. \
                     ssh-add -L > host_ca_key.pub)",
                ));
            }
            (false, _, Some(_)) => {
                return Err(self.err("host_ca.agent_public_key", "only used with agent = true"));
            }
            _ => {}
        }
        let cert_ttl = self.duration("host_ca.cert_ttl", raw.cert_ttl.as_deref(), "7d")?;
        let max_ttl = self.duration("host_ca.max_ttl", raw.max_ttl.as_deref(), "30d")?;
        let limit = humantime::format_duration(HOST_MAX_TTL_LIMIT);
        if max_ttl > HOST_MAX_TTL_LIMIT {
            return Err(self.err("host_ca.max_ttl", format!("at most {limit}")));
        }
        if cert_ttl > max_ttl {
            return Err(self.err("host_ca.cert_ttl", "must not be longer than max_ttl"));
        }
        if cert_ttl < Duration::from_secs(300) {
            return Err(self.err(
                "host_ca.cert_ttl",
                "at least 5m: hosts renew at 2/3 of it, and need time to",
            ));
        }
        let mut allowed_principals = Vec::new();
        for (i, p) in raw.allowed_principals.iter().enumerate() {
            let pattern = HostPattern::parse(p)
                .map_err(|e| self.err(format!("host_ca.allowed_principals[{i}]"), e))?;
            allowed_principals.push(pattern);
        }
        if allowed_principals.is_empty() {
            self.warnings.push(
                "host_ca.allowed_principals is empty: no join token can be made until it names \
                 the hosts (e.g. [\"*.example.com\", \"10.0.0.0/8\"])"
                    .into(),
            );
        }
        Ok(HostCaSettings {
            key_file,
            passphrase_file,
            agent: raw.agent,
            agent_public_key,
            cert_ttl,
            max_ttl,
            allowed_principals,
        })
    }
}
