//! Opening the database: checking that it belongs to the CA key and is not behind the
//! mark, binding it to the key, and starting the mark.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use ssh_key::{Certificate, HashAlg, PublicKey};

use super::guard::{Guard, marked};
use super::mark::{self, Mark};
use super::paths::{Paths, Plan, plan};
use super::rollback::{Accepted, accept_rollback, behind};
use super::{ACCEPT_ROLLBACK_FLAG, Access, StateError, files};
use crate::audit::{self, CaRecorded, NewEvent, StateMarkStarted};
use crate::ca::CertificateAuthority;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StorageSettings};
use crate::store::meta::{self, CaKey};
use crate::store::{PgOptions, Store, StoreError, certificates as certs};

/// The record of a CA key as the database keeps it.
fn ca_record(ca: &PublicKey, now: DateTime<Utc>) -> Result<CaKey, StoreError> {
    // Never an empty key on the record: a key that does not encode is refused.
    let public_key = PublicKey::new(ca.key_data().clone(), crate::ca::KEY_COMMENT)
        .to_openssh()
        .map_err(|e| StoreError::Corrupt(format!("the CA public key does not encode: {e}")))?;
    Ok(CaKey {
        fingerprint: ca.fingerprint(HashAlg::Sha256).to_string(),
        public_key,
        since: now.timestamp(),
        until: None,
    })
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
    let postgres = postgres_options(config)?;
    let store = if let Some(options) = &postgres {
        Store::open_postgres(options)?
    } else if plan.create_database {
        Store::open(&paths.database)?
    } else {
        // An empty file (a failed copy, a `touch`) is not an old database to upgrade: it
        // would serve an empty KRL for this CA.
        if Store::peek_schema_version(&paths.database)? == 0 {
            return Err(StateError::Mismatch(format!(
                "the database {} is empty: restore it from a backup (countersign backup); an empty \
                 database would un-revoke every certificate revoked so far",
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
    let joins = matches!(
        access,
        Access::Serve {
            new_replica: true,
            ..
        }
    );
    if joins && !store.is_postgres() {
        return Err(StateError::Mismatch(
            "--new-replica is for replicas sharing a PostgreSQL database ([storage] backend = \
             \"postgres\"); remove it"
                .into(),
        ));
    }
    if joins && old.is_some() {
        // Left in a unit file, the flag would let this replica take a restored database
        // unseen the day its mark is lost.
        return Err(StateError::Mismatch(format!(
            "--new-replica: this replica already has its state mark ({}), so it is not new; \
             remove the flag (use it only for a replica's first start)",
            paths.mark.display()
        )));
    }
    // How long after expiry a certificate still counts (a lagging server's clock).
    let skew = i64::try_from(config.ca.backdate.as_secs()).unwrap_or(0);
    let (database, krl_version) =
        store.read(|tx| Ok::<_, StoreError>((meta::database_id(tx)?, certs::krl_version(tx)?)))?;
    let is_behind = match &old {
        Some(old) => behind(&store, old, &database, krl_version)?,
        // A replica joining a shared PostgreSQL database has no mark of its own yet: it
        // starts one from what the database holds, when the operator says it is new
        // (and is refused later if the database goes back behind it). Commands that
        // only read or add (tokens, audit) need no mark.
        None if store.is_postgres() && (joins || *access == Access::Existing) => None,
        None if store.is_postgres() && bound_before => {
            return Err(StateError::Rollback(format!(
                "this replica has no state mark ({}) but {} was already used by this CA. A new \
                 replica starts once with `countersign serve --new-replica` (recorded in the \
                 audit log). A replica that had a mark must get it back: starting without it \
                 would take a database restored to an earlier point without noticing, and \
                 un-revoke what was revoked since",
                paths.mark.display(),
                paths.database_label
            )));
        }
        // Restored onto a new host without the mark, or the mark deleted: what was
        // published since the copy is unknown, so the copy is not taken silently.
        None if bound_before => Some(format!(
            "there is no state mark ({}) beside the CA key, but this database was already used by \
             this CA, so the newest state it published is unknown (a restore onto a new host \
             without the mark, or a deleted mark)",
            mark::FILE_NAME
        )),
        None => None,
    };
    if is_behind.is_none()
        && matches!(
            access,
            Access::Serve {
                accept_rollback: Some(_),
                ..
            }
        )
    {
        // Left in a unit file, the flag would otherwise accept the next real rollback
        // without anyone looking.
        return Err(StateError::Mismatch(format!(
            "{ACCEPT_ROLLBACK_FLAG}: the database is not behind the state mark, there is nothing \
             to accept; remove the flag"
        )));
    }
    if let Some(why) = is_behind {
        match access {
            Access::Serve {
                accept_rollback: Some(reason),
                ..
            } => {
                let accepted = Accepted {
                    mark: old.as_ref(),
                    why: &why,
                    reason,
                    operator,
                };
                accept_rollback(&store, &accepted, now, skew)?
            }
            // No mark to compare with or carry from (found by an operator's trial: the
            // message below named a mark file that did not exist).
            _ if old.is_none() => {
                return Err(StateError::Rollback(format!(
                    "refusing {}: {why}: certificates revoked since would work again. Put the \
                     newest mark back beside the CA key ({}), from a copy newer than the \
                     database; if there is none, start with `countersign serve \
                     {ACCEPT_ROLLBACK_FLAG} --reason TEXT`, which records that you accepted it \
                     and raises the KRL version above the clock, but has no mark to carry \
                     revocations from: revoke again what was revoked since the copy",
                    paths.database_label,
                    paths.mark.display()
                )));
            }
            _ => {
                return Err(StateError::Rollback(format!(
                    "refusing {}: {why}. It is older than the state this CA has \
                     published (rolled back or replaced; mark {}), so certificates revoked since \
                     would work again. Restore the newest copy (with its mark); if there is none, \
                     start with `countersign serve {ACCEPT_ROLLBACK_FLAG} --reason TEXT`, which \
                     records that you accepted it and keeps every revocation the mark lists in the \
                     KRL",
                    paths.database_label,
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
    // On the record: a mark deleted (SQLite), or a replica that joined without one.
    if old.is_none() && !plan.create_database && (!bound_before || store.is_postgres()) {
        if joins {
            tracing::info!(
                mark = %paths.mark.display(),
                "a new replica joins the shared database and starts its state mark"
            );
        } else {
            tracing::warn!(
                mark = %paths.mark.display(),
                "no state mark beside the CA key: taking the database as it is and starting \
                 one (first start of this version, or a mark that was deleted)"
            );
        }
        // On the record: a mark deleted to get an older database past the guard shows, and
        // which replica joined (its absolute mark path).
        let mark_path = std::path::absolute(&paths.mark)
            .unwrap_or_else(|_| paths.mark.clone())
            .display()
            .to_string();
        store.write(|tx| {
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    operator,
                    StateMarkStarted {
                        mark: mark_path.clone(),
                        database: database.clone(),
                        krl_version,
                        uid: files::euid(),
                        host: files::host_name(),
                    },
                ),
            )?;
            Ok::<_, StateError>(())
        })?;
    }
    let (krl_version, head, revoked, host_revoked) = store.read(|tx| {
        Ok::<_, StoreError>((
            certs::krl_version(tx)?,
            meta::audit_head(tx)?,
            // Listed until the backdate after expiry, as in the KRL (`Service::krl_at`).
            certs::revoked_unexpired(tx, now.timestamp() - skew)?,
            crate::store::hosts::revoked_unexpired(tx, now.timestamp() - skew)?,
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
        host_revoked: marked(&host_revoked),
    };
    mark::write(&paths.mark, &start)?;
    Ok((store, Arc::new(Guard::new(paths.mark, start))))
}

/// After opening failed with `error`: a CA key this start `created` for an empty
/// PostgreSQL database that another replica bound to its own key first (replicas started
/// together on a new database) was never recorded nor used, so it is removed, and the
/// error says so; the next start finds an empty data folder again. Anything else
/// (SQLite, a key the database records, a key found rather than made) is left alone.
pub fn forget_unbound_key(
    config: &Config,
    ours: &PublicKey,
    created: bool,
    error: StateError,
) -> StateError {
    if !created || !matches!(error, StateError::Mismatch(_)) {
        return error;
    }
    let Ok(Some(options)) = postgres_options(config) else {
        return error;
    };
    let Ok(Some(recorded)) = Store::peek_postgres_ca(&options) else {
        return error;
    };
    if recorded.fingerprint == ours.fingerprint(HashAlg::Sha256).to_string() {
        return error;
    }
    let path = &config.ca.key_file;
    match std::fs::remove_file(path) {
        Ok(()) => StateError::Mismatch(format!(
            "{error}; another replica recorded its CA key in this new database first, so the key \
             this start made ({}) was removed: copy that replica's CA key here (mode 0600) and \
             start again with `serve --new-replica`",
            path.display()
        )),
        Err(e) => StateError::Mismatch(format!(
            "{error}; another replica recorded its CA key in this new database first, and the \
             key this start made ({}) could not be removed ({e}): remove it, copy that \
             replica's CA key here (mode 0600) and start again with `serve --new-replica`",
            path.display()
        )),
    }
}

/// The PostgreSQL connection settings of `config`, with the password read from its
/// file; `None` when the state is in SQLite.
pub fn postgres_options(config: &Config) -> Result<Option<PgOptions>, StateError> {
    let StorageSettings::Postgres(pg) = &config.storage else {
        return Ok(None);
    };
    let password = match &pg.password_file {
        None => None,
        Some(file) => {
            let path = file
                .resolve()
                .map_err(|e| StateError::Mismatch(format!("[storage] password_file: {e}")))?;
            let bytes = crate::ca::read_secret_file(&path)
                .map_err(|e| StateError::Mismatch(format!("[storage] password_file {e}")))?;
            Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                StateError::Mismatch(format!(
                    "[storage] password_file {}: not UTF-8 text",
                    path.display()
                ))
            })?)
        }
    };
    Ok(Some(PgOptions {
        url: pg.conninfo.clone(),
        tls: pg.tls.clone(),
        password,
        pool_size: pg.pool_size,
    }))
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
pub(super) fn check_ca(store: &Store, ca: &PublicKey) -> Result<(), StateError> {
    let fingerprint = ca.fingerprint(HashAlg::Sha256).to_string();
    let (current, newest_cert) = store
        .read(|tx| Ok::<_, StoreError>((meta::current_ca(tx)?, meta::newest_certificate(tx)?)))?;
    if let Some(current) = current {
        if current.fingerprint == fingerprint {
            return Ok(());
        }
        return Err(StateError::Mismatch(format!(
            "the database belongs to CA key {} but the configured key is {fingerprint}: use the \
             key the database was made with (its public key: {})",
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
                "the database's certificates were signed by CA key {signer} but the configured key \
                 is {fingerprint}: use the key the database was made with"
            )));
        }
    }
    Ok(())
}

/// Records `ca` as the database's key (with a `ca.recorded` event) unless one is
/// recorded already, dated `now`; call after [`check_ca`] accepted it.
pub(super) fn bind_ca(
    store: &Store,
    ca: &PublicKey,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    if store.read(meta::current_ca)?.is_some() {
        return Ok(());
    }
    let key = ca_record(ca, now)?;
    store.write(|tx| {
        // Again inside the write: another replica may have bound it meanwhile.
        if let Some(current) = meta::current_ca(tx)? {
            if current.fingerprint == key.fingerprint {
                return Ok(());
            }
            return Err(StateError::Mismatch(format!(
                "the database belongs to CA key {} but the configured key is {}: use the key \
                 the database was made with (its public key: {})",
                current.fingerprint, key.fingerprint, current.public_key
            )));
        }
        meta::record_ca(tx, &key)?;
        let database = meta::database_id(tx)?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                operator,
                CaRecorded {
                    fingerprint: key.fingerprint.clone(),
                    public_key: key.public_key.clone(),
                    database,
                },
            ),
        )?;
        Ok::<_, StateError>(())
    })
}
