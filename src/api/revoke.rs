//! Revocation endpoints and the KRL.
//!
//! `POST /v1/certificates/{serial}/revoke` and `POST /v1/users/{name}/revoke` (admins;
//! the latter also disables the user), `POST /v1/requests/{id}/done` (the requester),
//! `GET /v1/krl` and `GET /v1/krl.sig` (no auth: servers poll them).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Json as JsonBody, OptionalJson};
use super::{Actor, ApiError, AppState, blocking, submit};
use crate::names::{RequestId, Serial, Text, UserName};
use crate::service::{Krl, RequestView};

/// Body of the revoke endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeBody {
    pub(super) reason: String,
}

/// Body of `POST /v1/krl/forgotten`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForgottenBody {
    serial: String,
    valid_before: String,
    reason: String,
    #[serde(default)]
    host: bool,
}

/// Body of `done` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DoneBody {
    reason: Option<String>,
}

pub(super) fn reason(raw: &str) -> Result<Text, ApiError> {
    Ok(Text::parse(raw, "reason")?)
}

/// `POST /v1/certificates/{serial}/revoke` `{"reason"}`.
pub(super) async fn certificate_revoke(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(serial): Path<String>,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Json<Value>, ApiError> {
    let serial = Serial::parse(&serial)?;
    let reason = reason(&body.reason)?;
    let user = actor.clone();
    let revoked = submit(&state, move |s| s.revoke_serial(&actor, serial, reason)).await?;
    tracing::info!(serial = %revoked, %user, "certificate revoked");
    Ok(Json(json!({ "revoked": [revoked.to_string()] })))
}

/// `POST /v1/krl/forgotten` `{"serial","valid_before","reason","host"?}` (admins): a
/// revocation the CA forgot (named by a server's `krl sync`), listed again.
pub(super) async fn krl_forgotten(
    State(state): State<AppState>,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<ForgottenBody>,
) -> Result<Json<crate::service::Relisted>, ApiError> {
    let serial = Serial::parse(&body.serial)?;
    let valid_before = chrono::DateTime::parse_from_rfc3339(&body.valid_before)
        .map_err(|_| {
            ApiError::invalid(format!(
                "valid_before {:?} is not an RFC 3339 time: a date, T, a time and Z or an \
                 offset, such as 2026-12-07T09:30:00Z (copy it from the message krl sync \
                 gave)",
                body.valid_before.chars().take(64).collect::<String>()
            ))
        })?
        .to_utc();
    let reason = reason(&body.reason)?;
    let host = body.host;
    let done = submit(&state, move |s| {
        s.relist_forgotten(&actor, serial, valid_before, reason, host)
    })
    .await?;
    Ok(Json(done))
}

/// `POST /v1/users/{name}/revoke` `{"reason"}`: offboarding. Disables the user, revokes
/// their tokens, every active certificate and pending request of theirs.
pub(super) async fn user_revoke(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Json<Value>, ApiError> {
    let user = UserName::parse(&name)?;
    let reason = reason(&body.reason)?;
    let done = submit(&state, move |s| s.revoke_user(&actor, &user, reason)).await?;
    tracing::info!(
        user = %name,
        revoked = done.revoked.len(),
        cancelled = done.cancelled.len(),
        tokens_revoked = done.tokens_revoked,
        already_disabled = done.already_disabled,
        "user disabled, their certificates revoked and pending requests cancelled"
    );
    Ok(Json(json!({
        "revoked": done.revoked, "cancelled": done.cancelled, "disabled": true,
        "tokens_revoked": done.tokens_revoked, "already_disabled": done.already_disabled,
    })))
}

/// `POST /v1/requests/{id}/done` `{"reason"?}`: the requester ends their certificate.
pub(super) async fn request_done(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
    JsonBody(body): OptionalJson<DoneBody>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    let reason = body.reason.as_deref().map(reason).transpose()?;
    let view = submit(&state, move |s| s.done(&actor, &id, reason)).await?;
    let serial = view.certificate.as_ref().map(|c| c.serial);
    tracing::info!(
        id = %view.id,
        user = %view.requester,
        role = %view.role,
        serial = serial.map(tracing::field::display),
        "certificate ended by its requester"
    );
    Ok(Json(view))
}

/// `GET /v1/krl`: the Key Revocation List, with `ETag`; `If-None-Match` gives 304.
pub(super) async fn krl_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let krl = blocking(&state, |s| s.krl()).await?;
    Ok(krl_answer(&krl, &headers))
}

/// A KRL as served (the user KRL or the host KRL): its bytes with `ETag`,
/// `X-KRL-Version` and `Cache-Control: no-cache`, or 304 when `If-None-Match` names it.
pub(super) fn krl_answer(krl: &Krl, headers: &HeaderMap) -> Response {
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == krl.etag || t.trim() == "*")
        });
    let etag = (header::ETAG, krl.etag.clone());
    let version = (
        header::HeaderName::from_static("x-krl-version"),
        krl.version.to_string(),
    );
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [etag, version]).into_response();
    }
    let cache = (header::CACHE_CONTROL, "no-cache".to_owned());
    let kind = (header::CONTENT_TYPE, "application/octet-stream".to_owned());
    (
        StatusCode::OK,
        [etag, version, cache, kind],
        krl.bytes.clone(),
    )
        .into_response()
}

/// `GET /v1/krl.sig`: the CA's SSH signature (armored SSHSIG, namespace
/// `countersign-krl`) over the bytes `GET /v1/krl` serves now, so that a KRL fetched
/// over plain HTTP can be checked against the CA key (`ssh-keygen -Y verify`). It carries
/// the same `ETag` and `X-KRL-Version` as the KRL it signs: a client that fetched the
/// two across a revocation sees different versions and fetches again.
pub(super) async fn krl_sig_get(State(state): State<AppState>) -> Result<Response, ApiError> {
    let krl = blocking(&state, |s| s.krl()).await?;
    Ok(krl_signature_answer(&krl))
}

/// A KRL's signature as served, with the KRL's `ETag` and `X-KRL-Version`.
pub(super) fn krl_signature_answer(krl: &Krl) -> Response {
    (
        StatusCode::OK,
        [
            (header::ETAG, krl.etag.clone()),
            (
                header::HeaderName::from_static("x-krl-version"),
                krl.version.to_string(),
            ),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
        ],
        krl.signature.clone(),
    )
        .into_response()
}
