//! Sign-in from the web UI. The browser that starts the sign-in is the one that comes
//! back from the provider (the sign-in cookie says so), so the session is made at the
//! callback and handed to that browser as a cookie: no one-time code, no CLI.

use crate::audit::{self, NewEvent, SessionRevoked};
use crate::names::UserName;
use crate::oidc::{Pending, SignedIn};
use crate::service::signin::{NewSession, SignedInPerson, oidc_of};
use crate::service::{Service, ServiceError, disabled_error};
use crate::store::sessions::{self, LoginRow};
use crate::store::{tokens, users as disabled};

/// How a session made by the web UI's sign-in says it was made (`session list`).
pub const WEB_VIA: &str = "oidc-web";

/// Checks where the browser goes after a web sign-in: a path on this server (`/...`),
/// never another site (`//host`, `/\host`, a scheme), printable ASCII, at most 300 bytes.
pub fn check_web_next(next: &str) -> Result<(), ServiceError> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 300
        && next
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Invalid(
            "next must be a path on this server, such as /requests/r-...".into(),
        ))
    }
}

impl Service {
    /// Records a sign-in of the web UI in progress, before the browser leaves for the
    /// provider; `next` is where it goes once signed in, `replaces` the session token
    /// the browser held (its session ends when the new one is made).
    pub fn record_web_login(
        &self,
        pending: &Pending,
        next: &str,
        replaces: Option<&str>,
    ) -> Result<(), ServiceError> {
        check_web_next(next)?;
        let row = LoginRow {
            nonce: pending.nonce.clone(),
            pkce_verifier: pending.pkce_verifier.clone(),
            cli_redirect: String::new(),
            cli_challenge: String::new(),
            device_hash: None,
            web_next: Some(next.to_owned()),
            web_replaces: replaces.map(tokens::hash),
        };
        self.store_login(&pending.state, &row)
    }

    /// Binds the person the provider vouched for to their user name (the first time)
    /// and makes their session (with its `session.created` audit row), for the browser;
    /// the session the browser held before (`replaces`, its token's hash) ends in the
    /// same transaction (`session.revoked`): signing in again (step-up) leaves no
    /// session behind that nobody holds any more.
    pub fn complete_web_login(
        &self,
        signed: &SignedIn,
        replaces: Option<&str>,
    ) -> Result<NewSession, ServiceError> {
        let (config, now) = (self.config(), self.now());
        let oidc = oidc_of(&config)?;
        let groups: Vec<String> = oidc
            .mapped_groups(signed.groups.iter().map(String::as_str))
            .iter()
            .map(ToString::to_string)
            .collect();
        let groups =
            serde_json::to_string(&groups).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.store.write(|tx| {
            let user: UserName = match self.bind(tx, now, signed)? {
                Ok(user) => user,
                Err(e) => return Ok(Err(e)),
            };
            if disabled::is_disabled(tx, &user)? {
                return Ok(Err(disabled_error(&user)));
            }
            let refresh_token = self.sealed_refresh_token(signed, &user);
            let person = SignedInPerson {
                user: &user,
                groups: &groups,
                auth_time: signed.auth_time.map(|t| t.timestamp()),
                refresh_token: refresh_token.as_deref(),
                vouched_at: now.timestamp(),
                via: WEB_VIA,
            };
            let made = self.new_session(tx, now, &person)?;
            if let (Ok(_), Some(old)) = (&made, replaces)
                && let Some((session, whose)) =
                    sessions::revoke_session_by_hash(tx, old, now.timestamp())?
            {
                // Ended by whoever signed in now in that browser (perhaps someone else).
                audit::append(
                    tx,
                    now,
                    &NewEvent::general(
                        user.as_str(),
                        SessionRevoked {
                            user: whose.to_string(),
                            session,
                        },
                    ),
                )?;
            }
            Ok::<_, ServiceError>(made)
        })?
    }
}
