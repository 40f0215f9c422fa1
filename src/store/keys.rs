//! SSH public keys registered by their owners (`countersign keys add`), and the
//! single-use challenges that prove possession first. A key has at most one owner (its
//! SHA-256 fingerprint is the primary key); a challenge is stored only as its SHA-256.

use super::sql::corrupt;
use super::tokens::hash;
use super::{StoreError, Tx};
use crate::names::UserName;
pub use crate::policy::rules::KeyFacts;

/// A registered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredKey {
    /// Its SHA-256 fingerprint (`SHA256:...`).
    pub fingerprint: String,
    /// Whose it is.
    pub user: UserName,
    /// The key in OpenSSH form (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
    /// When it was registered (Unix seconds).
    pub registered_at: i64,
}

/// The SQL of [`KeyFacts`] as two columns, for a query about the key whose fingerprint
/// is the expression `fingerprint` and the person `user` (SQL expressions).
pub(in crate::store) fn facts_columns(fingerprint: &str, user: &str) -> String {
    format!(
        "(SELECT k.\"user\" FROM registered_keys k WHERE k.fingerprint = {fingerprint}), \
         EXISTS (SELECT 1 FROM registered_keys k WHERE k.\"user\" = {user})"
    )
}

/// Reads the two columns of [`facts_columns`] starting at `at`.
pub(in crate::store) fn facts_from_row(
    r: &super::sql::Row<'_>,
    at: usize,
) -> Result<KeyFacts, StoreError> {
    let owner: Option<String> = r.get(at)?;
    Ok(KeyFacts {
        owner: owner
            .map(|o| UserName::parse(&o).map_err(|e| corrupt("key owner", &o, e)))
            .transpose()?,
        has_keys: r.get(at + 1)?,
    })
}

/// [`KeyFacts`] of the key `fingerprint` and the person `user`.
pub fn facts(tx: &Tx<'_>, fingerprint: &str, user: &UserName) -> Result<KeyFacts, StoreError> {
    tx.one(
        &format!("SELECT {}", facts_columns("?1", "?2")),
        &[&fingerprint, &user.as_str()],
        |r| facts_from_row(r, 0),
    )
}

/// Who registered the key `fingerprint`, if anyone did.
pub fn owner(tx: &Tx<'_>, fingerprint: &str) -> Result<Option<UserName>, StoreError> {
    let owner: Option<String> = tx.opt(
        "SELECT \"user\" FROM registered_keys WHERE fingerprint = ?1",
        &[&fingerprint],
        |r| r.get(0),
    )?;
    owner
        .map(|o| UserName::parse(&o).map_err(|e| corrupt("key owner", &o, e)))
        .transpose()
}

/// Registers `key`. The caller checked that nobody registered it before.
pub fn insert(tx: &Tx<'_>, key: &RegisteredKey) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO registered_keys (fingerprint, \"user\", public_key, registered_at) \
         VALUES (?1, ?2, ?3, ?4)",
        &[
            &key.fingerprint,
            &key.user.as_str(),
            &key.public_key,
            &key.registered_at,
        ],
    )?;
    Ok(())
}

/// Forgets the key `fingerprint`; the key as it was, if it was registered.
pub fn remove(tx: &Tx<'_>, fingerprint: &str) -> Result<Option<RegisteredKey>, StoreError> {
    let key = tx.opt(
        "SELECT fingerprint, \"user\", public_key, registered_at FROM registered_keys \
         WHERE fingerprint = ?1",
        &[&fingerprint],
        key_from_row,
    )?;
    if key.is_some() {
        tx.exec(
            "DELETE FROM registered_keys WHERE fingerprint = ?1",
            &[&fingerprint],
        )?;
    }
    Ok(key)
}

/// The keys registered by `user`, or by everyone; by user, then oldest first.
pub fn list(tx: &Tx<'_>, user: Option<&UserName>) -> Result<Vec<RegisteredKey>, StoreError> {
    let user = user.map(UserName::as_str);
    tx.all(
        "SELECT fingerprint, \"user\", public_key, registered_at FROM registered_keys \
         WHERE CAST(?1 AS TEXT) IS NULL OR \"user\" = ?1 \
         ORDER BY \"user\", registered_at, fingerprint",
        &[&user],
        key_from_row,
    )
}

/// How many keys `user` registered.
pub fn count(tx: &Tx<'_>, user: &UserName) -> Result<i64, StoreError> {
    tx.one(
        "SELECT count(*) FROM registered_keys WHERE \"user\" = ?1",
        &[&user.as_str()],
        |r| r.get(0),
    )
}

fn key_from_row(r: &super::sql::Row<'_>) -> Result<RegisteredKey, StoreError> {
    let user: String = r.get(1)?;
    Ok(RegisteredKey {
        fingerprint: r.get(0)?,
        user: UserName::parse(&user).map_err(|e| corrupt("key owner", &user, e))?,
        public_key: r.get(2)?,
        registered_at: r.get(3)?,
    })
}

/// A challenge handed out: its text (stored hashed), for whom and which key.
#[derive(Debug, Clone, Copy)]
pub struct NewChallenge<'a> {
    /// The exact text the key must sign.
    pub text: &'a str,
    /// Who asked.
    pub user: &'a UserName,
    /// The key it is for.
    pub fingerprint: &'a str,
}

/// Stores a challenge made at `made` (Unix milliseconds: what orders them) until
/// `expires_at`, forgetting those expired and, past `per_user` outstanding for this
/// person, their oldest.
pub fn insert_challenge(
    tx: &Tx<'_>,
    challenge: &NewChallenge<'_>,
    made: i64,
    now: i64,
    expires_at: i64,
    per_user: i64,
) -> Result<(), StoreError> {
    tx.exec("DELETE FROM key_challenges WHERE expires_at <= ?1", &[&now])?;
    let user = challenge.user.as_str();
    tx.exec(
        "DELETE FROM key_challenges WHERE \"user\" = ?1 AND hash NOT IN (SELECT hash \
         FROM key_challenges WHERE \"user\" = ?1 ORDER BY created_ms DESC, hash LIMIT ?2)",
        &[&user, &(per_user - 1).max(0)],
    )?;
    tx.exec(
        "INSERT INTO key_challenges (hash, \"user\", fingerprint, created_ms, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            &hash(challenge.text),
            &user,
            &challenge.fingerprint,
            &made,
            &expires_at,
        ],
    )?;
    Ok(())
}

/// The person and key fingerprint of the challenge `text` if it is still valid at
/// `now`; it is used up (deleted) by this call, whatever the caller decides next, so
/// a caller that refuses must roll back to keep it.
pub fn take_challenge(
    tx: &Tx<'_>,
    text: &str,
    now: i64,
) -> Result<Option<(UserName, String)>, StoreError> {
    let hashed = hash(text);
    let found: Option<(String, String)> = tx.opt(
        "SELECT \"user\", fingerprint FROM key_challenges WHERE hash = ?1 AND expires_at > ?2",
        &[&hashed, &now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    tx.exec("DELETE FROM key_challenges WHERE hash = ?1", &[&hashed])?;
    found
        .map(|(user, fp)| {
            UserName::parse(&user)
                .map(|u| (u, fp))
                .map_err(|e| corrupt("challenge user", &user, e))
        })
        .transpose()
}
