//! Files the CLI writes for other programs to read (a certificate for `ssh`, a KRL for
//! `sshd`): replaced whole or not at all, never left empty or half-written.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, anyhow};

/// Writes a temp file in the same folder, syncs it, and renames it over `path`, so that a
/// reader sees the old content or the new, never a missing, empty or partial file (an
/// `ssh` picking up `id_ed25519-cert.pub`, an `sshd` reading its `RevokedKeys`). On any
/// failure the temp file is removed and `path` is left as it was.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    replace(path, bytes, None)
}

/// [`write_atomically`] with the file's mode set to `mode` before it takes `path`'s
/// name (a host certificate is 0644, as the public key beside it: it is no secret).
pub(super) fn write_atomically_with_mode(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    replace(path, bytes, Some(mode))
}

fn replace(path: &Path, bytes: &[u8], mode: Option<u32>) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    // A random name created with O_EXCL (never through a symlink someone planted: this
    // runs as root for sshd's KRL), mode 0600, removed if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| match dir.is_dir() {
            true => format!("creating a temporary file in {}", dir.display()),
            false => format!(
                "the folder {} does not exist: create it first (mkdir -p)",
                dir.display()
            ),
        })?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing a temporary file in {}", dir.display()))?;
    if let Some(mode) = mode {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| {
                format!("setting the mode of a temporary file in {}", dir.display())
            })?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    // The rename is durable only once the folder is: a crash could otherwise bring the
    // old file back after this reported success.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_no_temp_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519-cert.pub");
        std::fs::write(&path, "old certificate\n").unwrap();
        // A second name for the old file: an in-place rewrite would change it too.
        let old = dir.path().join("old-link");
        std::fs::hard_link(&path, &old).unwrap();
        write_atomically(&path, b"new certificate\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new certificate\n");
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "old certificate\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "a temp file was left behind");
    }

    #[test]
    fn a_host_certificate_is_written_readable_by_all_and_others_stay_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let cert = dir.path().join("ssh_host_ed25519_key-cert.pub");
        write_atomically_with_mode(&cert, b"cert\n", 0o644).unwrap();
        assert_eq!(mode(&cert), 0o644);
        let krl = dir.path().join("krl");
        write_atomically(&krl, b"KRL").unwrap();
        assert_eq!(mode(&krl), 0o600);
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // Every name the old writer could have used for this process.
        let planted = dir.path().join(format!(".krl.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomically(&dir.path().join("krl"), b"KRL").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(dir.path().join("krl")).unwrap();
        assert!(meta.is_file(), "the KRL became a symlink");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty folder: the rename fails after the temp file exists.
        let path = dir.path().join("cert");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "x").unwrap();
        assert!(write_atomically(&path, b"new").is_err());
        assert!(path.join("inside").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temp file was left behind");
    }

    #[test]
    fn a_missing_folder_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodir/host.krl");
        let err = format!("{:#}", write_atomically(&path, b"x").unwrap_err());
        assert!(err.contains("does not exist: create it first"), "{err}");
    }
}
