//! `[server]` and `[ca]`: where the server listens, its abuse limits, and the CA key.

use std::path::Path;
use std::time::Duration;

use super::{Builder, CaSettings, ConfigError, ServerSettings, raw};

/// Abuse limits of the HTTP API; every one has a default that suits a small team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line plus headers) in bytes; beyond, 431.
    pub max_header_bytes: usize,
    /// Longest a request may take, from its first header byte to its response.
    pub request_timeout: Duration,
    /// Open connections at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests handled at once; beyond, 503 `overloaded`.
    pub max_concurrent_requests: usize,
    /// Failed authentications one client address (IPv6: its /64) may make per window.
    pub auth_failures_per_address: u32,
    /// Failed authentications with one token per window (e.g. a revoked token in a script).
    pub auth_failures_per_token: u32,
    /// The window the two counts above are kept for.
    pub auth_failure_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_concurrent_requests: 64,
            auth_failures_per_address: 20,
            auth_failures_per_token: 5,
            auth_failure_window: Duration::from_secs(300),
        }
    }
}

impl Builder<'_> {
    pub(super) fn server(
        &mut self,
        raw: raw::RawServer,
        base: &Path,
    ) -> Result<ServerSettings, ConfigError> {
        let listen = raw
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:7070")
            .parse()
            .map_err(|e| self.err("server.listen", format!("not an address:port ({e})")))?;
        let data_dir = base.join(raw.data_dir.as_deref().unwrap_or("data"));
        let limits = self.limits(&raw)?;
        Ok(ServerSettings {
            listen,
            data_dir,
            limits,
        })
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
        })
    }

    pub(super) fn ca(&self, raw: raw::RawCa, data_dir: &Path) -> Result<CaSettings, ConfigError> {
        let key_file = data_dir.join(raw.key_file.as_deref().unwrap_or("ca_key"));
        let backdate = match raw.backdate.as_deref() {
            Some(zero) if humantime::parse_duration(zero.trim()).is_ok_and(|d| d.is_zero()) => {
                Duration::ZERO
            }
            other => self.duration("ca.backdate", other, "1m")?,
        };
        if backdate > Duration::from_secs(3600) {
            return Err(self.err("ca.backdate", "at most 1h"));
        }
        Ok(CaSettings { key_file, backdate })
    }
}
