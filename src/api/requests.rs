//! `/v1/requests`: create, list, read, approve, deny, cancel, fetch the certificate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::extract::{Json as JsonBody, OptionalJson, Query};
use super::{Actor, ApiError, AppState, Caller, blocking, inline, submit, submit_planned};
use crate::names::{IdempotencyKey, RequestId, RoleName, Text, parse_duration};
use crate::pubkey::SubjectKey;
use crate::service::{LIST_LIMIT, ListPage, NewRequest, RequestView};
use crate::service::{Status, StepUp};

/// `POST /v1/requests` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    pub(super) role: String,
    pub(super) public_key: String,
    pub(super) reason: String,
    pub(super) ttl: Option<String>,
}

impl CreateBody {
    pub(super) fn parse(self) -> Result<NewRequest, ApiError> {
        let bad =
            |field: &str, e: &dyn std::fmt::Display| ApiError::invalid(format!("{field}: {e}"));
        Ok(NewRequest {
            role: RoleName::parse(&self.role).map_err(|e| bad("role", &e))?,
            public_key: SubjectKey::parse(&self.public_key).map_err(|e| bad("public_key", &e))?,
            reason: Text::parse(&self.reason, "reason").map_err(|e| bad("reason", &e))?,
            ttl: match self.ttl {
                Some(t) => Some(parse_duration(&t, "ttl").map_err(|e| bad("ttl", &e))?),
                None => None,
            },
        })
    }
}

/// Parses a `POST /v1/requests` body as the handler does, past the content-type and size
/// checks: JSON into [`CreateBody`], then into typed values. For the fuzz targets.
pub(crate) fn parse_create_body(bytes: &[u8]) -> Result<NewRequest, ApiError> {
    serde_json::from_slice::<CreateBody>(bytes)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
        .parse()
}

/// `POST /v1/requests/{id}/approve` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveBody {
    comment: Option<String>,
    /// The request's `version` as reviewed: refused `request_changed` if it moved on.
    version: Option<String>,
}

/// `POST /v1/requests/{id}/deny` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DenyBody {
    reason: String,
    /// The request's `version` as reviewed: refused `request_changed` if it moved on.
    version: Option<String>,
}

/// `POST /v1/requests/{id}/cancel` body (optional, empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelBody {}

/// `GET /v1/requests` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// The `Idempotency-Key` header, if sent (once, as a valid key).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            "send one Idempotency-Key header, not several",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key must be visible ASCII characters"))?;
    Ok(Some(IdempotencyKey::parse(text)?))
}

/// The request header that makes a create safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /v1/requests` -> 201 with the request. With `Idempotency-Key`, a retry gets the
/// request the key created (201 again, `Idempotent-Replayed: true`).
pub(super) async fn requests_create(
    State(state): State<AppState>,
    Caller(me): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let key = idempotency_key(&headers)?;
    let req = body.parse()?;
    // A retry is answered by a read of its own, off the writer thread; the create looks
    // again inside its write (a retry racing its first attempt creates nothing).
    if let Some(key) = &key {
        let (user, key, fingerprint) = (me.user().clone(), key.clone(), req.fingerprint());
        let replay = blocking(&state, move |s| s.replay_created(&user, &key, &fingerprint));
        if let Some(created) = replay.await? {
            return Ok(created_response(created));
        }
    }
    let looked_up = key.is_some();
    // Planned first: on PostgreSQL its checks go out with its batch's BEGIN.
    // (The plan hands the request on to the run: nothing is copied.)
    let created = submit_planned(
        &state,
        move |s| (s.plan_create(me.user(), &req, looked_up), me, req, key),
        move |s, (plan, me, req, key)| {
            s.create_request_planned(me.user(), me.credential(), req, key.as_ref(), plan)
        },
    )
    .await?;
    Ok(created_response(created))
}

/// The answer to a create: 201 with the request and where it is, and
/// `Idempotent-Replayed: true` when an idempotency key had made it before.
fn created_response(created: crate::service::Created) -> axum::response::Response {
    let view = created.view;
    if created.replayed {
        tracing::info!(
            id = %view.id, user = %view.requester, role = %view.role, "request create replayed"
        );
    } else {
        tracing::info!(id = %view.id, user = %view.requester, role = %view.role, "request created");
    }
    let location = format!("/v1/requests/{}", view.id);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response();
    if created.replayed {
        response.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// `GET /v1/requests?status=S&after=ID&limit=L`.
pub(super) async fn requests_list(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListPage>, ApiError> {
    let status = Status::filter(q.status.as_deref()).map_err(ApiError::invalid)?;
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(id) => Some(RequestId::parse(id)?),
    };
    let limit = q.limit.unwrap_or(LIST_LIMIT);
    let page = blocking(&state, move |s| {
        s.list(&actor, status, after.as_ref(), limit)
    })
    .await?;
    Ok(Json(page))
}

/// `GET /v1/requests/{id}`.
pub(super) async fn request_get(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    Ok(Json(inline(&state, move |s| s.get(&actor, &id)).await?))
}

/// `POST /v1/requests/{id}/approve`.
pub(super) async fn request_approve(
    State(state): State<AppState>,
    Caller(me): Caller,
    Path(id): Path<String>,
    JsonBody(body): OptionalJson<ApproveBody>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    let who = state.step_up(&me, StepUp::Approve)?;
    let comment = match body.comment {
        Some(c) => Some(Text::parse(&c, "comment")?),
        None => None,
    };
    let seen = body.version;
    let user = me.user().clone();
    // Planned first: on PostgreSQL its reads go out with its batch's BEGIN.
    let view = submit_planned(
        &state,
        move |s| (s.plan_approve(&who, &id), who, id),
        move |s, (plan, who, id)| s.approve_planned(&who, &id, comment, seen.as_deref(), plan),
    )
    .await?;
    let serial = view.certificate.as_ref().map(|c| c.serial);
    tracing::info!(
        id = %view.id,
        %user,
        role = %view.role,
        status = %view.status,
        serial = serial.map(tracing::field::display),
        "request approved"
    );
    Ok(Json(view))
}

/// `POST /v1/requests/{id}/deny`.
pub(super) async fn request_deny(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DenyBody>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    let reason = Text::parse(&body.reason, "reason")?;
    let seen = body.version;
    let user = actor.clone();
    let view = submit(&state, move |s| {
        s.deny_seen(&actor, &id, reason, seen.as_deref())
    })
    .await?;
    tracing::info!(id = %view.id, %user, role = %view.role, "request denied");
    Ok(Json(view))
}

/// `POST /v1/requests/{id}/cancel`.
pub(super) async fn request_cancel(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
    JsonBody(_): OptionalJson<CancelBody>,
) -> Result<Json<RequestView>, ApiError> {
    let id = RequestId::parse(&id)?;
    let view = submit(&state, move |s| s.cancel(&actor, &id)).await?;
    tracing::info!(id = %view.id, user = %view.requester, role = %view.role, "request cancelled");
    Ok(Json(view))
}

/// `GET /v1/requests/{id}/certificate` -> the certificate line as text/plain.
pub(super) async fn certificate_get(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = RequestId::parse(&id)?;
    let cert = inline(&state, move |s| s.certificate(&actor, &id)).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{cert}\n"),
    ))
}
