//! The forms: approve, deny and cancel on the review page, a new request, and the
//! certificate to download. Each POST passes the session's CSRF token and the
//! same-origin check first, then goes through the same `Service` call as the API.

use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::oidc::see_other;
use super::super::requests::CreateBody;
use super::super::{ApiError, AppState, blocking, submit};
use super::layout::{
    Person, Visit, error_page, error_page_back, forged, form_is_ours, page, person,
};
use super::pages::{counted, done_text, facts, flag_text};
use super::signin::{needs_step_up, step_up_page, step_up_text};
use crate::names::{RequestId, Text};
use crate::service::{Review, Status};

/// The review page's body: facts, flags, conflicts, approvals, who is still needed,
/// why the viewer cannot approve (if so), and the forms.
pub(super) fn review_body(
    review: &Review,
    me: &Person,
    step_up: Option<&str>,
    certificate: Option<&str>,
    done: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let r = &review.request;
    let pending = r.status == Status::Pending;
    let csrf = me.csrf();
    let done = done.and_then(|d| done_text(d, r));
    html! {
        @if let Some(done) = done {
            p.notice #done role="status" { (done) }
        }
        (facts(review, now))
        @if !review.flags.is_empty() {
            h2 { "Worth a second look" }
            ul.flags #flags { @for f in &review.flags { li { (flag_text(f)) } } }
        }
        @if review.role_changed {
            p.warn #role-changed { "Role " (r.role)
                " changed (or was removed) since this request was made." }
        }
        @if !review.conflicts.is_empty() {
            h2 { "Conflicting roles the requester holds" }
            ul #conflicts { @for c in &review.conflicts { li.bad { (c.role) ": " (c.reason) } } }
        }
        h2 { "Approvals (" (counted(r)) " of " (r.approvals_required) ")" }
        @if r.approvals.is_empty() { p { "None yet." } } @else {
            ul #approvals { @for a in &r.approvals {
                li { strong { (a.approver) } " at " (a.at) @if let Some(c) = &a.comment { ": " (c) }
                    }
            } }
        }
        @if pending && !r.waiting_for.is_empty() {
            p #still-needed { "Still needed: "
                @for (i, step) in r.waiting_for.iter().enumerate() {
                    @if i > 0 { " AND " }
                    (step.remaining) " more of " (step.approvers.join(", "))
                }
            }
        }
        @if let Some(why) = &review.viewer.cannot_approve {
            p.why #why-not { "You cannot approve this request: " (why) "." }
        }
        @if pending && (review.viewer.cannot_approve.is_none() || review.viewer.may_deny) {
            div.decide {
                @if review.viewer.cannot_approve.is_none() {
                    @if let Some(why) = step_up {
                        p.why #step-up-needed { (why) " "
                            a href={ "/login?step_up=1&next=/requests/" (r.id) } { "Sign in again" }
                                }
                    } @else {
                        form method="post" action={ "/requests/" (r.id) "/approve" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="version" value=(r.version);
                            label for="comment" { "Comment (optional)" }
                            input #comment type="text" name="comment" maxlength="1000";
                            button.approve #approve type="submit" { "Approve" }
                        }
                    }
                }
                @if review.viewer.may_deny {
                    form method="post" action={ "/requests/" (r.id) "/deny" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="version" value=(r.version);
                        label for="deny-reason" { "Reason to deny (required)" }
                        input #deny-reason type="text" name="reason" required maxlength="1000";
                        button #deny type="submit" { "Deny" }
                    }
                }
            }
        }
        @if pending && review.viewer.is_requester {
            form method="post" action={ "/requests/" (r.id) "/cancel" } {
                input type="hidden" name="csrf" value=(csrf);
                button #cancel type="submit" { "Cancel my request" }
            }
        }
        @if let Some(cert) = certificate {
            h2 { "Your certificate" }
            label for="certificate" { "Copy it, or download it" }
            textarea #certificate readonly rows="6" { (cert) }
            p {
                a #download href={ "/requests/" (r.id) "/certificate" } download {
                    "Download " (r.id) "-cert.pub"
                }
                " and save it next to the private key of the key you asked with, named as that \
                 key with " code { "-cert.pub" } " (for " code { "~/.ssh/id_ed25519" } ": "
                code { "~/.ssh/id_ed25519-cert.pub" } "); ssh uses it from there."
            }
        }
    }
}

/// The approve form.
#[derive(Debug, Deserialize)]
pub(super) struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    comment: String,
}

/// The deny form.
#[derive(Debug, Deserialize)]
pub(super) struct DenyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    reason: String,
}

/// The cancel (and sign-out) form: the token only.
#[derive(Debug, Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// The person and request of a form on a review page, once its token and origin hold.
async fn gate(
    state: &AppState,
    visit: &Visit,
    id: &str,
    csrf: &str,
) -> Result<(Person, RequestId), Response> {
    let me = person(state, visit).await?;
    if !form_is_ours(state, &visit.headers, &me, csrf) {
        return Err(forged());
    }
    let id = RequestId::parse(id).map_err(|e| error_page(&ApiError::from(e)))?;
    Ok((me, id))
}

/// The answer to a decision: back to the review page (303), or the refusal as a page:
/// 403 for the rules, 409 for a request that changed since it was reviewed.
fn decided(
    result: Result<crate::service::RequestView, ApiError>,
    me: &Person,
    id: &RequestId,
    done: &str,
) -> Response {
    match result {
        Ok(_) => see_other(&format!("/requests/{id}?done={done}")),
        Err(e) => {
            let back = format!("/requests/{id}");
            error_page_back(&e, Some(me), &back, "Review the request again")
        }
    }
}

/// `POST /requests/{id}/approve`.
pub(super) async fn approve_post(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    let (me, id) = match gate(&state, &visit, &id, &form.csrf).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    if let Err(e) = state.check_step_up(&me.credential) {
        if needs_step_up(&e) {
            return step_up_page(id.as_str(), &step_up_text(&state));
        }
        return error_page(&e.into());
    }
    let comment = match form.comment.trim() {
        "" => None,
        c => match Text::parse(c, "comment") {
            Ok(c) => Some(c),
            Err(e) => return error_page(&ApiError::from(e)),
        },
    };
    let (user, seen, target) = (me.user.clone(), form.version, id.clone());
    let result = submit(&state, move |s| {
        s.approve_seen(&user, &target, comment, Some(&seen))
    })
    .await;
    if let Ok(view) = &result {
        tracing::info!(id = %view.id, status = %view.status, "request approved (web)");
    }
    decided(result, &me, &id, "approved")
}

/// `POST /requests/{id}/deny`.
pub(super) async fn deny_post(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<DenyForm>,
) -> Response {
    let (me, id) = match gate(&state, &visit, &id, &form.csrf).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    let reason = match Text::parse(form.reason.trim(), "reason") {
        Ok(r) => r,
        Err(e) => return error_page(&ApiError::from(e)),
    };
    let (user, seen, target) = (me.user.clone(), form.version, id.clone());
    let result = submit(&state, move |s| {
        s.deny_seen(&user, &target, reason, Some(&seen))
    })
    .await;
    if result.is_ok() {
        tracing::info!(%id, "request denied (web)");
    }
    decided(result, &me, &id, "denied")
}

/// `POST /requests/{id}/cancel`.
pub(super) async fn cancel_post(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let (me, id) = match gate(&state, &visit, &id, &form.csrf).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    let (user, target) = (me.user.clone(), id.clone());
    let result = submit(&state, move |s| s.cancel(&user, &target)).await;
    decided(result, &me, &id, "cancelled")
}

/// `GET /requests/{id}/certificate`: the requester's certificate, as a file.
pub(super) async fn certificate_get(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let me = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let id = match RequestId::parse(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&ApiError::from(e)),
    };
    let (user, target) = (me.user.clone(), id.clone());
    match blocking(&state, move |s| s.certificate(&user, &target)).await {
        Ok(cert) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}-cert.pub\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            format!("{cert}\n"),
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}

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
