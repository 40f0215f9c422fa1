//! Creating and revoking a user's API tokens: commands run by hand (`countersign token`)
//! on the database alone, outside a running service.

use super::ServiceError;
use crate::audit::{self, NewEvent, TokenCreated, TokenRevoked};
use crate::clock::{Clock, SystemClock};
use crate::names::UserName;
use crate::policy::Policy;
use crate::store::{Store, tokens, users as disabled};

/// Creates a token for a configured user; returns the secret (shown once). Needs only
/// the database (opened with `state::open_existing`: after `init` or a first `serve`),
/// and so goes by the system clock.
pub fn create_token(
    store: &Store,
    policy: &Policy,
    user: &UserName,
    operator: &str,
) -> Result<String, ServiceError> {
    if !policy.users.contains_key(user) {
        return Err(ServiceError::Invalid(format!(
            "user {user} is not defined in the config"
        )));
    }
    let token = tokens::generate();
    let now = SystemClock.now();
    store.write(|tx| {
        // A token made now would come alive when the user is enabled: enabling gives
        // back no token, old or new, that nobody asked for after it.
        if disabled::is_disabled(tx, user)? {
            return Err(ServiceError::Invalid(format!(
                "user {user} is disabled; an admin enables them first (countersign user enable \
                 {user})"
            )));
        }
        tokens::insert(tx, &token.hash, user, now.timestamp())?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                operator,
                TokenCreated {
                    user: user.to_string(),
                },
            ),
        )?;
        Ok::<_, ServiceError>(())
    })?;
    Ok(token.secret)
}

/// Revokes every token of `user`; returns how many there were. A name neither in
/// `policy` nor in the database (a typo) is `NotFound`, not a silent success. Like
/// [`create_token`], by the system clock.
pub fn revoke_tokens(
    store: &Store,
    policy: &Policy,
    user: &UserName,
    operator: &str,
) -> Result<usize, ServiceError> {
    let now = SystemClock.now();
    store.write(|tx| {
        if !policy.users.contains_key(user) && !disabled::has_record_of(tx, user)? {
            return Err(ServiceError::NotFound(format!(
                "no user {user}: not in the config and never seen by this CA"
            )));
        }
        let n = tokens::revoke_all(tx, user)?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                operator,
                TokenRevoked {
                    user: user.to_string(),
                    tokens: n,
                    reason: None,
                },
            ),
        )?;
        Ok::<_, ServiceError>(n)
    })
}
