//! Bearer-token authentication: the only way a handler learns who the caller is.
//!
//! Failed attempts are counted per client address (behind `server.trusted_proxies`, the
//! address they forward for: see `forwarded.rs`) and per token ([`AuthLimiter`]) and
//! logged with the client address and eight hex digits of the token's SHA-256, never the
//! token itself.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;

use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};

use super::forwarded;
use super::limits::{AuthLimiter, TokenId};
use super::server::ClientAddr;
use super::{ApiError, AppState};
use crate::error_code::ErrorCode;
use crate::names::UserName;
use crate::service::{Authenticated, Credential, Scope, ScopeSet, ServiceError};

/// The authenticated caller. Nothing in a request body can set who the actor is.
#[derive(Debug, Clone)]
pub struct Actor(pub UserName);

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let limiter = parts.extensions.get::<Arc<AuthLimiter>>().cloned();
        let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        let trusted = &state.config().server.limits.trusted_proxies;
        let client = peer.map(|p| forwarded::client_ip(p, &parts.headers, trusted));
        let token = bearer_token(parts);
        let token_id = token.as_deref().map(TokenId::of);
        if let Some(limiter) = &limiter {
            limiter
                .check(client, token_id)
                .map_err(|wait| rate_limited(client, peer, token_id, wait))?;
        }
        let result = match token {
            Some(token) => {
                crate::service::quick(state, move |s| s.authenticate_credential(&token)).await
            }
            None => Err(ServiceError::Unauthenticated),
        };
        // A disabled user's token is a refused credential like an unknown one.
        if matches!(
            result,
            Err(ServiceError::Unauthenticated | ServiceError::Disabled(_))
        ) {
            if let Some(limiter) = &limiter {
                limiter.failed(client, token_id);
            }
            tracing::warn!(
                client = %client.map(|c| c.to_string()).unwrap_or_default(),
                peer = %peer.map(|c| c.to_string()).unwrap_or_default(),
                path = %parts.uri.path(),
                token = %token_id.map(|t| t.short()).unwrap_or_else(|| "none".into()),
                "authentication failed"
            );
        }
        let who = result.map_err(ApiError::from)?;
        let (user, credential) = (who.user().clone(), *who.credential());
        tracing::Span::current().record("user", tracing::field::display(&user));
        // A web UI session lives in its browser's `HttpOnly` cookie: presented as a bearer
        // token, it was taken from there, and is refused like an unknown token.
        if let Credential::Session { web: true, .. } = credential {
            if let Some(limiter) = &limiter {
                limiter.failed(client, token_id);
            }
            let short = token_id.map(|t| t.short()).unwrap_or_default();
            tracing::warn!(token = %short, "a web UI session was presented as a bearer token");
            return Err(ApiError::from(ServiceError::Unauthenticated));
        }
        if let Credential::Bot(scopes) = credential
            && !bot_may(scopes, &parts.method, parts.uri.path())
        {
            return Err(ApiError::from(ServiceError::SignIn {
                code: ErrorCode::ScopeNotAllowed,
                message: format!(
                    "this is a service account's token, with scopes {}: it may only do what \
                     they allow, and never approve, deny, register keys or administer",
                    scopes.names().join(",")
                ),
            }));
        }
        // How the caller signed in, for the handlers that ask; the two together for those
        // that step up (approving: `Service::step_up` takes them only as one).
        parts.extensions.insert(credential);
        parts.extensions.insert(who);
        Ok(Actor(user))
    }
}

/// The authenticated caller with the credential they proved it with, as one value: what
/// `Service::step_up` takes (handlers that decide or give access use this, not [`Actor`]).
#[derive(Debug, Clone)]
pub struct Caller(pub Authenticated);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.extensions.get::<Authenticated>().is_none() {
            Actor::from_request_parts(parts, state).await?;
        }
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::from(ServiceError::Unauthenticated))
    }
}

/// Whether a bot with `scopes` may call `method path`. Reading who it is always; reading
/// requests with `request` or `fetch`; creating, cancelling and giving back requests
/// with `request`; certificates with `fetch`; the audit log with `read-audit`; host join
/// tokens with `host-token`. Nothing
/// else: no approving, denying, revoking or administering, whatever the scopes.
fn bot_may(scopes: ScopeSet, method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    match segments.as_slice() {
        ["v1", "whoami"] if get => true,
        ["v1", "requests"] if post => scopes.contains(Scope::Request),
        ["v1", "requests"] | ["v1", "requests", _] if get => {
            scopes.contains(Scope::Request) || scopes.contains(Scope::Fetch)
        }
        ["v1", "requests", _, "cancel" | "done"] if post => scopes.contains(Scope::Request),
        ["v1", "requests", _, "certificate"] if get => scopes.contains(Scope::Fetch),
        ["v1", "audit"] | ["v1", "audit", "verify"] if get => scopes.contains(Scope::ReadAudit),
        ["v1", "hosts", "tokens"] if post => scopes.contains(Scope::HostToken),
        _ => false,
    }
}

/// The token of `Authorization: Bearer <token>`, if it is there and plausible. The
/// scheme is case-insensitive (RFC 9110, section 11.1): `bearer` and `BEARER` work too.
pub(super) fn bearer_token(parts: &Parts) -> Option<String> {
    // Two `Authorization` headers (a proxy that added its own beside the client's) are
    // no credential: which one was meant is not guessed.
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    Some(value)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .map(str::to_owned)
}

pub(super) fn rate_limited(
    client: Option<IpAddr>,
    peer: Option<IpAddr>,
    token: Option<TokenId>,
    wait: u64,
) -> ApiError {
    tracing::warn!(
        client = %client.map(|c| c.to_string()).unwrap_or_default(),
        peer = %peer.map(|c| c.to_string()).unwrap_or_default(),
        token = %token.map(|t| t.short()).unwrap_or_else(|| "none".into()),
        retry_after = wait,
        "too many failed authentications; refusing"
    );
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        format!("too many failed authentications; retry in {wait} s"),
    )
    .with_retry_after(wait)
}
