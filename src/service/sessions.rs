//! Sessions once made: the admins' list and revocation, and `logout`.

use super::{Service, ServiceError};
use crate::audit::{self, NewEvent, SessionRevoked};
use crate::names::UserName;
use crate::store::sessions::{self, SessionListing};

impl Service {
    /// The live sessions, of `user` or everyone's (admins only).
    pub fn list_sessions(
        &self,
        actor: &UserName,
        user: Option<&UserName>,
    ) -> Result<Vec<SessionListing>, ServiceError> {
        self.require_admin(actor, "list sessions")?;
        let now = self.now().timestamp();
        Ok(self
            .store
            .read(|tx| sessions::live_sessions(tx, user, now))?)
    }

    /// Ends the live session `id` (admins only), with its `session.revoked` audit row;
    /// whose it was. `not_found` when no such session is live.
    pub fn revoke_session(&self, actor: &UserName, id: &str) -> Result<UserName, ServiceError> {
        self.require_admin(actor, "revoke sessions")?;
        let now = self.now();
        self.store.write(|tx| {
            let user = sessions::revoke_session(tx, id, now.timestamp())?
                .ok_or_else(|| ServiceError::NotFound(format!("no live session {id}")))?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    actor.as_str(),
                    SessionRevoked {
                        user: user.to_string(),
                        session: id.to_owned(),
                    },
                ),
            )?;
            Ok(user)
        })
    }

    /// Ends the caller's own session (`countersign logout`), with its `session.revoked`
    /// audit row; its id. `token` must be a live session: an API token is refused
    /// (an operator revokes those).
    pub fn end_own_session(&self, token: &str) -> Result<String, ServiceError> {
        let now = self.now();
        self.store.write(|tx| {
            let (id, user) = sessions::revoke_session_by_token(tx, token, now.timestamp())?
                .ok_or_else(|| {
                    ServiceError::Invalid(
                        "only a session from `countersign login` can be ended this way; API \
                         tokens are revoked by an operator (`countersign token revoke`)"
                            .into(),
                    )
                })?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    user.as_str(),
                    SessionRevoked {
                        user: user.to_string(),
                        session: id.clone(),
                    },
                ),
            )?;
            Ok(id)
        })
    }
}
