//! A new request: the form (roles I may ask for, my keys or one to paste, lifetime,
//! reason, and the roles' terms), and its post.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::oidc::see_other;
use super::super::requests::CreateBody;
use super::super::{ApiError, AppState, blocking, submit};
use super::layout::{Visit, error_page, error_page_back, forged, form_is_ours, page, person};

/// `GET /requests/new`: roles I may ask for, my keys (or one to paste), lifetime, reason.
pub(super) async fn new_page(State(state): State<AppState>, visit: Visit) -> Response {
    let me = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let user = me.user.clone();
    let read = blocking(&state, move |s| {
        Ok((s.whoami(&user)?, s.list_keys(&user, None, false)?))
    })
    .await;
    let (who, keys) = match read {
        Ok(read) => read,
        Err(e) => return error_page(&e),
    };
    let csrf = me.csrf();
    let config = state.config();
    let roles: Vec<&crate::policy::Role> = who
        .can_request
        .iter()
        .filter_map(|r| crate::names::RoleName::parse(r).ok())
        .filter_map(|r| config.policy.roles.get(&r))
        .collect();
    let body = html! {
        @if roles.is_empty() {
            p { "There is no role you may ask for. An admin adds you to a role's requesters \
                 (in the config), or to a group that is one." }
        } @else {
            form method="post" action="/requests" {
                input type="hidden" name="csrf" value=(csrf);
                label for="role" { "Role" }
                select #role name="role" required {
                    option value="" { "Choose a role" }
                    @for r in &roles { option value=(r.name) { (r.name) } }
                }
                @if keys.is_empty() {
                    label for="public_key" { "Your public key (the line of your .pub file)" }
                } @else {
                    label for="key" { "One of your keys" }
                    select #key name="key" {
                        option value="" { "(or paste one below)" }
                        @for k in &keys { option value=(k.public_key) { (k.fingerprint) } }
                    }
                    label for="public_key" { "Or paste a public key (the line of its .pub file)" }
                }
                textarea #public_key name="public_key" rows="3" placeholder="ssh-ed25519 AAAA..." {}
                label for="ttl" {
                    "Lifetime (optional, such as 30m or 1h; the role's default otherwise)" }
                input #ttl type="text" name="ttl" maxlength="20";
                label for="reason" { "Reason (required: what for, e.g. an incident)" }
                input #reason type="text" name="reason" required maxlength="1000";
                button #ask type="submit" { "Ask" }
            }
            h2 { "The roles you may ask for" }
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Role" } th scope="col" { "Principals" }
                    th scope="col" { "Lifetime" } th scope="col" { "Who approves" }
                } }
                tbody { @for r in &roles { tr {
                    td { (r.name) }
                    td.mono { (r.principals.iter().map(|p|
                        p.0.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { (humantime::format_duration(r.default_ttl)) " (at most "
                        (humantime::format_duration(r.max_ttl)) ")" }
                    td { (r.approval_rule()) }
                } } }
            } }
        }
    };
    page(StatusCode::OK, "New request", Some(&me), body)
}

/// The new-request form.
#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    public_key: String,
    #[serde(default)]
    ttl: String,
    #[serde(default)]
    reason: String,
}

/// `POST /requests`: the request is made, and the browser goes to its page.
pub(super) async fn create_post(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<CreateForm>,
) -> Response {
    let me = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    if !form_is_ours(&state, &visit.headers, &me, &form.csrf) {
        return forged();
    }
    let key = if form.public_key.trim().is_empty() {
        form.key
    } else {
        form.public_key
    };
    if key.trim().is_empty() {
        let e = ApiError::invalid(
            "no key: paste your public key (the line of your .pub file), or choose one of \
             your keys",
        );
        return error_page_back(&e, Some(&me), "/requests/new", "Back to the form");
    }
    let body = CreateBody {
        role: form.role,
        public_key: key.trim().to_owned(),
        reason: form.reason.trim().to_owned(),
        ttl: Some(form.ttl.trim().to_owned()).filter(|t| !t.is_empty()),
    };
    let req = match body.parse() {
        Ok(req) => req,
        Err(e) => return error_page(&e),
    };
    let user = me.user.clone();
    match submit(&state, move |s| s.create_request(&user, req)).await {
        Ok(view) => {
            tracing::info!(id = %view.id, role = %view.role, "request created (web)");
            see_other(&format!("/requests/{}?done=created", view.id))
        }
        Err(e) => error_page_back(&e, Some(&me), "/requests/new", "Back to the form"),
    }
}
