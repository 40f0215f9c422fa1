//! The decisions on the review page: approve, deny, cancel, and a break-glass verdict.
//! Each POST passes the session's CSRF token and the same-origin check first, then goes
//! through the same `Service` call as the API.

use axum::extract::{Form, Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::super::oidc::see_other;
use super::super::{ApiError, AppState, submit};
use super::layout::{
    Person, Visit, error_page, error_page_back, forged, form_is_ours, person_and_request,
};
use super::signin::{needs_step_up, step_up_page, step_up_text};
use crate::names::{RequestId, Text};
use crate::service::{StepUp, SteppedUp};

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

/// The break-glass review form.
#[derive(Debug, Deserialize)]
pub(super) struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    comment: String,
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
    let (me, id) = person_and_request(state, visit, id).await?;
    if !form_is_ours(state, &visit.headers, &me, csrf) {
        return Err(forged());
    }
    Ok((me, id))
}

/// [`gate`] for a decision that is a step-up action (approving, a break-glass verdict):
/// a session must come from a recent sign-in, else the page that asks for one.
async fn decision_gate(
    state: &AppState,
    visit: &Visit,
    id: &str,
    csrf: &str,
) -> Result<(Person, RequestId, SteppedUp), Response> {
    let (me, id) = gate(state, visit, id, csrf).await?;
    match state.step_up(&me.auth, StepUp::Approve) {
        Ok(who) => Ok((me, id, who)),
        Err(e) if needs_step_up(&e) => Err(step_up_page(id.as_str(), &step_up_text(state))),
        Err(e) => Err(error_page(&e.into())),
    }
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
    let (me, id, who) = match decision_gate(&state, &visit, &id, &form.csrf).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    let comment = match form.comment.trim() {
        "" => None,
        c => match Text::parse(c, "comment") {
            Ok(c) => Some(c),
            Err(e) => return error_page(&ApiError::from(e)),
        },
    };
    let (seen, target) = (form.version, id.clone());
    let result = submit(&state, move |s| {
        s.approve_seen(&who, &target, comment, Some(&seen))
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

/// `POST /requests/{id}/review`: a verdict on a break-glass use. A decision: like
/// approving, it needs a recent sign-in at the identity provider.
pub(super) async fn review_post(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Response {
    let (me, id, who) = match decision_gate(&state, &visit, &id, &form.csrf).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    let Some(verdict) = crate::service::Verdict::parse(&form.verdict) else {
        return error_page(&ApiError::invalid("choose justified or unjustified"));
    };
    let comment = match Text::parse(form.comment.trim(), "comment") {
        Ok(c) => c,
        Err(e) => return error_page(&ApiError::from(e)),
    };
    let target = id.clone();
    let result = submit(&state, move |s| {
        s.review_breakglass(&who, &target, verdict, comment)
    })
    .await;
    if result.is_ok() {
        tracing::info!(%id, verdict = verdict.as_str(), "break-glass reviewed (web)");
    }
    decided(result, &me, &id, "reviewed")
}
