//! The builder that reads the raw file into [`Config`](super::Config)'s parts: the
//! error constructor, the errors kept to report them all at once, and the small sections
//! read here (`[requests]`, `[tokens]`, durations).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, RequestSettings, TokenSettings, raw};
use crate::names::{GroupName, parse_duration};

pub(super) type Invalid<'a> = &'a dyn Fn(String, String) -> ConfigError;

pub(super) struct Builder<'a> {
    pub(super) warnings: Vec<String>,
    /// Errors found so far: the load goes on past one to report them all at once.
    pub(super) errors: Vec<ConfigError>,
    /// Groups `[[oidc.group_map]]` can put people in (known once `[oidc]` is read).
    pub(super) fed: std::collections::BTreeSet<GroupName>,
    pub(super) invalid: Invalid<'a>,
}

impl Builder<'_> {
    pub(super) fn err(
        &self,
        key: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        (self.invalid)(key.into(), message.to_string())
    }

    /// The value, or `None` with its error kept for the report (see [`Builder::errors`]).
    pub(super) fn note<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|e| self.errors.push(e)).ok()
    }

    /// The errors kept, as one: the first alone, or [`ConfigError::Several`].
    pub(super) fn failure(&mut self, path: &Path) -> ConfigError {
        let mut errors = std::mem::take(&mut self.errors);
        if errors.len() == 1 {
            return errors.remove(0);
        }
        let errors = errors
            .into_iter()
            .map(|e| match e {
                ConfigError::Invalid { key, message, .. } => (key, message),
                other => (String::new(), other.to_string()),
            })
            .collect();
        ConfigError::Several {
            path: path.to_owned(),
            errors,
        }
    }

    /// `[requests]`.
    /// `[requests]`, each key checked (errors kept: [`Builder::note`]); `None` when any
    /// is wrong.
    pub(super) fn requests(&mut self, raw: &raw::RawRequests) -> Option<RequestSettings> {
        let max = RequestSettings::MAX_PENDING_PER_USER_LIMIT;
        let pending_ttl = self.duration("requests.pending_ttl", raw.pending_ttl.as_deref(), "1h");
        let pending_ttl = self.note(pending_ttl);
        let revocation_grace = self.duration_or_zero(
            "requests.revocation_grace",
            raw.revocation_grace.as_deref(),
            "2m",
            Duration::from_secs(24 * 3600),
        );
        let revocation_grace = self.note(revocation_grace);
        let max_pending_per_user = match raw.max_pending_per_user {
            None => Ok(RequestSettings::DEFAULT_MAX_PENDING_PER_USER),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(_) => Err(self.err(
                "requests.max_pending_per_user",
                format!("must be between 1 and {max}"),
            )),
        };
        let max_pending_per_user = self.note(max_pending_per_user);
        Some(RequestSettings {
            pending_ttl: pending_ttl?,
            revocation_grace: revocation_grace?,
            max_pending_per_user: max_pending_per_user?,
            require_registered_keys: raw.require_registered_keys.unwrap_or(false),
        })
    }

    /// `[tokens]`: `default_ttl` (30d) at most `max_ttl` (90d), both between 1m and 366d
    /// (the longest duration countersign reads).
    pub(super) fn tokens(&self, raw: &raw::RawTokens) -> Result<TokenSettings, ConfigError> {
        let default_ttl = self.duration("tokens.default_ttl", raw.default_ttl.as_deref(), "30d")?;
        let max_ttl = self.duration("tokens.max_ttl", raw.max_ttl.as_deref(), "90d")?;
        let bounds = Duration::from_secs(60)..=crate::names::MAX_DURATION;
        for (key, d) in [
            ("tokens.default_ttl", default_ttl),
            ("tokens.max_ttl", max_ttl),
        ] {
            if !bounds.contains(&d) {
                return Err(self.err(key, "must be between 1m and 366d"));
            }
        }
        if default_ttl > max_ttl {
            return Err(self.err("tokens.default_ttl", "must not be longer than max_ttl"));
        }
        Ok(TokenSettings {
            default_ttl,
            max_ttl,
        })
    }

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        parse_duration(value.unwrap_or(default), "duration").map_err(|e| self.err(key, e))
    }

    /// A duration that may also be zero (`"0s"`), at most `max`.
    pub(super) fn duration_or_zero(
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
}

/// Whether two listen addresses would take the same port: equal, or one of them the
/// wildcard address. Port 0 (a port the kernel picks) never clashes.
pub(super) fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
