//! `/v1/keys`: SSH public keys registered by their owners after proving possession.
//!
//! `POST /v1/keys/challenge` hands out a single-use challenge for one key; the person
//! signs it with that key (`ssh-keygen -Y sign -n countersign-key`) and sends the armored
//! signature to `POST /v1/keys`. `GET /v1/keys` lists keys, `POST /v1/keys/remove` takes
//! one back. Service accounts' bot tokens can do none of this (`scope_not_allowed`).
//! A registered key approves at the SSH front door, so with a session (`[oidc]`) both
//! registration calls are step-up actions as approving is (`reauth_required`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Json as JsonBody, Query};
use super::{Actor, ApiError, AppState, Caller, blocking, submit};
use crate::names::UserName;
use crate::pubkey::SubjectKey;
use crate::service::{CHALLENGE_LIFETIME, KEY_NAMESPACE, KeyListing, StepUp, rfc3339};

/// Longest challenge or signature accepted (a signature by a 16384-bit RSA key fits).
const MAX_PROOF_TEXT: usize = 8192;

/// `POST /v1/keys/challenge` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChallengeBody {
    public_key: String,
}

/// `POST /v1/keys` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterBody {
    public_key: String,
    challenge: String,
    signature: String,
}

/// `POST /v1/keys/remove` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoveBody {
    fingerprint: String,
}

/// `GET /v1/keys` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    user: Option<String>,
    all: Option<bool>,
}

fn key_json(k: &KeyListing) -> Value {
    json!({
        "user": k.user,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
        "source": k.source.as_str(),
        "registered_at": k.registered_at.map(rfc3339),
    })
}

/// `POST /v1/keys/challenge` → `{"challenge", "namespace", "expires_in"}`.
pub(super) async fn keys_challenge(
    State(state): State<AppState>,
    Caller(me): Caller,
    JsonBody(body): JsonBody<ChallengeBody>,
) -> Result<Json<Value>, ApiError> {
    // Asked here too, before the caller signs anything: the CLI signs in again first.
    let who = state.step_up(&me, StepUp::RegisterKey)?;
    let key = SubjectKey::parse(&body.public_key)
        .map_err(|e| ApiError::invalid(format!("public_key: {e}")))?;
    let challenge = submit(&state, move |s| s.key_challenge(&who, &key)).await?;
    Ok(Json(json!({
        "challenge": challenge,
        "namespace": KEY_NAMESPACE,
        "expires_in": CHALLENGE_LIFETIME,
    })))
}

/// `POST /v1/keys` → 201 `{"key": {...}, "registered": true}`, or 200 with
/// `"registered": false` when the key was already the caller's.
pub(super) async fn keys_register(
    State(state): State<AppState>,
    Caller(me): Caller,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    // A registered key approves at the SSH front door: registering is a step-up action.
    let who = state.step_up(&me, StepUp::RegisterKey)?;
    for (field, text) in [
        ("challenge", &body.challenge),
        ("signature", &body.signature),
    ] {
        if text.is_empty() || text.len() > MAX_PROOF_TEXT {
            return Err(ApiError::invalid(format!(
                "{field}: must be between 1 and {MAX_PROOF_TEXT} bytes"
            )));
        }
    }
    // The signature is checked on the blocking pool, apart from the database writer.
    let proof = crate::service::blocking(&state, move |_| {
        crate::service::prove(&body.public_key, &body.challenge, &body.signature)
    })
    .await;
    let proven = match proof {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, crate::service::ServiceError::KeyProof(_)) {
                tracing::warn!(user = %me.user(), "a proof of an ssh key did not hold");
            }
            return Err(e.into());
        }
    };
    let (key, new) = submit(&state, move |s| s.register_key(&who, &proven)).await?;
    if new {
        tracing::info!(user = %me.user(), fingerprint = %key.fingerprint, "ssh key registered");
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "key": key_json(&key), "registered": new })),
    ))
}

/// `GET /v1/keys[?user=NAME|?all=true]` → `{"keys": [...]}`.
pub(super) async fn keys_list(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = match query.user {
        Some(name) => Some(UserName::parse(&name)?),
        None => None,
    };
    let all = query.all.unwrap_or(false);
    let keys = blocking(&state, move |s| s.list_keys(&actor, user.as_ref(), all)).await?;
    let keys: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `POST /v1/keys/remove` → `{"removed": {...}, "cancelled": [request ids]}`.
pub(super) async fn keys_remove(
    State(state): State<AppState>,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<RemoveBody>,
) -> Result<Json<Value>, ApiError> {
    let fingerprint = body.fingerprint.trim().to_owned();
    if !fingerprint.starts_with("SHA256:") || fingerprint.len() > 100 {
        return Err(ApiError::invalid(
            "fingerprint: expected SHA256:... as `ssh-keygen -l` prints it",
        ));
    }
    let who = actor.clone();
    let removed = submit(&state, move |s| s.remove_key(&who, &fingerprint)).await?;
    let key = &removed.key;
    tracing::info!(by = %actor, user = %key.user, fingerprint = %key.fingerprint, "ssh key removed");
    Ok(Json(
        json!({ "removed": key_json(key), "cancelled": removed.cancelled }),
    ))
}
