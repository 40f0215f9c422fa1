//! Creating and revoking a user's API tokens: commands run by hand (`countersign token`)
//! on the database alone, outside a running service.

use std::collections::BTreeSet;
use std::time::Duration;

use super::ServiceError;
use crate::audit::{self, NewEvent, TokenCreated, TokenRevoked};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::names::UserName;
use crate::policy::Policy;
use crate::store::tokens::TokenKind;
use crate::store::{Store, tokens, users as disabled};

/// What a bot token (a service account) may do. There is no scope that approves, denies
/// or administers: a bot never decides anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Create requests (and read, cancel and give back its own).
    Request,
    /// Fetch the certificates of its own issued requests.
    Fetch,
    /// Read and verify the audit log (its user must also be an admin).
    ReadAudit,
    /// Make host join tokens (`POST /v1/hosts/tokens`), for provisioning pipelines; its
    /// user must be an admin or a service account (`bot = true`).
    HostToken,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::Request,
        Scope::Fetch,
        Scope::ReadAudit,
        Scope::HostToken,
    ];

    /// The scope as written (`request`, `fetch`, `read-audit`, `host-token`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Request => "request",
            Scope::Fetch => "fetch",
            Scope::ReadAudit => "read-audit",
            Scope::HostToken => "host-token",
        }
    }

    /// The scope written `s`, if any.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// When a token stops authenticating (Unix seconds): its expiry, or, for a token made
/// before tokens had one, `max_ttl` after its creation.
pub fn token_end(expires_at: Option<i64>, created_at: i64, max_ttl: Duration) -> i64 {
    let max_ttl = i64::try_from(max_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    expires_at.unwrap_or(created_at.saturating_add(max_ttl))
}

/// What `token create` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// Its lifetime; `[tokens] default_ttl` when `None`, at most `max_ttl`.
    pub ttl: Option<Duration>,
    /// `Some`: a bot token, allowed only these scopes.
    pub bot_scopes: Option<BTreeSet<Scope>>,
}

/// Creates a token for a configured user; returns the secret (shown once) and when it
/// expires (Unix seconds). Needs only the database (opened with `state::open_existing`:
/// after `init` or a first `serve`), and so goes by the system clock.
pub fn create_token(
    store: &Store,
    config: &Config,
    user: &UserName,
    operator: &str,
    spec: &TokenSpec,
) -> Result<(String, i64), ServiceError> {
    if !config.policy.users.contains_key(user) {
        return Err(ServiceError::Invalid(format!(
            "user {user} is not defined in the config"
        )));
    }
    if spec.bot_scopes.is_none() && config.policy.users.get(user).is_some_and(|u| u.bot) {
        return Err(ServiceError::Invalid(format!(
            "user {user} is a service account (bot = true): create its token with --bot \
             --scope ..."
        )));
    }
    let ttl = spec.ttl.unwrap_or(config.tokens.default_ttl);
    if ttl < std::time::Duration::from_secs(60) {
        return Err(ServiceError::Invalid("--ttl must be at least 1m".into()));
    }
    if ttl > config.tokens.max_ttl {
        return Err(ServiceError::Invalid(format!(
            "--ttl {} is longer than [tokens] max_ttl {}",
            crate::names::short_duration(ttl),
            crate::names::short_duration(config.tokens.max_ttl)
        )));
    }
    if spec.bot_scopes.as_ref().is_some_and(BTreeSet::is_empty) {
        return Err(ServiceError::Invalid(
            "a bot token needs at least one --scope (request, fetch, read-audit, host-token)"
                .into(),
        ));
    }
    let token = tokens::generate();
    let now = SystemClock.now();
    let expires_at = now.timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let kind = TokenKind {
        bot_scopes: spec
            .bot_scopes
            .as_ref()
            .map(|s| s.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")),
        expires_at,
    };
    store.write(|tx| {
        // A token made now would come alive when the user is enabled: enabling gives
        // back no token, old or new, that nobody asked for after it.
        if disabled::is_disabled(tx, user)? {
            return Err(ServiceError::Invalid(format!(
                "user {user} is disabled; an admin enables them first (countersign user enable \
                 {user})"
            )));
        }
        tokens::insert(tx, &token.hash, user, now.timestamp(), &kind)?;
        audit::append(
            tx,
            now,
            &NewEvent::general(
                operator,
                TokenCreated {
                    user: user.to_string(),
                    kind: Some(
                        if kind.bot_scopes.is_some() {
                            "bot"
                        } else {
                            "human"
                        }
                        .into(),
                    ),
                    scopes: kind.bot_scopes.clone(),
                    expires_at: Some(super::view::rfc3339(expires_at)),
                },
            ),
        )?;
        Ok::<_, ServiceError>(())
    })?;
    Ok((token.secret, expires_at))
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
