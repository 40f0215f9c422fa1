//! The TOML configuration: server settings plus the policy as code.
//!
//! [`Config::load`] parses the file into raw serde structs (unknown keys are errors), then
//! validates every value into the types of `names.rs` and `policy.rs`. An error names the
//! key it is about; a role nobody can get approved is a warning, not an error, so that an
//! operator can stage a policy, but `check-config` shows it.

mod principals;
mod raw;
mod settings;
mod ssh;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::names::{GroupName, RoleName, Text, UserName, parse_duration};
use crate::policy::{Member, Policy, Role, User};
use crate::pubkey::SubjectKey;

pub use ssh::{DEFAULT_HOST_KEY_FILE, SshSettings};

/// A configuration that could not be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML did not parse or had unknown keys.
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value broke a rule.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

pub use settings::{CredentialPath, Limits, TlsFiles};

/// Where and how the server runs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Folder of the SQLite file and the CA key.
    pub data_dir: PathBuf,
    /// Certificate and key for HTTPS; `None` serves plain HTTP (loopback only, unless
    /// `allow_plain_http`).
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address was allowed on purpose (warned at every start).
    pub allow_plain_http: bool,
    /// Abuse limits of the HTTP API.
    pub limits: Limits,
}

/// The certificate authority's key and certificate timing.
#[derive(Debug, Clone)]
pub struct CaSettings {
    /// OpenSSH private key file (Ed25519).
    pub key_file: PathBuf,
    /// `valid_after` = issue time minus this, for servers whose clocks run behind.
    pub backdate: Duration,
    /// Where the passphrase of an encrypted key file is read from (never argv).
    pub passphrase_file: Option<CredentialPath>,
    /// Sign through the SSH agent at `SSH_AUTH_SOCK`; the key file is then not used.
    pub agent: bool,
    /// With `agent`: the CA public key (one OpenSSH line) the agent must hold.
    pub agent_public_key: Option<PathBuf>,
}

/// How long requests may wait.
#[derive(Debug, Clone)]
pub struct RequestSettings {
    /// A pending request expires after this.
    pub pending_ttl: Duration,
    /// How long a revoked certificate still counts as held for role conflicts: servers
    /// refuse it only once their next KRL fetch lists it.
    pub revocation_grace: Duration,
    /// Most pending requests one user may have at once; one more is refused
    /// (`too_many_pending`), so nobody floods approvers or the database.
    pub max_pending_per_user: u32,
}

impl RequestSettings {
    /// Default of `max_pending_per_user`.
    pub const DEFAULT_MAX_PENDING_PER_USER: u32 = 10;
    /// Largest `max_pending_per_user` accepted.
    pub const MAX_PENDING_PER_USER_LIMIT: u32 = 100_000;
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[ca]`.
    pub ca: CaSettings,
    /// `[requests]`.
    pub requests: RequestSettings,
    /// `[ssh]`: the SSH front door, off when `None`.
    pub ssh: Option<SshSettings>,
    /// Users, roles and conflicts.
    pub policy: Policy,
    /// Things that are allowed but probably wrong (e.g. a role nobody can get approved).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates the file at `path`; relative paths inside resolve against the
    /// file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, path, base)
    }

    /// Validates TOML text; `path` is only used in messages, `base` resolves paths.
    pub fn from_toml_str(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let mut b = Builder {
            warnings: Vec::new(),
            invalid: &invalid,
        };
        let server = b.server(raw.server, base)?;
        let ca = b.ca(raw.ca, &server.data_dir, base)?;
        let requests = RequestSettings {
            pending_ttl: b.duration(
                "requests.pending_ttl",
                raw.requests.pending_ttl.as_deref(),
                "1h",
            )?,
            revocation_grace: b.duration_or_zero(
                "requests.revocation_grace",
                raw.requests.revocation_grace.as_deref(),
                "2m",
                Duration::from_secs(24 * 3600),
            )?,
            max_pending_per_user: match raw.requests.max_pending_per_user {
                None => RequestSettings::DEFAULT_MAX_PENDING_PER_USER,
                Some(n) if (1..=RequestSettings::MAX_PENDING_PER_USER_LIMIT).contains(&n) => n,
                Some(_) => {
                    return Err(b.err(
                        "requests.max_pending_per_user",
                        format!(
                            "must be between 1 and {}",
                            RequestSettings::MAX_PENDING_PER_USER_LIMIT
                        ),
                    ));
                }
            },
        };
        let ssh = match raw.ssh {
            Some(s) => Some(b.ssh(s, &server.data_dir)?),
            None => None,
        };
        if let Some(s) = &ssh
            && same_socket(s.listen, server.listen)
        {
            return Err(b.err(
                "ssh.listen",
                format!(
                    "{} is also [server] listen: the SSH front door needs its own port",
                    s.listen
                ),
            ));
        }
        let users = b.users(raw.users)?;
        let mut policy = Policy {
            users,
            roles: BTreeMap::new(),
            conflicts: Vec::new(),
        };
        for (name, role) in raw.roles {
            let role = b.role(&policy, &name, role)?;
            policy.roles.insert(role.name.clone(), role);
        }
        policy.conflicts = b.conflicts(&policy, raw.conflicts)?;
        let mut warnings = b.warnings;
        warnings.extend(
            principals::check(&policy)
                .map_err(|c| invalid(format!("roles.{}.principals", c.role), c.message))?,
        );
        warnings.extend(satisfiability_warnings(&policy));
        if let Some(s) = &ssh {
            warnings.extend(ssh::warnings(s, requests.pending_ttl));
        }
        Ok(Config {
            path: path.to_owned(),
            server,
            ca,
            requests,
            ssh,
            policy,
            warnings,
        })
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("countersign.db")
    }
}

type Invalid<'a> = &'a dyn Fn(String, String) -> ConfigError;

struct Builder<'a> {
    warnings: Vec<String>,
    invalid: Invalid<'a>,
}

impl Builder<'_> {
    fn err(&self, key: impl Into<String>, message: impl std::fmt::Display) -> ConfigError {
        (self.invalid)(key.into(), message.to_string())
    }

    fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        parse_duration(value.unwrap_or(default), "duration").map_err(|e| self.err(key, e))
    }

    /// A duration that may also be zero (`"0s"`), at most `max`.
    fn duration_or_zero(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = match value {
            Some(zero) if humantime::parse_duration(zero.trim()).is_ok_and(|d| d.is_zero()) => {
                Duration::ZERO
            }
            other => self.duration(key, other, default)?,
        };
        if d > max {
            return Err(self.err(key, format!("at most {}", humantime::format_duration(max))));
        }
        Ok(d)
    }

    fn users(
        &self,
        raw: BTreeMap<String, raw::RawUser>,
    ) -> Result<BTreeMap<UserName, User>, ConfigError> {
        let mut users = BTreeMap::new();
        let mut key_owner: Vec<(SubjectKey, UserName)> = Vec::new();
        for (name, u) in raw {
            let key = format!("users.{name}");
            let name = UserName::parse(&name).map_err(|e| self.err(&key, e))?;
            let mut groups = BTreeSet::new();
            for g in u.groups {
                groups.insert(
                    GroupName::parse(&g).map_err(|e| self.err(format!("{key}.groups"), e))?,
                );
            }
            let mut ssh_keys = Vec::new();
            for (i, line) in u.ssh_keys.iter().enumerate() {
                let k = SubjectKey::parse(line)
                    .map_err(|e| self.err(format!("{key}.ssh_keys[{i}]"), e))?;
                if let Some((_, owner)) =
                    key_owner.iter().find(|(o, _)| o.key_data() == k.key_data())
                {
                    return Err(self.err(
                        format!("{key}.ssh_keys[{i}]"),
                        if *owner == name {
                            format!("key {} is listed twice", k.fingerprint())
                        } else {
                            format!(
                                "key {} is already registered to user {owner}",
                                k.fingerprint()
                            )
                        },
                    ));
                }
                key_owner.push((k.clone(), name.clone()));
                ssh_keys.push(k);
            }
            let user = User {
                name: name.clone(),
                groups,
                admin: u.admin,
                ssh_keys,
            };
            users.insert(name, user);
        }
        Ok(users)
    }

    fn members(
        &mut self,
        policy: &Policy,
        key: &str,
        raw: &[String],
    ) -> Result<Vec<Member>, ConfigError> {
        if raw.is_empty() {
            return Err(self.err(key, "must name at least one group:NAME or user:NAME"));
        }
        let mut out = Vec::new();
        for m in raw {
            let member = match m.split_once(':') {
                Some(("group", g)) => {
                    Member::Group(GroupName::parse(g).map_err(|e| self.err(key, e))?)
                }
                Some(("user", u)) => {
                    Member::User(UserName::parse(u).map_err(|e| self.err(key, e))?)
                }
                _ => return Err(self.err(key, format!("{m:?} must be group:NAME or user:NAME"))),
            };
            match &member {
                Member::User(u) if !policy.users.contains_key(u) => {
                    return Err(self.err(key, format!("user {u} is not defined in [users]")));
                }
                Member::Group(g) if !policy.users.values().any(|u| u.groups.contains(g)) => {
                    self.warnings
                        .push(format!("{key}: group {g} has no members"));
                }
                _ => {}
            }
            if !out.contains(&member) {
                out.push(member);
            }
        }
        Ok(out)
    }

    fn role(
        &mut self,
        policy: &Policy,
        name: &str,
        raw: raw::RawRole,
    ) -> Result<Role, ConfigError> {
        let key = format!("roles.{name}");
        let name = RoleName::parse(name).map_err(|e| self.err(&key, e))?;
        let principals = raw::principals(policy, &raw.principals)
            .map_err(|e| self.err(format!("{key}.principals"), e))?;
        let requesters = self.members(policy, &format!("{key}.requesters"), &raw.requesters)?;
        let steps = self.steps(policy, &key, &raw)?;
        let max_ttl = self.duration(&format!("{key}.max_ttl"), raw.max_ttl.as_deref(), "2h")?;
        let default_ttl = match raw.default_ttl.as_deref() {
            Some(d) => self.duration(&format!("{key}.default_ttl"), Some(d), "")?,
            None => max_ttl.min(Duration::from_secs(30 * 60)),
        };
        if default_ttl > max_ttl {
            return Err(self.err(format!("{key}.default_ttl"), "must not exceed max_ttl"));
        }
        let extensions = raw::extensions(raw.extensions)
            .map_err(|e| self.err(format!("{key}.extensions"), e))?;
        let force_command = raw::force_command(raw.force_command)
            .map_err(|e| self.err(format!("{key}.force_command"), e))?;
        let source_address = raw::source_address(raw.source_address)
            .map_err(|e| self.err(format!("{key}.source_address"), e))?;
        Ok(Role {
            name,
            principals,
            requesters,
            steps,
            default_ttl,
            max_ttl,
            extensions,
            force_command,
            source_address,
            cached_digest: Default::default(),
        })
    }

    fn steps(
        &mut self,
        policy: &Policy,
        key: &str,
        raw: &raw::RawRole,
    ) -> Result<Vec<crate::policy::Step>, ConfigError> {
        let single = raw.approvers.is_some() || raw.approvals.is_some();
        let raw_steps: Vec<(String, &[String], u32)> = match (&raw.approval_steps, single) {
            (Some(_), true) => {
                return Err(self.err(
                    key,
                    "approval_steps and approvers/approvals are exclusive: use one or the other",
                ));
            }
            (Some(steps), false) if steps.is_empty() => {
                return Err(self.err(format!("{key}.approval_steps"), "must not be empty"));
            }
            (Some(steps), false) => steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        format!("{key}.approval_steps[{i}]"),
                        s.approvers.as_slice(),
                        s.approvals.unwrap_or(1),
                    )
                })
                .collect(),
            (None, _) => {
                let approvers = raw.approvers.as_deref().unwrap_or_default();
                vec![(
                    format!("{key}.approvers"),
                    approvers,
                    raw.approvals.unwrap_or(1),
                )]
            }
        };
        let mut steps = Vec::new();
        for (k, approvers, approvals) in raw_steps {
            if approvals == 0 || approvals > 100 {
                return Err(self.err(&k, "approvals must be between 1 and 100"));
            }
            let approvers = self.members(policy, &k, approvers)?;
            steps.push(crate::policy::Step {
                approvers,
                approvals,
            });
        }
        Ok(steps)
    }

    fn conflicts(
        &self,
        policy: &Policy,
        raw: Vec<raw::RawConflict>,
    ) -> Result<Vec<crate::policy::Conflict>, ConfigError> {
        let mut out = Vec::new();
        for (i, c) in raw.into_iter().enumerate() {
            let key = format!("conflicts[{i}]");
            let mut roles = BTreeSet::new();
            for r in &c.roles {
                let name = RoleName::parse(r).map_err(|e| self.err(format!("{key}.roles"), e))?;
                if !policy.roles.contains_key(&name) {
                    return Err(self.err(
                        format!("{key}.roles"),
                        format!("role {name} is not defined in [roles]"),
                    ));
                }
                roles.insert(name);
            }
            if roles.len() < 2 {
                return Err(self.err(
                    format!("{key}.roles"),
                    "a conflict names at least two different roles",
                ));
            }
            let reason = Text::parse(&c.reason, "reason")
                .map_err(|e| self.err(format!("{key}.reason"), e))?;
            out.push(crate::policy::Conflict {
                roles,
                reason: reason.as_str().to_owned(),
            });
        }
        Ok(out)
    }
}

/// Whether two listen addresses would take the same port: equal, or one of them the
/// wildcard address. Port 0 (a port the kernel picks) never clashes.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Warns about every role that some eligible requester could never get approved, because
/// too few distinct people other than that requester can approve.
fn satisfiability_warnings(policy: &Policy) -> Vec<String> {
    let mut warnings = Vec::new();
    for role in policy.roles.values() {
        let requesters: Vec<&UserName> = policy
            .users
            .keys()
            .filter(|u| policy.is_any_member(u, &role.requesters))
            .collect();
        if requesters.is_empty() {
            warnings.push(format!("roles.{}: nobody can request this role", role.name));
        }
        // Whether a role can be approved for a requester depends on the requester only
        // through the steps they could approve themselves (they are left out of the
        // pool): requesters with the same steps face the same pool up to who is who, so
        // one check per distinct set of steps answers for all of them. This keeps
        // loading a policy of hundreds of users and tens of roles fast.
        let mut checked: std::collections::HashMap<Vec<bool>, Result<(), usize>> =
            std::collections::HashMap::new();
        for r in requesters {
            let steps: Vec<bool> = role
                .steps
                .iter()
                .map(|s| policy.is_any_member(r, &s.approvers))
                .collect();
            let outcome = *checked
                .entry(steps)
                .or_insert_with(|| crate::policy::rules::satisfiable(policy, role, r));
            if let Err(step) = outcome {
                warnings.push(format!(
                    "roles.{}: a request by {r} can never be approved: step {} needs {} distinct approvers other than {r} from {}",
                    role.name,
                    step + 1,
                    role.steps[step].approvals,
                    crate::policy::rules::describe_members(&role.steps[step].approvers)
                ));
                break;
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod docs;
