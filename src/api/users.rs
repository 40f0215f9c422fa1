//! `POST /v1/users/{name}/enable` (admins): a disabled (offboarded) user may log in again.
//! Disabling is part of `POST /v1/users/{name}/revoke` (`revoke.rs`).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Json as JsonBody, OptionalJson};
use super::{ApiError, AppState, Caller, submit};
use crate::names::{Text, UserName};
use crate::service::StepUp;

/// Body of `enable` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnableBody {
    reason: Option<String>,
}

/// `POST /v1/users/{name}/enable` `{"reason"?}` → `{"user","disabled":false}`; 409
/// `not_disabled` when the user is not disabled, 404 for a name nobody knows.
pub(super) async fn user_enable(
    State(state): State<AppState>,
    Caller(me): Caller,
    Path(name): Path<String>,
    JsonBody(body): OptionalJson<EnableBody>,
) -> Result<Json<Value>, ApiError> {
    // It gives access back: with a session, a recent sign-in (a phished or old admin
    // session must not re-enable an offboarded approver).
    let who = state.step_up(&me, StepUp::Grant("enabling a user"))?;
    let user = UserName::parse(&name)?;
    let reason = match body.reason.as_deref() {
        Some(r) => Some(Text::parse(r, "reason")?),
        None => None,
    };
    let enabled = submit(&state, move |s| s.enable_user(&who, &user, reason)).await?;
    tracing::info!(user = %enabled.user, "user enabled");
    Ok(Json(json!({ "user": enabled.user, "disabled": false })))
}
