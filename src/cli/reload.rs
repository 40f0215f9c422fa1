//! `countersign reload`: checks the config file, then signals the running server, which
//! re-reads it (the server side is `daemon/reload.rs`). `serve` writes its pid to
//! `data_dir/countersign.pid` and holds a lock on it while it runs (`daemon/pid_file.rs`),
//! for `countersign reload` to find it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};

use crate::config::Config;
use crate::daemon::{pid_path, try_lock};

/// `countersign reload`: checks that the config file loads, then sends SIGHUP to the
/// `countersign serve` whose pid is in `data_dir/countersign.pid`.
pub(super) fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
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
    // A process id, never 0 or 1 or negative: kill(2) would signal a whole process group,
    // init, or every process the operator may signal.
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p: &i32| *p > 1)
        .ok_or_else(|| anyhow!("{} does not hold a process id", path.display()))?;
    // Signatures the server would refuse: said here, nothing sent. If the state cannot be
    // read from here, the server judges alone (and logs it), and this says so.
    let judged = crate::service::Local::open(&config)
        .map_err(anyhow::Error::from)
        .and_then(|local| Ok(local.policy_outcome(&config)?));
    match judged {
        Ok(outcome) => {
            if let Some(why) = outcome.refusal {
                bail!("{why}; nothing was sent (countersign policy status says more)");
            }
        }
        Err(e) => eprintln!(
            "note: the policy's signatures could not be checked from here ({e:#}); the \
             server checks them and logs what it decides"
        ),
    }
    // SAFETY: kill has no memory preconditions; the pid is the lock holder's: our server.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("sending SIGHUP to process {pid}: {e}");
    }
    eprintln!(
        "asked countersign serve (pid {pid}) to reload {}; its log says what changed, and \
         which changed settings wait for a restart (listen addresses, TLS, limits, [ca], \
         [host_ca], [ssh], [metrics], [storage], [oidc], [[notify]])",
        config_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
