//! Configuration reload: the server side (SIGHUP, what `systemctl reload` sends) and
//! `countersign reload`, which checks the file and then signals the running server.
//!
//! The server re-reads its config file on SIGHUP. A file that does not load is refused
//! with the reason in the log, and the running configuration stays; settings that need a
//! restart are reported and left as they were (`Service::reload`). `serve` writes its
//! pid to `data_dir/countersign.pid` for `countersign reload` to find it.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::service::Service;

/// File name of the running server's pid, in `data_dir`.
const PID_FILE: &str = "countersign.pid";

fn pid_path(config: &Config) -> PathBuf {
    config.server.data_dir.join(PID_FILE)
}

/// The pid file of a running `serve`; removed when dropped (a clean stop).
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's pid for `countersign reload`.
    pub fn write(config: &Config) -> anyhow::Result<PidFile> {
        let path = pid_path(config);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// SIGHUP, with its handler installed at construction (before anything listens, so an
/// early `systemctl reload` does not kill the process with the default action).
pub struct Hangups(Signal);

impl Hangups {
    pub fn register() -> std::io::Result<Hangups> {
        Ok(Hangups(signal(SignalKind::hangup())?))
    }

    /// Reloads `config_path` into `service` at every SIGHUP, for as long as it runs.
    pub async fn serve(mut self, service: Arc<Service>, config_path: PathBuf, actor: String) {
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

/// `countersign reload`: checks that the config file loads, then sends SIGHUP to the
/// `countersign serve` whose pid is in `data_dir/countersign.pid`.
pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path).map_err(|e| {
        anyhow!(
            "{:#}; nothing was sent, the server keeps its configuration",
            anyhow::Error::new(e)
        )
    })?;
    let path = pid_path(&config);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow!(
            "no running server found ({}: {e}); is countersign serve running with this config?",
            path.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| anyhow!("{} does not hold a process id", path.display()))?;
    // A pid left behind by a server that died may belong to another process by now.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_server =
        words.iter().any(|w| w.ends_with(b"countersign")) && words.iter().any(|w| *w == b"serve");
    if !is_server {
        bail!(
            "process {pid} (from {}) is not a running countersign serve; the server is not running",
            path.display()
        );
    }
    // SAFETY: kill has no memory preconditions; the pid was checked to be our server.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("sending SIGHUP to process {pid}: {e}");
    }
    eprintln!(
        "asked countersign serve (pid {pid}) to reload {}; its log says what changed",
        config_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
