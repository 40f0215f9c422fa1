//! Disabled users: the lasting mark offboarding leaves. Kept in the database, not the
//! config, so it survives restarts and overrides the config: a disabled user is refused
//! every credential (tokens, SSH keys) until an admin enables them again.
//!
//! Invariant every backend must keep: a user is disabled exactly while a row names them,
//! and the row is written in the same transaction as the revocations and the
//! `user.disabled` audit row that offboarding writes.

use super::{StoreError, Tx};
use crate::names::UserName;

/// Who disabled a user, when (unix seconds) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// When (unix seconds).
    pub at: i64,
    /// Who disabled the user.
    pub by: String,
    /// The admin's reason.
    pub reason: String,
}

/// Marks `user` disabled; false (nothing written) if they already were.
pub fn disable(
    tx: &Tx<'_>,
    user: &UserName,
    at: i64,
    by: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    let n = tx.exec(
        "INSERT INTO disabled_users (\"user\", disabled_at, disabled_by, reason) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (\"user\") DO NOTHING",
        &[&user.as_str(), &at, &by, &reason],
    )?;
    Ok(n == 1)
}

/// Lifts the mark; false if `user` was not disabled.
pub fn enable(tx: &Tx<'_>, user: &UserName) -> Result<bool, StoreError> {
    let n = tx.exec(
        "DELETE FROM disabled_users WHERE \"user\" = ?1",
        &[&user.as_str()],
    )?;
    Ok(n == 1)
}

/// Whether, and since when and by whom, `user` is disabled.
pub fn disabled(tx: &Tx<'_>, user: &UserName) -> Result<Option<Disabled>, StoreError> {
    tx.opt(
        "SELECT disabled_at, disabled_by, reason FROM disabled_users WHERE \"user\" = ?1",
        &[&user.as_str()],
        |r| {
            Ok(Disabled {
                at: r.get(0)?,
                by: r.get(1)?,
                reason: r.get(2)?,
            })
        },
    )
}

/// Whether `user` is disabled.
pub fn is_disabled(tx: &Tx<'_>, user: &UserName) -> Result<bool, StoreError> {
    Ok(tx
        .opt(
            "SELECT 1 FROM disabled_users WHERE \"user\" = ?1",
            &[&user.as_str()],
            |_| Ok(()),
        )?
        .is_some())
}

/// Whether the database has any record of `user`: a request (every certificate has
/// one, with the same requester), a token (live or revoked), the disabled mark, or a
/// sign-in with the identity provider (a bound identity). A user removed from the
/// config, or never in it, keeps their history, and so stays revocable.
pub fn has_record_of(tx: &Tx<'_>, user: &UserName) -> Result<bool, StoreError> {
    tx.one(
        "SELECT EXISTS (SELECT 1 FROM requests WHERE requester = ?1) \
         OR EXISTS (SELECT 1 FROM tokens WHERE \"user\" = ?1) \
         OR EXISTS (SELECT 1 FROM disabled_users WHERE \"user\" = ?1) \
         OR EXISTS (SELECT 1 FROM identities WHERE \"user\" = ?1)",
        &[&user.as_str()],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, tokens};

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    #[test]
    fn disabling_twice_marks_once_and_enabling_lifts_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let alice = user("alice");
        store
            .write(|tx| {
                assert!(disable(tx, &alice, 10, "bob", "left")?);
                assert!(
                    !disable(tx, &alice, 20, "carol", "again")?,
                    "already disabled"
                );
                let mark = disabled(tx, &alice)?.unwrap();
                assert_eq!(
                    (mark.at, mark.by.as_str()),
                    (10, "bob"),
                    "the first one stays"
                );
                assert!(is_disabled(tx, &alice)?);
                assert!(enable(tx, &alice)?);
                assert!(!enable(tx, &alice)?, "not disabled any more");
                assert!(!is_disabled(tx, &alice)?);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    #[test]
    fn a_name_is_known_by_a_token_or_the_mark_and_revoked_tokens_stay_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let token = tokens::generate();
        store
            .write(|tx| {
                assert!(!has_record_of(tx, &alice)?);
                tokens::insert(
                    tx,
                    &token.hash,
                    &alice,
                    1,
                    &tokens::TokenKind {
                        bot_scopes: None,
                        expires_at: i64::MAX,
                    },
                )?;
                disable(tx, &bob, 1, "carol", "left")?;
                assert!(has_record_of(tx, &alice)? && has_record_of(tx, &bob)?);
                assert!(!has_record_of(tx, &carol)?);
                assert_eq!(tokens::revoke_live(tx, &alice, 2)?, 1);
                assert_eq!(tokens::revoke_live(tx, &alice, 3)?, 0, "live ones only");
                let owner = tokens::lookup(tx, &token.hash, 0)?.unwrap();
                assert!(owner.revoked && owner.user == alice);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}
