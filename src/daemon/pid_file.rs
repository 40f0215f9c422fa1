//! The pid file of a running `serve`, `data_dir/countersign.pid`, locked while it runs:
//! one server per data folder, and `countersign reload` finds the server by it.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::Config;

/// File name of the running server's pid, in `data_dir`.
const PID_FILE: &str = "countersign.pid";

/// Where the running server's pid is: `data_dir/countersign.pid`.
pub fn pid_path(config: &Config) -> PathBuf {
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
pub fn try_lock(file: &std::fs::File, exclusive: bool) -> std::io::Result<bool> {
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
