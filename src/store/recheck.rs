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
    /// When it was due (Unix seconds): what claiming it compares.
    pub next_check_at: i64,
}

/// Up to `limit` live sessions at `now` (of people bound at `issuer`) due for a
/// re-check, the longest due first.
pub fn due(tx: &Tx<'_>, issuer: &str, now: i64, limit: i64) -> Result<Vec<Due>, StoreError> {
    tx.all(
        "SELECT s.id, s.\"user\", i.subject, s.refresh_token, s.next_check_at \
         FROM sessions s JOIN identities i ON i.\"user\" = s.\"user\" AND i.issuer = ?1 \
         WHERE s.revoked_at IS NULL AND s.expires_at > ?2 AND s.refresh_token IS NOT NULL \
         AND s.next_check_at <= ?2 ORDER BY s.next_check_at, s.id LIMIT ?3",
        &[&issuer, &now, &limit],
        |r| {
            Ok(Due {
                id: r.get(0)?,
                user: user_from(r.get(1)?)?,
                subject: r.get(2)?,
                refresh_token: r.get(3)?,
                next_check_at: r.get(4)?,
            })
        },
    )
}

/// Moves the session's next check from `was` to `to` (a claim: if this replica stops
/// before answering, the check is tried again at `to`); false if another replica (or
/// an earlier round) moved it first: then it is theirs to check.
pub fn claim(tx: &Tx<'_>, id: &str, was: i64, to: i64) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE sessions SET next_check_at = ?3 WHERE id = ?1 AND next_check_at = ?2",
        &[&id, &was, &to],
    )?;
    Ok(n == 1)
}

/// What a re-check at the provider found, for one session.
#[derive(Debug, Clone)]
pub struct Vouched<'a> {
    /// The person's countersign groups now (JSON list).
    pub groups: &'a str,
    /// A new refresh token (sealed), if the provider rotated it.
    pub refresh_token: Option<&'a str>,
    /// When the provider answered (Unix seconds).
    pub at: i64,
    /// Until when the groups count (capped at the session's end).
    pub groups_until: i64,
    /// When to ask again.
    pub next_check_at: i64,
}

/// The provider vouched for the person of session `id` again: its groups, the time of
/// the provider's word, and its refresh token when rotated.
pub fn vouched(tx: &Tx<'_>, id: &str, v: &Vouched<'_>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE sessions SET groups = ?2, checked_at = ?3, \
         groups_until = CASE WHEN ?4 < expires_at THEN ?4 ELSE expires_at END, \
         next_check_at = ?5, refresh_token = coalesce(?6, refresh_token) WHERE id = ?1",
        &[
            &id,
            &v.groups,
            &v.at,
            &v.groups_until,
            &v.next_check_at,
            &v.refresh_token,
        ],
    )?;
    Ok(())
}

/// The session's refresh token cannot be used (it does not open: the client secret
/// changed): forgotten, and the session's groups stop counting at `now`.
pub fn unusable(tx: &Tx<'_>, id: &str, now: i64) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE sessions SET refresh_token = NULL, next_check_at = NULL, groups_until = ?2 \
         WHERE id = ?1",
        &[&id, &now],
    )?;
    Ok(())
}

/// Forgets `user`'s sign-ins that finished at the provider but have not become sessions
/// yet (one-time codes, device logins): after the provider withdrew them, none may.
pub fn forget_unfinished(tx: &Tx<'_>, user: &UserName) -> Result<(), StoreError> {
    tx.exec(
        "DELETE FROM login_codes WHERE \"user\" = ?1",
        &[&user.as_str()],
    )?;
    tx.exec(
        "DELETE FROM device_logins WHERE \"user\" = ?1",
        &[&user.as_str()],
    )?;
    Ok(())
}
