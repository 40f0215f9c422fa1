//! API tokens: 256 random bits shown once, stored only as SHA-256 hashes.

use rand::Rng;
use sha2::{Digest, Sha256};

use super::sql::corrupt;
use super::{Store, StoreError, Tx};
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
    crate::hex_lower(&Sha256::digest(secret.as_bytes()))
}

/// What a new token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKind {
    /// `None`: a person's token; `Some(scopes)`: a bot's (a service account), allowed
    /// only those (comma-separated).
    pub bot_scopes: Option<String>,
    /// When it stops authenticating (Unix seconds).
    pub expires_at: i64,
}

/// Stores a token hash for `user`.
pub fn insert(
    tx: &Tx<'_>,
    hash: &str,
    user: &UserName,
    now: i64,
    kind: &TokenKind,
) -> Result<(), StoreError> {
    let name = if kind.bot_scopes.is_some() {
        "bot"
    } else {
        "human"
    };
    tx.exec(
        "INSERT INTO tokens (hash, \"user\", created_at, expires_at, kind, scopes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            &hash,
            &user.as_str(),
            &now,
            &kind.expires_at,
            &name,
            &kind.bot_scopes,
        ],
    )?;
    Ok(())
}

/// A token as `token list` shows it (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenListing {
    /// Eight hex digits of its SHA-256 (to tell tokens apart).
    pub id: String,
    /// Whose.
    pub user: UserName,
    /// `human` or `bot`.
    pub kind: String,
    /// A bot's scopes (comma-separated).
    pub scopes: Option<String>,
    /// Made at (Unix seconds).
    pub created_at: i64,
    /// Ends at (Unix seconds); `None` for a token made before tokens had an expiry.
    pub expires_at: Option<i64>,
    /// Last used (to the minute), if ever.
    pub last_used_at: Option<i64>,
    /// Revoked at, if it was.
    pub revoked_at: Option<i64>,
}

/// Every token, by user then age.
pub fn list(tx: &Tx<'_>) -> Result<Vec<TokenListing>, StoreError> {
    tx.all(
        "SELECT hash, \"user\", kind, scopes, created_at, expires_at, last_used_at, revoked_at \
         FROM tokens ORDER BY \"user\", created_at",
        &[],
        |r| {
            let hash: String = r.get(0)?;
            let user: String = r.get(1)?;
            Ok(TokenListing {
                id: hash.chars().take(8).collect(),
                user: UserName::parse(&user).map_err(|e| corrupt("token user", &user, e))?,
                kind: r.get(2)?,
                scopes: r.get(3)?,
                created_at: r.get(4)?,
                expires_at: r.get(5)?,
                last_used_at: r.get(6)?,
                revoked_at: r.get(7)?,
            })
        },
    )
}

/// A token's last use: the one write of a credential table that names what it touches
/// (`store/tx.rs`, `keyed`).
pub(super) const LAST_USE: &str = "UPDATE tokens SET last_used_at = ?2 WHERE hash = ?1 \
     AND (last_used_at IS NULL OR last_used_at <= ?3)";

/// Records that the token whose [`hash`] is `hashed` was used at `now`, at most once a
/// minute.
pub fn used(tx: &Tx<'_>, hashed: &str, now: i64) -> Result<(), StoreError> {
    // No read sent ahead reads tokens (`store/ahead.rs`): this touches nothing such a
    // read depends on; nor does it change whose the token is or whether it is revoked,
    // so the replicas keep the token rows they remember (`store/credentials.rs`).
    tx.exec_touching(LAST_USE, &[&hashed, &now, &(now - 60)], Some(&[]))?;
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
    /// An API token's end (Unix seconds); `None` for one made before tokens had one.
    pub expires_at: Option<i64>,
    /// An API token's creation (Unix seconds).
    pub created_at: Option<i64>,
    /// A bot token's scopes (comma-separated); `None` for a person's.
    pub bot_scopes: Option<String>,
    /// A session's end (Unix seconds); `None` for an API token.
    pub ends: Option<i64>,
}

/// [`lookup`] in one statement outside any transaction, on PostgreSQL answered from
/// what this replica remembers when it can (`store/credentials.rs`).
pub fn owner(store: &Store, hashed: &str, now: i64) -> Result<Option<TokenOwner>, StoreError> {
    let remembered = store.credentials();
    if let Some(owner) = remembered.and_then(|r| r.get(hashed, now)) {
        return Ok(Some(owner));
    }
    let since = remembered.map(|r| (r, r.epoch()));
    let owner = store.read_single(|tx| lookup(tx, hashed, now))?;
    if let (Some((remembered, since)), Some(o)) = (since, &owner) {
        remembered.keep(hashed, o, since);
    }
    Ok(owner)
}

/// The owner of the token whose [`hash`] is `hashed`, if it exists (revoked or not): an
/// API token, or a session (which is over at `now` once past its end). One statement for
/// both kinds.
pub fn lookup(tx: &Tx<'_>, hashed: &str, now: i64) -> Result<Option<TokenOwner>, StoreError> {
    tx.opt(
        "SELECT t.\"user\", t.revoked_at IS NOT NULL, \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = t.\"user\"), CAST(0 AS BIGINT), \
         CAST(NULL AS BIGINT), CAST(NULL AS TEXT), t.expires_at, t.created_at, \
         CASE WHEN t.kind = 'bot' THEN COALESCE(t.scopes, '') END, CAST(NULL AS BIGINT) \
         FROM tokens t WHERE t.hash = ?1 \
         UNION ALL SELECT s.\"user\", s.revoked_at IS NOT NULL OR s.expires_at <= ?2, \
         EXISTS (SELECT 1 FROM disabled_users d WHERE d.\"user\" = s.\"user\"), CAST(1 AS BIGINT), \
         s.auth_time, s.via, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), \
         s.expires_at FROM sessions s WHERE s.token_hash = ?1",
        &[&hashed, &now],
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
                expires_at: r.get(6)?,
                created_at: r.get(7)?,
                bot_scopes: r.get(8)?,
                ends: r.get(9)?,
            })
        },
    )
}
