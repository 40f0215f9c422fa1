//! Sign-in with the identity provider (`[oidc]`), for `countersign login`:
//!
//! - `GET /v1/oidc/login?redirect_uri=http://127.0.0.1:PORT/PATH&code_challenge=C` — the
//!   CLI opens this in the browser; countersign records the sign-in and sends the browser
//!   to the provider (authorization code with PKCE S256, `state` and `nonce`).
//! - `GET /v1/oidc/callback?code&state` — the provider sends the browser back here (the
//!   redirect URI registered there: `{public_url}/v1/oidc/callback`); countersign checks
//!   the ID token and sends the browser on to the CLI's listener with a one-time code.
//! - `POST /v1/oidc/token {"code","code_verifier"}` — the CLI trades the code, with the
//!   verifier of its challenge, for a session: `{"session","id","user","expires_at"}`.
//!
//! The code is useless without the CLI's verifier, lives 60 s and is spent on first use;
//! the session token never passes through the browser.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::Json as JsonBody;
use super::{ApiError, AppState};
use crate::error_code::ErrorCode;
use crate::oidc::{OidcError, Pending};
use crate::service::{ServiceError, blocking, check_challenge, check_cli_redirect};

fn not_configured() -> ApiError {
    ApiError::from(ServiceError::SignIn {
        code: ErrorCode::SigninFailed,
        message: "sign-in with an identity provider is not configured on this server".into(),
    })
}

fn from_oidc(e: OidcError) -> ApiError {
    match e {
        OidcError::Unavailable(why) => {
            tracing::warn!(cause = %why, "the identity provider is unavailable");
            ApiError::from(ServiceError::SignIn {
                code: ErrorCode::IdpUnavailable,
                message: "the identity provider cannot be reached; try again later (existing \
                          sessions keep working)"
                    .into(),
            })
        }
        OidcError::Refused(why) => {
            tracing::warn!(cause = %why, "a sign-in was refused");
            ApiError::from(ServiceError::SignIn {
                code: ErrorCode::SigninFailed,
                message: format!("the sign-in failed: {why}"),
            })
        }
    }
}

/// A redirect (303: the browser follows it with a GET).
fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// `GET /v1/oidc/login`.
pub(super) async fn login_get(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let provider = state.identity_provider().ok_or_else(not_configured)?;
    let redirect = query
        .get("redirect_uri")
        .ok_or_else(|| ServiceError::Invalid("redirect_uri is required".into()))?
        .clone();
    let challenge = query
        .get("code_challenge")
        .ok_or_else(|| ServiceError::Invalid("code_challenge is required".into()))?
        .clone();
    if query
        .get("code_challenge_method")
        .is_some_and(|m| m != "S256")
    {
        return Err(ServiceError::Invalid("code_challenge_method must be S256".into()).into());
    }
    check_cli_redirect(&redirect)?;
    check_challenge(&challenge)?;
    let pending = Pending::new();
    let url = provider
        .authorize_url(&pending, None)
        .await
        .map_err(from_oidc)?;
    blocking(&state, move |s| {
        s.record_login(&pending, &redirect, &challenge)
    })
    .await?;
    Ok(see_other(&url))
}

/// `GET /v1/oidc/callback`.
pub(super) async fn callback_get(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let provider = state.identity_provider().ok_or_else(not_configured)?;
    let sign_in_state = query
        .get("state")
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or_else(|| ServiceError::Invalid("state is required".into()))?
        .clone();
    // The sign-in is spent now, whatever the provider says next.
    let (pending, login) = blocking(&state, move |s| s.take_login(&sign_in_state)).await?;
    if let Some(error) = query.get("error") {
        let said = query.get("error_description").map_or("", String::as_str);
        return Err(from_oidc(OidcError::Refused(format!(
            "the identity provider answered {error}: {said}"
        ))));
    }
    let code = query
        .get("code")
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| ServiceError::Invalid("code is required".into()))?
        .clone();
    let signed = provider
        .finish(&code, &pending, state.now())
        .await
        .map_err(from_oidc)?;
    let to_cli = blocking(&state, move |s| s.complete_login(&signed, &login)).await?;
    Ok(see_other(&to_cli))
}

/// Body of `POST /v1/oidc/token`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    code: String,
    code_verifier: String,
}

/// `POST /v1/oidc/token`.
pub(super) async fn token_post(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.identity_provider().is_none() {
        return Err(not_configured());
    }
    if body.code.len() > 200 || body.code_verifier.len() > 200 {
        return Err(ServiceError::Invalid("code or code_verifier is too long".into()).into());
    }
    let session = blocking(&state, move |s| {
        s.exchange_login_code(&body.code, &body.code_verifier)
    })
    .await?;
    tracing::info!(user = %session.user, session = %session.id, "signed in");
    Ok(Json(json!({
        "session": session.token,
        "id": session.id,
        "user": session.user,
        "expires_at": session.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })))
}
