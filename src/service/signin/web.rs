//! Sign-in from the web UI. The browser that starts the sign-in is the one that comes
//! back from the provider (the sign-in cookie says so), so the session is made at the
//! callback and handed to that browser as a cookie: no one-time code, no CLI.

use crate::audit::{self, NewEvent, SessionRevoked};
use crate::names::UserName;
use crate::oidc::{Pending, SignedIn};
use crate::service::signin::{NewSession, SignedInPerson, groups_json, oidc_of};
use crate::service::{Service, ServiceError};
use crate::store::sessions::{self, LoginRow};
use crate::store::tokens;

/// How a session made by the web UI's sign-in says it was made (`session list`).
pub const WEB_VIA: &str = "oidc-web";

/// Where the browser goes after a web sign-in: a path on this server (`/...`), never
/// another site (`//host`, `/\host`, a scheme); printable ASCII, at most 300 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPath(String);

impl WebPath {
    /// The requests page.
    pub fn home() -> WebPath {
        WebPath("/".to_owned())
    }

    /// `next` as a path of ours, or `invalid_request`.
    pub fn parse(next: &str) -> Result<WebPath, ServiceError> {
        let ok = next.starts_with('/')
            && !next.starts_with("//")
            && next.len() <= 300
            && next
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) && b != b'\\');
        if ok {
            Ok(WebPath(next.to_owned()))
        } else {
            Err(ServiceError::Invalid(
                "next must be a path on this server, such as /requests/r-...".into(),
            ))
        }
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Service {
    /// Records a sign-in of the web UI in progress, before the browser leaves for the
    /// provider; `next` is where it goes once signed in, `replaces` the session token
    /// the browser held (its session ends when the new one is made).
    pub fn record_web_login(
        &self,
        pending: &Pending,
        next: &WebPath,
        replaces: Option<&str>,
    ) -> Result<(), ServiceError> {
        let row = LoginRow {
            nonce: pending.nonce.clone(),
            pkce_verifier: pending.pkce_verifier.clone(),
            cli_redirect: String::new(),
            cli_challenge: String::new(),
            device_hash: None,
            web_next: Some(next.as_str().to_owned()),
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
        let groups = groups_json(oidc, &signed.groups);
        self.store.write(|tx| {
            let user: UserName = match self.bind(tx, now, signed)? {
                Ok(user) => user,
                Err(e) => return Ok(Err(e)),
            };
            // A disabled user gets no session: `new_session` refuses it, writing nothing.
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

#[cfg(test)]
mod tests {
    use super::WebPath;

    #[test]
    fn only_a_path_of_this_server_is_a_web_path() {
        for ok in ["/", "/requests/r-abc?done=approved", "/audit?q=1&days=90"] {
            assert_eq!(
                WebPath::parse(ok)
                    .map(|p| p.as_str().to_owned())
                    .ok()
                    .as_deref(),
                Some(ok)
            );
        }
        for bad in [
            "",
            "requests",
            "//evil.example/",
            "/\\evil.example",
            "/a\\b",
            "https://evil.example/",
            "/a b",
            "/a\nb",
            "/caf\u{e9}",
            &format!("/{}", "a".repeat(300)),
        ] {
            assert!(WebPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
