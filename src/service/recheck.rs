//! Re-reading people's groups at the identity provider between sign-ins. Every live
//! session with a refresh token is re-checked every `RECHECK_EVERY` (50 minutes, by
//! whichever replica claims it first): the provider's answer becomes that session's
//! groups, which are the person's when it is the freshest word on them
//! (`session.groups_changed` when the person's groups differ), and its `invalid_grant`
//! (the person deprovisioned, or their grant revoked) ends their live sessions and their
//! unfinished sign-ins (`identity.withdrawn`). Any other failure (the provider down, or
//! refusing otherwise) is tried again in 5 minutes; meanwhile the groups count until 75
//! minutes after the provider last vouched for them, then only the TOML's do.

use std::time::Duration;

use super::signin::GROUPS_WITH_RECHECK_SECONDS;
use super::{Service, ServiceError};
use crate::audit::{self, IdentityWithdrawn, NewEvent, SessionGroupsChanged};
use crate::names::UserName;
use crate::oidc::{RecheckError, Rechecked};
use crate::store::recheck::{self, Due, Vouched};
use crate::store::{Tx, sessions};

/// How long after the provider last vouched for a person through a session it is asked
/// again (so group changes take effect within the hour, with a round's delay to spare).
pub const RECHECK_EVERY: Duration = Duration::from_secs(50 * 60);
/// After a failed re-check, how soon it is tried again.
const RETRY_AFTER: i64 = 5 * 60;
/// Sessions re-checked in one round, at most.
const PER_ROUND: i64 = 100;

/// What a re-check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// The provider still vouches for the person, in the same groups.
    Unchanged,
    /// The provider still vouches for the person, in other groups.
    Changed,
    /// The provider no longer vouches for the person: this many live sessions ended.
    Withdrawn(usize),
    /// The provider could not be asked: tried again later.
    Retry,
}

impl Service {
    /// The sessions due for a re-check, claimed for this replica (their next check moved
    /// on by the retry delay: no other replica takes them meanwhile). None without
    /// `[oidc]`.
    pub fn claim_due_sessions(&self) -> Result<Vec<Due>, ServiceError> {
        let config = self.config();
        let Some(oidc) = &config.oidc else {
            return Ok(Vec::new());
        };
        let now = self.now().timestamp();
        let due = self
            .store
            .read(|tx| recheck::due(tx, &oidc.issuer, now, PER_ROUND))?;
        let mut mine = Vec::new();
        for d in due {
            if self
                .store
                .write(|tx| recheck::claim(tx, &d.id, d.next_check_at, now + RETRY_AFTER))?
            {
                mine.push(d);
            }
        }
        Ok(mine)
    }

    /// Records what the provider answered about `due`'s person.
    pub fn record_recheck(
        &self,
        due: &Due,
        answer: Result<Rechecked, RecheckError>,
    ) -> Result<Recheck, ServiceError> {
        let (config, now) = (self.config(), self.now());
        let at = now.timestamp();
        match answer {
            Ok(found) => {
                let Some(oidc) = &config.oidc else {
                    return Ok(Recheck::Retry);
                };
                let json = super::signin::groups_json(oidc, &found.groups);
                let sealed = found
                    .refresh_token
                    .as_deref()
                    .zip(self.identity_provider())
                    .map(|(t, p)| p.seal_key().seal(t, due.user.as_str()));
                self.store.write(|tx| {
                    let before = person_groups(tx, &due.user, at)?;
                    let vouched = Vouched {
                        groups: &json,
                        refresh_token: sealed.as_deref(),
                        at,
                        groups_until: at + GROUPS_WITH_RECHECK_SECONDS,
                        next_check_at: at + RECHECK_EVERY.as_secs() as i64,
                    };
                    recheck::vouched(tx, &due.id, &vouched)?;
                    let after = person_groups(tx, &due.user, at)?;
                    if before == after {
                        return Ok(Recheck::Unchanged);
                    }
                    let event = SessionGroupsChanged {
                        user: due.user.to_string(),
                        session: due.id.clone(),
                        before,
                        after,
                    };
                    audit::append(tx, now, &NewEvent::general(audit::SYSTEM_ACTOR, event))?;
                    Ok(Recheck::Changed)
                })
            }
            Err(RecheckError::Gone(why)) => self.store.write(|tx| {
                recheck::forget_unfinished(tx, &due.user)?;
                let ended = sessions::revoke_sessions_of(tx, &due.user, at)?;
                if ended == 0 {
                    // Ended already (by the re-check of another of their sessions).
                    return Ok(Recheck::Withdrawn(0));
                }
                let event = IdentityWithdrawn {
                    user: due.user.to_string(),
                    reason: why.clone(),
                    sessions_ended: ended,
                };
                audit::append(tx, now, &NewEvent::general(audit::SYSTEM_ACTOR, event))?;
                Ok(Recheck::Withdrawn(ended))
            }),
            Err(RecheckError::Failed(e)) => {
                // Tried again when the claim said (in `RETRY_AFTER`).
                tracing::warn!(
                    user = %due.user,
                    error = %e,
                    "could not re-check a session at the identity provider"
                );
                Ok(Recheck::Retry)
            }
        }
    }

    /// `due`'s refresh token does not open (the client secret changed since it was
    /// sealed): it is forgotten, and that session's provider groups stop counting.
    pub fn recheck_unusable(&self, due: &Due) -> Result<(), ServiceError> {
        let now = self.now().timestamp();
        tracing::warn!(
            user = %due.user,
            session = %due.id,
            "a refresh token does not open (was the client secret changed?); its session's \
             provider groups stop counting"
        );
        self.store.write(|tx| recheck::unusable(tx, &due.id, now))?;
        Ok(())
    }
}

/// `user`'s groups from the provider at `now` (the freshest word among their live
/// sessions; none when no session's groups count).
fn person_groups(tx: &Tx<'_>, user: &UserName, now: i64) -> Result<Vec<String>, ServiceError> {
    let words = sessions::live_groups(tx, &[user], now)?;
    let groups = match words.first() {
        Some((_, words)) => super::people::agreed(user, words)?,
        None => Default::default(),
    };
    Ok(groups.iter().map(ToString::to_string).collect())
}
