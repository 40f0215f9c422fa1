//! Who a bearer credential is, and how they proved it: API tokens (a person's, or a
//! service account's with its scopes, each with an end) and sessions from sign-in; and
//! the step-up that approving needs.

use super::{DEVICE_VIA, Scope, Service, ServiceError, chain, disabled_error};
use crate::names::UserName;
use crate::store::tokens;

impl Service {
    /// [`Service::authenticate`], and how the caller signed in.
    pub fn authenticate_credential(&self, secret: &str) -> Result<Authenticated, ServiceError> {
        let config = self.config();
        let now = self.now().timestamp();
        let hashed = tokens::hash(secret);
        // One query (the token or session, its user's disabled mark), no transaction; on
        // PostgreSQL, none while this replica remembers the row (`store/credentials.rs`).
        tokens::owner(&self.store, &hashed, now)
            .map_err(ServiceError::from)
            .and_then(|owner| {
                let owner = owner.ok_or(ServiceError::Unauthenticated)?;
                let user = owner.user;
                if owner.disabled {
                    return Err(disabled_error(&user));
                }
                if owner.revoked {
                    return Err(ServiceError::Unauthenticated);
                }
                if owner.session {
                    // A session is a person the identity provider vouched for: good while
                    // sign-in is configured, whether or not the config names them.
                    return match &config.oidc {
                        Some(_) => Ok((
                            user,
                            Credential::Session {
                                auth_time: owner.auth_time,
                                device: owner.via.as_deref() == Some(DEVICE_VIA),
                                web: owner.via.as_deref() == Some(super::WEB_VIA),
                            },
                        )),
                        None => Err(ServiceError::Unauthenticated),
                    };
                }
                if !config.policy.users.contains_key(&user) {
                    return Err(ServiceError::Unauthenticated);
                }
                // Every token ends; one made before tokens had an end lives `max_ttl` from
                // its creation.
                let ends = match owner.created_at {
                    Some(created) => {
                        super::token::token_end(owner.expires_at, created, config.tokens.max_ttl)
                    }
                    None => owner.expires_at.unwrap_or(0),
                };
                if now >= ends {
                    return Err(ServiceError::SignIn {
                        code: crate::error_code::ErrorCode::TokenExpired,
                        message: "this token has expired: an operator creates a new one \
                              (`countersign token create`)"
                            .into(),
                    });
                }
                let people_sign_in = config.oidc.as_ref().is_some_and(|o| !o.human_tokens);
                if let Some(scopes) = &owner.bot_scopes {
                    // A scoped (`--bot`) token of a person is still a person's hand-made
                    // token: only a service account's gets past `human_tokens = false`.
                    let service_account = config.policy.users.get(&user).is_some_and(|u| u.bot);
                    if people_sign_in && !service_account {
                        return Err(ServiceError::Unauthenticated);
                    }
                    return Ok((user, Credential::Bot(ScopeSet::parse(scopes))));
                }
                if people_sign_in {
                    return Err(ServiceError::Unauthenticated);
                }
                Ok((user, Credential::Token))
            })
            .inspect(|(_, credential)| {
                if matches!(credential, Credential::Token | Credential::Bot(_)) {
                    self.note_token_use(&hashed, now);
                }
            })
            .map(|(user, credential)| Authenticated { user, credential })
    }

    /// Records an API token's use, at most once a minute per token and replica (best
    /// effort: a failure is logged, never the caller's). It rides the writer's next
    /// group commit: the caller waits for no commit (on SQLite this runs on an async
    /// worker), and under load, on PostgreSQL, it takes no turn of its own at the write
    /// lock (an idle writer makes it a batch of its own).
    fn note_token_use(&self, hashed: &str, now: i64) {
        {
            let mut seen = self.token_use.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(hashed).is_some_and(|at| now - at < 60) {
                return;
            }
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert(hashed.to_owned(), now);
        }
        let hashed = hashed.to_owned();
        self.store.write_later(move |tx| {
            tokens::used(tx, &hashed, now).inspect_err(
                |e| tracing::warn!(error = %chain(e), "could not record a token's use"),
            )
        });
    }

    /// Approving is a step-up action: a caller who signed in through the identity
    /// provider must have authenticated there within `[oidc] approval_max_auth_age`,
    /// else `reauth_required` (hand-made tokens are not sessions: `human_tokens = false`
    /// turns them off).
    pub fn check_step_up(&self, credential: &Credential) -> Result<(), ServiceError> {
        self.check_step_up_for(credential, StepUp::Approve)
    }

    /// [`Service::check_step_up`] for `action`: breaking the glass and reviewing ask it
    /// as approving does; registering an SSH key asks it too, since a registered key
    /// approves at the SSH front door (else an old or phished session would approve
    /// there without the sign-in approving needs); so do an admin's acts that give access
    /// back or more of it (a phished admin session re-enabling an offboarded approver).
    pub fn check_step_up_for(
        &self,
        credential: &Credential,
        action: StepUp,
    ) -> Result<(), ServiceError> {
        let config = self.config();
        let (
            Some(oidc),
            Credential::Session {
                auth_time, device, ..
            },
        ) = (&config.oidc, credential)
        else {
            return Ok(());
        };
        // A device login can be started by anyone and sent to someone else to confirm
        // (device-code phishing): a requester who got an approver to confirm theirs would
        // hold the approver's session. So such sessions never approve, nor register a key
        // that would approve for them.
        if *device {
            let loopback = "sign in with a browser on this computer (`countersign login \
                            --loopback`)";
            let message = match action {
                StepUp::Approve => format!(
                    "a session from the device flow (`login --device`) cannot approve: \
                     {loopback}, or approve over the SSH front door"
                ),
                StepUp::RegisterKey => format!(
                    "a session from the device flow (`login --device`) cannot register SSH \
                     keys (a registered key approves at the SSH front door): {loopback}"
                ),
                StepUp::Grant(_) | StepUp::HostToken => format!(
                    "a session from the device flow (`login --device`) is not enough for \
                     {} (it gives access): {loopback}",
                    action.grant().unwrap_or_default()
                ),
            };
            return Err(ServiceError::SignIn {
                code: crate::error_code::ErrorCode::ReauthRequired,
                message,
            });
        }
        let max_age = i64::try_from(oidc.approval_max_auth_age.as_secs()).unwrap_or(i64::MAX);
        let now = self.now().timestamp();
        match auth_time {
            // Not in the future either (beyond the clock skew ID tokens are allowed).
            Some(at) if now.saturating_sub(*at) <= max_age && *at <= now + 120 => Ok(()),
            _ => Err(ServiceError::SignIn {
                code: crate::error_code::ErrorCode::ReauthRequired,
                message: format!(
                    "{} needs a sign-in at the identity provider within the last {}: sign in \
                     again with `countersign login --step-up` (the provider asks for your \
                     password again) and retry",
                    match action {
                        StepUp::Approve => "approving".to_owned(),
                        StepUp::RegisterKey =>
                            "registering an SSH key (it approves at the SSH front door)".into(),
                        StepUp::Grant(_) | StepUp::HostToken =>
                            format!("{} (it gives access)", action.grant().unwrap_or_default()),
                    },
                    humantime::format_duration(oidc.approval_max_auth_age)
                ),
            }),
        }
    }
}

impl Service {
    /// The caller `who`, as this service authenticated them, may take the step-up
    /// `action` now ([`Service::check_step_up_for`]): the proof the service's acts that
    /// decide or give access take in place of a bare name, so no front end can forget to
    /// ask, nor pair a name with a credential that is not its own. A service account's
    /// token steps up for nothing but a host join token, with its `host-token` scope
    /// (the API's scope check refuses the rest first; this is the service's own).
    pub fn step_up(&self, who: &Authenticated, action: StepUp) -> Result<SteppedUp, ServiceError> {
        if let Credential::Bot(scopes) = who.credential
            && !(action == StepUp::HostToken && scopes.contains(super::Scope::HostToken))
        {
            return Err(ServiceError::SignIn {
                code: crate::error_code::ErrorCode::ScopeNotAllowed,
                message: "a service account's token never approves, registers keys or \
                          gives access"
                    .into(),
            });
        }
        self.check_step_up_for(&who.credential, action)?;
        Ok(SteppedUp {
            user: who.user.clone(),
            credential: Some(who.credential),
            action,
        })
    }
}

/// A caller the service authenticated: who, and with what. Made only by
/// [`Service::authenticate_credential`], so a [`SteppedUp`] is never made for a name
/// and a credential that did not come together.
#[derive(Debug, Clone)]
pub struct Authenticated {
    user: UserName,
    credential: Credential,
}

impl Authenticated {
    /// Who.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// With what.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }
}

/// Proof that a person may decide or give access now: a recent sign-in at the identity
/// provider (never a device-flow session), a token that is not a session, or a
/// registered SSH key proven at the front door. Made only by [`Service::step_up`] and
/// [`SteppedUp::at_front_door`]; approving, breaking the glass, reviewing, registering
/// a key and an admin's acts that give access take it.
#[derive(Debug, Clone)]
pub struct SteppedUp {
    user: UserName,
    /// How they proved it over HTTP; `None` at the SSH front door.
    credential: Option<Credential>,
    /// What it was made for: the act that takes it checks ([`SteppedUp::user_for`]).
    action: StepUp,
}

impl SteppedUp {
    /// Someone the SSH front door authenticated with a registered key: the key, proven
    /// at the connection, is the step-up there (`src/ssh`), for its decisions
    /// (approving, breaking the glass, reviewing).
    pub(crate) fn at_front_door(user: UserName) -> Self {
        SteppedUp {
            user,
            credential: None,
            action: StepUp::Approve,
        }
    }

    /// Who.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// Who, for the act `action`: a proof made for another kind of act is refused
    /// (`forbidden`), so that one made to approve never registers a key or gives access,
    /// should the checks of the kinds ever differ.
    pub(crate) fn user_for(&self, action: StepUp) -> Result<&UserName, ServiceError> {
        if std::mem::discriminant(&self.action) == std::mem::discriminant(&action) {
            Ok(&self.user)
        } else {
            tracing::error!(made = ?self.action, asked = ?action, "a step-up proof of another act");
            Err(ServiceError::Forbidden(
                "this sign-in was checked for another act: sign in again and retry".into(),
            ))
        }
    }

    /// How they proved it over HTTP (`None` at the SSH front door).
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }
}

/// What a step-up sign-in is asked for ([`Service::check_step_up_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUp {
    /// Approving, breaking the glass, reviewing a use of it.
    Approve,
    /// Registering an SSH key (`POST /v1/keys/challenge`, `POST /v1/keys`).
    RegisterKey,
    /// An admin's act that gives access, named as "enabling a user": enabling a user,
    /// allowing one more break-glass use.
    Grant(&'static str),
    /// Making a host join token (an admin's, or a service account's with `host-token`).
    HostToken,
}

impl StepUp {
    /// What is asked for, in words, when it gives access.
    fn grant(self) -> Option<&'static str> {
        match self {
            StepUp::Grant(what) => Some(what),
            StepUp::HostToken => Some("making a host join token"),
            StepUp::Approve | StepUp::RegisterKey => None,
        }
    }
}

/// A bot token's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// The scopes of a stored list (comma-separated; unknown names give nothing).
    pub fn parse(list: &str) -> Self {
        ScopeSet(
            list.split(',')
                .filter_map(|s| Scope::parse(s.trim()))
                .fold(0, |bits, s| bits | ScopeSet::bit(s)),
        )
    }

    fn bit(scope: Scope) -> u8 {
        match scope {
            Scope::Request => 1,
            Scope::Fetch => 2,
            Scope::ReadAudit => 4,
            Scope::HostToken => 8,
        }
    }

    /// Whether `scope` is among them.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & ScopeSet::bit(scope) != 0
    }

    /// The scopes, in their order, as written (`request`, `fetch`, `read-audit`).
    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect()
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A hand-made API token (`countersign token create`).
    Token,
    /// A service account's token (`token create --bot`): only its scopes, never a
    /// decision.
    Bot(ScopeSet),
    /// A session from a sign-in with the identity provider.
    Session {
        /// When the person last authenticated there (Unix seconds), if it said.
        auth_time: Option<i64>,
        /// Made by the device flow (`login --device`).
        device: bool,
        /// Made by the web UI's sign-in: good only as that browser's cookie, never as a
        /// bearer token.
        web: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_proof_serves_only_the_kind_of_act_it_was_made_for() {
        let alice = UserName::parse("alice").unwrap();
        let door = SteppedUp::at_front_door(alice.clone());
        assert_eq!(door.user_for(StepUp::Approve).unwrap(), &alice);
        for other in [
            StepUp::RegisterKey,
            StepUp::Grant("enabling a user"),
            StepUp::HostToken,
        ] {
            assert!(matches!(
                door.user_for(other),
                Err(ServiceError::Forbidden(_))
            ));
        }
        let granted = SteppedUp {
            action: StepUp::Grant("allowing one more break-glass use"),
            ..door
        };
        // Any act that gives access, whatever its name.
        assert!(granted.user_for(StepUp::Grant("enabling a user")).is_ok());
        assert!(granted.user_for(StepUp::Approve).is_err());
    }
}
