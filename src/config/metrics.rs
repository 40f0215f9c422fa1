//! `[metrics]`: where `GET /metrics` is served (a listener of its own, never the API's);
//! and `[server] log_format`.

use std::net::SocketAddr;

use super::{Builder, ConfigError, raw};

/// `[metrics]`: the Prometheus endpoint's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `GET /metrics` answers (plain HTTP, no authentication).
    pub listen: SocketAddr,
}

/// `[server] log_format`: how the server writes its log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

impl Builder<'_> {
    /// Validates `[metrics]`: an address of its own, apart from `api` (`[server]
    /// listen`) and `ssh` (`[ssh] listen`).
    pub(super) fn metrics(
        &mut self,
        raw: raw::RawMetrics,
        taken: &[(SocketAddr, &str)],
    ) -> Result<MetricsSettings, ConfigError> {
        let Some(listen) = raw.listen.as_deref() else {
            return Err(self.err(
                "metrics.listen",
                "required in [metrics] (for example \"127.0.0.1:9464\")",
            ));
        };
        let listen: SocketAddr = listen
            .parse()
            .map_err(|e| self.err("metrics.listen", format!("not an address:port ({e})")))?;
        for (other, name) in taken {
            if super::same_socket(listen, *other) {
                return Err(self.err(
                    "metrics.listen",
                    format!("{listen} is also {name}: the metrics need a port of their own"),
                ));
            }
        }
        if !listen.ip().is_loopback() {
            self.warnings.push(format!(
                "metrics.listen: {listen} is not a loopback address: /metrics answers anyone \
                 who can reach it, without authentication (role names and counts); allow only \
                 your Prometheus servers to reach it"
            ));
        }
        Ok(MetricsSettings { listen })
    }

    /// `[server] log_format`: `text` (default) or `json`.
    pub(super) fn log_format(&self, raw: Option<&str>) -> Result<LogFormat, ConfigError> {
        match raw {
            None => Ok(LogFormat::Text),
            Some(s) => LogFormat::parse(s).ok_or_else(|| {
                self.err(
                    "server.log_format",
                    format!("{s:?}: must be \"text\" or \"json\""),
                )
            }),
        }
    }
}
