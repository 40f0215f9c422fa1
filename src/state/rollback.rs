//! A database behind the mark: why it is behind ([`behind`]), and taking it anyway on
//! the record (`serve --accept-rollback`).

use chrono::{DateTime, Utc};

use super::mark::Mark;
use super::{ACCEPT_ROLLBACK_FLAG, StateError, files};
use crate::audit::{
    self, CertificateRevoked, HostRevoked, MarkSeen, NewEvent, StateRollbackAccepted,
};
use crate::names::Serial;
use crate::store::meta;
use crate::store::{Store, StoreError, certificates as certs, hosts};

/// Why the database is behind `mark`, if it is.
pub(super) fn behind(
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
pub(super) struct Accepted<'a> {
    pub(super) mark: Option<&'a Mark>,
    pub(super) why: &'a str,
    pub(super) reason: &'a str,
    pub(super) operator: &'a str,
}

/// Takes a database behind the mark, on the record: an audit event saying what was
/// accepted and by whom, and a KRL version floor above everything published, so that
/// servers replace their (newer) KRL with the next one.
pub(super) fn accept_rollback(
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
        // the older copy knew of it (or of the certificate). A certificate the copy holds
        // unrevoked is revoked in its row, with its `certificate.revoked` event, so that
        // nothing reads it as live (`show`, `audit --serial`, `audit explain`, a second
        // `revoke`); one it never saw is carried.
        let why_again = format!("carried over by an accepted rollback ({reason})");
        let mut again = Vec::new();
        let mut carried = Vec::new();
        for r in mark.map_or(&[][..], |m| &m.revoked) {
            let serial = Serial::parse(&r.serial).map_err(|e| {
                StoreError::Corrupt(format!("the state mark lists serial {:?}: {e}", r.serial))
            })?;
            if r.valid_before <= at - skew {
                continue;
            }
            let done = match certs::by_serial(tx, serial)? {
                Some(c) if c.revoked => false,
                Some(c) => match certs::revoke(tx, serial, at, operator, &why_again)? {
                    Some(version) => {
                        again.push(Again::User(c, version));
                        true
                    }
                    None => false,
                },
                None => certs::carry_revocation(tx, serial, r.valid_before, at)?,
            };
            if done {
                carried.push(r.serial.clone());
            }
        }
        // Host certificates' revocations too (`[host_ca]`), with the host CA's serials.
        for r in mark.map_or(&[][..], |m| &m.host_revoked) {
            let serial = Serial::parse(&r.serial).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the state mark lists host serial {:?}: {e}",
                    r.serial
                ))
            })?;
            if r.valid_before <= at - skew {
                continue;
            }
            // A certificate the older copy holds unrevoked is revoked in its row, so that
            // nothing reads it as live (renewal above all); one it never saw is carried.
            let done = match hosts::cert_by_serial(tx, serial)? {
                Some(c) if c.revocation.is_some() => false,
                Some(c) => match hosts::revoke(tx, serial, at, operator, &why_again)? {
                    Some(version) => {
                        again.push(Again::Host(c, version));
                        true
                    }
                    None => false,
                },
                None => hosts::carry_revocation(tx, serial, r.valid_before, at)?,
            };
            if done {
                carried.push(format!("host:{}", r.serial));
            }
        }
        // Join tokens the lost history may have used would work again: none does.
        let voided = hosts::void_unused_tokens(tx, at)?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                operator,
                StateRollbackAccepted {
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
                    // Above the floor when certificates were revoked again.
                    krl_version: certs::krl_version(tx)?,
                    carried_revocations: carried.clone(),
                    host_tokens_voided: voided,
                },
            ),
        )?;
        // After the event that explains them: each certificate revoked again, as its
        // story shows it.
        for a in &again {
            audit::append(tx, now, &a.event(operator, &why_again))?;
        }
        Ok::<_, StateError>(())
    })
}

/// A certificate an accepted older copy held unrevoked though its revocation was
/// published, revoked again in its row (at this KRL version).
enum Again {
    User(certs::Holding, u64),
    Host(hosts::HostCertRow, u64),
}

impl Again {
    /// Its `certificate.revoked` or `host.revoked` event.
    fn event<'a>(&'a self, operator: &'a str, why: &str) -> NewEvent<'a> {
        match self {
            Again::User(cert, version) => NewEvent {
                actor: operator,
                request_id: Some(cert.request_id.as_str()),
                serial: Some(cert.serial),
                event: CertificateRevoked::of(cert, why, *version).into(),
            },
            Again::Host(row, version) => NewEvent {
                actor: operator,
                request_id: None,
                serial: Some(row.serial),
                event: HostRevoked::of(row, why, *version).into(),
            },
        }
    }
}
