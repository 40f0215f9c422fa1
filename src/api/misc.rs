//! Health, CA public key, whoami, and the 404 for unknown paths.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{Actor, ApiError, AppState};
use crate::service::WhoAmI;

/// `GET /v1/health` (no auth): `{"status":"ok"}` once the database answers a read, else
/// 503 `unavailable` (the cause in the server log). Not subject to the in-flight limit,
/// so a busy server still answers it.
pub async fn health_get(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match super::inline(&state, |s| s.check_storage()) {
        Ok(()) => Ok(Json(json!({ "status": "ok" }))),
        Err(e) => {
            tracing::error!(error = ?e, "health check: the database does not answer");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer",
            ))
        }
    }
}

/// `GET /v1/ca.pub` (no auth): the line for `TrustedUserCAKeys`.
pub async fn ca_pub_get(State(state): State<AppState>) -> impl IntoResponse {
    let line = format!("{}\n", state.ca().public_key_line());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line)
}

/// `GET /v1/whoami`.
pub async fn whoami_get(State(state): State<AppState>, Actor(actor): Actor) -> Json<WhoAmI> {
    Json(state.whoami(&actor))
}

/// A method the endpoint does not take (the `Allow` header lists those it does).
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Any path that is not an endpoint.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
