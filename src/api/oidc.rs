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

use super::cookies::{self, Cookie};
use super::extract::Json as JsonBody;
use super::{ApiError, AppState};
use crate::error_code::ErrorCode;
use crate::oidc::{OidcError, Pending};
use crate::service::{
    DEVICE_CODE_GRANT, ServiceError, blocking, check_challenge, check_cli_redirect,
};

pub(super) fn not_configured() -> ApiError {
    ApiError::from(ServiceError::SignIn {
        code: ErrorCode::SigninFailed,
        message: "sign-in with an identity provider is not configured on this server".into(),
    })
}

pub(super) fn from_oidc(e: OidcError) -> ApiError {
    match e {
        OidcError::Unavailable(why) => {
            tracing::warn!(cause = ?why, "the identity provider is unavailable");
            ApiError::from(ServiceError::SignIn {
                code: ErrorCode::IdpUnavailable,
                message: "the identity provider cannot be reached; try again later (existing \
                          sessions keep working)"
                    .into(),
            })
        }
        OidcError::Refused(why) => {
            tracing::warn!(cause = ?why, "a sign-in was refused");
            ApiError::from(ServiceError::SignIn {
                code: ErrorCode::SigninFailed,
                message: format!("the sign-in failed: {why}"),
            })
        }
    }
}

/// A redirect (303: the browser follows it with a GET).
pub(super) fn see_other(location: &str) -> Response {
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
    // `step_up=1` (after `reauth_required`): the provider must authenticate the person
    // again unless they did within `approval_max_auth_age`.
    let step_up = query
        .get("step_up")
        .is_some_and(|v| v == "1" || v == "true")
        .then_some(provider.settings().approval_max_auth_age);
    let pending = Pending::new();
    let url = provider
        .authorize_url(&pending, step_up)
        .await
        .map_err(from_oidc)?;
    let cookie = sign_in_cookie(&state, &pending.state, 600);
    blocking(&state, move |s| {
        s.record_login(&pending, &redirect, &challenge)
    })
    .await?;
    let mut answer = see_other(&url);
    answer.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(answer)
}

/// The cookie that ties a sign-in to the browser that started it (its `state`), for
/// `max_age` seconds (0: removed). A sign-in link sent to someone else's browser does
/// not come back with it, so it cannot finish there.
pub(super) fn sign_in_cookie(state: &AppState, value: &str, max_age: u32) -> header::HeaderValue {
    cookies::set(state, Cookie::SignIn, value, max_age)
}

/// `GET /v1/oidc/callback`.
pub(super) async fn callback_get(
    State(state): State<AppState>,
    headers: header::HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let provider = state.identity_provider().ok_or_else(not_configured)?;
    let sign_in_state = query
        .get("state")
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or_else(|| ServiceError::Invalid("state is required".into()))?
        .clone();
    let same_browser =
        cookies::get(&state, &headers, Cookie::SignIn).is_some_and(|c| c == sign_in_state);
    // The sign-in is spent now, whatever follows.
    let taken = sign_in_state.clone();
    // A person's browser (it asks for HTML) hears a failure as a page.
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let (pending, login) = match blocking(&state, move |s| s.take_login(&taken)).await {
        Ok(taken) => taken,
        Err(e) if browser => return Ok(super::web::sign_in_failed(&e.into(), None)),
        Err(e) => return Err(e.into()),
    };
    let clear = sign_in_cookie(&state, "", 0);
    if !same_browser {
        tracing::warn!("a sign-in came back in a browser that did not start it");
        let e = ApiError::from(ServiceError::SignIn {
            code: ErrorCode::SigninFailed,
            message: match login.web_next {
                Some(_) => "this browser did not start this sign-in: start it again here".into(),
                None => "this browser did not start this sign-in: run `countersign login` and \
                         open the address it prints in this browser"
                    .into(),
            },
        });
        let mut answer = match &login.web_next {
            Some(next) => super::web::sign_in_failed(&e, Some(next)),
            None if browser => super::web::sign_in_failed(&e, None),
            None => e.into_response(),
        };
        answer.headers_mut().insert(header::SET_COOKIE, clear);
        return Ok(answer);
    }
    if let Some(device_hash) = login.device_hash.clone() {
        let mut answer =
            super::device::finish(&state, &provider, &query, pending, &device_hash).await;
        answer.headers_mut().insert(header::SET_COOKIE, clear);
        return Ok(answer);
    }
    if let Some(next) = login.web_next.clone() {
        let replaces = login.web_replaces.clone();
        let mut answer =
            super::web::finish_sign_in(&state, &provider, &query, pending, &next, replaces).await;
        answer.headers_mut().append(header::SET_COOKIE, clear);
        return Ok(answer);
    }
    let to_cli = login.cli_redirect.clone();
    let outcome = match verify(&state, &provider, &query, &pending).await {
        Ok(signed) => blocking(&state, move |s| s.complete_login(&signed, &login))
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    // From here the CLI waits on its listener: it hears the outcome, a failure too.
    let location = match outcome {
        Ok((to_cli, user)) => {
            let mut answer = confirm_page(&to_cli, &user).into_response();
            answer.headers_mut().insert(header::SET_COOKIE, clear);
            return Ok(answer);
        }
        Err(e) => {
            let code = e.code();
            format!(
                "{to_cli}?{}",
                serde_urlencoded::to_string([("error", code), ("error_description", e.message()),])
                    .unwrap_or_else(|_| format!("error={code}"))
            )
        }
    };
    let mut answer = see_other(&location);
    answer.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(answer)
}

/// The provider's answer and the ID token's checks: who the provider vouches for.
pub(super) async fn verify(
    state: &AppState,
    provider: &crate::oidc::Provider,
    query: &HashMap<String, String>,
    pending: &Pending,
) -> Result<crate::oidc::SignedIn, ApiError> {
    if let Some(error) = query.get("error") {
        // Only the codes RFC 6749 (4.1.2.1) and OpenID Connect define are repeated:
        // anyone can send a browser here with any text.
        const KNOWN: &[&str] = &[
            "invalid_request",
            "unauthorized_client",
            "access_denied",
            "unsupported_response_type",
            "invalid_scope",
            "server_error",
            "temporarily_unavailable",
            "interaction_required",
            "login_required",
            "account_selection_required",
            "consent_required",
        ];
        let error = KNOWN
            .iter()
            .find(|k| **k == error.as_str())
            .copied()
            .unwrap_or("an unknown error");
        return Err(from_oidc(OidcError::Refused(format!(
            "the identity provider answered {error}"
        ))));
    }
    let code = query
        .get("code")
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| ServiceError::Invalid("code is required".into()))?
        .clone();
    provider
        .finish(&code, pending, state.now())
        .await
        .map_err(from_oidc)
}

/// Body of `POST /v1/oidc/token`: a one-time code with its verifier (the loopback
/// flow), or a device code (`grant_type` of RFC 8628).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    code_verifier: Option<String>,
    #[serde(default)]
    device_code: Option<String>,
}

/// `POST /v1/oidc/token`.
pub(super) async fn token_post(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Response, ApiError> {
    if state.identity_provider().is_none() {
        return Err(not_configured());
    }
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > 200);
    if too_long(&body.code) || too_long(&body.code_verifier) || too_long(&body.device_code) {
        return Err(ServiceError::Invalid("a field of the body is too long".into()).into());
    }
    let session = match body.grant_type.as_deref() {
        Some(DEVICE_CODE_GRANT) => {
            let device_code = body
                .device_code
                .ok_or_else(|| ServiceError::Invalid("device_code is required".into()))?;
            match blocking(&state, move |s| s.poll_device_login(&device_code)).await? {
                Ok(session) => session,
                Err(wait) => return Ok(super::device::wait_answer(&wait)),
            }
        }
        None | Some("authorization_code") => {
            let (Some(code), Some(verifier)) = (body.code, body.code_verifier) else {
                return Err(
                    ServiceError::Invalid("code and code_verifier are required".into()).into(),
                );
            };
            blocking(&state, move |s| s.exchange_login_code(&code, &verifier)).await?
        }
        Some(other) => {
            return Err(ServiceError::Invalid(format!(
                "grant_type {:?} is not supported: authorization_code or {DEVICE_CODE_GRANT}",
                other.chars().take(80).collect::<String>()
            ))
            .into());
        }
    };
    tracing::info!(user = %session.user, session = %session.id, "signed in");
    let body = Json(json!({
        "session": session.token,
        "id": session.id,
        "user": session.user,
        "expires_at": session.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }));
    Ok(([(header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// The page that asks before the one-time code goes to the CLI's listener: a sign-in
/// link someone else started (their listener on this computer) needs this click, next
/// to a warning, to reach them. No script, nothing loaded from elsewhere, never cached,
/// no Referer sent onwards.
fn confirm_page(to_cli: &str, user: &crate::names::UserName) -> Response {
    let port = reqwest::Url::parse(to_cli)
        .ok()
        .and_then(|u| u.port())
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    let (user, link) = (escape(user.as_str()), escape(to_cli));
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>countersign sign-in</title></head><body>\
         <h1>Sign in to countersign as {user}?</h1>\
         <p>The countersign command line on this computer (listening on port {port}) will \
         get a session as <strong>{user}</strong>.</p>\
         <p><strong>If you did not just run <code>countersign login</code> in a terminal, \
         close this page.</strong> Someone may be trying to sign in as you.</p>\
         <p><a id=\"continue\" href=\"{link}\">Continue: sign in the command line</a></p>\
         </body></html>\n"
    );
    html(StatusCode::OK, page, "form-action 'none'; ")
}

/// An HTML page of ours: no script, nothing loaded from elsewhere (`csp_extra` adds to
/// the policy), never cached, no Referer sent onwards.
pub(super) fn html(status: StatusCode, page: String, csp_extra: &str) -> Response {
    let csp = format!("default-src 'none'; {csp_extra}frame-ancestors 'none'");
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        page,
    )
        .into_response()
}

/// `s` safe inside HTML text and attribute values.
pub(super) fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
