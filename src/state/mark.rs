//! The high-water mark: the newest state this CA has published, kept in a small file
//! beside the CA key, outside the database, so that a database that is lost, replaced or
//! restored from an older copy is noticed at the next start.
//!
//! The file is replaced whole (temporary file, fsync, rename, fsync of the folder), so a
//! crash leaves either the old mark or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the mark, in the CA key's folder.
pub const FILE_NAME: &str = "countersign.mark";

/// What the mark records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// Fingerprint of the CA key the state belongs to.
    pub ca: String,
    /// The database's id (`meta.database_id`).
    pub database: String,
    /// The highest KRL version published (served, or answered to a revocation).
    pub krl_version: u64,
    /// The newest audit event known to be committed when the mark was written.
    pub audit_seq: i64,
    /// Its hash: a database with another event at that place is another history.
    pub audit_hash: String,
    /// When the mark was written (RFC 3339), for people reading it.
    pub updated: String,
    /// Every revocation the published KRLs list and that has not ended yet: what an
    /// accepted rollback carries over into the older database, so that no revoked
    /// certificate works again.
    #[serde(default)]
    pub revoked: Vec<Revocation>,
    /// The same for host certificates (`[host_ca]`): serials of the host CA. Left out
    /// when there are none, so a mark without host certificates reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_revoked: Vec<Revocation>,
}

/// One revoked certificate: its serial (decimal, as everywhere in countersign) and the
/// `valid_before` (unix seconds) until which the KRL lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The certificate's serial, as written (decimal). Read as a `Serial` only by the
    /// rollback that carries it over, so that one hand-edited entry fails that step
    /// alone, not every start.
    pub serial: String,
    /// The certificate's end (unix seconds): listed until then.
    pub valid_before: i64,
}

/// Why the mark could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// Reading or writing the file failed.
    #[error("state mark {path}")]
    Io {
        /// The mark file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a mark this version can read.
    #[error("state mark {path} is not a countersign mark: {why}")]
    Malformed {
        /// The mark file.
        path: PathBuf,
        /// What does not parse.
        why: String,
    },
}

/// Reads the mark at `path`; `None` if there is none.
pub fn read(path: &Path) -> Result<Option<Mark>, MarkError> {
    let io = |source| MarkError::Io {
        path: path.to_owned(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| MarkError::Malformed {
            path: path.to_owned(),
            why: e.to_string(),
        })
}

/// Replaces the mark at `path` with `mark`, durably, before returning. The temporary
/// file has a random name created with `O_EXCL` (never through a planted symlink).
pub fn write(path: &Path, mark: &Mark) -> Result<(), MarkError> {
    let io = |source| MarkError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut text = serde_json::to_string_pretty(mark).map_err(|e| io(std::io::Error::other(e)))?;
    text.push('\n');
    let mut tmp = tempfile::Builder::new()
        .prefix(".countersign.mark.")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(v: u64) -> Mark {
        Mark {
            ca: "SHA256:x".into(),
            database: "d".into(),
            krl_version: v,
            audit_seq: 3,
            audit_hash: "ab".into(),
            updated: "2026-12-04T00:00:00Z".into(),
            host_revoked: Vec::new(),
            revoked: vec![Revocation {
                serial: "18446744073709551615".into(),
                valid_before: 7,
            }],
        }
    }

    #[test]
    fn a_written_mark_reads_back_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &mark(1)).unwrap();
        write(&path, &mark(2)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(mark(2)));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temp file is left"
        );
    }

    #[test]
    fn a_file_that_is_not_a_mark_is_an_error_not_an_empty_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "{}").unwrap();
        assert!(matches!(read(&path), Err(MarkError::Malformed { .. })));
    }
}
