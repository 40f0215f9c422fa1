//! `[ssh]`: where the SSH front door listens, its host key, and its limits.
//!
//! The section is optional: without it there is no SSH listener. Every key has a default,
//! so `[ssh]` alone turns the front door on at `127.0.0.1:2222`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Builder, ConfigError, raw};

/// Host key file name inside `data_dir` when `host_key_file` is not set.
pub const DEFAULT_HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// The SSH front door's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// SSH listen address.
    pub listen: SocketAddr,
    /// OpenSSH Ed25519 private key the server proves itself with; created on first start.
    pub host_key_file: PathBuf,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// No connection lasts longer than this, busy or not.
    pub connection_timeout: Duration,
    /// Open connections at once, authenticated or not; more are closed at accept.
    pub max_connections: u32,
    /// Commands one user may have running at once (a waiting `request` counts).
    pub max_sessions_per_user: u32,
    /// Connections refused at authentication per source address (IPv6: per /64) and
    /// minute (each counts once, however many keys it offered); past that, the address
    /// is refused until its allowance refills.
    pub auth_failures_per_minute: u32,
    /// Open connections from one source address (IPv6: its /64) at once, authenticated or
    /// not; more are closed at accept, so that one client cannot hold every connection.
    pub max_connections_per_address: u32,
    /// A connection that has not logged in within this long after accept is closed.
    pub auth_timeout: Duration,
    /// Session channels one connection may have open at once; more are refused.
    pub max_channels_per_connection: u32,
}

impl Default for SshSettings {
    /// The documented defaults; `host_key_file` is relative (the loader resolves it
    /// against `data_dir`).
    fn default() -> Self {
        SshSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            host_key_file: PathBuf::from(DEFAULT_HOST_KEY_FILE),
            idle_timeout: Duration::from_secs(5 * 60),
            connection_timeout: Duration::from_secs(2 * 3600),
            max_connections: 64,
            max_sessions_per_user: 4,
            auth_failures_per_minute: 10,
            max_connections_per_address: 8,
            auth_timeout: Duration::from_secs(30),
            max_channels_per_connection: 4,
        }
    }
}

impl Builder<'_> {
    /// Validates `[ssh]`; `data_dir` resolves a relative `host_key_file`.
    pub(super) fn ssh(
        &self,
        raw: raw::RawSsh,
        data_dir: &Path,
    ) -> Result<SshSettings, ConfigError> {
        let d = SshSettings::default();
        let listen = match raw.listen.as_deref() {
            Some(l) => l
                .parse()
                .map_err(|e| self.err("ssh.listen", format!("not an address:port ({e})")))?,
            None => d.listen,
        };
        let host_key_file = data_dir.join(
            raw.host_key_file
                .as_deref()
                .unwrap_or(DEFAULT_HOST_KEY_FILE),
        );
        Ok(SshSettings {
            listen,
            host_key_file,
            idle_timeout: self.duration("ssh.idle_timeout", raw.idle_timeout.as_deref(), "5m")?,
            connection_timeout: self.duration(
                "ssh.connection_timeout",
                raw.connection_timeout.as_deref(),
                "2h",
            )?,
            max_connections: self.count(
                "ssh.max_connections",
                raw.max_connections,
                d.max_connections,
                10_000,
            )?,
            max_sessions_per_user: self.count(
                "ssh.max_sessions_per_user",
                raw.max_sessions_per_user,
                d.max_sessions_per_user,
                1000,
            )?,
            auth_failures_per_minute: self.count(
                "ssh.auth_failures_per_minute",
                raw.auth_failures_per_minute,
                d.auth_failures_per_minute,
                10_000,
            )?,
            max_connections_per_address: self.count(
                "ssh.max_connections_per_address",
                raw.max_connections_per_address,
                d.max_connections_per_address,
                10_000,
            )?,
            auth_timeout: self.auth_timeout(raw.auth_timeout.as_deref())?,
            max_channels_per_connection: self.count(
                "ssh.max_channels_per_connection",
                raw.max_channels_per_connection,
                d.max_channels_per_connection,
                100,
            )?,
        })
    }

    /// `auth_timeout`: from 1 s (a login needs a few round trips) to 10 min.
    fn auth_timeout(&self, value: Option<&str>) -> Result<Duration, ConfigError> {
        const KEY: &str = "ssh.auth_timeout";
        let d = self.duration(KEY, value, "30s")?;
        if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&d) {
            return Err(self.err(KEY, "must be between 1s and 10m"));
        }
        Ok(d)
    }

    fn count(
        &self,
        key: &str,
        value: Option<u32>,
        default: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        match value.unwrap_or(default) {
            n if (1..=max).contains(&n) => Ok(n),
            _ => Err(self.err(key, format!("must be between 1 and {max}"))),
        }
    }
}

/// A warning when `request` could stop waiting before a request can expire.
pub(super) fn warnings(ssh: &SshSettings, pending_ttl: Duration) -> Option<String> {
    (ssh.connection_timeout < pending_ttl).then(|| {
        format!(
            "ssh.connection_timeout ({}) is shorter than requests.pending_ttl ({}): \
             `request` over ssh may stop waiting while the request is still pending",
            humantime::format_duration(ssh.connection_timeout),
            humantime::format_duration(pending_ttl)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(ssh: &str) -> Result<Config, ConfigError> {
        let text = format!("[requests]\npending_ttl = \"1h\"\n{ssh}");
        Config::from_toml_str(&text, Path::new("t.toml"), Path::new("/etc/cs"))
    }

    #[test]
    fn absent_means_off_and_an_empty_section_means_the_defaults() {
        assert!(load("").unwrap().ssh.is_none());
        let ssh = load("[ssh]").unwrap().ssh.unwrap();
        assert_eq!(
            ssh,
            SshSettings {
                host_key_file: PathBuf::from("/etc/cs/data/ssh_host_ed25519_key"),
                ..SshSettings::default()
            }
        );
        assert_eq!(ssh.listen.to_string(), "127.0.0.1:2222");
    }

    #[test]
    fn every_key_is_read() {
        let c = load(
            r#"[ssh]
listen = "0.0.0.0:22"
host_key_file = "/keys/host"
idle_timeout = "30s"
connection_timeout = "3h"
max_connections = 10
max_sessions_per_user = 2
auth_failures_per_minute = 5
max_connections_per_address = 3
auth_timeout = "1m"
max_channels_per_connection = 7
"#,
        )
        .unwrap();
        let ssh = c.ssh.unwrap();
        assert_eq!(ssh.listen.to_string(), "0.0.0.0:22");
        assert_eq!(ssh.host_key_file, PathBuf::from("/keys/host"));
        assert_eq!(ssh.idle_timeout, Duration::from_secs(30));
        assert_eq!(ssh.connection_timeout, Duration::from_secs(3 * 3600));
        assert_eq!((ssh.max_connections, ssh.max_sessions_per_user), (10, 2));
        assert_eq!(ssh.auth_failures_per_minute, 5);
        assert_eq!(ssh.max_connections_per_address, 3);
        assert_eq!(ssh.auth_timeout, Duration::from_secs(60));
        assert_eq!(ssh.max_channels_per_connection, 7);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (line, key) in [
            ("listen = \"localhost\"", "ssh.listen"),
            ("idle_timeout = \"0s\"", "ssh.idle_timeout"),
            ("max_sessions_per_user = 0", "ssh.max_sessions_per_user"),
            ("max_connections = 100000", "ssh.max_connections"),
            (
                "auth_failures_per_minute = 0",
                "ssh.auth_failures_per_minute",
            ),
            (
                "max_connections_per_address = 0",
                "ssh.max_connections_per_address",
            ),
            (
                "max_connections_per_address = 10001",
                "ssh.max_connections_per_address",
            ),
            ("auth_timeout = \"0s\"", "ssh.auth_timeout"),
            ("auth_timeout = \"500ms\"", "ssh.auth_timeout"),
            ("auth_timeout = \"11m\"", "ssh.auth_timeout"),
            ("auth_timeout = \"soon\"", "ssh.auth_timeout"),
            (
                "max_channels_per_connection = 0",
                "ssh.max_channels_per_connection",
            ),
            (
                "max_channels_per_connection = 101",
                "ssh.max_channels_per_connection",
            ),
            ("port = 22", "unknown field"),
        ] {
            let e = load(&format!("[ssh]\n{line}")).unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
    }

    #[test]
    fn the_front_door_limits_accept_their_bounds() {
        let ssh = load(
            "[ssh]\nmax_connections_per_address = 10000\nauth_timeout = \"10m\"\n\
             max_channels_per_connection = 100",
        )
        .unwrap()
        .ssh
        .unwrap();
        assert_eq!(ssh.max_connections_per_address, 10_000);
        assert_eq!(ssh.auth_timeout, Duration::from_secs(600));
        assert_eq!(ssh.max_channels_per_connection, 100);
        let ssh = load(
            "[ssh]\nmax_connections_per_address = 1\nauth_timeout = \"1s\"\n\
             max_channels_per_connection = 1",
        )
        .unwrap()
        .ssh
        .unwrap();
        assert_eq!(
            (
                ssh.max_connections_per_address,
                ssh.auth_timeout,
                ssh.max_channels_per_connection
            ),
            (1, Duration::from_secs(1), 1)
        );
    }

    #[test]
    fn a_connection_limit_below_pending_ttl_is_a_warning() {
        let c = load("[ssh]\nconnection_timeout = \"10m\"").unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("ssh.connection_timeout")),
            "{:?}",
            c.warnings
        );
    }
}
