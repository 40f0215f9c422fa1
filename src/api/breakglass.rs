//! Break-glass: `POST /v1/breakglass` (a role at once, reviewed afterwards),
//! `POST /v1/requests/{id}/review` (a reviewer's verdict) and `POST /v1/breakglass/allow`
//! (an admin allows one more use before the last is reviewed).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::extract::Json as JsonBody;
use super::requests::CreateBody;
use super::{ApiError, AppState, Caller, submit};
use crate::names::{RequestId, Text, UserName};
use crate::service::{Allowance, RequestView, StepUp, Verdict};

/// `POST /v1/requests/{id}/review` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewBody {
    verdict: String,
    comment: String,
}

/// `POST /v1/breakglass/allow` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AllowBody {
    user: String,
}

/// `POST /v1/breakglass` (body as `POST /v1/requests`) -> 201 with the request, issued,
/// its certificate and its `breakglass` terms (`ttl_cut` when the lifetime was cut).
/// Issuing without approval is a step-up action, as approving is: a session must come
/// from a recent sign-in, never from the device flow (whose link anyone can send to an
/// invoker). With the identity provider down, the SSH front door is the way.
pub(super) async fn breakglass_use(
    State(state): State<AppState>,
    Caller(me): Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body.parse()?;
    let who = state.step_up(&me, StepUp::Approve)?;
    let view = submit(&state, move |s| s.break_glass(&who, req)).await?;
    let location = format!("/v1/requests/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
}

/// `POST /v1/requests/{id}/review` -> the request with the verdict counted. A decision:
/// like approving, it needs a recent sign-in at the identity provider (`reauth_required`).
pub(super) async fn request_review(
    State(state): State<AppState>,
    Caller(me): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReviewBody>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    let verdict = Verdict::parse(&body.verdict).ok_or_else(|| {
        ApiError::invalid("verdict: must be \"justified\" or \"unjustified\"".to_owned())
    })?;
    let comment = Text::parse(&body.comment, "comment")?;
    let who = state.step_up(&me, StepUp::Approve)?;
    let user = me.user().clone();
    let view = submit(&state, move |s| {
        s.review_breakglass(&who, &id, verdict, comment)
    })
    .await?;
    tracing::info!(
        id = %view.id,
        %user,
        verdict = verdict.as_str(),
        status = %view.status,
        "break-glass reviewed"
    );
    Ok(Json(view))
}

/// `POST /v1/breakglass/allow` -> who may break the glass once more (admins).
pub(super) async fn breakglass_allow(
    State(state): State<AppState>,
    Caller(me): Caller,
    JsonBody(body): JsonBody<AllowBody>,
) -> Result<Json<Allowance>, ApiError> {
    let who = state.step_up(&me, StepUp::Grant("allowing one more break-glass use"))?;
    let user = UserName::parse(&body.user).map_err(|e| ApiError::invalid(format!("user: {e}")))?;
    let allowed = submit(&state, move |s| s.allow_breakglass(&who, &user)).await?;
    tracing::warn!(
        user = %allowed.user,
        by = %allowed.allowed_by,
        "break-glass: one more use allowed before the last is reviewed"
    );
    Ok(Json(allowed))
}
