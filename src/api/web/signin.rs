//! Sign-in and sign-out of the web UI. The sign-in is the provider's code flow of
//! `/v1/oidc/login` (PKCE, `state`, `nonce`, the sign-in cookie) with a path of ours to
//! come back to; the callback makes the session and gives it to this browser as the
//! session cookie.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::cookies::{self, Cookie};
use super::super::oidc::{from_oidc, not_configured, see_other, sign_in_cookie, verify};
use super::super::{ApiError, AppState, blocking, submit};
use super::layout::{
    Visit, continue_to, error_page, forged, form_is_ours, page, person, unavailable,
};
use crate::oidc::Pending;
use crate::service::{ServiceError, WebPath};

/// How long the session cookie lives at most: the session's own end decides sooner.
const COOKIE_SECONDS: u32 = 366 * 24 * 3600;

/// Starts a sign-in that comes back to `next`: the answer sends the browser to the
/// provider (`step_up`: asking it to authenticate the person again).
pub(super) async fn start(
    state: &AppState,
    next: WebPath,
    step_up: bool,
    replaces: Option<String>,
) -> Result<Response, ApiError> {
    let provider = state.identity_provider().ok_or_else(not_configured)?;
    let step_up = step_up.then_some(provider.settings().approval_max_auth_age);
    let pending = Pending::new();
    let url = provider
        .authorize_url(&pending, step_up)
        .await
        .map_err(from_oidc)?;
    let cookie = sign_in_cookie(state, &pending.state, 600);
    blocking(state, move |s| {
        s.record_web_login(&pending, &next, replaces.as_deref())
    })
    .await?;
    let mut answer = see_other(&url);
    answer.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(answer)
}

/// `GET /login?next=PATH[&step_up=1]`.
pub(super) async fn login_get(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(answer) = unavailable(&state) {
        return answer;
    }
    let next = match WebPath::parse(query.get("next").map_or("/", String::as_str)) {
        Ok(next) => next,
        Err(e) => return error_page(&e.into()),
    };
    let step_up = query.get("step_up").is_some_and(|v| v == "1");
    // The session this browser holds now (sent: this navigation is our own page's),
    // to end once the new one is made.
    let replaces = cookies::get(&state, &headers, Cookie::Session).filter(|t| t.len() <= 256);
    match start(&state, next, step_up, replaces).await {
        Ok(answer) => answer,
        Err(e) => error_page(&e),
    }
}

/// The end of a web sign-in (from `GET /v1/oidc/callback`): the session, as this
/// browser's cookie, and on to `next`.
pub(in crate::api) async fn finish_sign_in(
    state: &AppState,
    provider: &crate::oidc::Provider,
    query: &HashMap<String, String>,
    pending: Pending,
    next: &str,
    replaces: Option<String>,
) -> Response {
    // Checked when the sign-in began; read back from the database, checked again.
    let next = WebPath::parse(next).unwrap_or_else(|_| WebPath::home());
    if let Some(answer) = unavailable(state) {
        return answer;
    }
    let signed = match verify(state, provider, query, &pending).await {
        Ok(signed) => signed,
        Err(e) => return error_page(&e),
    };
    let made = blocking(state, move |s| {
        s.complete_web_login(&signed, replaces.as_deref())
    });
    let session = match made.await {
        Ok(session) => session,
        Err(e) => return error_page(&e),
    };
    tracing::info!(user = %session.user, session = %session.id, "signed in to the web UI");
    let max_age = (session.expires_at - state.now())
        .num_seconds()
        .clamp(0, i64::from(COOKIE_SECONDS));
    let cookie = cookies::set(
        state,
        Cookie::Session,
        &session.token,
        u32::try_from(max_age).unwrap_or(0),
    );
    // Not a redirect: the provider started this navigation, so a `SameSite=Strict`
    // cookie would not go with a redirect's next request. Our page's own step does.
    let mut answer = continue_to(&next, StatusCode::OK);
    answer.headers_mut().append(header::SET_COOKIE, cookie);
    answer
}

/// A sign-in that failed at the callback, as a page: what went wrong, and a link that
/// starts it again (back to `next`, a path of ours, or the requests).
pub(in crate::api) fn sign_in_failed(e: &ApiError, next: Option<&str>) -> Response {
    let next = next
        .and_then(|n| WebPath::parse(n).ok())
        .unwrap_or_else(WebPath::home);
    let again = format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default()
    );
    page(
        e.status(),
        "Sign-in failed",
        None,
        html! {
            p.message { (e.message()) }
            p { "Code: " code { (e.code()) } }
            p { a #again href=(again) { "Sign in again" } }
        },
    )
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub(super) struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: the session ends (audited) and its cookie goes.
pub(super) async fn logout_post(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<SignOutForm>,
) -> Response {
    let who = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    if !form_is_ours(&state, &visit.headers, &who, &form.csrf) {
        return forged();
    }
    let token = who.token.clone();
    if let Err(e) = submit(&state, move |s| s.end_own_session(&token)).await {
        return error_page(&e);
    }
    tracing::info!(user = %who.user, "signed out of the web UI");
    let mut answer = page(
        StatusCode::OK,
        "Signed out",
        None,
        html! {
            p { "Your countersign session ended." }
            p { "Your identity provider may still remember you, and sign you in again without \
                 a password: on a shared computer, sign out there too." }
            p { a href="/" { "Sign in again" } }
        },
    );
    answer.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(&state, Cookie::Session, "", 0),
    );
    answer
}

/// Why approving needs a fresh sign-in, in the web UI's words (the service's message
/// names the CLI's command).
pub(super) fn step_up_text(state: &AppState) -> String {
    let age = state
        .config()
        .oidc
        .as_ref()
        .map(|o| humantime::format_duration(o.approval_max_auth_age).to_string())
        .unwrap_or_default();
    format!(
        "Approving needs a sign-in at the identity provider within the last {age}, and \
         yours is older: sign in again (the provider asks for your password again)."
    )
}

/// Whether `e` asks for a fresh sign-in (step-up) before approving.
pub(super) fn needs_step_up(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::SignIn {
            code: crate::error_code::ErrorCode::ReauthRequired,
            ..
        }
    )
}

/// The page of an approval that needs a fresh sign-in: a link that signs in again and
/// comes back to the request.
pub(super) fn step_up_page(id: &str, why: &str) -> Response {
    let back = format!("/login?step_up=1&next=/requests/{id}");
    page(
        StatusCode::UNAUTHORIZED,
        "Sign in again to approve",
        None,
        html! {
            p.message { (why) }
            p { a #step-up href=(back) { "Sign in again, then review the request" } }
            p { "Nothing was recorded." }
        },
    )
}
