//! `[policy]`: the people whose signatures a configuration file needs before it takes
//! effect (`signoff.rs`), how many, and the file's version.

use std::collections::BTreeSet;

use super::{Builder, ConfigError, raw};
use crate::names::UserName;
use crate::policy::Policy;
use crate::signoff::Signing;

impl Builder<'_> {
    /// Reads `[policy]` against the users of `policy`; `None` without the section (the
    /// file takes effect unsigned: `check-config` says so).
    pub(super) fn policy_signing(
        &mut self,
        raw: Option<raw::RawPolicySigning>,
        policy: &Policy,
    ) -> Result<Option<Signing>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let version = raw
            .version
            .ok_or_else(|| self.err("policy.version", "is required in [policy]"))?;
        if version < 1 {
            return Err(self.err("policy.version", "must be 1 or more"));
        }
        let ca = match raw.ca.as_deref().map(str::parse::<ssh_key::Fingerprint>) {
            Some(Ok(fp)) if fp.is_sha256() => Some(fp.to_string()),
            Some(_) => {
                let fp = raw.ca.unwrap_or_default();
                return Err(self.err(
                    "policy.ca",
                    format!(
                        "{fp:?} is not a SHA-256 key fingerprint (SHA256:... as \
                         `check-config` prints the CA key's)"
                    ),
                ));
            }
            None => None,
        };
        // Only a version: signing retired (the running signers sign this file; it keeps
        // the version growing, so their signature on it cannot be replayed later).
        let Some(names) = raw.signers else {
            if raw.signatures_required.is_some() {
                return Err(self.err("policy.signers", "is required with signatures_required"));
            }
            return Ok(Some(Signing {
                signers: Vec::new(),
                signatures_required: 0,
                version: version as u64,
                ca,
            }));
        };
        if names.is_empty() {
            return Err(self.err("policy.signers", "must name at least one user:NAME"));
        }
        let mut signers = BTreeSet::new();
        for entry in &names {
            let user = match entry.split_once(':') {
                Some(("user", u)) => {
                    UserName::parse(u).map_err(|e| self.err("policy.signers", e))?
                }
                _ => {
                    return Err(self.err(
                        "policy.signers",
                        format!("{entry:?}: signers are people, written user:NAME"),
                    ));
                }
            };
            let Some(known) = policy.users.get(&user) else {
                return Err(self.err("policy.signers", format!("user:{user} is not in [users]")));
            };
            if known.bot {
                return Err(self.err(
                    "policy.signers",
                    format!("user:{user} is a service account: signers are people"),
                ));
            }
            if !signers.insert(user.clone()) {
                return Err(self.err("policy.signers", format!("user:{user} is named twice")));
            }
            if known.ssh_keys.is_empty() {
                self.warnings.push(format!(
                    "policy.signers: user:{user} has no ssh_keys in this file: only keys they \
                     registered (countersign keys add) can sign for them"
                ));
            }
        }
        let required = raw
            .signatures_required
            .ok_or_else(|| self.err("policy.signatures_required", "is required in [policy]"))?;
        if required < 1 || required as u64 > signers.len() as u64 {
            return Err(self.err(
                "policy.signatures_required",
                format!("must be between 1 and the {} signers", signers.len()),
            ));
        }
        if ca.is_none() {
            self.warnings.push(
                "policy.ca is not set: a file signed by the same people for another CA (a \
                 staging copy) would be accepted by this one (set ca to this CA's key \
                 fingerprint)"
                    .into(),
            );
        }
        if required == 1 {
            self.warnings.push(
                "policy.signatures_required = 1: one person can change the policy alone".into(),
            );
        }
        Ok(Some(Signing {
            signers: signers.into_iter().collect(),
            signatures_required: required as u32,
            version: version as u64,
            ca,
        }))
    }
}
