//! Configuration reload: the server side (SIGHUP, what `systemctl reload` sends) and
//! `countersign reload`, which checks the file and then signals the running server.
//!
//! The server re-reads its config file on SIGHUP. A file that does not load is refused
//! with the reason in the log, and the running configuration stays; settings that need a
//! restart are reported and left as they were (`Service::reload`). `serve` writes its
//! pid to `data_dir/countersign.pid` and holds a lock on it while it runs, for
//! `countersign reload` to find it (and for a second `serve` to be refused).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

/// The pid file of a running `serve`, locked (`flock`) for as long as the process
/// lives: a second `serve` on the same data folder is refused, and `countersign reload`
/// tells a running server from a stale file by the lock, whatever the binary is called.
/// Also taken by `init`, which must not run beside a server.
pub struct PidFile {
    /// Holds the lock until dropped (process exit at the latest).
    _file: std::fs::File,
}

/// Tries to lock `file` (`exclusive` or shared) without waiting: `Ok(false)` if another
/// process holds a conflicting lock.
fn try_lock(file: &std::fs::File, exclusive: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let how = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock takes a file descriptor we own for the call's duration; no memory.
    if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl PidFile {
    /// Locks the pid file and writes this process's pid into it; refuses when another
    /// `serve` holds it. Creates the data folder (0700) on first use.
    pub fn lock(config: &Config) -> anyhow::Result<PidFile> {
        let dir = &config.server.data_dir;
        crate::state::files::check_data_dir(dir)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = pid_path(config);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // A `reload` probing the lock holds it shared for an instant: try a few times.
        let mut locked = false;
        for _ in 0..10 {
            locked =
                try_lock(&file, true).with_context(|| format!("locking {}", path.display()))?;
            if locked {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !locked {
            let other = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another countersign serve (pid {}) is running on {}; one server per data folder",
                other.trim(),
                dir.display()
            );
        }
        file.set_len(0)
            .and_then(|()| {
                std::io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes())
            })
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(PidFile { _file: file })
    }
}

// Not removed when dropped: unlinking a locked file would let a new `serve` lock a fresh
// one beside a server still holding the old inode. A file nobody locks is stale, and
// `reload` tells so by the lock.

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
    let not_running = || {
        anyhow!(
            "no countersign serve is running on {} (nothing holds {}); start it, or check --config",
            config.server.data_dir.display(),
            path.display()
        )
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_running()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    // The running server holds the lock; a file nobody locks was left by one that died
    // (its pid may belong to another process by now).
    if try_lock(&file, false).with_context(|| format!("checking {}", path.display()))? {
        return Err(not_running());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| anyhow!("{} does not hold a process id", path.display()))?;
    // SAFETY: kill has no memory preconditions; the pid is the lock holder's: our server.
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
