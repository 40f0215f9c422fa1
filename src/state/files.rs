//! The folder and files countersign trusts, checked like the CA key: owned by the user
//! countersign runs as (its effective uid), no symlinks, the folder not writable by group
//! or others, the database and its `-wal`/`-shm` not accessible by group or others.
//! Another local user who could replace `countersign.db` could otherwise rewrite history
//! or un-revoke certificates.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file or folder that fails a check; the message says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct UnsafeFile {
    /// The file or folder.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The effective uid of this process: the service user state must belong to.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// This machine's host name (`gethostname`), for the record of who did something
/// where; empty if it cannot be had.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for writes of its length, which is what is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn refuse(path: &Path, message: String) -> UnsafeFile {
    UnsafeFile {
        path: path.to_owned(),
        message,
    }
}

/// Checks the data folder (if it exists): a real folder, ours, not writable by others.
pub fn check_data_dir(dir: &Path) -> Result<(), UnsafeFile> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(dir, format!("cannot be read: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            dir,
            "is a symlink; point data_dir at the real folder".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse(dir, "is not a folder".into()));
    }
    check_owner(dir, &meta)?;
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(
            dir,
            format!(
                "is writable by group or others (mode {:o}), who could replace the database; \
                 run: chmod 700 {}",
                meta.mode() & 0o777,
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Checks the database and its `-wal`/`-shm` files, those that exist: regular files,
/// ours, private.
pub fn check_database(db: &Path) -> Result<(), UnsafeFile> {
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(refuse(&path, format!("cannot be read: {e}"))),
        };
        if meta.file_type().is_symlink() {
            return Err(refuse(
                &path,
                "is a symlink; the database must be a regular file in data_dir".into(),
            ));
        }
        if !meta.is_file() {
            return Err(refuse(&path, "is not a regular file".into()));
        }
        check_owner(&path, &meta)?;
        if meta.mode() & 0o077 != 0 {
            return Err(refuse(
                &path,
                format!(
                    "is accessible by group or others (mode {:o}); run: chmod 600 {}",
                    meta.mode() & 0o777,
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the high-water mark (if it exists): a regular file, ours, not writable by
/// group or others (who could then lower it and let an older database in).
pub fn check_mark(path: &Path) -> Result<(), UnsafeFile> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(path, format!("cannot be read: {e}"))),
    };
    if meta.file_type().is_symlink() || !meta.is_file() {
        return Err(refuse(path, "is not a regular file".into()));
    }
    check_owner(path, &meta)?;
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(
            path,
            format!(
                "is writable by group or others (mode {:o}); run: chmod 600 {}",
                meta.mode() & 0o777,
                path.display()
            ),
        ));
    }
    Ok(())
}

fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), UnsafeFile> {
    let me = euid();
    if meta.uid() != me {
        return Err(refuse(
            path,
            format!(
                "is owned by uid {}, not by uid {me} that countersign runs as; \
                 if it is yours, run: chown {me} {}",
                meta.uid(),
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_group_writable_data_dir_is_refused_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o770);
        let e = check_data_dir(dir.path()).unwrap_err();
        assert!(e.message.contains("chmod 700"), "{e}");
        chmod(dir.path(), 0o750);
        check_data_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_symlinked_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(
            check_data_dir(&link)
                .unwrap_err()
                .message
                .contains("symlink")
        );
    }

    #[test]
    fn database_files_must_be_private_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("countersign.db");
        check_database(&db).unwrap(); // nothing there yet
        std::fs::write(&db, b"").unwrap();
        chmod(&db, 0o600);
        check_database(&db).unwrap();
        let wal = dir.path().join("countersign.db-wal");
        std::fs::write(&wal, b"").unwrap();
        chmod(&wal, 0o640);
        let e = check_database(&db).unwrap_err();
        assert_eq!(e.path, wal);
        assert!(e.message.contains("chmod 600"), "{e}");
        std::fs::remove_file(&wal).unwrap();
        std::os::unix::fs::symlink(&db, &wal).unwrap();
        assert!(check_database(&db).unwrap_err().message.contains("symlink"));
    }
}
