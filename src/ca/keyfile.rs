//! The CA key file on disk: safety checks, loading (decrypting with a passphrase read
//! from a file), and creating it once.
//!
//! # Security
//! - Refused: a symlink, anything but a regular file, a file not owned by the user the
//!   process runs as (its effective uid), a file group or others may access. Each
//!   message says how to fix it.
//! - The file's text, the passphrase and the decrypted key live in buffers that are
//!   zeroized when dropped (`zeroize::Zeroizing`; ssh-key zeroizes private keys on drop).
//! - The passphrase comes from a file only, never from argv or the environment.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use ssh_key::{Algorithm, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use super::CaError;

/// The effective uid of this process: the service user the key must belong to.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

fn unsafe_file(path: &Path, message: String) -> CaError {
    CaError::Unsafe {
        path: path.to_owned(),
        message,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Refuses a key file that is a symlink, not a regular file, not ours, or not private.
pub(super) fn check_key_file(path: &Path) -> Result<(), CaError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_file(
            path,
            "is a symlink; point key_file at the real file".into(),
        ));
    }
    if !meta.is_file() {
        return Err(unsafe_file(path, "is not a regular file".into()));
    }
    check_owner_and_mode(path, &meta, false)
}

fn check_owner_and_mode(
    path: &Path,
    meta: &std::fs::Metadata,
    root_may_own: bool,
) -> Result<(), CaError> {
    let me = euid();
    if meta.uid() != me && !(root_may_own && meta.uid() == 0) {
        return Err(unsafe_file(
            path,
            format!(
                "is owned by uid {}, not by uid {me} that countersign runs as; run: chown {me} {}",
                meta.uid(),
                path.display()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_file(
            path,
            format!(
                "is accessible by group or others (mode {:o}); run: chmod 600 {}",
                meta.mode() & 0o777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Reads a passphrase file: its first line, without the line end. The file may be a
/// symlink (secret stores mount them so) but must be owned by us or root and private.
pub(super) fn read_passphrase(path: &Path) -> Result<Zeroizing<Vec<u8>>, CaError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if !meta.is_file() {
        return Err(unsafe_file(path, "is not a regular file".into()));
    }
    check_owner_and_mode(path, &meta, true)?;
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(io(path))?);
    let end = bytes
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')
        .unwrap_or(bytes.len());
    bytes.truncate(end);
    if bytes.is_empty() {
        return Err(unsafe_file(
            path,
            "is empty; write the passphrase in it".into(),
        ));
    }
    Ok(bytes)
}

/// Reads an existing key file after [`check_key_file`], still encrypted if it is (an
/// encrypted OpenSSH key keeps its public key, not its comment, in the clear).
pub(super) fn read(path: &Path) -> Result<PrivateKey, CaError> {
    check_key_file(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    PrivateKey::from_openssh(text.as_bytes()).map_err(|source| CaError::Key {
        path: path.to_owned(),
        message: "not an OpenSSH private key".into(),
        source,
    })
}

/// Loads an existing key file after [`check_key_file`], decrypting it with `passphrase`.
pub(super) fn load(path: &Path, passphrase: Option<&[u8]>) -> Result<PrivateKey, CaError> {
    let key = read(path)?;
    let key = match (key.is_encrypted(), passphrase) {
        (false, None) => key,
        (true, Some(p)) => key.decrypt(p).map_err(|source| CaError::Key {
            path: path.to_owned(),
            message: "cannot decrypt: wrong passphrase in passphrase_file?".into(),
            source,
        })?,
        (true, None) => {
            return Err(unsafe_file(
                path,
                "is encrypted; set [ca] passphrase_file to the file holding its passphrase".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(unsafe_file(
                path,
                format!(
                    "is not encrypted but [ca] passphrase_file is set; encrypt it with: \
                     ssh-keygen -p -f {} (same passphrase), or remove passphrase_file",
                    path.display()
                ),
            ));
        }
    };
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(unsafe_file(
            path,
            format!(
                "is {}, countersign signs with Ed25519 only",
                key.algorithm().as_str()
            ),
        ));
    }
    Ok(key)
}

/// Generates a new Ed25519 key and writes it (encrypted when `passphrase` is given)
/// with `O_EXCL` and mode 0600; an existing file is never overwritten.
pub(super) fn create(path: &Path, passphrase: Option<&[u8]>) -> Result<PrivateKey, CaError> {
    create_named(path, passphrase, super::KEY_COMMENT)
}

/// [`create`] with the key's comment chosen (the host CA's differs from the user CA's).
pub(super) fn create_named(
    path: &Path,
    passphrase: Option<&[u8]>,
    comment: &str,
) -> Result<PrivateKey, CaError> {
    let mut key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(CaError::Sign)?;
    key.set_comment(comment);
    let pem = match passphrase {
        Some(p) => key
            .encrypt(&mut rand::rng(), p)
            .and_then(|k| k.to_openssh(LineEnding::LF)),
        None => key.to_openssh(LineEnding::LF),
    }
    .map_err(CaError::Sign)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(path))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(pem.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    Ok(key)
}
