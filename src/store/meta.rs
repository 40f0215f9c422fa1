//! What the database says about itself: its id, the CA keys it belongs to, the floor
//! under the KRL version, and the audit head. `state.rs` compares these with the CA key
//! and the high-water mark kept outside the database.

use super::{StoreError, Tx};

/// A CA key the database belongs to, and when it was in use (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKey {
    /// `SHA256:...`
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// When it came into use.
    pub since: i64,
    /// `None` for the key in use now.
    pub until: Option<i64>,
}

/// The newest audit event: its sequence number (0 for an empty log) and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its sequence number; 0 for an empty log.
    pub seq: i64,
    /// Its hash; [`crate::audit::GENESIS`] for an empty log.
    pub hash: String,
}

/// The random id given to this database when it was created (or upgraded to schema 8).
pub fn database_id(tx: &Tx<'_>) -> Result<String, StoreError> {
    tx.opt("SELECT database_id FROM meta WHERE id = 1", &[], |r| {
        r.get(0)
    })?
    .ok_or_else(|| StoreError::Corrupt("the meta row is missing".into()))
}

/// Every CA key recorded, oldest first.
pub fn ca_keys(tx: &Tx<'_>) -> Result<Vec<CaKey>, StoreError> {
    tx.all(
        "SELECT fingerprint, public_key, since, until FROM ca_keys ORDER BY since, fingerprint",
        &[],
        |r| {
            Ok(CaKey {
                fingerprint: r.get(0)?,
                public_key: r.get(1)?,
                since: r.get(2)?,
                until: r.get(3)?,
            })
        },
    )
}

/// The CA key in use now, if one was recorded.
pub fn current_ca(tx: &Tx<'_>) -> Result<Option<CaKey>, StoreError> {
    Ok(ca_keys(tx)?.into_iter().find(|k| k.until.is_none()))
}

/// Records `key` as the CA key in use from `since`. Only for a database that has none
/// yet: rotation (ending the current key's period) is a separate, later operation.
pub fn record_ca(tx: &Tx<'_>, key: &CaKey) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO ca_keys (fingerprint, public_key, since, until) VALUES (?1, ?2, ?3, NULL)",
        &[&key.fingerprint, &key.public_key, &key.since],
    )?;
    Ok(())
}

/// The KRL version never goes below this (see [`raise_krl_floor`]).
pub fn krl_floor(tx: &Tx<'_>) -> Result<u64, StoreError> {
    let v: i64 = tx.one("SELECT krl_floor FROM meta WHERE id = 1", &[], |r| r.get(0))?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("KRL version {v} is negative")))
}

/// Raises the KRL version's floor to `floor` (never lowers it): after an operator
/// accepted a database older than what was published, the next KRL must still carry a
/// higher version than any KRL servers already have.
pub fn raise_krl_floor(tx: &Tx<'_>, floor: u64) -> Result<(), StoreError> {
    let floor = i64::try_from(floor)
        .map_err(|_| StoreError::Corrupt(format!("KRL version {floor} out of range")))?;
    tx.exec(
        "UPDATE meta SET krl_floor = ?1 WHERE id = 1 AND krl_floor < ?1",
        &[&floor],
    )?;
    Ok(())
}

/// The newest audit event.
pub fn audit_head(tx: &Tx<'_>) -> Result<Head, StoreError> {
    let head = tx.opt(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
        |r| {
            Ok(Head {
                seq: r.get(0)?,
                hash: r.get(1)?,
            })
        },
    )?;
    Ok(head.unwrap_or_else(|| Head {
        seq: 0,
        hash: crate::audit::GENESIS.to_owned(),
    }))
}

/// The hash of audit event `seq`, if the log has it.
pub fn audit_hash_at(tx: &Tx<'_>, seq: i64) -> Result<Option<String>, StoreError> {
    tx.opt("SELECT hash FROM audit WHERE seq = ?1", &[&seq], |r| {
        r.get(0)
    })
}

/// The CA key that signed the newest certificate in the database, as an OpenSSH public
/// key line: how a database from before schema 8 (no recorded CA key) tells which CA it
/// belongs to. `None` if no certificate was ever issued.
pub fn newest_certificate(tx: &Tx<'_>) -> Result<Option<String>, StoreError> {
    tx.opt(
        "SELECT certificate FROM certificates ORDER BY id DESC LIMIT 1",
        &[],
        |r| r.get(0),
    )
}

/// The policy last recorded as `policy.loaded` (canonical JSON text), if any.
pub fn recorded_policy(tx: &Tx<'_>) -> Result<Option<String>, StoreError> {
    tx.one("SELECT policy FROM meta WHERE id = 1", &[], |r| r.get(0))
}

/// Remembers `policy` (canonical JSON text) as the one last recorded, with its digest
/// (which PostgreSQL writes check: `store/in_force.rs`).
pub fn record_policy(tx: &Tx<'_>, policy: &str) -> Result<(), StoreError> {
    let digest = crate::policy::summary::text_digest(policy);
    tx.exec(
        "UPDATE meta SET policy = ?1, policy_digest = ?2 WHERE id = 1",
        &[&policy, &digest],
    )?;
    Ok(())
}

/// Counts one more readiness probe in the meta row: a write that changes a value (so
/// that it reaches the disk; SQLite skips an UPDATE to the same value), to prove the
/// database takes writes. 1 if the row was there.
pub fn touch(tx: &Tx<'_>) -> Result<u64, StoreError> {
    tx.exec(
        "UPDATE meta SET ready_probe = ready_probe + 1 WHERE id = 1",
        &[],
    )
}
