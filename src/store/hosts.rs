//! Host certificates: join tokens, the certificates the host CA signed, their
//! revocation, and the host CA key the database belongs to.
//!
//! A join token is stored as its SHA-256 only and used up by the enrollment that
//! presents it (`used_at`, in the enrollment's transaction). A renewal records the hash of
//! the challenge it answered (`challenge`, UNIQUE): a replayed answer fails. Revocations
//! share the KRL version with user certificates (`certificates::krl_version`).

use super::sql::{Row, corrupt};
use super::{StoreError, Tx};
use crate::names::{HostPrincipal, Serial};

/// A join token as stored (never the secret).
#[derive(Debug, Clone)]
pub struct HostToken {
    /// Its public id (`ht-...`), for listings and the audit log.
    pub id: String,
    /// The principals an enrollment with it gets, exactly.
    pub principals: Vec<HostPrincipal>,
    /// The admin who made it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// When it was used (unix seconds), if it was.
    pub used_at: Option<i64>,
    /// The certificate its enrollment made.
    pub used_serial: Option<Serial>,
}

/// One host certificate.
#[derive(Debug, Clone)]
pub struct HostCertRow {
    /// Its serial.
    pub serial: Serial,
    /// `SHA256:...` of the host key.
    pub key_fingerprint: String,
    /// The host key, `TYPE BASE64`.
    pub public_key: String,
    /// The names and addresses it is valid for.
    pub principals: Vec<HostPrincipal>,
    /// Its key ID.
    pub key_id: String,
    /// Unix seconds.
    pub valid_after: i64,
    /// Unix seconds.
    pub valid_before: i64,
    /// The certificate, OpenSSH format.
    pub certificate: String,
    /// When it was signed (unix seconds).
    pub issued_at: i64,
    /// The join token of an enrollment.
    pub token_id: Option<String>,
    /// The certificate a renewal replaced.
    pub renewed_from: Option<Serial>,
    /// Set once it was revoked: when, by whom, why.
    pub revocation: Option<super::certificates::Revocation>,
    /// The newest certificate renewed from this one, if any.
    pub superseded_by: Option<Serial>,
}

fn principals_json(p: &[HostPrincipal]) -> Result<String, StoreError> {
    serde_json::to_string(p).map_err(|e| StoreError::Corrupt(format!("principals: {e}")))
}

fn principals_of(text: &str) -> Result<Vec<HostPrincipal>, StoreError> {
    let raw: Vec<String> =
        serde_json::from_str(text).map_err(|e| corrupt("host principals", text, e))?;
    raw.iter()
        .map(|p| HostPrincipal::parse(p).map_err(|e| corrupt("host principal", p, e)))
        .collect()
}

fn serial_of(v: i64) -> Result<Serial, StoreError> {
    Serial::from_stored(v).ok_or_else(|| corrupt("serial", &v.to_string(), "not positive"))
}

fn stored(serial: Serial) -> Result<i64, StoreError> {
    serial
        .to_stored()
        .ok_or_else(|| StoreError::Corrupt("serial out of range".into()))
}

/// Stores a new join token by its hash.
pub fn insert_token(tx: &Tx<'_>, hash: &str, token: &HostToken) -> Result<(), StoreError> {
    tx.put(
        "INSERT INTO host_tokens (hash, id, principals, created_by, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            &hash,
            &token.id,
            &principals_json(&token.principals)?,
            &token.created_by,
            &token.created_at,
            &token.expires_at,
        ],
    )
}

/// The token whose secret hashes to `hash`, whatever its state.
pub fn token_by_hash(tx: &Tx<'_>, hash: &str) -> Result<Option<HostToken>, StoreError> {
    tx.opt(
        "SELECT id, principals, created_by, created_at, expires_at, used_at, used_serial \
         FROM host_tokens WHERE hash = ?1",
        &[&hash],
        |r| {
            let principals: String = r.get(1)?;
            Ok(HostToken {
                id: r.get(0)?,
                principals: principals_of(&principals)?,
                created_by: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                used_at: r.get(5)?,
                used_serial: r.get::<Option<i64>>(6)?.map(serial_of).transpose()?,
            })
        },
    )
}

/// Uses the token up for the certificate `serial`; `false` if it was used already (a
/// concurrent enrollment won).
pub fn use_token(tx: &Tx<'_>, hash: &str, at: i64, serial: Serial) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE host_tokens SET used_at = ?2, used_serial = ?3 WHERE hash = ?1 AND used_at IS NULL",
        &[&hash, &at, &stored(serial)?],
    )?;
    Ok(n == 1)
}

/// Marks every unused join token used (an accepted rollback: the lost history may have
/// used them); returns how many.
pub fn void_unused_tokens(tx: &Tx<'_>, at: i64) -> Result<u64, StoreError> {
    tx.exec(
        "UPDATE host_tokens SET used_at = ?1 WHERE used_at IS NULL",
        &[&at],
    )
}

/// Stores a signed host certificate; `challenge` is the hash of a renewal's challenge.
pub fn insert_cert(
    tx: &Tx<'_>,
    c: &HostCertRow,
    challenge: Option<&str>,
) -> Result<(), StoreError> {
    let renewed_from = c.renewed_from.map(stored).transpose()?;
    tx.put(
        "INSERT INTO host_certificates (serial, key_fingerprint, public_key, principals, \
         key_id, valid_after, valid_before, certificate, issued_at, token_id, renewed_from, \
         challenge) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &[
            &stored(c.serial)?,
            &c.key_fingerprint,
            &c.public_key,
            &principals_json(&c.principals)?,
            &c.key_id,
            &c.valid_after,
            &c.valid_before,
            &c.certificate,
            &c.issued_at,
            &c.token_id,
            &renewed_from,
            &challenge,
        ],
    )
}

/// Whether a renewal already answered the challenge with this hash.
pub fn challenge_used(tx: &Tx<'_>, hash: &str) -> Result<bool, StoreError> {
    let n: i64 = tx.one(
        "SELECT count(*) FROM host_certificates WHERE challenge = ?1",
        &[&hash],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

const COLUMNS: &str = "serial, key_fingerprint, public_key, principals, key_id, valid_after, \
     valid_before, certificate, issued_at, token_id, renewed_from, revoked_at, revoked_by, \
     revoke_reason, (SELECT n.serial FROM host_certificates n \
     WHERE n.renewed_from = host_certificates.serial ORDER BY n.issued_at DESC, n.id DESC \
     LIMIT 1) AS superseded_by";

/// Only certificates no renewal replaced.
const NEWEST: &str = "NOT EXISTS (SELECT 1 FROM host_certificates n \
     WHERE n.renewed_from = host_certificates.serial)";

fn cert_from_row(r: &Row<'_>) -> Result<HostCertRow, StoreError> {
    let principals: String = r.get(3)?;
    let revoked_at: Option<i64> = r.get(11)?;
    Ok(HostCertRow {
        serial: serial_of(r.get(0)?)?,
        key_fingerprint: r.get(1)?,
        public_key: r.get(2)?,
        principals: principals_of(&principals)?,
        key_id: r.get(4)?,
        valid_after: r.get(5)?,
        valid_before: r.get(6)?,
        certificate: r.get(7)?,
        issued_at: r.get(8)?,
        token_id: r.get(9)?,
        renewed_from: r.get::<Option<i64>>(10)?.map(serial_of).transpose()?,
        revocation: match revoked_at {
            Some(at) => Some(super::certificates::Revocation {
                at,
                by: r.get::<Option<String>>(12)?.unwrap_or_default(),
                reason: r.get::<Option<String>>(13)?.unwrap_or_default(),
            }),
            None => None,
        },
        superseded_by: r.get::<Option<i64>>(14)?.map(serial_of).transpose()?,
    })
}

/// The host certificate with this serial.
pub fn cert_by_serial(tx: &Tx<'_>, serial: Serial) -> Result<Option<HostCertRow>, StoreError> {
    let Some(serial) = serial.to_stored() else {
        return Ok(None);
    };
    tx.opt(
        &format!("SELECT {COLUMNS} FROM host_certificates WHERE serial = ?1"),
        &[&serial],
        cert_from_row,
    )
}

/// Host certificates, newest first: all, or only those still valid at `now` (unrevoked,
/// `valid_before` after it, not replaced by a renewal) and, with `ending_before`, ending
/// before that; at most `limit`.
pub fn list_certs(
    tx: &Tx<'_>,
    now: i64,
    all: bool,
    ending_before: Option<i64>,
    limit: i64,
) -> Result<Vec<HostCertRow>, StoreError> {
    let end = ending_before.unwrap_or(i64::MAX);
    if all {
        // With a window: every one (revoked, superseded) that ends within it.
        let from = if ending_before.is_some() {
            now
        } else {
            i64::MIN
        };
        return tx.all(
            &format!(
                "SELECT {COLUMNS} FROM host_certificates WHERE valid_before > ?1 \
                 AND valid_before <= ?2 ORDER BY issued_at DESC, serial DESC LIMIT ?3"
            ),
            &[&from, &end, &limit],
            cert_from_row,
        );
    }
    tx.all(
        &format!(
            "SELECT {COLUMNS} FROM host_certificates WHERE valid_before > ?1 \
             AND valid_before <= ?2 AND revoked_at IS NULL AND {NEWEST} \
             ORDER BY issued_at DESC, serial DESC LIMIT ?3"
        ),
        &[&now, &end, &limit],
        cert_from_row,
    )
}

/// The unrevoked host certificates of the key `fingerprint` still valid at `now`, by
/// serial.
pub fn live_of_key(
    tx: &Tx<'_>,
    fingerprint: &str,
    now: i64,
) -> Result<Vec<HostCertRow>, StoreError> {
    tx.all(
        &format!(
            "SELECT {COLUMNS} FROM host_certificates WHERE key_fingerprint = ?1 \
             AND valid_before > ?2 AND revoked_at IS NULL ORDER BY serial"
        ),
        &[&fingerprint, &now],
        cert_from_row,
    )
}

/// Marks a host certificate revoked; returns the new KRL version (shared with user
/// certificates), or `None` if it already was.
pub fn revoke(
    tx: &Tx<'_>,
    serial: Serial,
    at: i64,
    by: &str,
    reason: &str,
) -> Result<Option<u64>, StoreError> {
    let next = super::certificates::krl_version(tx)? + 1;
    let n = tx.exec(
        "UPDATE host_certificates SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4, \
         revoked_seq = ?5 WHERE serial = ?1 AND revoked_at IS NULL",
        &[&stored(serial)?, &at, &by, &reason, &(next as i64)],
    )?;
    Ok((n == 1).then_some(next))
}

/// The revoked host certificates not yet expired at `now` (and those an accepted
/// rollback carried over), ascending by serial.
pub fn revoked_unexpired(
    tx: &Tx<'_>,
    now: i64,
) -> Result<super::certificates::Revoked, StoreError> {
    super::certificates::revoked_in(tx, "host_certificates", "carried_host_revocations", now)
}

/// Carries a host revocation over from the high-water mark into an older copy an
/// operator accepted. Returns whether it was new.
pub fn carry_revocation(
    tx: &Tx<'_>,
    serial: Serial,
    valid_before: i64,
    at: i64,
) -> Result<bool, StoreError> {
    super::certificates::carry_into(tx, "carried_host_revocations", serial, valid_before, at)
}

/// Whether an accepted rollback carried a revocation of `serial` over.
pub fn carried(tx: &Tx<'_>, serial: Serial) -> Result<bool, StoreError> {
    let n: i64 = tx.one(
        "SELECT count(*) FROM carried_host_revocations WHERE serial = ?1",
        &[&stored(serial)?],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// The host CA public key the database belongs to, if one was recorded.
pub fn host_ca_key(tx: &Tx<'_>) -> Result<Option<String>, StoreError> {
    tx.one("SELECT host_ca_key FROM meta WHERE id = 1", &[], |r| {
        r.get(0)
    })
}

/// Records the host CA public key (only when none is recorded yet).
pub fn record_host_ca_key(tx: &Tx<'_>, line: &str) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE meta SET host_ca_key = ?1 WHERE id = 1 AND host_ca_key IS NULL",
        &[&line],
    )?;
    Ok(n == 1)
}
