//! Sign-in with the identity provider: sign-ins in progress, the one-time codes the CLI
//! trades for a session, who each person is at the provider, and the sessions. Secrets
//! (`state`, codes, session tokens) are stored only as SHA-256 hashes.

use super::sql::corrupt;
use super::tokens::hash;
use super::{StoreError, Tx};
use crate::names::UserName;

/// Prefix of session tokens (as `cs_` is of API tokens): easy to find with a scanner.
pub const SESSION_PREFIX: &str = "css_";

/// A sign-in between its two legs.
#[derive(Debug, Clone)]
pub struct LoginRow {
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier for the code exchange.
    pub pkce_verifier: String,
    /// Where the browser goes at the end: the CLI's listener on the loopback.
    pub cli_redirect: String,
    /// The S256 challenge of the CLI's own verifier.
    pub cli_challenge: String,
    /// For a device login (`login --device`): the hash of its device code; then the two
    /// `cli_` fields are empty.
    pub device_hash: Option<String>,
    /// For a sign-in of the web UI: the path on this server to go to once signed in;
    /// then the two `cli_` fields are empty.
    pub web_next: Option<String>,
    /// For a sign-in of the web UI: the SHA-256 of the session token the browser held
    /// when it started (that session ends when the new one is made).
    pub web_replaces: Option<String>,
}

/// Stores a sign-in in progress under the hash of its `state`, until `expires_at`; and
/// forgets those that are over. Returns how many are left in progress.
pub fn insert_login(
    tx: &Tx<'_>,
    state: &str,
    login: &LoginRow,
    now: i64,
    expires_at: i64,
) -> Result<i64, StoreError> {
    tx.exec("DELETE FROM oidc_logins WHERE expires_at <= ?1", &[&now])?;
    tx.exec("DELETE FROM login_codes WHERE expires_at <= ?1", &[&now])?;
    tx.exec(
        "INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier, cli_redirect, \
         cli_challenge, created_at, expires_at, device_hash, web_next, web_replaces) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &[
            &hash(state),
            &login.nonce,
            &login.pkce_verifier,
            &login.cli_redirect,
            &login.cli_challenge,
            &now,
            &expires_at,
            &login.device_hash,
            &login.web_next,
            &login.web_replaces,
        ],
    )?;
    tx.one("SELECT count(*) FROM oidc_logins", &[], |r| r.get(0))
}

/// Forgets the `n` oldest sign-ins in progress.
pub fn evict_oldest_logins(tx: &Tx<'_>, n: i64) -> Result<(), StoreError> {
    tx.exec(
        "DELETE FROM oidc_logins WHERE state_hash IN (SELECT state_hash FROM oidc_logins \
         ORDER BY created_at, state_hash LIMIT ?1)",
        &[&n],
    )?;
    Ok(())
}

/// Takes the sign-in of `state` (once: it is deleted), if it is still in time at `now`.
pub fn take_login(tx: &Tx<'_>, state: &str, now: i64) -> Result<Option<LoginRow>, StoreError> {
    take(
        tx,
        "SELECT nonce, pkce_verifier, cli_redirect, cli_challenge, expires_at, device_hash, \
         web_next, web_replaces FROM oidc_logins WHERE state_hash = ?1",
        "DELETE FROM oidc_logins WHERE state_hash = ?1",
        &hash(state),
        now,
        |r| {
            Ok(LoginRow {
                nonce: r.get(0)?,
                pkce_verifier: r.get(1)?,
                cli_redirect: r.get(2)?,
                cli_challenge: r.get(3)?,
                device_hash: r.get(5)?,
                web_next: r.get(6)?,
                web_replaces: r.get(7)?,
            })
        },
    )
}

/// The row `select` finds for `key` (its column 4 the end of its time), deleted with
/// `delete` whether or not it is still in time at `now`; `None` when there is none or it
/// is over.
fn take<T>(
    tx: &Tx<'_>,
    select: &str,
    delete: &str,
    key: &str,
    now: i64,
    f: impl FnOnce(&super::sql::Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let row = tx.opt(select, &[&key], |r| {
        let expires_at: i64 = r.get(4)?;
        Ok((f(r)?, expires_at))
    })?;
    if row.is_some() {
        tx.exec(delete, &[&key])?;
    }
    Ok(row
        .filter(|(_, expires_at)| *expires_at > now)
        .map(|(row, _)| row))
}

/// The user name bound to a person of the provider, if any.
pub fn identity_user(
    tx: &Tx<'_>,
    issuer: &str,
    subject: &str,
) -> Result<Option<UserName>, StoreError> {
    tx.opt(
        "SELECT \"user\" FROM identities WHERE issuer = ?1 AND subject = ?2",
        &[&issuer, &subject],
        |r| user_from(r.get(0)?),
    )
}

/// Whether a user name is bound to some person of the provider.
pub fn user_is_bound(tx: &Tx<'_>, user: &UserName) -> Result<bool, StoreError> {
    tx.one(
        "SELECT EXISTS (SELECT 1 FROM identities WHERE \"user\" = ?1)",
        &[&user.as_str()],
        |r| r.get(0),
    )
}

/// Binds a person of the provider to a user name, for good.
pub fn bind_identity(
    tx: &Tx<'_>,
    issuer: &str,
    subject: &str,
    user: &UserName,
    now: i64,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO identities (issuer, subject, \"user\", bound_at) VALUES (?1, ?2, ?3, ?4)",
        &[&issuer, &subject, &user.as_str(), &now],
    )?;
    Ok(())
}

/// A one-time code: who signed in, for the CLI holding the verifier of `cli_challenge`.
#[derive(Debug, Clone)]
pub struct CodeRow {
    /// Who signed in.
    pub user: UserName,
    /// Their countersign groups from the provider (JSON list).
    pub groups: String,
    /// When they authenticated at the provider (Unix seconds), if it said.
    pub auth_time: Option<i64>,
    /// The S256 challenge of the CLI's verifier.
    pub cli_challenge: String,
    /// The provider's refresh token, sealed (`oidc::SealKey`), if it gave one.
    pub refresh_token: Option<String>,
    /// When the provider vouched for the person (Unix seconds).
    pub vouched_at: i64,
}

/// Stores a one-time code (by its hash) until `expires_at`.
pub fn insert_code(
    tx: &Tx<'_>,
    code: &str,
    row: &CodeRow,
    expires_at: i64,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO login_codes (code_hash, \"user\", groups, auth_time, cli_challenge, \
         expires_at, refresh_token, vouched_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            &hash(code),
            &row.user.as_str(),
            &row.groups,
            &row.auth_time,
            &row.cli_challenge,
            &expires_at,
            &row.refresh_token,
            &row.vouched_at,
        ],
    )?;
    Ok(())
}

/// Takes a one-time code (once: it is deleted, whatever follows), if still in time.
pub fn take_code(tx: &Tx<'_>, code: &str, now: i64) -> Result<Option<CodeRow>, StoreError> {
    take(
        tx,
        "SELECT \"user\", groups, auth_time, cli_challenge, expires_at, refresh_token, \
         vouched_at FROM login_codes WHERE code_hash = ?1",
        "DELETE FROM login_codes WHERE code_hash = ?1",
        &hash(code),
        now,
        |r| {
            Ok(CodeRow {
                user: user_from(r.get(0)?)?,
                groups: r.get(1)?,
                auth_time: r.get(2)?,
                cli_challenge: r.get(3)?,
                refresh_token: r.get(5)?,
                vouched_at: r.get(6)?,
            })
        },
    )
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Its public id (for lists and revocation; never the token).
    pub id: String,
    /// Whose it is.
    pub user: UserName,
    /// How it was made (`oidc`).
    pub via: String,
    /// The countersign groups the provider gave at the person's latest sign-in (JSON list).
    pub groups: String,
    /// When they authenticated at the provider (Unix seconds), if it said.
    pub auth_time: Option<i64>,
    /// Made at (Unix seconds).
    pub created_at: i64,
    /// Ends at (Unix seconds), whatever happens.
    pub expires_at: i64,
    /// The provider's refresh token, sealed, if it gave one.
    pub refresh_token: Option<String>,
    /// When the provider vouched for the groups (Unix seconds).
    pub checked_at: i64,
    /// Until when its groups count (Unix seconds).
    pub groups_until: i64,
    /// When it is due for a re-check at the provider (with a refresh token).
    pub next_check_at: Option<i64>,
}

/// Stores a session under the hash of its token.
pub fn insert_session(tx: &Tx<'_>, token: &str, s: &SessionRow) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO sessions (id, token_hash, \"user\", via, groups, auth_time, created_at, \
         expires_at, refresh_token, checked_at, groups_until, next_check_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &[
            &s.id,
            &hash(token),
            &s.user.as_str(),
            &s.via,
            &s.groups,
            &s.auth_time,
            &s.created_at,
            &s.expires_at,
            &s.refresh_token,
            &s.checked_at,
            &s.groups_until,
            &s.next_check_at,
        ],
    )?;
    Ok(())
}

/// Ends every live session of `user` at `now` (offboarding); returns how many.
pub fn revoke_sessions_of(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<usize, StoreError> {
    let n = tx.exec(
        "UPDATE sessions SET revoked_at = ?2 WHERE \"user\" = ?1 AND revoked_at IS NULL \
         AND expires_at > ?2",
        &[&user.as_str(), &now],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) fn user_from(name: String) -> Result<UserName, StoreError> {
    UserName::parse(&name).map_err(|e| corrupt("user", &name, e))
}

/// A live session, as listed (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    /// Its public id.
    pub id: String,
    /// Whose it is.
    pub user: UserName,
    /// How it was made.
    pub via: String,
    /// Made at (Unix seconds).
    pub created_at: i64,
    /// Ends at (Unix seconds).
    pub expires_at: i64,
}

/// The sessions live at `now` (not revoked, not over), of `user` or everyone's, oldest
/// first.
pub fn live_sessions(
    tx: &Tx<'_>,
    user: Option<&UserName>,
    now: i64,
) -> Result<Vec<SessionListing>, StoreError> {
    let user = user.map(UserName::as_str);
    tx.all(
        "SELECT id, \"user\", via, created_at, expires_at FROM sessions \
         WHERE revoked_at IS NULL AND expires_at > ?1 \
         AND (CAST(?2 AS TEXT) IS NULL OR \"user\" = ?2) \
         ORDER BY created_at, id",
        &[&now, &user],
        |r| {
            Ok(SessionListing {
                id: r.get(0)?,
                user: user_from(r.get(1)?)?,
                via: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
            })
        },
    )
}

/// Ends the live session `id` at `now`; whose it was, or `None` if no such session is
/// live.
pub fn revoke_session(tx: &Tx<'_>, id: &str, now: i64) -> Result<Option<UserName>, StoreError> {
    let user: Option<String> = tx.opt(
        "SELECT \"user\" FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
        &[&id, &now],
        |r| r.get(0),
    )?;
    let Some(user) = user else {
        return Ok(None);
    };
    tx.exec(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        &[&id, &now],
    )?;
    Ok(Some(user_from(user)?))
}

/// Ends the live session whose token is `token` at `now`; its id and whose it was, or
/// `None` if it is not a live session.
pub fn revoke_session_by_token(
    tx: &Tx<'_>,
    token: &str,
    now: i64,
) -> Result<Option<(String, UserName)>, StoreError> {
    revoke_session_by_hash(tx, &hash(token), now)
}

/// [`revoke_session_by_token`] by the token's SHA-256.
pub fn revoke_session_by_hash(
    tx: &Tx<'_>,
    token_hash: &str,
    now: i64,
) -> Result<Option<(String, UserName)>, StoreError> {
    let found: Option<(String, String)> = tx.opt(
        "SELECT id, \"user\" FROM sessions WHERE token_hash = ?1 AND revoked_at IS NULL \
         AND expires_at > ?2",
        &[&token_hash, &now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some((id, user)) = found else {
        return Ok(None);
    };
    tx.exec(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        &[&id, &now],
    )?;
    Ok(Some((id, user_from(user)?)))
}

/// For each of `users` with a live session at `now` whose groups still count, the
/// groups (JSON lists) of the provider's freshest word on them: the session it vouched
/// for last (at a sign-in or a re-check). An older answer arriving later (a device login
/// polled late) never outranks a newer one. Words of the same second come all (their
/// order is unknown: the caller takes only what they agree on).
pub fn live_groups(
    tx: &Tx<'_>,
    users: &[&UserName],
    now: i64,
) -> Result<Vec<(UserName, Vec<String>)>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
    let marks: Vec<String> = (2..names.len() + 2).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "SELECT \"user\", groups, COALESCE(checked_at, created_at) FROM sessions \
         WHERE revoked_at IS NULL AND expires_at > ?1 \
         AND (groups_until IS NULL OR groups_until > ?1) AND \"user\" IN ({}) \
         ORDER BY \"user\", COALESCE(checked_at, created_at) DESC",
        marks.join(", ")
    );
    let mut params: Vec<&dyn super::sql::Param> = vec![&now];
    params.extend(names.iter().map(|n| n as &dyn super::sql::Param));
    let rows: Vec<(String, String, i64)> =
        tx.all(&sql, &params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let mut out: Vec<(UserName, Vec<String>)> = Vec::new();
    let mut freshest: Option<(String, i64)> = None;
    for (user, groups, at) in rows {
        match &freshest {
            // Another word on the same person: only one of the same second counts.
            Some((u, t)) if *u == user => {
                if at == *t
                    && let Some((_, words)) = out.last_mut()
                {
                    words.push(groups);
                }
            }
            _ => {
                freshest = Some((user.clone(), at));
                out.push((user_from(user)?, vec![groups]));
            }
        }
    }
    Ok(out)
}
