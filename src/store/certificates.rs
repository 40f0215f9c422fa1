//! Issued certificates and their revocation: rows and queries.
//!
//! Serials are stored as SQLite INTEGER (1..=i64::MAX); the UNIQUE constraints make a
//! second certificate for one request, or a reused serial, fail the whole transaction.
//! `revoked_seq` numbers revocations 1, 2, 3...; the highest is the KRL version.

use super::requests::RequestRow;
use super::sql::{Row, corrupt};
use super::{StoreError, Touch, Tx};
use crate::names::{RequestId, RoleName, Serial, UserName};

/// One issued certificate.
#[derive(Debug, Clone)]
pub struct CertificateRow {
    /// The certificate's serial.
    pub serial: Serial,
    /// Its key ID, `countersign:REQUEST:USER:ROLE`.
    pub key_id: String,
    /// Start of validity (unix seconds).
    pub valid_after: i64,
    /// End of validity (unix seconds).
    pub valid_before: i64,
    /// The certificate itself, OpenSSH format.
    pub certificate: String,
    /// Set once it was revoked.
    pub revocation: Option<Revocation>,
}

/// Who ended a certificate early, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// When (unix seconds).
    pub at: i64,
    /// Who revoked it.
    pub by: String,
    /// The revoker's reason.
    pub reason: String,
}

/// A certificate with the request facts an investigator or the revoke commands need.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The certificate's serial.
    pub serial: Serial,
    /// The request it was issued for.
    pub request_id: RequestId,
    /// Who holds it.
    pub requester: UserName,
    /// The role it grants.
    pub role: RoleName,
    /// End of validity (unix seconds).
    pub valid_before: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

const COLUMNS: &str =
    "serial, key_id, valid_after, valid_before, certificate, revoked_at, revoked_by, revoke_reason";

fn serial_of(v: i64) -> Result<Serial, StoreError> {
    Serial::from_stored(v).ok_or_else(|| corrupt("serial", &v.to_string(), "not positive"))
}

fn from_row(r: &Row<'_>) -> Result<CertificateRow, StoreError> {
    let revoked_at: Option<i64> = r.get(5)?;
    Ok(CertificateRow {
        serial: serial_of(r.get(0)?)?,
        key_id: r.get(1)?,
        valid_after: r.get(2)?,
        valid_before: r.get(3)?,
        certificate: r.get(4)?,
        revocation: match revoked_at {
            Some(at) => Some(Revocation {
                at,
                by: r.get::<Option<String>>(6)?.unwrap_or_default(),
                reason: r.get::<Option<String>>(7)?.unwrap_or_default(),
            }),
            None => None,
        },
    })
}

fn holding_from_row(r: &Row<'_>) -> Result<Holding, StoreError> {
    let id: String = r.get(1)?;
    let requester: String = r.get(2)?;
    let role: String = r.get(3)?;
    Ok(Holding {
        serial: serial_of(r.get(0)?)?,
        request_id: RequestId::parse(&id).map_err(|e| corrupt("request id", &id, e))?,
        requester: UserName::parse(&requester).map_err(|e| corrupt("requester", &requester, e))?,
        role: RoleName::parse(&role).map_err(|e| corrupt("role", &role, e))?,
        valid_before: r.get(4)?,
        revoked: r.get::<Option<i64>>(5)?.is_some(),
    })
}

fn sql_serial(serial: Serial) -> Result<i64, StoreError> {
    serial
        .to_stored()
        .ok_or_else(|| StoreError::Corrupt("serial out of range".into()))
}

/// The query of [`serial_taken`]: ?1 the stored serial; one row, a count.
pub(super) const SERIAL_TAKEN: &str = "SELECT \
     (SELECT count(*) FROM certificates WHERE serial = ?1) \
     + (SELECT count(*) FROM host_certificates WHERE serial = ?1) \
     + (SELECT count(*) FROM carried_revocations WHERE serial = ?1) \
     + (SELECT count(*) FROM carried_host_revocations WHERE serial = ?1)";

/// Whether a serial was ever used, by a user or a host certificate, or by one an accepted
/// rollback lost and whose revocation it carried over: one serial names one certificate,
/// so `audit --serial N` tells one story and a new certificate never lands in a revocation
/// list (one the database cannot hold counts as used).
pub fn serial_taken(tx: &Tx<'_>, serial: Serial) -> Result<bool, StoreError> {
    let Some(serial) = serial.to_stored() else {
        return Ok(true);
    };
    let n: i64 = tx.one(SERIAL_TAKEN, &[&serial], |r| r.get(0))?;
    Ok(n > 0)
}

/// Stores an issued certificate.
pub fn insert(tx: &Tx<'_>, req: &RequestRow, c: &CertificateRow) -> Result<(), StoreError> {
    tx.put_touching(
        "INSERT INTO certificates (serial, request_id, requester, role, key_id, \
         valid_after, valid_before, certificate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            &sql_serial(c.serial)?,
            &req.id.as_str(),
            &req.requester.as_str(),
            &req.role.as_str(),
            &c.key_id,
            &c.valid_after,
            &c.valid_before,
            &c.certificate,
        ],
        Some(&[
            Touch::Serial(c.serial),
            Touch::User(&req.requester),
            Touch::Request(&req.id),
        ]),
    )?;
    Ok(())
}

/// The certificate issued for a request, if any.
pub fn for_request(tx: &Tx<'_>, id: &RequestId) -> Result<Option<CertificateRow>, StoreError> {
    tx.opt(
        &format!("SELECT {COLUMNS} FROM certificates WHERE request_id = ?1"),
        &[&id.as_str()],
        from_row,
    )
}

const HOLDING: &str =
    "SELECT serial, request_id, requester, role, valid_before, revoked_at FROM certificates";

/// The certificate with this serial.
pub fn by_serial(tx: &Tx<'_>, serial: Serial) -> Result<Option<Holding>, StoreError> {
    let Some(serial) = serial.to_stored() else {
        return Ok(None);
    };
    tx.opt(
        &format!("{HOLDING} WHERE serial = ?1"),
        &[&serial],
        holding_from_row,
    )
}

/// Certificates of `user` that are unexpired and unrevoked at `now`.
pub fn active_of_user(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<Vec<Holding>, StoreError> {
    tx.all(
        &format!(
            "{HOLDING} WHERE requester = ?1 AND valid_before > ?2 AND revoked_at IS NULL \
             ORDER BY serial"
        ),
        &[&user.as_str(), &now],
        holding_from_row,
    )
}

/// Marks a certificate revoked and returns the new KRL version; `None` if it already was.
pub fn revoke(
    tx: &Tx<'_>,
    serial: Serial,
    at: i64,
    by: &str,
    reason: &str,
) -> Result<Option<u64>, StoreError> {
    let next = krl_version(tx)? + 1;
    let n = tx.exec(
        "UPDATE certificates SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4, \
         revoked_seq = ?5 WHERE serial = ?1 AND revoked_at IS NULL",
        &[&sql_serial(serial)?, &at, &by, &reason, &(next as i64)],
    )?;
    Ok((n == 1).then_some(next))
}

/// The KRL version: the number of the newest revocation (of a user or host certificate),
/// or the floor an operator's accepted rollback raised it to (`meta::raise_krl_floor`),
/// whichever is higher. It only grows, across restarts and accepted restores.
pub fn krl_version(tx: &Tx<'_>) -> Result<u64, StoreError> {
    // The two numbers, compared here: SQLite's max(a, b) is PostgreSQL's greatest().
    let (newest, floor): (i64, i64) = tx.one(
        "SELECT (SELECT coalesce(max(revoked_seq), 0) FROM certificates \
         WHERE revoked_seq IS NOT NULL), (SELECT krl_floor FROM meta WHERE id = 1)",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // Host certificates share the sequence (`hosts.rs`): one version for both KRLs.
    let hosts: i64 = tx.one(
        "SELECT coalesce(max(revoked_seq), 0) FROM host_certificates \
         WHERE revoked_seq IS NOT NULL",
        &[],
        |r| r.get(0),
    )?;
    let v = newest.max(floor).max(hosts);
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("KRL version {v} is negative")))
}

/// What the KRL lists at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Serials revoked and not yet expired, ascending.
    pub serials: Vec<Serial>,
    /// The `valid_before` of each of `serials`, in the same order.
    pub valid_before: Vec<i64>,
    /// The earliest `valid_before` among `serials`: when the list next shrinks.
    pub first_expiry: Option<i64>,
}

/// The revoked certificates not yet expired at `now` (from the revoked-only index, not
/// the whole table), and the revocations carried over by an accepted rollback.
pub fn revoked_unexpired(tx: &Tx<'_>, now: i64) -> Result<Revoked, StoreError> {
    revoked_in(tx, "certificates", "carried_revocations", now)
}

/// [`revoked_unexpired`] of one CA's tables: its certificates and its carried revocations
/// (the user CA's, or the host CA's in `hosts.rs`). The names are constants of ours.
pub(super) fn revoked_in(
    tx: &Tx<'_>,
    certificates: &str,
    carried: &str,
    now: i64,
) -> Result<Revoked, StoreError> {
    let mut serials = Vec::new();
    let mut valid_before = Vec::new();
    tx.each(
        &format!(
            "SELECT serial, valid_before FROM {certificates} \
             WHERE revoked_at IS NOT NULL AND valid_before > ?1 \
             UNION SELECT serial, valid_before FROM {carried} WHERE valid_before > ?1 \
             ORDER BY serial"
        ),
        &[&now],
        |r| {
            serials.push(serial_of(r.get(0)?)?);
            valid_before.push(r.get::<i64>(1)?);
            Ok::<_, StoreError>(())
        },
    )?;
    Ok(Revoked {
        first_expiry: valid_before.iter().copied().min(),
        serials,
        valid_before,
    })
}

/// Carries a revocation over from the high-water mark into an older copy an operator
/// accepted, for a certificate the copy has no row of or has not revoked: it is listed
/// in the KRL until `valid_before` like any other. Returns whether it was new.
pub fn carry_revocation(
    tx: &Tx<'_>,
    serial: Serial,
    valid_before: i64,
    at: i64,
) -> Result<bool, StoreError> {
    carry_into(tx, "carried_revocations", serial, valid_before, at)
}

/// Lists `serial` in one CA's table of carried revocations (`carried_revocations` or
/// `carried_host_revocations`, constants of ours) until `valid_before`: a new row, or an
/// existing one's end moved later (one that lapsed is listed again). Whether it changed
/// anything (`false`: listed until then or later already).
pub fn relist_into(
    tx: &Tx<'_>,
    host: bool,
    serial: Serial,
    valid_before: i64,
    at: i64,
) -> Result<bool, StoreError> {
    let table = if host {
        "carried_host_revocations"
    } else {
        "carried_revocations"
    };
    let n = tx.exec(
        &format!(
            "INSERT INTO {table} (serial, valid_before, carried_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (serial) DO UPDATE SET valid_before = excluded.valid_before, \
             carried_at = excluded.carried_at WHERE {table}.valid_before < excluded.valid_before"
        ),
        &[&sql_serial(serial)?, &valid_before, &at],
    )?;
    Ok(n == 1)
}

/// [`carry_revocation`] into one CA's table of carried revocations (a constant of ours).
pub(super) fn carry_into(
    tx: &Tx<'_>,
    carried: &str,
    serial: Serial,
    valid_before: i64,
    at: i64,
) -> Result<bool, StoreError> {
    let n = tx.exec(
        &format!(
            "INSERT INTO {carried} (serial, valid_before, carried_at) \
             VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"
        ),
        &[&sql_serial(serial)?, &valid_before, &at],
    )?;
    Ok(n == 1)
}
