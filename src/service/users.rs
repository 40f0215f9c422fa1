//! Disabling (the lasting part of offboarding, written by `revoke_user`) and enabling
//! users again.
//!
//! A disabled user is refused every credential: their tokens are revoked for good in the
//! disabling transaction, authentication (tokens and SSH keys) refuses them, and every
//! state change checks its actor again in its own transaction. The mark lives in the
//! database, so it survives restarts and overrides the config.

use crate::service::SteppedUp;
use chrono::{DateTime, Utc};

use super::revoke::UserRevocation;
use super::{Service, ServiceError, unix, view};
use crate::audit::{self, AuditEvent, NewEvent, TokenRevoked, UserDisabled, UserEnabled};
use crate::names::{Text, UserName};
use crate::store::Tx;
use crate::store::users;

/// A user enabled again, and who had disabled them, when and why.
#[derive(Debug, Clone)]
pub struct EnabledUser {
    /// The user enabled.
    pub user: UserName,
    /// Their disabling, as it was recorded.
    pub was: users::Disabled,
}

/// Marks `user` disabled and revokes their live tokens and sessions; the caller revokes their
/// certificates and pending requests, then records it all with [`record_disabling`].
pub(super) fn disable(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    actor: &UserName,
    user: &UserName,
    reason: &Text,
    done: &mut UserRevocation,
) -> Result<(), ServiceError> {
    let newly = users::disable(tx, user, unix(now), actor.as_str(), reason.as_str())?;
    done.already_disabled = !newly;
    done.tokens_revoked = crate::store::tokens::revoke_live(tx, user, unix(now))?;
    // Sessions end for good too: enabling the user later revives none of them.
    crate::store::sessions::revoke_sessions_of(tx, user, unix(now))?;
    Ok(())
}

/// The audit row of a disabling: `user.disabled` the first time (by whom, why, and what
/// it ended). Revoking a user already disabled writes no second one; a token that
/// appeared meanwhile (made by an older version) is recorded as `token.revoked`.
pub(super) fn record_disabling(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    actor: &UserName,
    user: &UserName,
    reason: &Text,
    done: &UserRevocation,
) -> Result<(), ServiceError> {
    let event: AuditEvent = if !done.already_disabled {
        UserDisabled {
            user: user.to_string(),
            reason: reason.as_str().to_owned(),
            tokens_revoked: done.tokens_revoked,
            certificates_revoked: done.revoked.len(),
            requests_cancelled: done.cancelled.len(),
        }
        .into()
    } else if done.tokens_revoked > 0 {
        TokenRevoked {
            user: user.to_string(),
            tokens: done.tokens_revoked,
            reason: Some(reason.as_str().to_owned()),
        }
        .into()
    } else {
        return Ok(());
    };
    audit::append(tx, now, &NewEvent::general(actor.as_str(), event))?;
    Ok(())
}

impl Service {
    /// `not_found` unless `user` is in the config or the database has a record of them
    /// (a user removed from the config may still hold certificates).
    pub(super) fn require_known(&self, tx: &Tx<'_>, user: &UserName) -> Result<(), ServiceError> {
        if self.config().policy.users.contains_key(user) || users::has_record_of(tx, user)? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no user {user} in the config or the database"
            )))
        }
    }

    /// Lifts a user's disabled mark (admins): they may authenticate again with tokens
    /// created from now on and with their SSH keys. Their old tokens stay revoked.
    pub fn enable_user(
        &self,
        who: &SteppedUp,
        user: &UserName,
        reason: Option<Text>,
    ) -> Result<EnabledUser, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::Grant("enabling a user"))?;
        self.require_admin(actor, "enable users")?;
        let now = self.now();
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            self.require_known(tx, user)?;
            let was = users::disabled(tx, user)?.ok_or_else(|| ServiceError::Conflict {
                code: crate::error_code::ErrorCode::NotDisabled,
                message: format!("user {user} is not disabled"),
            })?;
            users::enable(tx, user)?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    actor.as_str(),
                    UserEnabled {
                        user: user.to_string(),
                        reason: reason.as_ref().map(|r| r.as_str().to_owned()),
                        disabled_at: view::rfc3339(was.at),
                        disabled_by: was.by.clone(),
                    },
                ),
            )?;
            Ok(EnabledUser {
                user: user.clone(),
                was,
            })
        })
    }
}
