//! The [`Guard`] that keeps the mark while the server runs.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

use super::mark::{self, Mark, MarkError};
use crate::store::certificates as certs;
use crate::store::meta::Head;

/// The revocations a KRL lists, as the mark keeps them.
pub(super) fn marked(revoked: &certs::Revoked) -> Vec<mark::Revocation> {
    revoked
        .serials
        .iter()
        .zip(&revoked.valid_before)
        .map(|(serial, until)| mark::Revocation {
            serial: serial.to_string(),
            valid_before: *until,
        })
        .collect()
}

/// Keeps the mark while the server runs: revocations note the KRL version they made,
/// and nothing that publishes a KRL version or a revocation answers before the mark
/// holds it.
#[derive(Debug)]
pub struct Guard {
    /// `None` for commands that do not keep a mark.
    path: Option<PathBuf>,
    mark: Mutex<Option<Mark>>,
    /// The KRL version the mark on disk holds.
    marked_krl: AtomicU64,
    /// The highest KRL version a revocation made (committed or not yet).
    revoked: AtomicU64,
}

impl Guard {
    pub(super) fn new(path: PathBuf, mark: Mark) -> Guard {
        Guard {
            marked_krl: AtomicU64::new(mark.krl_version),
            revoked: AtomicU64::new(mark.krl_version),
            path: Some(path),
            mark: Mutex::new(Some(mark)),
        }
    }

    /// A guard that keeps no mark (read-only commands, tests of parts).
    pub fn detached() -> Guard {
        Guard {
            path: None,
            mark: Mutex::new(None),
            marked_krl: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
        }
    }

    /// A revocation made KRL version `version` (inside a transaction not yet committed).
    pub fn note_revocation(&self, version: u64) {
        self.revoked.fetch_max(version, Ordering::AcqRel);
    }

    /// Whether a revocation made a KRL version the mark does not hold yet.
    pub fn behind(&self) -> bool {
        self.path.is_some()
            && self.revoked.load(Ordering::Acquire) > self.marked_krl.load(Ordering::Acquire)
    }

    /// Whether the database's KRL version `version` is older than what this server's
    /// mark holds: the database went back under a running server (restored, replaced).
    pub fn database_behind(&self, version: u64) -> bool {
        self.path.is_some() && version < self.marked_krl.load(Ordering::Acquire)
    }

    /// Whether KRL version `version` may be served without writing the mark first.
    pub fn holds_krl(&self, version: u64) -> bool {
        self.path.is_none() || version <= self.marked_krl.load(Ordering::Acquire)
    }

    /// Writes the mark if `krl_version` (read from committed state, with `head`) is newer
    /// than what it holds — or, with `follow_head`, if `head` is; returns whether it
    /// wrote. Answers wait only for the KRL version; the head follows periodically, so
    /// that ordinary writes cost no extra fsync.
    pub fn advance(
        &self,
        krl_version: u64,
        head: &Head,
        revoked: &certs::Revoked,
        host_revoked: &certs::Revoked,
        follow_head: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, MarkError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let mut held = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        let Some(current) = held.as_ref() else {
            return Ok(false);
        };
        let newer_head = follow_head && head.seq > current.audit_seq;
        if krl_version <= current.krl_version && !newer_head {
            return Ok(false);
        }
        let next = Mark {
            krl_version: krl_version.max(current.krl_version),
            audit_seq: head.seq.max(current.audit_seq),
            audit_hash: if head.seq >= current.audit_seq {
                head.hash.clone()
            } else {
                current.audit_hash.clone()
            },
            updated: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            revoked: marked(revoked),
            host_revoked: marked(host_revoked),
            ..current.clone()
        };
        mark::write(path, &next)?;
        self.marked_krl.store(next.krl_version, Ordering::Release);
        *held = Some(next);
        Ok(true)
    }
}
