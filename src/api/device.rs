//! The device flow of `countersign login --device` (RFC 8628), countersign being the
//! device authorization server of its own CLI:
//!
//! - `POST /v1/oidc/device {"host","step_up"}` — the CLI asks; the answer is RFC 8628's
//!   (3.2): `device_code`, `user_code`, `verification_uri`, `verification_uri_complete`,
//!   `expires_in`, `interval`.
//! - `GET /v1/oidc/device[?user_code=XXXX-XXXX]` — the person's page: which host and
//!   address asked, when, the code to compare with the terminal's, a warning, and two
//!   buttons (or a box to type the code in).
//! - `POST /v1/oidc/device/confirm` (form: `user_code`, `csrf`, `action`) — confirm (on to
//!   the provider's sign-in) or refuse. The form must come from the page this browser
//!   was shown: its `csrf` field matches a `SameSite=Strict` cookie set with it.
//! - The provider comes back to `GET /v1/oidc/callback`, which ends here ([`finish`]);
//!   the CLI's next poll of `POST /v1/oidc/token` gets the session.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::cookies::{self, Cookie};
use super::extract::{Form, Json as JsonBody};
use super::oidc::{escape, from_oidc, html, not_configured, see_other, sign_in_cookie, verify};
use super::server::ClientAddr;
use super::{ApiError, AppState};
use crate::oidc::Pending;
use crate::service::{DeviceLogin, DeviceWait, ServiceError, blocking};

/// Body of `POST /v1/oidc/device`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceBody {
    /// The CLI's host name (shown to the person; never trusted).
    #[serde(default)]
    host: String,
    /// Ask the provider to authenticate the person again (`login --device --step-up`).
    #[serde(default)]
    step_up: bool,
}

/// `POST /v1/oidc/device`.
pub(super) async fn device_post(
    State(state): State<AppState>,
    peer: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DeviceBody>,
) -> Result<Response, ApiError> {
    let public_url = state
        .config()
        .oidc
        .as_ref()
        .map(|o| o.public_url.clone())
        .ok_or_else(not_configured)?;
    let trusted = state.config().server.limits.trusted_proxies.clone();
    let address = peer.map_or(std::net::Ipv4Addr::LOCALHOST.into(), |Extension(p)| {
        super::forwarded::client_ip(p.0.ip(), &headers, &trusted)
    });
    let grant = blocking(&state, move |s| {
        s.start_device_login(&body.host, address, body.step_up)
    })
    .await?;
    let page = format!("{public_url}/v1/oidc/device");
    let complete = format!("{page}?user_code={}", grant.user_code);
    let answer = Json(json!({
        "device_code": grant.device_code,
        "user_code": grant.user_code,
        "verification_uri": page,
        "verification_uri_complete": complete,
        "expires_in": grant.expires_in,
        "interval": grant.interval,
    }));
    Ok(([(header::CACHE_CONTROL, "no-store")], answer).into_response())
}

/// A poll that brings no session, answered as RFC 8628 (3.5) says: 400 with `error` and
/// `error_description`.
pub(super) fn wait_answer(wait: &DeviceWait) -> Response {
    let body = Json(json!({ "error": wait.code(), "error_description": wait.description() }));
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

/// `GET /v1/oidc/device`.
pub(super) async fn device_get(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if state.identity_provider().is_none() {
        return Err(not_configured());
    }
    let Some(typed) = query.get("user_code").filter(|c| !c.is_empty()).cloned() else {
        return Ok(enter_code_page(StatusCode::OK, None));
    };
    if typed.len() > 40 {
        return Ok(enter_code_page(StatusCode::NOT_FOUND, Some(&typed)));
    }
    let code = typed.clone();
    match blocking(&state, move |s| s.device_login(&code)).await {
        Ok(login) => {
            let csrf = crate::oidc::random_token();
            let mut page = confirm_page(&typed, &login, &csrf);
            page.headers_mut()
                .insert(header::SET_COOKIE, form_cookie(&state, &csrf, 600));
            Ok(page)
        }
        Err(ServiceError::SignIn { .. }) => {
            Ok(enter_code_page(StatusCode::NOT_FOUND, Some(&typed)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The form of the confirm page.
#[derive(Debug, Deserialize)]
pub(super) struct ConfirmForm {
    user_code: String,
    csrf: String,
    action: String,
}

/// `POST /v1/oidc/device/confirm`.
pub(super) async fn confirm_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, ApiError> {
    let provider = state.identity_provider().ok_or_else(not_configured)?;
    let from_our_page = !form.csrf.is_empty()
        && cookies::from_our_page(&state, &headers)
        && cookies::get(&state, &headers, Cookie::DeviceForm).is_some_and(|c| c == form.csrf);
    if !from_our_page || form.user_code.len() > 40 {
        tracing::warn!("a device login confirmation came without the page's cookie");
        return Ok(message_page(
            StatusCode::FORBIDDEN,
            "Not confirmed",
            "This confirmation did not come from the page countersign showed in this \
             browser. Open the address your terminal printed, check the code, and confirm \
             there.",
        ));
    }
    let clear = form_cookie(&state, "", 0);
    let code = form.user_code.clone();
    let mut answer = match form.action.as_str() {
        "refuse" => match blocking(&state, move |s| s.refuse_device_login(&code)).await {
            Ok(_) => message_page(
                StatusCode::OK,
                "Login refused",
                "The command line that asked was told no. If you did not start it, tell \
                 your security team: someone may be trying to sign in as you.",
            ),
            Err(ServiceError::SignIn { .. }) => over_page(),
            Err(e) => return Err(e.into()),
        },
        "confirm" => {
            // Whether to ask for a fresh authentication is the login's (the CLI's) to
            // say, read again with the sign-in recorded.
            let looked = code.clone();
            let login = match blocking(&state, move |s| s.device_login(&looked)).await {
                Ok(login) => login,
                Err(ServiceError::SignIn { .. }) => return Ok(over_page()),
                Err(e) => return Err(e.into()),
            };
            let step_up = login
                .step_up
                .then_some(provider.settings().approval_max_auth_age);
            let pending = Pending::new();
            let url = provider
                .authorize_url(&pending, step_up)
                .await
                .map_err(from_oidc)?;
            let cookie = sign_in_cookie(&state, &pending.state, 600);
            match blocking(&state, move |s| s.record_device_sign_in(&pending, &code)).await {
                Ok(_) => {
                    let mut to_provider = see_other(&url);
                    to_provider.headers_mut().append(header::SET_COOKIE, cookie);
                    to_provider
                }
                Err(ServiceError::SignIn { .. }) => over_page(),
                Err(e) => return Err(e.into()),
            }
        }
        _ => return Err(ServiceError::Invalid("action must be confirm or refuse".into()).into()),
    };
    answer.headers_mut().append(header::SET_COOKIE, clear);
    Ok(answer)
}

/// The end of a sign-in for a device login (from `GET /v1/oidc/callback`): the page the
/// person sees; the CLI hears the outcome at its next poll.
pub(super) async fn finish(
    state: &AppState,
    provider: &crate::oidc::Provider,
    query: &HashMap<String, String>,
    pending: Pending,
    device_hash: &str,
) -> Response {
    let outcome = match verify(state, provider, query, &pending).await {
        Ok(signed) => {
            let hash = device_hash.to_owned();
            blocking(state, move |s| s.complete_device_login(&signed, &hash)).await
        }
        Err(e) => {
            let (hash, why) = (
                device_hash.to_owned(),
                format!("{}: {}", e.code(), e.message()),
            );
            if let Err(e) = blocking(state, move |s| s.fail_device_login(&hash, &why)).await {
                tracing::warn!(error = ?e, "could not record a failed device sign-in");
            }
            return message_page(e.status(), "Sign-in failed", e.message());
        }
    };
    match outcome {
        Ok((user, login)) => {
            let (user, host, address) = (
                escape(user.as_str()),
                escape(&login.client_host),
                escape(&login.client_address),
            );
            let body = format!(
                "<p>You signed in as <strong>{user}</strong>. The command line on host \
                 <strong>{host}</strong> (address {address}) gets the session now: go back \
                 to your terminal.</p>"
            );
            html(StatusCode::OK, page("Signed in", &body), "")
        }
        Err(e) => {
            let e = ApiError::from(e);
            message_page(e.status(), "Sign-in failed", e.message())
        }
    }
}

/// The form cookie (`max_age` 0: removed). `SameSite=Strict`: a form posted from
/// another site does not carry it.
fn form_cookie(state: &AppState, value: &str, max_age: u32) -> header::HeaderValue {
    cookies::set(state, Cookie::DeviceForm, value, max_age)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>countersign: {title}</title></head><body><h1>{title}</h1>{body}</body></html>\n"
    )
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(
        status,
        page(title, &format!("<p>{}</p>", escape(message))),
        "",
    )
}

fn over_page() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "No such login",
        "No login waits under this code: it is over, was used, or was mistyped. Run \
         `countersign login` again.",
    )
}

/// The page to type a code in (`typed`: one that matched nothing).
fn enter_code_page(status: StatusCode, typed: Option<&str>) -> Response {
    let note = typed.map_or(String::new(), |t| {
        format!(
            "<p><strong>No login waits under the code {}</strong>: it is over, was used, or \
             was mistyped.</p>",
            escape(t)
        )
    });
    let body = format!(
        "{note}<form method=\"get\" action=\"device\"><label>The code your terminal shows: \
         <input name=\"user_code\" autocomplete=\"off\" autofocus></label> \
         <button type=\"submit\">Next</button></form>"
    );
    html(
        status,
        page("Sign in a countersign command line", &body),
        "form-action 'self'; ",
    )
}

/// The page that asks the person to confirm a device login.
fn confirm_page(typed: &str, login: &DeviceLogin, csrf: &str) -> Response {
    let code =
        crate::service::format_user_code(&typed.replace(['-', ' '], "").to_ascii_uppercase());
    let asked = chrono::DateTime::from_timestamp(login.created_at, 0)
        .map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        });
    let body = format!(
        "<p>A countersign command line asks to sign in as you.</p>\
         <table><tr><th>Host (as it says)</th><td id=\"host\">{host}</td></tr>\
         <tr><th>Address</th><td id=\"address\">{address}</td></tr>\
         <tr><th>Asked at</th><td>{asked}</td></tr>\
         <tr><th>Code</th><td id=\"code\"><strong>{code}</strong></td></tr></table>\
         <p><strong>Confirm only a login you started yourself, just now, and only if your \
         terminal shows this same code.</strong> Never confirm a login because someone \
         sent you this link or asked you to: whoever started it would get your access.</p>\
         <form method=\"post\" action=\"device/confirm\">\
         <input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"action\" value=\"confirm\">Yes, it is me: sign in</button> \
         <button type=\"submit\" name=\"action\" value=\"refuse\">No, this was not me</button>\
         </form>",
        host = escape(&login.client_host),
        address = escape(&login.client_address),
        code = escape(&code),
        csrf = escape(csrf),
    );
    // The form goes to us, and we send the browser on to the provider: some browsers
    // hold a redirect after a form to `form-action` too, so it is left open.
    let mut answer = html(
        StatusCode::OK,
        page("Confirm a countersign login", &body),
        "",
    );
    // Browsers send `Origin: null` with a form from a `no-referrer` page; `same-origin`
    // lets the confirmation say where it came from, and still sends no Referer elsewhere.
    answer.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    answer
}
