//! The CA's state as one whole: the database, the CA key it belongs to, and the
//! high-water mark beside the key. Losing or rolling back one half must never un-revoke
//! a certificate, so every command that opens state goes through here.
//!
//! The rules:
//! - The database records the CA keys it belongs to (`store/meta.rs`, with the periods
//!   they were in use, so that a later rotation adds a key instead of breaking this). A key
//!   and a database that do not belong together are refused, whatever the command.
//! - Nothing creates one half of the state next to the other. `serve` and `init` create
//!   both in an empty data folder; `init` also creates the database for a key that never
//!   had one (no mark beside it). A database without its key, or a key whose mark says a
//!   database existed, is refused with what to restore.
//! - The mark (`state/mark.rs`) records the newest state this CA published: the KRL
//!   version and the audit head. It advances with every revocation and new KRL version
//!   before the answer that publishes it leaves ([`Guard`]), and at every start and stop.
//!   A database behind it (an older copy, another database, another history) is refused
//!   at start; `serve --accept-rollback` takes it anyway, on the record
//!   (`state.rollback_accepted`), and raises the KRL version's floor above the mark so
//!   that servers replace their newer KRL.
//! - Each replica keeps its own mark. With SQLite (one server), a database this CA
//!   already bound is refused without its mark (a restore onto a new host, a deleted
//!   mark) until `--accept-rollback`; a database from before the binding is taken as it
//!   is. A replica of a shared database (PostgreSQL, a later backend) without a mark will
//!   take the database as it finds it.
//! - The folder and files are checked like the CA key (`state/files.rs`).

pub mod files;
pub mod mark;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use ssh_key::{Certificate, HashAlg, PublicKey};

use crate::audit::{self, CaRecorded, MarkSeen, NewEvent, StateMarkStarted, StateRollbackAccepted};
use crate::ca::{CaError, CertificateAuthority};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::meta::{self, CaKey, Head};
use crate::store::{Store, StoreError, certificates as certs};
use mark::{Mark, MarkError};

/// The flag that takes a database older than the mark.
pub const ACCEPT_ROLLBACK_FLAG: &str = "--accept-rollback";

/// Why the state cannot be opened; every message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The halves of the state do not belong together, or one is missing.
    #[error("{0}")]
    Mismatch(String),
    /// The database is older than what this CA published (or another history).
    #[error("{0}")]
    Rollback(String),
    /// A folder or file countersign trusts is not safe.
    #[error(transparent)]
    Unsafe(#[from] files::UnsafeFile),
    #[error(transparent)]
    Mark(#[from] MarkError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// What the command opening the state may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `serve`: creates both halves in an empty data folder (first use); otherwise both
    /// must exist and match the mark, unless `accept_rollback` gives the operator's reason
    /// for taking an older database. Keeps the mark.
    Serve { accept_rollback: Option<String> },
    /// `init`: creates what is missing when that cannot split the state. A key that
    /// countersign made but whose database and mark are both gone gets a new database
    /// only with `new_database` (it surely had one). Keeps the mark.
    Init { new_database: bool },
    /// Every other command: the state must exist and belong together; creates nothing.
    Existing,
}

/// Where the parts of the state live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub database: PathBuf,
    /// The CA key file, or with `[ca] agent` the public key line the agent must hold.
    pub key: Option<PathBuf>,
    pub mark: PathBuf,
}

impl Paths {
    pub fn of(config: &Config) -> Paths {
        let key = if config.ca.agent {
            config.ca.agent_public_key.clone()
        } else {
            Some(config.ca.key_file.clone())
        };
        let key_dir = key
            .as_deref()
            .and_then(Path::parent)
            .map_or_else(|| config.server.data_dir.clone(), Path::to_owned);
        Paths {
            data_dir: config.server.data_dir.clone(),
            database: config.database_path(),
            key,
            mark: key_dir.join(mark::FILE_NAME),
        }
    }
}

/// What exists, and so what may be created.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Create the CA key (an empty data folder, first use).
    pub create_key: bool,
    /// Create the database.
    pub create_database: bool,
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Checks the folder and files, and decides what `access` may create. Run before the CA
/// key is opened, so that no key is made next to a database that has one.
pub fn plan(config: &Config, access: &Access) -> Result<Plan, StateError> {
    let paths = Paths::of(config);
    files::check_data_dir(&paths.data_dir)?;
    files::check_database(&paths.database)?;
    files::check_mark(&paths.mark)?;
    let key = paths.key.as_deref().is_some_and(exists);
    if key {
        // An unsafe or unreadable key is the first thing to fix, whatever else is wrong.
        CertificateAuthority::public_key(&config.ca)?;
    }
    let db = exists(&paths.database);
    let marked = exists(&paths.mark);
    let plan = decide(config, &paths, (key, db, marked), access)?;
    if plan.create_database {
        // 0700 from the start (the key file's own folder creation would follow the umask).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.data_dir)
            .map_err(|source| StoreError::Io {
                path: paths.data_dir.clone(),
                source,
            })?;
    }
    Ok(plan)
}

/// What may be created, from what exists: (CA key, database, mark).
fn decide(
    config: &Config,
    paths: &Paths,
    (key, db, marked): (bool, bool, bool),
    access: &Access,
) -> Result<Plan, StateError> {
    let db_path = paths.database.display();
    let key_path = paths
        .key
        .as_deref()
        .map_or_else(|| "the CA key".to_owned(), |p| p.display().to_string());
    let mark_path = paths.mark.display();
    match (key, db, marked, access) {
        (true, true, _, _) => Ok(Plan {
            create_key: false,
            create_database: false,
        }),
        (false, false, false, Access::Serve { .. } | Access::Init { .. }) => Ok(Plan {
            // With an agent the key is not ours to create: its public line must exist.
            create_key: !config.ca.agent,
            create_database: true,
        }),
        (true, false, false, Access::Init { new_database })
            if *new_database || !CertificateAuthority::made_by_countersign(&config.ca) =>
        {
            Ok(Plan {
                create_key: false,
                create_database: true,
            })
        }
        (true, false, false, Access::Init { .. }) => Err(StateError::Mismatch(format!(
            "the CA key {key_path} was made by countersign, so it had a database, but {db_path} and {mark_path} are both gone: restore the database from a backup. `countersign init --new-database` starts an empty one for this key instead: every revocation made with it is forgotten (servers whose KRL is newer refuse the new one, see krl --out), so do that only if this key never issued a certificate"
        ))),
        (true, false, false, _) => Err(StateError::Mismatch(format!(
            "the CA key {key_path} exists but the database {db_path} does not; if this key never had a database, create one with: countersign init"
        ))),
        (true, false, true, _) => Err(StateError::Mismatch(format!(
            "the database {db_path} is missing, but {mark_path} shows this CA key had one: restore the database from a backup (countersign backup) and start again. Starting on an empty database would un-revoke every certificate revoked so far, so countersign will not; if no copy exists, start a new CA (a new data_dir, servers trust the new key)"
        ))),
        (false, true, _, _) => {
            let wanted = Store::peek_current_ca(&paths.database)
                .ok()
                .flatten()
                .map_or_else(String::new, |k| {
                    format!(" ({}: {})", k.fingerprint, k.public_key)
                });
            Err(StateError::Mismatch(format!(
                "the database {db_path} exists but the CA key {key_path} does not: restore the CA key the database belongs to{wanted} (countersign never makes a new key next to an existing database: servers would not enforce its revocations)"
            )))
        }
        (false, false, true, _) => Err(StateError::Mismatch(format!(
            "the CA key {key_path} and the database {db_path} are missing, but {mark_path} shows they existed: restore both from a backup"
        ))),
        (false, false, false, Access::Existing) => Err(StateError::Mismatch(format!(
            "no CA state in {}: run countersign init (or serve) first",
            paths.data_dir.display()
        ))),
    }
}

/// The record of a CA key as the database keeps it.
fn ca_record(ca: &PublicKey, now: DateTime<Utc>) -> CaKey {
    CaKey {
        fingerprint: ca.fingerprint(HashAlg::Sha256).to_string(),
        public_key: PublicKey::new(ca.key_data().clone(), crate::ca::KEY_COMMENT)
            .to_openssh()
            .unwrap_or_default(),
        since: now.timestamp(),
        until: None,
    }
}

/// Opens the database for `access` (creating it if `plan` says so), checks that it
/// belongs to `ca` and is not behind the mark, and returns it with the guard that keeps
/// the mark from now on. `now` is the time by the opener's clock: what it writes (the
/// CA key's record, an accepted rollback, the new mark) is dated then.
pub fn open_store(
    config: &Config,
    ca: &PublicKey,
    access: &Access,
    plan: Plan,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<(Store, Arc<Guard>), StateError> {
    let paths = Paths::of(config);
    let store = if plan.create_database {
        Store::open(&paths.database)?
    } else {
        // An empty file (a failed copy, a `touch`) is not an old database to upgrade: it
        // would serve an empty KRL for this CA.
        if Store::peek_schema_version(&paths.database)? == 0 {
            return Err(StateError::Mismatch(format!(
                "the database {} is empty: restore it from a backup (countersign backup); an empty database would un-revoke every certificate revoked so far",
                paths.database.display()
            )));
        }
        Store::open_existing(&paths.database)?
    };
    let fingerprint = ca.fingerprint(HashAlg::Sha256).to_string();
    // A database an earlier start bound was opened with a mark beside the key.
    let bound_before = store.read(meta::current_ca)?.is_some();
    check_ca(&store, ca)?;
    let old = mark::read(&paths.mark)?;
    // How long after expiry a certificate still counts (a lagging server's clock).
    let skew = i64::try_from(config.ca.backdate.as_secs()).unwrap_or(0);
    let (database, krl_version) =
        store.read(|tx| Ok::<_, StoreError>((meta::database_id(tx)?, certs::krl_version(tx)?)))?;
    let is_behind = match &old {
        Some(old) => behind(&store, old, &database, krl_version)?,
        // Restored onto a new host without the mark, or the mark deleted: what was
        // published since the copy is unknown, so the copy is not taken silently.
        None if bound_before => Some(format!(
            "there is no state mark ({}) beside the CA key, but this database was already used by this CA, so the newest state it published is unknown (a restore onto a new host without the mark, or a deleted mark)",
            mark::FILE_NAME
        )),
        None => None,
    };
    if is_behind.is_none()
        && matches!(
            access,
            Access::Serve {
                accept_rollback: Some(_)
            }
        )
    {
        // Left in a unit file, the flag would otherwise accept the next real rollback
        // without anyone looking.
        return Err(StateError::Mismatch(format!(
            "{ACCEPT_ROLLBACK_FLAG}: the database is not behind the state mark, there is nothing to accept; remove the flag"
        )));
    }
    if let Some(why) = is_behind {
        match access {
            Access::Serve {
                accept_rollback: Some(reason),
            } => {
                let accepted = Accepted {
                    mark: old.as_ref(),
                    why: &why,
                    reason,
                    operator,
                };
                accept_rollback(&store, &accepted, now, skew)?
            }
            _ => {
                return Err(StateError::Rollback(format!(
                    "refusing the database {}: {why}. It is older than the state this CA has published (rolled back or replaced; mark {}), so certificates revoked since would work again. Restore the newest copy (with its mark); if there is none, start with `countersign serve {ACCEPT_ROLLBACK_FLAG} --reason TEXT`, which records that you accepted it and keeps every revocation the mark lists in the KRL",
                    paths.database.display(),
                    paths.mark.display()
                )));
            }
        }
    }
    if *access == Access::Existing {
        return Ok((store, Arc::new(Guard::detached())));
    }
    // Bound only once the database is accepted: a refused copy gets no event written.
    bind_ca(&store, ca, operator, now)?;
    if old.is_none() && !plan.create_database && !bound_before {
        tracing::warn!(
            mark = %paths.mark.display(),
            "no state mark beside the CA key: taking the database as it is and starting one (first start of this version, a new replica, or a mark that was deleted)"
        );
        // On the record: a mark deleted to get an older database past the guard shows.
        let mark_path = paths.mark.display().to_string();
        store.write(|tx| {
            audit::append(
                tx,
                now,
                &NewEvent {
                    actor: operator,
                    request_id: None,
                    serial: None,
                    event: StateMarkStarted {
                        mark: mark_path.clone(),
                        database: database.clone(),
                        krl_version,
                        uid: files::euid(),
                    }
                    .into(),
                },
            )?;
            Ok::<_, StateError>(())
        })?;
    }
    let (krl_version, head, revoked) = store.read(|tx| {
        Ok::<_, StoreError>((
            certs::krl_version(tx)?,
            meta::audit_head(tx)?,
            // Listed until the backdate after expiry, as in the KRL (`Service::krl_at`).
            certs::revoked_unexpired(tx, now.timestamp() - skew)?,
        ))
    })?;
    let start = Mark {
        ca: fingerprint,
        database,
        krl_version: krl_version.max(old.as_ref().map_or(0, |m| m.krl_version)),
        audit_seq: head.seq,
        audit_hash: head.hash,
        updated: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        revoked: marked(&revoked),
    };
    mark::write(&paths.mark, &start)?;
    Ok((store, Arc::new(Guard::new(paths.mark, start))))
}

/// Opens existing state for a command that only reads or adds to it (tokens, audit,
/// backup): the database must exist, belong to the configured CA key and not be behind
/// the mark. Returns the store and the CA public key. A command run by hand, outside the
/// service: it goes by the system clock.
pub fn open_existing(config: &Config) -> Result<(Store, PublicKey), StateError> {
    let plan = plan(config, &Access::Existing)?;
    let ca = CertificateAuthority::public_key(&config.ca)?;
    let now = SystemClock.now();
    let (store, _) = open_store(config, &ca, &Access::Existing, plan, "", now)?;
    Ok((store, ca))
}

/// Checks that the database belongs to `ca`. A database from before the binding existed
/// belongs to the CA that signed its newest certificate (or to `ca`, if it issued none),
/// and is refused when that is another key. Writes nothing.
fn check_ca(store: &Store, ca: &PublicKey) -> Result<(), StateError> {
    let fingerprint = ca.fingerprint(HashAlg::Sha256).to_string();
    let (current, newest_cert) = store
        .read(|tx| Ok::<_, StoreError>((meta::current_ca(tx)?, meta::newest_certificate(tx)?)))?;
    if let Some(current) = current {
        if current.fingerprint == fingerprint {
            return Ok(());
        }
        return Err(StateError::Mismatch(format!(
            "the database belongs to CA key {} but the configured key is {fingerprint}: use the key the database was made with (its public key: {})",
            current.fingerprint, current.public_key
        )));
    }
    if let Some(line) = newest_cert {
        let signer = Certificate::from_openssh(&line)
            .map(|c| c.signature_key().fingerprint(HashAlg::Sha256).to_string())
            .map_err(|e| {
                StoreError::Corrupt(format!("a stored certificate does not parse: {e}"))
            })?;
        if signer != fingerprint {
            return Err(StateError::Mismatch(format!(
                "the database's certificates were signed by CA key {signer} but the configured key is {fingerprint}: use the key the database was made with"
            )));
        }
    }
    Ok(())
}

/// Records `ca` as the database's key (with a `ca.recorded` event) unless one is
/// recorded already, dated `now`; call after [`check_ca`] accepted it.
fn bind_ca(
    store: &Store,
    ca: &PublicKey,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    if store.read(meta::current_ca)?.is_some() {
        return Ok(());
    }
    let key = ca_record(ca, now);
    store.write(|tx| {
        meta::record_ca(tx, &key)?;
        let database = meta::database_id(tx)?;
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: operator,
                request_id: None,
                serial: None,
                event: CaRecorded {
                    fingerprint: key.fingerprint.clone(),
                    public_key: key.public_key.clone(),
                    database,
                }
                .into(),
            },
        )?;
        Ok::<_, StateError>(())
    })
}

/// Why the database is behind `mark`, if it is.
fn behind(
    store: &Store,
    mark: &Mark,
    database: &str,
    krl_version: u64,
) -> Result<Option<String>, StateError> {
    if mark.database != database {
        return Ok(Some(format!(
            "it is another database (id {database}) than the one this CA key last used (id {})",
            mark.database
        )));
    }
    let (known, at) = store.read(|tx| {
        Ok::<_, StoreError>((
            meta::ca_keys(tx)?
                .into_iter()
                .any(|k| k.fingerprint == mark.ca),
            meta::audit_hash_at(tx, mark.audit_seq)?,
        ))
    })?;
    if !known {
        return Ok(Some(format!(
            "it does not know the CA key {} of the mark",
            mark.ca
        )));
    }
    if krl_version < mark.krl_version {
        return Ok(Some(format!(
            "its KRL version is {krl_version}, but KRL version {} was already published",
            mark.krl_version
        )));
    }
    Ok(match at {
        _ if mark.audit_seq == 0 => None,
        None => Some(format!(
            "its audit log ends before event {}, which this CA had already recorded",
            mark.audit_seq
        )),
        Some(h) if h != mark.audit_hash => Some(format!(
            "its audit event {} is not the one this CA recorded (another history)",
            mark.audit_seq
        )),
        Some(_) => None,
    })
}

/// A rollback an operator accepts: the mark it is behind (if any), why it is behind,
/// the operator's reason, and who they are.
#[derive(Clone, Copy)]
struct Accepted<'a> {
    mark: Option<&'a Mark>,
    why: &'a str,
    reason: &'a str,
    operator: &'a str,
}

/// Takes a database behind the mark, on the record: an audit event saying what was
/// accepted and by whom, and a KRL version floor above everything published, so that
/// servers replace their (newer) KRL with the next one.
fn accept_rollback(
    store: &Store,
    accepted: &Accepted<'_>,
    now: DateTime<Utc>,
    skew: i64,
) -> Result<(), StateError> {
    let Accepted {
        mark,
        why,
        reason,
        operator,
    } = *accepted;
    tracing::warn!(
        reason = why,
        "accepting a database older than the published state ({ACCEPT_ROLLBACK_FLAG})"
    );
    let at = now.timestamp();
    store.write(|tx| {
        let before = certs::krl_version(tx)?;
        // Above every version published: the mark's, or when there is no mark, the
        // current Unix time (count-based versions never come near it).
        let published = mark.map_or_else(
            || u64::try_from(now.timestamp()).unwrap_or(0),
            |m| m.krl_version,
        );
        let floor = before
            .max(published)
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("the KRL version is at its maximum".into()))?;
        meta::raise_krl_floor(tx, floor)?;
        // Every revocation published and not ended yet is listed again, whether or not
        // the older copy knew of it (or of the certificate).
        let mut carried = Vec::new();
        for r in mark.map_or(&[][..], |m| &m.revoked) {
            let serial: u64 = r.serial.parse().map_err(|_| {
                StoreError::Corrupt(format!("the state mark lists serial {:?}", r.serial))
            })?;
            let known = certs::by_serial(tx, serial)?.is_some_and(|c| c.revoked);
            if r.valid_before > at - skew
                && !known
                && certs::carry_revocation(tx, serial, r.valid_before, at)?
            {
                carried.push(r.serial.clone());
            }
        }
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: operator,
                request_id: None,
                serial: None,
                event: StateRollbackAccepted {
                    reason: reason.to_owned(),
                    found: why.to_owned(),
                    uid: files::euid(),
                    mark: mark.map(|m| MarkSeen {
                        ca: m.ca.clone(),
                        database: m.database.clone(),
                        krl_version: m.krl_version,
                        audit_seq: m.audit_seq,
                        audit_hash: m.audit_hash.clone(),
                        updated: m.updated.clone(),
                    }),
                    krl_version_before: before,
                    krl_version: floor,
                    carried_revocations: carried.clone(),
                }
                .into(),
            },
        )?;
        Ok::<_, StateError>(())
    })
}

/// The revocations a KRL lists, as the mark keeps them.
fn marked(revoked: &certs::Revoked) -> Vec<mark::Revocation> {
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
    fn new(path: PathBuf, mark: Mark) -> Guard {
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
            ..current.clone()
        };
        mark::write(path, &next)?;
        self.marked_krl.store(next.krl_version, Ordering::Release);
        *held = Some(next);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use ssh_key::certificate::{Builder, CertType};
    use ssh_key::{Algorithm, PrivateKey};

    use super::*;

    fn key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    /// A schema-7 database (before the binding) holding one certificate signed by `ca`.
    fn old_database(path: &Path, ca: &PrivateKey) {
        let subject = key();
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rng(),
            subject.public_key().key_data().clone(),
            1,
            2,
        )
        .unwrap();
        b.serial(5).unwrap();
        b.cert_type(CertType::User).unwrap();
        b.valid_principal("x").unwrap();
        let cert = b.sign(ca).unwrap().to_openssh().unwrap();
        // An OpenSSH certificate line holds no quote.
        let seed = format!(
            "INSERT INTO requests VALUES ('r-1','ops','alice','x',60,'k','f','[]','d','issued',\
             1,2,NULL,NULL,NULL,NULL);\
             INSERT INTO certificates (serial, request_id, requester, role, key_id, \
             valid_after, valid_before, certificate) \
             VALUES (5, 'r-1', 'alice', 'ops', 'k', 1, 2, '{cert}');"
        );
        crate::store::create_at_schema(path, 7, &seed).unwrap();
    }

    /// How many audit events of `action` the log holds.
    fn count_events(store: &Store, action: &str) -> usize {
        let all = crate::audit::Filter {
            limit: u32::MAX,
            ..Default::default()
        };
        let events = store.read(|tx| crate::audit::query(tx, &all)).unwrap();
        events.iter().filter(|e| e.action == action).count()
    }

    #[test]
    fn a_database_from_before_the_binding_belongs_to_the_ca_that_signed_its_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("countersign.db");
        let (ours, theirs) = (key(), key());
        old_database(&path, &ours);
        let store = Store::open_existing(&path).unwrap();
        let e = check_ca(&store, theirs.public_key()).unwrap_err();
        assert!(e.to_string().contains("were signed by CA key"), "{e}");
        assert!(
            store.read(meta::current_ca).unwrap().is_none(),
            "bound to the wrong key"
        );

        check_ca(&store, ours.public_key()).unwrap();
        bind_ca(&store, ours.public_key(), "op", Utc::now()).unwrap();
        let bound = store.read(meta::current_ca).unwrap().unwrap();
        assert_eq!(
            bound.fingerprint,
            ours.public_key().fingerprint(HashAlg::Sha256).to_string()
        );
        assert_eq!(count_events(&store, "ca.recorded"), 1);
        // Bound now: the other key is refused as "belongs to", and ours is accepted.
        let e = check_ca(&store, theirs.public_key()).unwrap_err();
        assert!(
            e.to_string().contains("the database belongs to CA key"),
            "{e}"
        );
        check_ca(&store, ours.public_key()).unwrap();
    }

    #[test]
    fn an_upgraded_database_is_taken_once_and_then_needs_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let ca = key();
        ca.write_openssh_file(data.join("ca_key"), ssh_key::LineEnding::LF)
            .unwrap();
        old_database(&data.join("countersign.db"), &ca);
        std::fs::set_permissions(
            data.join("countersign.db"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let config = Config::from_toml_str(
            "[server]\ndata_dir = \"data\"\n",
            &dir.path().join("c.toml"),
            dir.path(),
        )
        .unwrap();
        let count = count_events;
        // Read-only commands take the old database as it is, before any start.
        let (store, _) = open_existing(&config).unwrap();
        assert_eq!(count(&store, "ca.recorded"), 0, "a read-only command wrote");
        drop(store);
        // The first start binds it and starts a mark, on the record.
        let serve = Access::Serve {
            accept_rollback: None,
        };
        let plan = plan(&config, &serve).unwrap();
        let (store, _) =
            open_store(&config, ca.public_key(), &serve, plan, "op", Utc::now()).unwrap();
        assert_eq!(count(&store, "state.mark_started"), 1);
        assert!(Paths::of(&config).mark.exists());
        drop(store);
        // From now on the database needs its mark.
        std::fs::remove_file(Paths::of(&config).mark).unwrap();
        let Err(e) = open_existing(&config) else {
            panic!("the database was taken without its mark");
        };
        assert!(matches!(e, StateError::Rollback(_)), "{e}");
    }

    #[test]
    fn the_mark_only_moves_forward_and_waits_for_answers_only_on_a_new_krl_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(mark::FILE_NAME);
        let start = Mark {
            ca: "SHA256:c".into(),
            database: "d".into(),
            krl_version: 2,
            audit_seq: 10,
            audit_hash: "h10".into(),
            updated: String::new(),
            revoked: Vec::new(),
        };
        let none = certs::Revoked {
            serials: Vec::new(),
            valid_before: Vec::new(),
            first_expiry: None,
        };
        mark::write(&path, &start).unwrap();
        let guard = Guard::new(path.clone(), start);
        let head = |seq: i64| Head {
            seq,
            hash: format!("h{seq}"),
        };
        let now = Utc::now();
        assert!(!guard.behind());
        // A newer head alone does not cost an fsync on the answer path ...
        assert!(!guard.advance(2, &head(11), &none, false, now).unwrap());
        // ... but is taken periodically.
        assert!(guard.advance(2, &head(11), &none, true, now).unwrap());
        guard.note_revocation(3);
        assert!(guard.behind());
        assert!(!guard.holds_krl(3));
        assert!(guard.advance(3, &head(12), &none, false, now).unwrap());
        assert!(!guard.behind());
        assert!(guard.holds_krl(3));
        // Never backwards.
        assert!(!guard.advance(1, &head(5), &none, true, now).unwrap());
        let on_disk = mark::read(&path).unwrap().unwrap();
        assert_eq!((on_disk.krl_version, on_disk.audit_seq), (3, 12));
        assert_eq!(on_disk.audit_hash, "h12");
    }
}
