//! The frame of every page, the person behind it, and the checks every form passes.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};

use super::super::cookies::{self, Cookie};
use super::super::limits::{AuthLimiter, TokenId};
use super::super::server::ClientAddr;
use super::super::{ApiError, AppState, forwarded};
use crate::names::UserName;
use crate::service::{Authenticated, Credential, ServiceError, WebPath};

/// The Content-Security-Policy of every page, past `default-src 'none'`: our stylesheet,
/// forms to us only, no `<base>`, never in a frame (added by `oidc::html`).
const CSP: &str = "style-src 'self'; form-action 'self'; base-uri 'none'; ";

/// The person signed in in this browser.
pub(super) struct Person {
    /// Who.
    pub user: UserName,
    /// Who, with how (a session; its sign-in time decides step-up): what
    /// `Service::step_up` takes.
    pub auth: Authenticated,
    /// The session token (from the cookie), to end it at sign-out.
    pub token: String,
    /// Whether they are an admin.
    pub admin: bool,
}

impl Person {
    /// The CSRF token of this session: every form of ours carries it. Derived from the
    /// session token, which only this browser holds (an `HttpOnly` cookie).
    pub(super) fn csrf(&self) -> String {
        csrf_of(&self.token)
    }
}

fn csrf_of(token: &str) -> String {
    let digest = Sha256::digest(format!("countersign-web-csrf\0{token}").as_bytes());
    hex::encode(&digest[..16])
}

/// What a page handler needs of the request it answers: method, headers, address, and
/// the failed-authentication limits the API's bearer tokens are counted against too.
pub(super) struct Visit {
    /// The method.
    pub method: Method,
    /// The headers (cookies, `Origin`, `Sec-Fetch-Site`).
    pub headers: HeaderMap,
    /// The path and query, to come back to after a sign-in.
    pub uri: Uri,
    limiter: Option<Arc<AuthLimiter>>,
    client: Option<IpAddr>,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        let trusted = &state.config().server.limits.trusted_proxies;
        Ok(Visit {
            method: parts.method.clone(),
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
            limiter: parts.extensions.get::<Arc<AuthLimiter>>().cloned(),
            client: peer.map(|p| forwarded::client_ip(p, &parts.headers, trusted)),
        })
    }
}

/// Why this server does not serve the web UI (a page saying so), if it does not: no
/// `[oidc]`, or plain HTTP on a listener that is not loopback (a session cookie is never
/// sent in clear over a network).
pub(super) fn unavailable(state: &AppState) -> Option<Response> {
    if state.config().oidc.is_none() {
        return Some(message(
            StatusCode::NOT_FOUND,
            "No web UI here",
            "The web UI needs sign-in with an identity provider: an [oidc] section in the \
             server's config.",
        ));
    }
    if !cookies::secure(state) && !state.config().server.listen.ip().is_loopback() {
        return Some(message(
            StatusCode::FORBIDDEN,
            "HTTPS needed",
            "The web UI runs over plain HTTP only on a loopback listener: set [oidc] \
             public_url to the https:// address countersign is reached at.",
        ));
    }
    None
}

/// The person of this browser's session, or the answer that gets one: a browser
/// without a session that asks for a page goes straight to the provider's sign-in
/// (and comes back to the page); a form without one is refused. A cookie that names no
/// live session counts as a failed authentication, as a bad bearer token does.
pub(super) async fn person(state: &AppState, visit: &Visit) -> Result<Person, Response> {
    if let Some(answer) = unavailable(state) {
        return Err(answer);
    }
    let token = cookies::get(state, &visit.headers, Cookie::Session).filter(|t| t.len() <= 256);
    let token_id = token.as_deref().map(TokenId::of);
    if let (Some(limiter), Some(_)) = (&visit.limiter, token_id)
        && let Err(wait) = limiter.check(visit.client, token_id)
    {
        return Err(message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            &format!("Too many failed authentications from this address: retry in {wait} s."),
        ));
    }
    let checked = match token.clone() {
        Some(t) => Some(crate::service::quick(state, move |s| s.authenticate_credential(&t)).await),
        None => None,
    };
    let refused = match &checked {
        Some(Err(
            ServiceError::Unauthenticated | ServiceError::SignIn { .. } | ServiceError::Disabled(_),
        )) => true,
        // Only a web UI session is good as its cookie.
        Some(Ok(who)) => !matches!(who.credential(), Credential::Session { web: true, .. }),
        _ => false,
    };
    if refused {
        if let Some(limiter) = &visit.limiter {
            limiter.failed(visit.client, token_id);
        }
        let client = visit.client.map(|c| c.to_string()).unwrap_or_default();
        let short = token_id.map(|t| t.short()).unwrap_or_default();
        tracing::warn!(%client, token = %short, "a web session cookie was refused");
    }
    match (checked, token) {
        (Some(Ok(auth)), Some(token))
            if matches!(auth.credential(), Credential::Session { web: true, .. }) =>
        {
            let user = auth.user().clone();
            let admin = state.config().policy.is_admin(&user);
            Ok(Person {
                user,
                auth,
                token,
                admin,
            })
        }
        (Some(Err(ServiceError::Disabled(user))), _) => Err(message(
            StatusCode::FORBIDDEN,
            "User disabled",
            &format!("User {user} is disabled: an admin must enable them again."),
        )),
        (Some(Err(e)), _)
            if !matches!(
                e,
                ServiceError::Unauthenticated | ServiceError::SignIn { .. }
            ) =>
        {
            Err(error_page(&ApiError::from(e)))
        }
        _ if visit.method != Method::GET => Err(message(
            StatusCode::FORBIDDEN,
            "Not signed in",
            "This form came without a session of this browser: nothing was changed. Open \
             the page again, sign in, and send it from there.",
        )),
        _ => {
            let mut answer = away(&visit.headers, &visit.uri);
            // A cookie that names no live session is dropped (not sent, and counted as a
            // failure, again at every page).
            if refused {
                let clear = cookies::set(state, Cookie::Session, "", 0);
                answer.headers_mut().append(header::SET_COOKIE, clear);
            }
            Err(answer)
        }
    }
}

/// [`person`], and the request `id` names (a page about one request).
pub(super) async fn person_and_request(
    state: &AppState,
    visit: &Visit,
    id: &str,
) -> Result<(Person, crate::names::RequestId), Response> {
    let me = person(state, visit).await?;
    let id = crate::names::RequestId::parse(id).map_err(|e| error_page(&ApiError::from(e)))?;
    Ok((me, id))
}

/// A browser without a session: the sign-in, or first a hop to this same address when
/// the browser came from another site (a link in chat). A `SameSite=Strict` cookie is
/// not sent on such a navigation; on the hop, started by our own page, it is.
fn away(headers: &HeaderMap, uri: &Uri) -> Response {
    let next = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site && let Ok(path) = WebPath::parse(&next) {
        return continue_to(&path, StatusCode::OK);
    }
    let to = format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default()
    );
    super::super::oidc::see_other(&to)
}

/// A page that sends the browser on to `next` (a path of ours) by itself, with a link
/// for the rare browser that does not: a navigation our own page starts, so the
/// `SameSite=Strict` session cookie goes with it.
pub(super) fn continue_to(next: &WebPath, status: StatusCode) -> Response {
    let next = next.as_str();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={ "0;url=" (next) };
                title { "countersign" }
            }
            body { p { a #continue href=(next) { "Continue" } } }
        }
    };
    super::super::oidc::html(status, page.into_string(), CSP)
}

/// Whether a form comes from a page of ours, with this session's CSRF token: the token
/// must match, and the browser must say the form is ours (`Sec-Fetch-Site:
/// same-origin`, or an `Origin` equal to `public_url`'s).
pub(super) fn form_is_ours(
    state: &AppState,
    headers: &HeaderMap,
    person: &Person,
    csrf: &str,
) -> bool {
    let token_ok = Sha256::digest(csrf.as_bytes()) == Sha256::digest(person.csrf().as_bytes());
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let ours = cookies::our_origin(state);
    let origin_ours = origin.is_some_and(|o| Some(o) == ours.as_deref());
    // `Origin: null` comes from our own no-referrer pages; any other must be ours.
    let origin_ok = match origin {
        None | Some("null") => site == Some(b"same-origin"),
        Some(_) => origin_ours,
    };
    let site_ok = site.is_none_or(|s| s == b"same-origin");
    token_ok && origin_ok && site_ok
}

/// The 403 of a form that failed [`form_is_ours`].
pub(super) fn forged() -> Response {
    tracing::warn!("a web form came without this session's token or from another site");
    message(
        StatusCode::FORBIDDEN,
        "Refused: not from this page",
        "This form did not come from a countersign page of this browser's session (its \
         token is missing or wrong, or another site sent it). Nothing was changed. Open \
         the page again and send the form from there.",
    )
}

/// A page of ours: the frame around `body`.
pub(super) fn page(
    status: StatusCode,
    title: &str,
    who: Option<&Person>,
    body: Markup,
) -> Response {
    let frame = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · countersign" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    nav aria-label="Main" {
                        a href="/" { "Requests" }
                        " "
                        a href="/requests/new" { "New request" }
                        @if who.is_some_and(|p| p.admin) {
                            " "
                            a href="/audit" { "Audit" }
                        }
                    }
                    @if let Some(p) = who {
                        form.signout method="post" action="/logout" {
                            "Signed in as " strong #me { (p.user) } " "
                            input type="hidden" name="csrf" value=(p.csrf());
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    super::super::oidc::html(status, frame.into_string(), CSP)
}

/// A page that says one thing.
pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, None, html! { p.message { (text) } })
}

/// An error as a page: its status, its code and its message.
pub(super) fn error_page(e: &ApiError) -> Response {
    error_page_back(e, None, "/", "Back to the requests")
}

/// [`error_page`] for `who` (the header shows them), with a link back to `href`.
pub(super) fn error_page_back(
    e: &ApiError,
    who: Option<&Person>,
    href: &str,
    text: &str,
) -> Response {
    let title = match (e.status(), e.code()) {
        (_, "request_changed") => "Changed meanwhile",
        (StatusCode::NOT_FOUND, _) => "Not found",
        (s, _) if s.is_client_error() => "Refused",
        _ => "Something went wrong",
    };
    page(
        e.status(),
        title,
        who,
        html! {
            p.message { (e.message()) }
            p { "Code: " code { (e.code()) } ". " (outcome(e)) }
            p { a #back href=(href) { (text) } }
        },
    )
}

/// What a refusal left behind, in words: most refuse before writing anything; a check
/// at signing that fails ends the request (as the API's do), and a server-side failure
/// leaves the outcome to be looked up.
fn outcome(e: &ApiError) -> &'static str {
    match e.code() {
        "not_found" => "",
        "sod_conflict" | "not_a_requester" | "key_not_allowed" | "policy_changed"
        | "principal_taken" => {
            "If this was the last approval needed, the request ended refused: its page says \
             where it stands."
        }
        "expired" => "The request is expired now.",
        "internal" | "unavailable" | "timeout" | "overloaded" => {
            "The change may or may not have been made: look at the request before trying again."
        }
        _ => "Nothing was changed.",
    }
}

/// `GET /static/style.css`.
pub(super) async fn style_get(State(_): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// Plain, readable on a phone, dark or light as the system is.
const STYLE: &str = include_str!("style.css");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ErrorCode;

    #[test]
    fn a_refusal_says_what_it_left_behind() {
        let e = |code| ApiError::new(StatusCode::FORBIDDEN, code, "x");
        assert_eq!(outcome(&e(ErrorCode::SelfApproval)), "Nothing was changed.");
        assert!(outcome(&e(ErrorCode::SodConflict)).contains("ended refused"));
        assert!(outcome(&e(ErrorCode::Internal)).contains("may or may not"));
        assert_eq!(outcome(&e(ErrorCode::NotFound)), "");
    }
}
