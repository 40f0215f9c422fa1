//! Binding the person the provider vouched for to their user name.

use chrono::{DateTime, Utc};

use crate::audit::{self, IdentityBound, NewEvent, SignInRefused};
use crate::error_code::ErrorCode;
use crate::names::UserName;
use crate::oidc::SignedIn;
use crate::service::{Service, ServiceError, disabled_error};
use crate::store::{Tx, sessions, users as disabled};

impl Service {
    /// The user name bound to `signed`'s person, binding it the first time; a refusal
    /// (committed with its audit row) when the name or the person is bound otherwise.
    pub(in crate::service) fn bind(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        signed: &SignedIn,
    ) -> Result<Result<UserName, ServiceError>, ServiceError> {
        let refuse = |code: ErrorCode,
                      message: String|
         -> Result<Result<UserName, ServiceError>, ServiceError> {
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    audit::SYSTEM_ACTOR,
                    SignInRefused {
                        code: code.as_str().to_owned(),
                        message: message.clone(),
                        issuer: signed.issuer.clone(),
                        subject: signed.subject.clone(),
                        claimed_user: signed.username.clone(),
                    },
                ),
            )?;
            Ok(Err(ServiceError::SignIn { code, message }))
        };
        let claim = &self
            .config()
            .oidc
            .as_ref()
            .map(|o| o.username_claim.clone())
            .unwrap_or_default();
        let name = match signed.username.as_deref().map(UserName::parse) {
            Some(Ok(name)) => name,
            Some(Err(e)) => {
                return refuse(
                    ErrorCode::SigninFailed,
                    format!("the identity provider's {claim} is not a countersign user name: {e}"),
                );
            }
            None => {
                return refuse(
                    ErrorCode::SigninFailed,
                    format!("the identity provider sent no {claim} claim"),
                );
            }
        };
        // A name the config reserves for one person of the provider is theirs alone.
        if let Some(reserved) = self
            .config()
            .policy
            .users
            .get(&name)
            .and_then(|u| u.oidc_subject.as_deref())
            && reserved != signed.subject
        {
            return refuse(
                ErrorCode::IdentityConflict,
                format!(
                    "user {name} is reserved in the config for another person at the identity \
                     provider (oidc_subject); an admin must look into it"
                ),
            );
        }
        match sessions::identity_user(tx, &signed.issuer, &signed.subject)? {
            Some(bound) if bound == name => return Ok(Ok(name)),
            Some(bound) => {
                return refuse(
                    ErrorCode::IdentityConflict,
                    format!(
                        "this account at the identity provider is bound to user {bound}, not \
                         {name}; an admin must look into it"
                    ),
                );
            }
            None => {}
        }
        if sessions::user_is_bound(tx, &name)? {
            return refuse(
                ErrorCode::IdentityConflict,
                format!(
                    "user {name} is bound to another account at the identity provider; an admin \
                     must look into it"
                ),
            );
        }
        // A disabled user's name is not bound to a new person: a recycled account at the
        // provider must not claim it while its owner is away.
        if disabled::is_disabled(tx, &name)? {
            return Ok(Err(disabled_error(&name)));
        }
        sessions::bind_identity(tx, &signed.issuer, &signed.subject, &name, now.timestamp())?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                name.as_str(),
                IdentityBound {
                    user: name.to_string(),
                    issuer: signed.issuer.clone(),
                    subject: signed.subject.clone(),
                },
            ),
        )?;
        Ok(Ok(name))
    }
}
