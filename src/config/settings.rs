//! `[server]` and `[ca]`: where the server listens, its abuse limits, and the CA key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Builder, CaSettings, ConfigError, ServerSettings, raw};

/// The PEM files of the HTTPS certificate (chain) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
}

/// Abuse limits of the HTTP API; every one has a default that suits a small team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line plus headers) in bytes; beyond, 431.
    pub max_header_bytes: usize,
    /// Longest a request may take, from its first header byte to its response.
    pub request_timeout: Duration,
    /// Open connections at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: its /64) at once; more are closed
    /// at accept. Trusted proxies are exempt (all their clients share their address).
    pub max_connections_per_address: usize,
    /// Requests handled at once; beyond, 503 `overloaded`.
    pub max_concurrent_requests: usize,
    /// Failed authentications one client address (IPv6: its /64) may make per window.
    pub auth_failures_per_address: u32,
    /// Failed authentications with one token per window (e.g. a revoked token in a script).
    pub auth_failures_per_token: u32,
    /// The window the two counts above are kept for.
    pub auth_failure_window: Duration,
    /// Requests to the sign-in endpoints (`/v1/oidc/*`, `/login`) one client address
    /// (IPv6: its /64) may make per minute; they need no credential and most write.
    pub sign_in_requests_per_minute: u32,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the
    /// client; from any other peer the header is ignored. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_address: 64,
            max_concurrent_requests: 64,
            auth_failures_per_address: 20,
            auth_failures_per_token: 5,
            auth_failure_window: Duration::from_secs(300),
            sign_in_requests_per_minute: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Builder<'_> {
    /// `[server]`, each of its parts read even when another is wrong (their errors kept:
    /// [`Builder::note`]); `None` when any is.
    pub(super) fn server(&mut self, raw: raw::RawServer, base: &Path) -> Option<ServerSettings> {
        let listen = raw
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:7070")
            .parse()
            .map_err(|e| self.err("server.listen", format!("not an address:port ({e})")));
        let listen = self.note(listen);
        let data_dir = base.join(raw.data_dir.as_deref().unwrap_or("data"));
        let limits = self.limits(&raw);
        let limits = self.note(limits);
        let tls = self.tls(&raw, base);
        let tls = self.note(tls);
        let plain_ok = match (listen, &tls) {
            (Some(listen), Some(tls)) => {
                let plain = self.plain_http(listen, tls.is_some(), raw.allow_plain_http);
                self.note(plain).is_some()
            }
            _ => true,
        };
        let working_hours =
            self.working_hours(raw.timezone.as_deref(), raw.working_hours.as_deref());
        let working_hours = self.note(working_hours);
        let log_format = self.log_format(raw.log_format.as_deref());
        let log_format = self.note(log_format);
        let shutdown_delay = self.duration_or_zero(
            "server.shutdown_delay",
            raw.shutdown_delay.as_deref().or(Some("0s")),
            "0s",
            std::time::Duration::from_secs(300),
        );
        let shutdown_delay = self.note(shutdown_delay);
        let (listen, limits, tls, working_hours, log_format, shutdown_delay) = (
            listen?,
            limits?,
            tls?,
            working_hours?,
            log_format?,
            shutdown_delay?,
        );
        plain_ok.then_some(())?;
        Some(ServerSettings {
            listen,
            data_dir,
            tls,
            allow_plain_http: raw.allow_plain_http,
            limits,
            working_hours,
            log_format,
            shutdown_delay,
        })
    }

    fn tls(&self, raw: &raw::RawServer, base: &Path) -> Result<Option<TlsFiles>, ConfigError> {
        match (raw.tls_cert.as_deref(), raw.tls_key.as_deref()) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: base.join(cert),
                key: base.join(key),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.err("server.tls_key", "required with tls_cert")),
            (None, Some(_)) => Err(self.err("server.tls_cert", "required with tls_key")),
        }
    }

    /// Plain HTTP carries tokens in clear text: only on loopback, or when allowed on
    /// purpose (then a warning, which `serve` logs at every start).
    fn plain_http(
        &mut self,
        listen: SocketAddr,
        tls: bool,
        allowed: bool,
    ) -> Result<(), ConfigError> {
        if tls || listen.ip().is_loopback() {
            return Ok(());
        }
        if !allowed {
            return Err(self.err(
                "server.listen",
                format!(
                    "{listen} is not a loopback address: set tls_cert and tls_key to serve \
                     HTTPS, or put countersign behind a TLS reverse proxy on loopback, or set \
                     allow_plain_http = true if something else encrypts the traffic"
                ),
            ));
        }
        self.warnings.push(format!(
            "server: plain HTTP on {listen} (allow_plain_http = true): tokens and requests \
             cross the network unencrypted unless something else protects them"
        ));
        Ok(())
    }

    fn limits(&self, raw: &raw::RawServer) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let count = |key: &str, value: Option<usize>, default: usize, range: (usize, usize)| {
            let v = value.unwrap_or(default);
            if (range.0..=range.1).contains(&v) {
                Ok(v)
            } else {
                Err(self.err(
                    format!("server.{key}"),
                    format!("must be between {} and {}", range.0, range.1),
                ))
            }
        };
        let request_timeout = self.duration(
            "server.request_timeout",
            raw.request_timeout.as_deref(),
            "30s",
        )?;
        if request_timeout > Duration::from_secs(600) {
            return Err(self.err("server.request_timeout", "at most 10m"));
        }
        let per = |key: &str, v: Option<u32>, default: u32| {
            count(key, v.map(|v| v as usize), default as usize, (1, 1_000_000)).map(|v| v as u32)
        };
        Ok(Limits {
            max_header_bytes: count(
                "max_header_bytes",
                raw.max_header_bytes,
                d.max_header_bytes,
                (1024, 1024 * 1024),
            )?,
            request_timeout,
            max_connections: count(
                "max_connections",
                raw.max_connections,
                d.max_connections,
                (1, 65_536),
            )?,
            max_connections_per_address: count(
                "max_connections_per_address",
                raw.max_connections_per_address,
                d.max_connections_per_address,
                (1, 65_536),
            )?,
            max_concurrent_requests: count(
                "max_concurrent_requests",
                raw.max_concurrent_requests,
                d.max_concurrent_requests,
                (1, 65_536),
            )?,
            auth_failures_per_address: per(
                "auth_failures_per_address",
                raw.auth_failures_per_address,
                d.auth_failures_per_address,
            )?,
            auth_failures_per_token: per(
                "auth_failures_per_token",
                raw.auth_failures_per_token,
                d.auth_failures_per_token,
            )?,
            auth_failure_window: self.duration(
                "server.auth_failure_window",
                raw.auth_failure_window.as_deref(),
                "5m",
            )?,
            sign_in_requests_per_minute: per(
                "sign_in_requests_per_minute",
                raw.sign_in_requests_per_minute,
                d.sign_in_requests_per_minute,
            )?,
            trusted_proxies: raw
                .trusted_proxies
                .iter()
                .map(|p| self.proxy(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// One `trusted_proxies` entry: an address (a network of one) or a CIDR network, not
    /// the whole address space (every client could then name any address), and none
    /// wider than a /8 (IPv4) or a /32 (IPv6): a proxy is a few known hosts, and a network
    /// that wide would let every client in it name any address. (`source_address` shares
    /// the parser, not this limit.)
    fn proxy(&self, entry: &str) -> Result<ipnet::IpNet, ConfigError> {
        let key = "server.trusted_proxies";
        let net = raw::ip_net(entry).map_err(|why| self.err(key, why))?;
        if net.prefix_len() == 0 {
            return Err(self.err(
                key,
                format!("{net} would trust every address; name the proxies themselves"),
            ));
        }
        let widest = match net {
            ipnet::IpNet::V4(_) => 8,
            ipnet::IpNet::V6(_) => 32,
        };
        if net.prefix_len() < widest {
            return Err(self.err(
                key,
                format!(
                    "{net} is wider than a /{widest}: every client in it could name any \
                     address; name the proxies themselves"
                ),
            ));
        }
        Ok(net)
    }

    pub(super) fn ca(
        &self,
        raw: raw::RawCa,
        data_dir: &Path,
        base: &Path,
    ) -> Result<CaSettings, ConfigError> {
        let key_file = data_dir.join(raw.key_file.as_deref().unwrap_or("ca_key"));
        let backdate = self.duration_or_zero(
            "ca.backdate",
            raw.backdate.as_deref(),
            "1m",
            Duration::from_secs(3600),
        )?;
        let passphrase_file = match raw.passphrase_file.as_deref() {
            Some(p) => Some(
                CredentialPath::parse(p, base).map_err(|e| self.err("ca.passphrase_file", e))?,
            ),
            None => None,
        };
        let agent_public_key = raw.agent_public_key.as_deref().map(|p| data_dir.join(p));
        match (raw.agent, &passphrase_file, &agent_public_key) {
            (true, Some(_), _) => Err(self.err(
                "ca.passphrase_file",
                "not used with agent = true: the agent holds the key; remove one of them",
            )),
            (true, None, None) => Err(self.err(
                "ca.agent_public_key",
                "required with agent = true: the CA public key file (e.g. ssh-add -L > ca_key.pub)",
            )),
            (false, _, Some(_)) => {
                Err(self.err("ca.agent_public_key", "only used with agent = true"))
            }
            _ => Ok(CaSettings {
                key_file,
                backdate,
                passphrase_file,
                agent: raw.agent,
                agent_public_key,
            }),
        }
    }
}

/// A secret file's path that may start with `${CREDENTIALS_DIRECTORY}`, the folder where
/// systemd puts a service's credentials (`LoadCredential=`); that prefix is resolved when
/// the file is read, so `check-config` works outside the service too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialPath {
    /// `${CREDENTIALS_DIRECTORY}/NAME`: NAME in the credentials folder.
    Credential(String),
    /// Any other path (relative ones resolve against the config file's folder).
    Path(PathBuf),
}

impl CredentialPath {
    const PREFIX: &str = "${CREDENTIALS_DIRECTORY}/";

    pub(super) fn parse(raw: &str, base: &Path) -> Result<Self, String> {
        match raw.strip_prefix(Self::PREFIX) {
            Some(name) if !name.is_empty() && !name.split('/').any(|c| c == "..") => {
                Ok(CredentialPath::Credential(name.to_owned()))
            }
            Some(_) => Err(format!(
                "{raw:?}: name a file inside the credentials folder"
            )),
            None if raw.contains('$') => Err(format!(
                "{raw:?}: the only variable is a leading {}",
                Self::PREFIX
            )),
            None if raw.is_empty() => Err("must not be empty".into()),
            None => Ok(CredentialPath::Path(base.join(raw))),
        }
    }

    /// The file to read now; fails when the credentials folder is not set.
    pub fn resolve(&self) -> Result<PathBuf, String> {
        match self {
            CredentialPath::Path(p) => Ok(p.clone()),
            CredentialPath::Credential(name) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
                Some(dir) if !dir.is_empty() => Ok(Path::new(&dir).join(name)),
                _ => Err(format!(
                    "{}{name}: CREDENTIALS_DIRECTORY is not set (systemd sets it for a \
                     service with LoadCredential=)",
                    Self::PREFIX
                )),
            },
        }
    }
}

impl std::fmt::Display for CredentialPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialPath::Credential(name) => write!(f, "{}{name}", Self::PREFIX),
            CredentialPath::Path(p) => write!(f, "{}", p.display()),
        }
    }
}
