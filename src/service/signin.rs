//! Sign-in with the identity provider, the parts that touch the database: a sign-in in
//! progress between its two legs, the person bound to a user name, the one-time code the
//! CLI trades (with its verifier) for a session, and the session itself. The network legs
//! (discovery, the code exchange, the ID token's checks) are `crate::oidc`'s; the HTTP
//! front end (`api/oidc.rs`) calls one after the other.
//!
//! A person is `(iss, sub)`. The user name comes from the configured claim and is bound
//! to that person the first time; afterwards another person presenting the same name,
//! or the same person presenting another name, is refused (`identity_conflict`,
//! audited): a reused or renamed account at the provider never steps into someone
//! else's history, approvals or holdings.

use chrono::{DateTime, Utc};

use super::{Service, ServiceError, disabled_error, view};
use crate::audit::{self, NewEvent, SessionCreated};
use crate::error_code::ErrorCode;
use crate::names::UserName;
use crate::oidc::{Pending, SignedIn, random_token, s256};
use crate::store::sessions::{self, CodeRow, LoginRow, SESSION_PREFIX, SessionRow};
use crate::store::{Tx, users as disabled};

mod bind;
mod web;

pub use web::{WEB_VIA, WebPath};

/// How long a sign-in may take between leaving for the provider and coming back.
const LOGIN_LIFETIME_SECONDS: i64 = 600;
/// How long the CLI has to trade its one-time code.
const CODE_LIFETIME_SECONDS: i64 = 60;
/// How long the provider's groups count after it vouched for them, for a session it gave
/// no refresh token for: without one they cannot be re-read, and group changes must take
/// effect within an hour.
pub(super) const GROUPS_WITHOUT_RECHECK_SECONDS: i64 = 3600;
/// How long they count after it vouched for them, for a session re-checked every
/// `RECHECK_EVERY` (50 minutes): the re-check and its retries have 25 minutes; a
/// provider that does not answer (or refuses otherwise than `invalid_grant`) for longer
/// leaves only the TOML groups.
pub(super) const GROUPS_WITH_RECHECK_SECONDS: i64 = 75 * 60;
/// Sign-ins in progress at once, at most (the start of a sign-in needs no credential):
/// past it, the oldest are forgotten.
pub(super) const MAX_LOGINS_IN_PROGRESS: i64 = 10_000;

/// A session just made: its token is shown once, to the CLI that traded the code.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The bearer token (`css_...`).
    pub token: String,
    /// Its public id.
    pub id: String,
    /// Whose it is.
    pub user: UserName,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

pub(super) fn failed(message: impl Into<String>) -> ServiceError {
    ServiceError::SignIn {
        code: ErrorCode::SigninFailed,
        message: message.into(),
    }
}

/// `[oidc]` of `config`, or `signin_failed` when sign-in is not configured.
pub(super) fn oidc_of(
    config: &crate::config::Config,
) -> Result<&crate::config::OidcSettings, ServiceError> {
    config
        .oidc
        .as_ref()
        .ok_or_else(|| failed("sign-in with an identity provider is not configured"))
}

/// The countersign groups the provider's `claims` give (`[[oidc.group_map]]`), as the
/// JSON list sessions and codes store. A list of strings always serialises.
pub(super) fn groups_json(oidc: &crate::config::OidcSettings, claims: &[String]) -> String {
    let groups: Vec<serde_json::Value> = oidc
        .mapped_groups(claims.iter().map(String::as_str))
        .iter()
        .map(|g| serde_json::Value::from(g.to_string()))
        .collect();
    serde_json::Value::Array(groups).to_string()
}

/// Checks where the CLI listens: `http://127.0.0.1:PORT/PATH` (or `[::1]`, `localhost`),
/// nothing else, so that a one-time code is only ever sent back to this machine.
pub fn check_cli_redirect(uri: &str) -> Result<(), ServiceError> {
    let bad = || {
        ServiceError::Invalid(
            "redirect_uri must be http://127.0.0.1:PORT/PATH (the CLI's listener)".into(),
        )
    };
    let url = reqwest::Url::parse(uri).map_err(|_| bad())?;
    let loopback = matches!(
        url.host(),
        Some(openidconnect::url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(url.host(), Some(openidconnect::url::Host::Ipv6(ip)) if ip.is_loopback())
        || url.host_str() == Some("localhost");
    if url.scheme() != "http"
        || !loopback
        || url.port().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || uri.len() > 200
    {
        return Err(bad());
    }
    Ok(())
}

/// Checks a PKCE S256 challenge: 43 characters of base64url.
pub fn check_challenge(challenge: &str) -> Result<(), ServiceError> {
    if challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(ServiceError::Invalid(
            "code_challenge must be a PKCE S256 challenge (43 characters of base64url)".into(),
        ))
    }
}

impl Service {
    /// Records a sign-in in progress, before the browser leaves for the provider.
    pub fn record_login(
        &self,
        pending: &Pending,
        cli_redirect: &str,
        cli_challenge: &str,
    ) -> Result<(), ServiceError> {
        check_cli_redirect(cli_redirect)?;
        check_challenge(cli_challenge)?;
        let row = LoginRow {
            nonce: pending.nonce.clone(),
            pkce_verifier: pending.pkce_verifier.clone(),
            cli_redirect: cli_redirect.to_owned(),
            cli_challenge: cli_challenge.to_owned(),
            device_hash: None,
            web_next: None,
            web_replaces: None,
        };
        self.store_login(&pending.state, &row)
    }

    /// Stores `row` as the sign-in in progress of `state`, making room if too many are.
    fn store_login(&self, state: &str, row: &LoginRow) -> Result<(), ServiceError> {
        let now = self.now().timestamp();
        self.store.write(|tx| {
            let n = sessions::insert_login(tx, state, row, now, now + LOGIN_LIFETIME_SECONDS)?;
            // Full: the oldest go (a flood then costs the sign-ins older than it, which
            // start again, instead of refusing every new one for ten minutes).
            if n > MAX_LOGINS_IN_PROGRESS {
                sessions::evict_oldest_logins(tx, n - MAX_LOGINS_IN_PROGRESS)?;
            }
            Ok(())
        })
    }

    /// Takes the sign-in `state` names (once, even if what follows fails), with its
    /// PKCE verifier and nonce; `signin_failed` if there is none in time.
    pub fn take_login(&self, state: &str) -> Result<(Pending, LoginRow), ServiceError> {
        let now = self.now().timestamp();
        let row = self
            .store
            .write(|tx| sessions::take_login(tx, state, now))?;
        let row = row.ok_or_else(|| {
            failed(
                "this sign-in is over, was used already, or was not started here; \
                 start again (`countersign login`, or open the page again)",
            )
        })?;
        let pending = Pending {
            state: state.to_owned(),
            nonce: row.nonce.clone(),
            pkce_verifier: row.pkce_verifier.clone(),
        };
        Ok((pending, row))
    }

    /// Binds the person the provider vouched for to their user name (the first time)
    /// and makes a one-time code for the CLI of `login`; returns where to send the
    /// browser (the CLI's listener, with the code) and who signed in.
    pub fn complete_login(
        &self,
        signed: &SignedIn,
        login: &LoginRow,
    ) -> Result<(String, UserName), ServiceError> {
        let (config, now) = (self.config(), self.now());
        let oidc = oidc_of(&config)?;
        let groups = groups_json(oidc, &signed.groups);
        let code = random_token();
        let outcome = self.store.write(|tx| {
            let user = match self.bind(tx, now, signed)? {
                Ok(user) => user,
                Err(e) => return Ok(Err(e)),
            };
            if disabled::is_disabled(tx, &user)? {
                return Ok(Err(disabled_error(&user)));
            }
            let row = CodeRow {
                groups,
                auth_time: signed.auth_time.map(|t| t.timestamp()),
                cli_challenge: login.cli_challenge.clone(),
                refresh_token: self.sealed_refresh_token(signed, &user),
                vouched_at: now.timestamp(),
                user,
            };
            sessions::insert_code(tx, &code, &row, now.timestamp() + CODE_LIFETIME_SECONDS)?;
            Ok::<_, ServiceError>(Ok(row.user))
        })?;
        let user = outcome?;
        Ok((format!("{}?code={code}", login.cli_redirect), user))
    }

    /// `signed`'s refresh token sealed for `user`, if the provider gave one.
    pub(super) fn sealed_refresh_token(
        &self,
        signed: &SignedIn,
        user: &UserName,
    ) -> Option<String> {
        let provider = self.identity_provider()?;
        let token = signed.refresh_token.as_deref()?;
        Some(provider.seal_key().seal(token, user.as_str()))
    }

    /// Trades a one-time code, with the verifier of the challenge it was made for, for a
    /// session (with its `session.created` audit row). The code is spent whatever the
    /// outcome.
    pub fn exchange_login_code(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<NewSession, ServiceError> {
        let now = self.now();
        self.store.write(|tx| {
            let Some(row) = sessions::take_code(tx, code, now.timestamp())? else {
                return Ok(Err(failed("the sign-in code is unknown, used, or over")));
            };
            if s256(verifier) != row.cli_challenge {
                return Ok(Err(failed(
                    "the sign-in code was not made for this verifier",
                )));
            }
            let made = SignedInPerson {
                user: &row.user,
                groups: &row.groups,
                auth_time: row.auth_time,
                refresh_token: row.refresh_token.as_deref(),
                vouched_at: row.vouched_at,
                via: "oidc",
            };
            self.new_session(tx, now, &made)
        })?
    }

    /// Makes a session for `person` (with its `session.created` audit row), in `tx`;
    /// `user_disabled` (nothing written) if they are disabled.
    pub(super) fn new_session(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        person: &SignedInPerson<'_>,
    ) -> Result<Result<NewSession, ServiceError>, ServiceError> {
        let config = self.config();
        let oidc = oidc_of(&config)?;
        let ttl = chrono::TimeDelta::from_std(oidc.session_ttl)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if disabled::is_disabled(tx, person.user)? {
            return Ok(Err(disabled_error(person.user)));
        }
        let token = format!(
            "{SESSION_PREFIX}{}",
            hex::encode(rand::random::<[u8; 32]>())
        );
        let id = hex::encode(rand::random::<[u8; 12]>());
        let expires_at = now + ttl;
        // The provider's groups count for a while after it vouched for them: longer when
        // they are re-read (with the refresh token) before that ends.
        let (fresh_for, next_check_at) = match person.refresh_token {
            Some(_) => (
                GROUPS_WITH_RECHECK_SECONDS,
                Some(person.vouched_at + super::RECHECK_EVERY.as_secs() as i64),
            ),
            None => (GROUPS_WITHOUT_RECHECK_SECONDS, None),
        };
        let groups_until = (person.vouched_at + fresh_for).min(expires_at.timestamp());
        let session = SessionRow {
            id: id.clone(),
            user: person.user.clone(),
            via: person.via.into(),
            groups: person.groups.to_owned(),
            auth_time: person.auth_time,
            created_at: now.timestamp(),
            expires_at: expires_at.timestamp(),
            refresh_token: person.refresh_token.map(str::to_owned),
            checked_at: person.vouched_at,
            groups_until,
            next_check_at,
        };
        sessions::insert_session(tx, &token, &session)?;
        let groups: Vec<String> = serde_json::from_str(person.groups)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("a sign-in's groups: {e}")))?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                person.user.as_str(),
                SessionCreated {
                    user: person.user.to_string(),
                    session: id.clone(),
                    via: person.via.into(),
                    groups,
                    auth_time: person.auth_time.map(view::rfc3339),
                    expires_at: view::rfc3339(expires_at.timestamp()),
                },
            ),
        )?;
        Ok(Ok(NewSession {
            token,
            id,
            user: person.user.clone(),
            expires_at,
        }))
    }
}

/// Who the provider vouched for, ready to become a session.
pub(super) struct SignedInPerson<'a> {
    /// Who.
    pub user: &'a UserName,
    /// Their countersign groups (JSON list).
    pub groups: &'a str,
    /// When they authenticated at the provider, if it said.
    pub auth_time: Option<i64>,
    /// The provider's refresh token, sealed, if it gave one.
    pub refresh_token: Option<&'a str>,
    /// When the provider vouched for them (the sign-in's callback; Unix seconds).
    pub vouched_at: i64,
    /// How: `oidc` (the loopback flow) or `oidc-device`.
    pub via: &'static str,
}
