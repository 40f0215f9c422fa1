//! The TOML configuration: server settings plus the policy as code.
//!
//! [`Config::load`] parses the file into raw serde structs (unknown keys are errors), then
//! validates every value into the types of `names.rs` and `policy.rs`. An error names the
//! key it is about; a role nobody can get approved is a warning, not an error, so that an
//! operator can stage a policy, but `check-config` shows it.

mod break_glass;
mod builder;
mod host_ca;
mod hours;
mod metrics;
mod notify;
mod oidc;
mod policy;
mod policy_signing;
mod principals;
mod raw;
mod settings;
mod ssh;
mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::names::UserName;
use crate::policy::Policy;
use builder::{Builder, same_socket};

pub use metrics::{LogFormat, MetricsSettings};
pub use ssh::{DEFAULT_HOST_KEY_FILE, SshSettings};

/// What to do about a config file that could not be read, when there is an obvious step.
fn read_hint(source: &std::io::Error) -> &'static str {
    match source.kind() {
        std::io::ErrorKind::NotFound => {
            " (name it with --config FILE or COUNTERSIGN_CONFIG; a relative path starts at the \
             working directory)"
        }
        _ => "",
    }
}

/// A configuration that could not be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}{hint}", hint = read_hint(source))]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The TOML did not parse or had unknown keys.
    #[error("config {path}: {message}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// A value broke a rule.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The key whose value is wrong, dotted (e.g. `requests.pending_ttl`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Several values broke rules: every one found, a line each, in the file's order of
    /// sections (a section that builds on a broken one is not checked: its errors would
    /// only repeat the first).
    #[error("config {path}: {} errors:{}", errors.len(), each_line(errors))]
    Several {
        /// The config file.
        path: PathBuf,
        /// Each wrong key (dotted) and what is wrong with it.
        errors: Vec<(String, String)>,
    },
}

/// `key: message` errors, each on its own indented line.
fn each_line(errors: &[(String, String)]) -> String {
    errors
        .iter()
        .map(|(k, m)| format!("\n  {k}: {m}"))
        .collect()
}

pub use host_ca::{HOST_MAX_TTL_LIMIT, HostCaSettings};
pub use hours::WorkingHours;
pub use notify::{NotifyEvent, NotifySink, SinkKind};
pub use oidc::{ClientAuth, GroupMap, OidcSettings};
pub use settings::{CredentialPath, Limits, TlsFiles};
pub use storage::{DEFAULT_POOL_SIZE, MAX_POOL_SIZE, PgTls, PostgresSettings, StorageSettings};

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
    /// `timezone` and `working_hours`: what the web UI flags as outside working hours.
    pub working_hours: WorkingHours,
    /// `log_format`: how the server writes its log lines.
    pub log_format: LogFormat,
    /// `shutdown_delay`: on SIGTERM, how long `/v1/ready` says 503 while the server
    /// still serves, before it stops accepting (so a balancer takes it out first).
    pub shutdown_delay: std::time::Duration,
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
    /// Only keys registered to the requester (config `ssh_keys` or `countersign keys
    /// add`) are certified; any other is refused `key_not_allowed`.
    pub require_registered_keys: bool,
}

impl RequestSettings {
    /// Default of `max_pending_per_user`.
    pub const DEFAULT_MAX_PENDING_PER_USER: u32 = 10;
    /// Largest `max_pending_per_user` accepted.
    pub const MAX_PENDING_PER_USER_LIMIT: u32 = 100_000;
}

/// `[tokens]`: the lifetime of API tokens (`countersign token create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSettings {
    /// When `token create` names no `--ttl`.
    pub default_ttl: Duration,
    /// The longest `--ttl` (a longer one is refused, never clamped); also the most a
    /// token made before tokens had an expiry lives, from its creation.
    pub max_ttl: Duration,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Its exact text, as parsed: what `[policy]` signatures are checked against.
    pub text: std::sync::Arc<str>,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[ca]`.
    pub ca: CaSettings,
    /// `[host_ca]`: host certificates, off when `None`.
    pub host_ca: Option<HostCaSettings>,
    /// `[requests]`.
    pub requests: RequestSettings,
    /// `[storage]`: SQLite in `data_dir`, or PostgreSQL.
    pub storage: StorageSettings,
    /// `[ssh]`: the SSH front door, off when `None`.
    pub ssh: Option<SshSettings>,
    /// `[metrics]`: the Prometheus endpoint, off when `None`.
    pub metrics: Option<MetricsSettings>,
    /// `[oidc]`: sign-in with the company's identity provider, off when `None`.
    pub oidc: Option<OidcSettings>,
    /// `[tokens]`: how long API tokens live.
    pub tokens: TokenSettings,
    /// `[[notify]]`: where notifications go (none by default).
    pub notify: Vec<NotifySink>,
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
            message: raw::syntax_message(text, &e),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let mut b = Builder {
            warnings: Vec::new(),
            errors: Vec::new(),
            fed: Default::default(),
            invalid: &invalid,
        };
        // Each section is read even when another is wrong, so that one run names every
        // mistake; a section that needs a broken one (the CA key's folder needs the data
        // directory, the roles their users) is skipped.
        let server = b.server(raw.server, base);
        let ca = match &server {
            Some(server) => {
                let ca = b.ca(raw.ca, &server.data_dir, base);
                b.note(ca)
            }
            None => None,
        };
        let host_ca = match (raw.host_ca, &server, &ca) {
            (Some(h), Some(server), Some(ca)) => {
                let host_ca = b.host_ca(h, &server.data_dir, base, &ca.key_file);
                b.note(host_ca).map(Some)
            }
            (Some(_), _, _) => None,
            (None, _, _) => Some(None),
        };
        let requests = b.requests(&raw.requests);
        let storage = b.storage(raw.storage, base);
        let storage = b.note(storage);
        let ssh = match (raw.ssh, &server) {
            (Some(s), Some(server)) => {
                let ssh = b.ssh(s, &server.data_dir).and_then(|s| {
                    if same_socket(s.listen, server.listen) {
                        return Err(b.err(
                            "ssh.listen",
                            format!(
                                "{} is also [server] listen: the SSH front door needs its own \
                                 port",
                                s.listen
                            ),
                        ));
                    }
                    Ok(s)
                });
                b.note(ssh).map(Some)
            }
            (Some(_), None) => None,
            (None, _) => Some(None),
        };
        let metrics = match (raw.metrics, &server, &ssh) {
            (Some(m), Some(server), Some(ssh)) => {
                let mut taken = vec![(server.listen, "[server] listen")];
                taken.extend(ssh.as_ref().map(|s| (s.listen, "[ssh] listen")));
                let metrics = b.metrics(m, &taken);
                b.note(metrics).map(Some)
            }
            (Some(_), _, _) => None,
            (None, _, _) => Some(None),
        };
        let oidc = match raw.oidc {
            Some(o) => {
                let oidc = b.oidc(o, base);
                b.note(oidc).map(Some)
            }
            None => Some(None),
        };
        // Groups the identity provider can put people in: not "without members".
        b.fed = oidc
            .iter()
            .flatten()
            .flat_map(|o| o.group_map.iter().flat_map(|m| m.groups.iter().cloned()))
            .collect();
        let tokens = b.tokens(&raw.tokens);
        let tokens = b.note(tokens);
        let policy = b.policy(raw.users, raw.roles, raw.conflicts);
        let policy = policy.and_then(|mut policy| {
            let signing = b.policy_signing(raw.policy, &policy);
            policy.signing = b.note(signing)?;
            Some(policy)
        });
        let notify = match &policy {
            Some(policy) => {
                let notify = b.notify(raw.notify, policy, base);
                b.note(notify)
            }
            None => None,
        };
        let (
            Some(server),
            Some(ca),
            Some(host_ca),
            Some(requests),
            Some(storage),
            Some(ssh),
            Some(metrics),
            Some(oidc),
            Some(tokens),
            Some(policy),
            Some(notify),
        ) = (
            server, ca, host_ca, requests, storage, ssh, metrics, oidc, tokens, policy, notify,
        )
        else {
            return Err(b.failure(path));
        };
        if !b.errors.is_empty() {
            return Err(b.failure(path));
        }
        // With sign-in on, a config user nobody reserved is whoever first signs in with
        // the name: say so for admins (the name a takeover would aim for).
        if oidc.is_some() {
            for u in policy
                .users
                .values()
                .filter(|u| u.admin && u.oidc_subject.is_none())
            {
                b.warnings.push(format!(
                    "users.{}: an admin without oidc_subject: whoever first signs in with the \
                     name {} at the identity provider becomes this admin (set oidc_subject to \
                     the person's `sub`)",
                    u.name, u.name
                ));
            }
        }
        // Likewise for a policy signer: a key they register after signing in signs for them.
        let signers = policy.signing.iter().flat_map(|s| s.signers.iter());
        let unreserved = |u: &&UserName| {
            oidc.is_some()
                && policy
                    .users
                    .get(*u)
                    .is_some_and(|x| x.oidc_subject.is_none())
        };
        for u in signers.filter(unreserved) {
            b.warnings.push(format!(
                "policy.signers: user:{u} has no oidc_subject: whoever first signs in as {u} \
                 could register a key that signs the policy for them (set oidc_subject)"
            ));
        }
        // A group the provider is mapped to that no role names gives nothing (a typo?).
        for (i, m) in oidc.iter().flat_map(|o| o.group_map.iter()).enumerate() {
            for g in &m.groups {
                let named = policy.roles.values().any(|r| {
                    r.requesters
                        .iter()
                        .chain(r.steps.iter().flat_map(|s| s.approvers.iter()))
                        .any(|member| matches!(member, crate::policy::Member::Group(n) if n == g))
                });
                if !named {
                    b.warnings.push(format!(
                        "oidc.group_map[{i}]: group {g} is named by no role's requesters or \
                         approvers: it gives nothing"
                    ));
                }
            }
        }
        let mut warnings = b.warnings;
        if let Some(s) = &ssh {
            warnings.extend(ssh::warnings(s, requests.pending_ttl));
        }
        Ok(Config {
            path: path.to_owned(),
            text: text.into(),
            server,
            ca,
            host_ca,
            requests,
            storage,
            ssh,
            metrics,
            oidc,
            tokens,
            notify,
            policy,
            warnings,
        })
    }

    /// The SQLite database file (with `[storage] backend = "sqlite"`).
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("countersign.db")
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod docs;
