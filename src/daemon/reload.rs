//! Configuration reload, the server side: SIGHUP (what `systemctl reload` sends) re-reads
//! the config file. A file that does not load is refused with the reason in the log, and
//! the running configuration stays; settings that need a restart are reported and left
//! as they were (`Service::reload`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::service::Service;

/// SIGHUP, with its handler installed at construction (before anything listens, so an
/// early `systemctl reload` does not kill the process with the default action).
pub(super) struct Hangups(Signal);

impl Hangups {
    pub(super) fn register() -> std::io::Result<Hangups> {
        Ok(Hangups(signal(SignalKind::hangup())?))
    }

    /// Reloads `config_path` into `service` at every SIGHUP, for as long as it runs.
    pub(super) async fn serve(
        mut self,
        service: Arc<Service>,
        config_path: PathBuf,
        actor: String,
    ) {
        while self.0.recv().await.is_some() {
            let (service, path, actor) = (service.clone(), config_path.clone(), actor.clone());
            let done = tokio::task::spawn_blocking(move || reload(&service, &path, &actor)).await;
            if let Err(e) = done {
                tracing::error!(error = %e, "configuration reload failed");
            }
        }
    }
}

/// One reload, with everything it did or refused in the log.
fn reload(service: &Service, path: &Path, actor: &str) {
    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            let e = anyhow::Error::new(e);
            tracing::error!(
                error = format!("{e:#}"),
                "reload refused: the configuration does not load; the running configuration stays"
            );
            return;
        }
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match service.reload(config, actor) {
        Ok(done) => {
            if !done.needs_restart.is_empty() {
                tracing::warn!(
                    settings = done.needs_restart.join(", "),
                    "these settings changed but need a restart; they keep their running values"
                );
            }
            if !done.applied.is_empty() {
                tracing::info!(
                    settings = done.applied.join(", "),
                    "settings changed and in force"
                );
            }
            if done.changes.as_object().is_some_and(|c| c.is_empty()) {
                tracing::info!("configuration reloaded; the policy is unchanged");
            } else {
                tracing::info!(changes = %done.changes, "configuration reloaded; policy.loaded recorded");
            }
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            tracing::error!(
                error = format!("{e:#}"),
                "reload failed; the running configuration stays"
            );
        }
    }
}
