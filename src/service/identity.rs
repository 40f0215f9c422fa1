//! The operator's view of who is bound to whom at the identity provider, and undoing a
//! binding (`countersign identity list|unbind`, on the CA host, like `token`): after the
//! issuer changed, or a person's account was re-created at the provider, every sign-in
//! with their name would be refused `identity_conflict` until the old binding goes.
//!
//! Only the operator on the CA host may unbind, never an admin over the API: an admin who
//! could unbind a colleague's name could then sign in under it from an account of their
//! own, and approve as that colleague.

use super::ServiceError;
use crate::audit::{self, IdentityUnbound, NewEvent};
use crate::clock::{Clock, SystemClock};
use crate::names::{Text, UserName};
use crate::store::identities::{self, Binding};
use crate::store::{Store, sessions};

/// Every binding of a user name to a person of the provider.
pub fn list_identities(store: &Store) -> Result<Vec<Binding>, ServiceError> {
    Ok(store.read(identities::all)?)
}

/// Removes `user`'s binding (with its `identity.unbound` audit row, by `operator`, for
/// `reason`) and ends their live sessions; the binding it was, and how many sessions
/// ended. `not_found` when the name is bound to nobody.
pub fn unbind_identity(
    store: &Store,
    user: &UserName,
    reason: &Text,
    operator: &str,
) -> Result<(Binding, usize), ServiceError> {
    let now = SystemClock.now();
    store.write(|tx| {
        let binding = identities::unbind(tx, user)?.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "user {user} is not bound to a person of the provider"
            ))
        })?;
        let ended = sessions::revoke_sessions_of(tx, user, now.timestamp())?;
        let event = IdentityUnbound {
            user: user.to_string(),
            issuer: binding.issuer.clone(),
            subject: binding.subject.clone(),
            reason: reason.as_str().to_owned(),
            sessions_ended: ended,
        };
        audit::append(tx, now, &NewEvent::general(operator, event))?;
        Ok((binding, ended))
    })
}
