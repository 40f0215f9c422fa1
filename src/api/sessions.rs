//! Sessions from `countersign login`, for admins: `GET /v1/sessions?user=NAME` lists the
//! live ones (never a token), `POST /v1/sessions/{id}/revoke` ends one (audited as
//! `session.revoked`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::{Actor, ApiError, AppState, submit};
use crate::names::UserName;
use crate::service::{ServiceError, blocking, rfc3339};

/// `GET /v1/sessions?user=NAME` → `{"sessions":[{"id","user","via","created_at","expires_at"}]}`.
pub(super) async fn sessions_list(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let user = match query.get("user") {
        Some(name) => Some(UserName::parse(name)?),
        None => None,
    };
    let listed = blocking(&state, move |s| s.list_sessions(&actor, user.as_ref())).await?;
    let sessions: Vec<Value> = listed
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "user": s.user,
                "via": s.via,
                "created_at": rfc3339(s.created_at),
                "expires_at": rfc3339(s.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// `POST /v1/sessions/{id}/revoke` → `{"revoked": ID, "user": NAME}`.
pub(super) async fn session_revoke(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::NotFound("no such live session".into()).into());
    }
    let revoke = id.clone();
    let user = submit(&state, move |s| s.revoke_session(&actor, &revoke)).await?;
    tracing::info!(session = %id, user = %user, "session revoked");
    Ok(Json(json!({ "revoked": id, "user": user })))
}

/// `POST /v1/oidc/logout`: the caller's own session ends → `{"ended": ID}`; 400
/// `invalid_request` for an API token.
pub(super) async fn logout_post(
    State(state): State<AppState>,
    Actor(_actor): Actor,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, _) = request.into_parts();
    let token = super::auth::bearer_token(&parts).ok_or(ServiceError::Unauthenticated)?;
    let id = submit(&state, move |s| s.end_own_session(&token)).await?;
    tracing::info!(session = %id, "session ended by its owner");
    Ok(Json(json!({ "ended": id })))
}
