//! `[storage]`: which database keeps the state. SQLite (the file in `data_dir`) is the
//! default; PostgreSQL lets several replicas share one database.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::raw::RawStorage;
use super::{Builder, ConfigError, CredentialPath};

/// Default of `[storage] pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Largest `[storage] pool_size` accepted.
pub const MAX_POOL_SIZE: usize = 1000;

/// Where the state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    /// The SQLite file `countersign.db` in `data_dir`.
    Sqlite,
    /// A PostgreSQL database shared by every replica.
    Postgres(PostgresSettings),
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// The URL as configured (it holds no password), for messages.
    pub url: String,
    /// The URL without the TLS parameters countersign handles itself (`sslmode`,
    /// `sslrootcert`), for the driver.
    pub conninfo: String,
    /// How the connection is protected.
    pub tls: PgTls,
    /// Where the password is read from (first line), if the server wants one.
    pub password_file: Option<CredentialPath>,
    /// Most connections one replica opens.
    pub pool_size: usize,
}

/// TLS to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// No TLS: only for a server on this machine (loopback or a Unix socket).
    Disable,
    /// TLS, with the server's certificate checked against trusted roots and its name
    /// (`sslmode=verify-full`).
    VerifyFull {
        /// `sslrootcert`: the CA certificates (PEM) to trust instead of the system's.
        root_cert: Option<PathBuf>,
    },
}

impl Builder<'_> {
    pub(super) fn storage(
        &self,
        raw: RawStorage,
        base: &Path,
    ) -> Result<StorageSettings, ConfigError> {
        match raw.backend.as_deref().unwrap_or("sqlite") {
            "sqlite" => {
                for (key, set) in [
                    ("storage.url", raw.url.is_some()),
                    ("storage.password_file", raw.password_file.is_some()),
                    ("storage.pool_size", raw.pool_size.is_some()),
                ] {
                    if set {
                        return Err(self.err(key, "only used with backend = \"postgres\""));
                    }
                }
                Ok(StorageSettings::Sqlite)
            }
            "postgres" => {
                let url = raw.url.ok_or_else(|| {
                    self.err(
                        "storage.url",
                        "required with backend = \"postgres\", e.g. \
                         postgres://countersign@db.internal:5432/countersign?sslmode=verify-full",
                    )
                })?;
                let (conninfo, tls) =
                    postgres_url(&url, base).map_err(|e| self.err("storage.url", e))?;
                let password_file = match raw.password_file.as_deref() {
                    Some(p) => Some(
                        CredentialPath::parse(p, base)
                            .map_err(|e| self.err("storage.password_file", e))?,
                    ),
                    None => None,
                };
                let pool_size = match raw.pool_size {
                    None => DEFAULT_POOL_SIZE,
                    Some(n) if (2..=MAX_POOL_SIZE).contains(&n) => n,
                    Some(_) => {
                        return Err(self.err(
                            "storage.pool_size",
                            format!("must be between 2 and {MAX_POOL_SIZE}"),
                        ));
                    }
                };
                Ok(StorageSettings::Postgres(PostgresSettings {
                    url,
                    conninfo,
                    tls,
                    password_file,
                    pool_size,
                }))
            }
            other => Err(self.err(
                "storage.backend",
                format!("{other:?}: must be \"sqlite\" or \"postgres\""),
            )),
        }
    }
}

/// Checks a PostgreSQL URL and splits off the TLS parameters: no password inside it,
/// one or more hosts, and TLS with verification unless every host is on this machine.
fn postgres_url(url: &str, base: &Path) -> Result<(String, PgTls), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must be a postgres:// URL".into());
    }
    if url.contains('#') {
        // Nothing after a '#' is read, and it is never repeated in a message.
        return Err("must not hold a '#' fragment".into());
    }
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| format!("its parameters do not parse: {e}"))?;
    let mut sslmode = None;
    let mut root_cert = None;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "sslmode" => sslmode = Some(v),
            "sslrootcert" => root_cert = Some(base.join(v)),
            "password" => {
                return Err("must not hold a password: put it in password_file".into());
            }
            _ => rest.push((k, v)),
        }
    }
    let conninfo = if rest.is_empty() {
        head.to_owned()
    } else {
        let query =
            serde_urlencoded::to_string(&rest).map_err(|e| format!("cannot rebuild it: {e}"))?;
        format!("{head}?{query}")
    };
    let config = tokio_postgres::Config::from_str(&conninfo).map_err(|e| format!("{e}"))?;
    if config.get_password().is_some() {
        return Err("must not hold a password: put it in password_file".into());
    }
    if config.get_hosts().is_empty() {
        return Err("must name the database host".into());
    }
    if config.get_dbname().is_none() || config.get_user().is_none() {
        return Err("must name the user and the database (postgres://USER@HOST/DATABASE)".into());
    }
    let local = config.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => is_loopback(name),
        tokio_postgres::config::Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(|ip| ip.is_loopback());
    if root_cert.is_some() && sslmode.as_deref() != Some("verify-full") {
        return Err("sslrootcert is only used with sslmode=verify-full".into());
    }
    let tls = match sslmode.as_deref() {
        Some("verify-full") => PgTls::VerifyFull { root_cert },
        Some("disable") | None if local => PgTls::Disable,
        Some("disable") | None => {
            return Err(
                "a database on another machine needs sslmode=verify-full (TLS with the \
                 server's certificate and name checked)"
                    .into(),
            );
        }
        Some(mode) => {
            // Repeated only if it looks like a mode, never whatever text came with it.
            let shown = if mode.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                mode
            } else {
                "(that value)"
            };
            return Err(format!(
                "sslmode={shown} is not accepted: use verify-full (or disable, for a database \
                 on this machine)"
            ));
        }
    };
    Ok((conninfo, tls))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<(String, PgTls), String> {
        postgres_url(url, Path::new("/etc/countersign"))
    }

    #[test]
    fn urls_are_checked_and_tls_parameters_split_off() {
        assert_eq!(
            parse("postgres://cs@127.0.0.1:5432/cs").unwrap(),
            ("postgres://cs@127.0.0.1:5432/cs".into(), PgTls::Disable)
        );
        assert_eq!(
            parse("postgres://cs@db.internal/cs?sslmode=verify-full&sslrootcert=ca.pem").unwrap(),
            (
                "postgres://cs@db.internal/cs".into(),
                PgTls::VerifyFull {
                    root_cert: Some("/etc/countersign/ca.pem".into())
                }
            )
        );
        for (url, why) in [
            ("postgres://cs:secret@127.0.0.1/cs", "password"),
            ("postgres://cs@127.0.0.1/cs?password=x", "password"),
            ("postgres://cs@db.internal/cs", "verify-full"),
            (
                "postgres://cs@db.internal/cs?sslmode=require",
                "not accepted",
            ),
            (
                "postgres://cs@db.internal/cs?sslmode=disable",
                "verify-full",
            ),
            (
                "postgres://cs@localhost/cs?hostaddr=10.0.0.5",
                "verify-full",
            ),
            ("mysql://cs@127.0.0.1/cs", "postgres://"),
            ("postgres://127.0.0.1/cs", "user"),
        ] {
            let err = parse(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
