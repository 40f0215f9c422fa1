//! API tokens: 256 random bits shown once, stored only as SHA-256 hashes.

use rand::Rng;
use sha2::{Digest, Sha256};

use super::sql::corrupt;
use super::{StoreError, Tx};
use crate::names::UserName;

/// Prefix that makes a leaked token easy to find with a secret scanner.
pub const TOKEN_PREFIX: &str = "cs_";

/// A freshly generated token: the secret the user keeps, and what the database keeps.
pub struct NewToken {
    /// Shown once, never stored.
    pub secret: String,
    /// Stored.
    pub hash: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Generates a token from the OS-seeded CSPRNG.
pub fn generate() -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash(&secret);
    NewToken { secret, hash }
}

/// The stored form of a token.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Stores a token hash for `user`.
pub fn insert(tx: &Tx<'_>, hash: &str, user: &UserName, now: i64) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO tokens (hash, \"user\", created_at) VALUES (?1, ?2, ?3)",
        &[&hash, &user.as_str(), &now],
    )?;
    Ok(())
}

/// Deletes every token of `user`; returns how many.
pub fn revoke_all(tx: &Tx<'_>, user: &UserName) -> Result<usize, StoreError> {
    let n = tx.exec("DELETE FROM tokens WHERE \"user\" = ?1", &[&user.as_str()])?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Marks every live token of `user` revoked for good (offboarding); returns how many.
/// The rows stay, so that a revoked token is recognised (and answered "disabled") but
/// never authenticates again: enabling the user does not revive it.
pub fn revoke_live(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<usize, StoreError> {
    let n = tx.exec(
        "UPDATE tokens SET revoked_at = ?2 WHERE \"user\" = ?1 AND revoked_at IS NULL",
        &[&user.as_str(), &now],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Whose a token is, and whether it was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    /// The user it authenticates.
    pub user: UserName,
    /// Whether it was revoked (and so authenticates nobody); for a session, also
    /// whether it is over.
    pub revoked: bool,
    /// Whether its user is disabled (read in the same query: one round trip for both).
    pub disabled: bool,
    /// It is a session (`countersign login`), not a hand-made API token.
    pub session: bool,
    /// A session's last authentication at the identity provider (Unix seconds), if
    /// the provider said.
    pub auth_time: Option<i64>,
    /// How a session was made (`oidc`, `oidc-device`); none for an API token.
    pub via: Option<String>,
}

/// The owner of a token, if it exists (revoked or not): an API token, or a session
/// (which is over at `now` once past its end). One statement for both kinds.
pub fn lookup(tx: &Tx<'_>, secret: &str, now: i64) -> Result<Option<TokenOwner>, StoreError> {
    tx.opt(
        "SELECT t.\"user\", t.revoked_at IS NOT NULL, \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = t.\"user\"), CAST(0 AS BIGINT), \
         CAST(NULL AS BIGINT), CAST(NULL AS TEXT) \
         FROM tokens t WHERE t.hash = ?1 \
         UNION ALL SELECT s.\"user\", s.revoked_at IS NOT NULL OR s.expires_at <= ?2, \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = s.\"user\"), CAST(1 AS BIGINT), \
         s.auth_time, s.via \
         FROM sessions s WHERE s.token_hash = ?1",
        &[&hash(secret), &now],
        |r| {
            let user: String = r.get(0)?;
            let session: i64 = r.get(3)?;
            Ok(TokenOwner {
                user: UserName::parse(&user).map_err(|e| corrupt("token user", &user, e))?,
                revoked: r.get(1)?,
                disabled: r.get(2)?,
                session: session == 1,
                auth_time: r.get(4)?,
                via: r.get(5)?,
            })
        },
    )
}
