//! Sessions whose person is due to be asked about again at the provider (with the
//! refresh token it gave), and what the answer changes.

use super::sessions::user_from;
use super::{StoreError, Tx};
use crate::names::UserName;

/// A live session with a refresh token, due for a re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The session's id.
    pub id: String,
    /// Whose it is.
    pub user: UserName,
    /// Who the person is at the provider (`sub`), from their binding to `issuer`.
    pub subject: String,
    /// The refresh token, sealed.
    pub refresh_token: String,
    /// When the provider last vouched for the person through it (Unix seconds).
    pub checked_at: i64,
}

/// Up to `limit` live sessions at `now` (of people bound at `issuer`) last checked at
/// or before `before`, the longest unchecked first.
pub fn due(
    tx: &Tx<'_>,
    issuer: &str,
    now: i64,
    before: i64,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    tx.all(
        "SELECT s.id, s.\"user\", i.subject, s.refresh_token, s.checked_at \
         FROM sessions s JOIN identities i ON i.\"user\" = s.\"user\" AND i.issuer = ?1 \
         WHERE s.revoked_at IS NULL AND s.expires_at > ?2 AND s.refresh_token IS NOT NULL \
         AND s.checked_at <= ?3 ORDER BY s.checked_at, s.id LIMIT ?4",
        &[&issuer, &now, &before, &limit],
        |r| {
            Ok(Due {
                id: r.get(0)?,
                user: user_from(r.get(1)?)?,
                subject: r.get(2)?,
                refresh_token: r.get(3)?,
                checked_at: r.get(4)?,
            })
        },
    )
}

/// Moves the session's check time from `was` to `to`; false if another replica (or an
/// earlier round) moved it first: then it is theirs to check.
pub fn claim(tx: &Tx<'_>, id: &str, was: i64, to: i64) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE sessions SET checked_at = ?3 WHERE id = ?1 AND checked_at = ?2",
        &[&id, &was, &to],
    )?;
    Ok(n == 1)
}

/// Sets the session's check time (a failed re-check: to be tried again sooner).
pub fn checked_at(tx: &Tx<'_>, id: &str, at: i64) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE sessions SET checked_at = ?2 WHERE id = ?1",
        &[&id, &at],
    )?;
    Ok(())
}

/// The groups (JSON list) of `user`'s live sessions at `now` (the latest sign-in's or
/// re-check's: they all agree), if they have one.
pub fn groups_of(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<Option<String>, StoreError> {
    tx.opt(
        "SELECT groups FROM sessions WHERE \"user\" = ?1 AND revoked_at IS NULL \
         AND expires_at > ?2 ORDER BY created_at DESC, id DESC LIMIT 1",
        &[&user.as_str(), &now],
        |r| r.get(0),
    )
}

/// The provider vouched for `user` again at `now` through the session `id`: their
/// groups (JSON list) on every live session of theirs, and the session's refresh token
/// replaced when the provider rotated it.
pub fn vouched(
    tx: &Tx<'_>,
    id: &str,
    user: &UserName,
    groups: &str,
    refresh_token: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE sessions SET groups = ?2 WHERE \"user\" = ?1 AND revoked_at IS NULL \
         AND expires_at > ?3",
        &[&user.as_str(), &groups, &now],
    )?;
    tx.exec(
        "UPDATE sessions SET checked_at = ?2, refresh_token = coalesce(?3, refresh_token) \
         WHERE id = ?1",
        &[&id, &now, &refresh_token],
    )?;
    Ok(())
}

/// The session's refresh token cannot be used (it does not open: the client secret
/// changed): forgotten, and the session's groups stop counting at `now`.
pub fn unusable(tx: &Tx<'_>, id: &str, now: i64) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE sessions SET refresh_token = NULL, groups_until = ?2 WHERE id = ?1",
        &[&id, &now],
    )?;
    Ok(())
}
