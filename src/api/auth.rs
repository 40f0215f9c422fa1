//! Bearer-token authentication: the only way a handler learns who the caller is.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState, blocking};
use crate::names::UserName;
use crate::service::ServiceError;

/// The authenticated caller. Nothing in a request body can set who the actor is.
#[derive(Debug, Clone)]
pub struct Actor(pub UserName);

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .map(str::to_owned);
        let Some(token) = token else {
            return Err(ServiceError::Unauthenticated.into());
        };
        let user = blocking(state, move |s| s.authenticate(&token)).await;
        if user.is_err() {
            tracing::warn!(path = %parts.uri.path(), "authentication failed");
        }
        Ok(Actor(user?))
    }
}
