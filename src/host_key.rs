//! The SSH front door's host key: an Ed25519 key in `data_dir`, generated once.
//!
//! Outside `ssh/`: `init` creates it, `check-config` shows it and `serve` loads it, and
//! the front door itself only receives the key.
//!
//! Clients pin it (`known_hosts`) on first use, so it must never change by accident: an
//! existing file is loaded, never overwritten. Like the CA key it is refused when it is a
//! symlink, not a regular file, readable by group or others, encrypted, or not Ed25519.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};

/// Why the host key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// Reading or writing the file failed.
    #[error("SSH host key {path}")]
    Io {
        /// The host key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is unsafe or not an unencrypted Ed25519 key; the message says how to fix it.
    #[error("SSH host key {path}: {message}")]
    Unusable {
        /// The host key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// ssh-key could not parse, generate or encode the key.
    #[error("SSH host key {path}")]
    Key {
        /// The host key file.
        path: PathBuf,
        /// What ssh-key said.
        #[source]
        source: ssh_key::Error,
    },
}

/// `SHA256:...` of the host key, as `ssh` shows it when it first connects.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// The key at `path`, generated (mode 0600) if there is no file yet; whether it was.
pub fn load_or_create(path: &Path) -> Result<(PrivateKey, bool), HostKeyError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => load(path).map(|key| (key, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path).map(|key| (key, true)),
        Err(source) => Err(io(path, source)),
    }
}

/// The existing key at `path`; never creates one (for `check-config`).
pub fn load(path: &Path) -> Result<PrivateKey, HostKeyError> {
    check_file(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let key = PrivateKey::from_openssh(text).map_err(|source| HostKeyError::Key {
        path: path.to_owned(),
        source,
    })?;
    if key.is_encrypted() {
        return Err(unusable(
            path,
            "is encrypted; the server needs an unencrypted key",
        ));
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(unusable(path, "is not an Ed25519 key"));
    }
    Ok(key)
}

/// Refuses symlinks, non-files, and files others can read.
fn check_file(path: &Path) -> Result<(), HostKeyError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(unusable(
            path,
            "is a symlink; point host_key_file at the real file",
        ));
    }
    if !meta.is_file() {
        return Err(unusable(path, "is not a regular file"));
    }
    if meta.mode() & 0o077 != 0 {
        let fix = format!(
            "is accessible by group or others (mode {:o}); run: chmod 600 {}",
            meta.mode() & 0o777,
            path.display()
        );
        return Err(unusable(path, &fix));
    }
    Ok(())
}

/// Generates a key and writes it with `O_EXCL` and mode 0600.
fn create(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let key_err = |source| HostKeyError::Key {
        path: path.to_owned(),
        source,
    };
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(key_err)?;
    key.set_comment("countersign-ssh-host-key");
    let pem = key.to_openssh(LineEnding::LF).map_err(key_err)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(path, e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    file.write_all(pem.as_bytes()).map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))?;
    Ok(key)
}

fn io(path: &Path, source: std::io::Error) -> HostKeyError {
    HostKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn unusable(path: &Path, message: &str) -> HostKeyError {
    HostKeyError::Unusable {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_loaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("ssh_host_ed25519_key");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(fingerprint(&first), fingerprint(&again));
        assert!(fingerprint(&first).starts_with("SHA256:"));
    }

    #[test]
    fn a_readable_or_linked_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("chmod 600"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            load_or_create(&link)
                .unwrap_err()
                .to_string()
                .contains("symlink")
        );
    }

    #[test]
    fn load_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        assert!(matches!(load(&path), Err(HostKeyError::Io { .. })));
        assert!(!path.exists());
    }
}
