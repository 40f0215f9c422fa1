//! Host certificate endpoints (`[host_ca]`).
//!
//! Admins (bearer token): `POST /v1/hosts/tokens`, `GET /v1/hosts/certificates`,
//! `GET /v1/hosts/certificates/{serial}`, `POST /v1/hosts/certificates/{serial}/revoke`.
//! Hosts (no bearer token; a join token, or proof of the host key): `POST
//! /v1/hosts/enroll`, `POST /v1/hosts/renew/challenge`, `POST /v1/hosts/renew`. Anyone:
//! `GET /v1/host_ca.pub`, `GET /v1/krl/host` and `GET /v1/krl/host.sig`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Json as JsonBody, Query};
use super::server::ClientAddr;
use super::{Actor, ApiError, AppState, AuthLimiter, Caller, blocking, submit};
use crate::error_code::ErrorCode;
use crate::names::{HostPrincipal, Serial, parse_duration};
use crate::pubkey::SubjectKey;
use crate::service::{HostCertView, HostRenewal, NewHostToken, StepUp};

/// Body of `POST /v1/hosts/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    principals: Vec<String>,
    ttl: Option<String>,
}

/// Body of `POST /v1/hosts/enroll`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrollBody {
    token: String,
    public_key: String,
    ttl: Option<String>,
}

/// Body of `POST /v1/hosts/renew/challenge`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChallengeBody {
    public_key: String,
}

/// Body of `POST /v1/hosts/renew`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RenewBody {
    certificate: String,
    challenge: String,
    signature: String,
    ttl: Option<String>,
}

/// Query of `GET /v1/hosts/certificates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// `24h`: only valid ones ending within that.
    expiring: Option<String>,
    /// `true`: every one, expired and revoked too.
    all: Option<bool>,
}

/// Who calls the host endpoints that take no bearer token (enroll, renew): the client
/// address (the forwarded one behind `trusted_proxies`) and the limiter of failed
/// authentications, which a wrong join token or a failed proof counts against, like a
/// wrong bearer token.
pub(super) struct HostCaller {
    client: Option<IpAddr>,
    limiter: Option<Arc<AuthLimiter>>,
}

impl FromRequestParts<AppState> for HostCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let limiter = parts.extensions.get::<Arc<AuthLimiter>>().cloned();
        let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        let trusted = &state.config().server.limits.trusted_proxies;
        let client = peer.map(|p| super::forwarded::client_ip(p, &parts.headers, trusted));
        if let Some(limiter) = &limiter {
            limiter
                .check(client, None)
                .map_err(|wait| super::auth::rate_limited(client, peer, None, wait))?;
        }
        Ok(HostCaller { client, limiter })
    }
}

impl HostCaller {
    /// Logs a refused join token, host proof or certificate (a sign of a stolen token or
    /// key); a token or proof that does not hold counts as a failed authentication of the
    /// client address. A refused certificate (expired, revoked) of a host that proved its
    /// key does not: a batch revocation must not lock a NAT's other hosts out.
    fn refused(&self, e: &ApiError, what: &str) {
        let code = e.code();
        let failed = [ErrorCode::HostTokenInvalid, ErrorCode::HostProofFailed];
        let logged = code == ErrorCode::HostCertificateRefused.as_str();
        let counted = failed.iter().any(|c| c.as_str() == code);
        if !counted && !logged {
            return;
        }
        if counted && let Some(limiter) = &self.limiter {
            limiter.failed(self.client, None);
        }
        tracing::warn!(
            client = %self.client.map(|c| c.to_string()).unwrap_or_default(),
            code,
            reason = e.message(),
            "host {what} refused"
        );
    }
}

/// Longest text a field of these bodies may carry (a certificate with an RSA key fits).
const MAX_FIELD: usize = 16 * 1024;

fn ttl(raw: Option<&str>) -> Result<Option<Duration>, ApiError> {
    Ok(raw.map(|t| parse_duration(t, "ttl")).transpose()?)
}

fn key(raw: &str) -> Result<SubjectKey, ApiError> {
    let key = SubjectKey::parse(raw).map_err(|e| ApiError::invalid(format!("public_key: {e}")))?;
    if key.is_security_key() {
        return Err(ApiError::invalid(
            "public_key: a security key (sk-...) is a person's, never a host's key",
        ));
    }
    Ok(key)
}

fn bounded<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.len() > MAX_FIELD {
        return Err(ApiError::invalid(format!("{name} is too long")));
    }
    Ok(value)
}

/// `POST /v1/hosts/tokens` `{"principals": [...], "ttl"?}` (admins; a service account
/// with the `host-token` scope): a join token.
pub(super) async fn host_token_create(
    State(state): State<AppState>,
    Caller(me): Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<(StatusCode, Json<NewHostToken>), ApiError> {
    // A join token makes a host certificate: with a session, a recent sign-in (a bot's
    // `host-token` scope is no session).
    let who = state.step_up(&me, StepUp::HostToken)?;
    let principals = HostPrincipal::parse_list(&body.principals)?;
    let ttl = ttl(body.ttl.as_deref())?;
    let made = submit(&state, move |s| s.create_host_token(&who, principals, ttl)).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// `POST /v1/hosts/enroll` `{"token", "public_key", "ttl"?}`: a host's first certificate.
pub(super) async fn host_enroll(
    State(state): State<AppState>,
    caller: HostCaller,
    JsonBody(body): JsonBody<EnrollBody>,
) -> Result<(StatusCode, Json<HostCertView>), ApiError> {
    let key = key(bounded("public_key", &body.public_key)?)?;
    let ttl = ttl(body.ttl.as_deref())?;
    let token = bounded("token", &body.token)?.trim().to_owned();
    let view = submit(&state, move |s| s.enroll_host(&token, &key, ttl))
        .await
        .inspect_err(|e| caller.refused(e, "enrollment"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `POST /v1/hosts/renew/challenge` `{"public_key"}`: the text the host key signs.
pub(super) async fn host_renew_challenge(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ChallengeBody>,
) -> Result<Json<Value>, ApiError> {
    let key = key(bounded("public_key", &body.public_key)?)?;
    let challenge = blocking(&state, move |s| s.host_challenge(&key)).await?;
    Ok(Json(json!({
        "challenge": challenge,
        "namespace": crate::service::HOST_RENEW_NAMESPACE,
        "expires_in": crate::service::HOST_CHALLENGE_LIFETIME,
    })))
}

/// `POST /v1/hosts/renew` `{"certificate", "challenge", "signature", "ttl"?}`.
pub(super) async fn host_renew(
    State(state): State<AppState>,
    caller: HostCaller,
    JsonBody(body): JsonBody<RenewBody>,
) -> Result<(StatusCode, Json<HostCertView>), ApiError> {
    let renewal = HostRenewal {
        certificate: bounded("certificate", &body.certificate)?.to_owned(),
        challenge: bounded("challenge", &body.challenge)?.to_owned(),
        signature: bounded("signature", &body.signature)?.to_owned(),
        ttl: ttl(body.ttl.as_deref())?,
    };
    let view = submit(&state, move |s| s.renew_host(&renewal))
        .await
        .inspect_err(|e| caller.refused(e, "renewal"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/hosts/certificates[?expiring=24h][&all=true]` (admins): with both, every
/// certificate (whatever its status) ending within `expiring`.
pub(super) async fn host_list(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let expiring = ttl(q.expiring.as_deref())?;
    let all = q.all.unwrap_or(false);
    let certs = blocking(&state, move |s| s.list_host_certs(&actor, all, expiring)).await?;
    Ok(Json(json!({ "certificates": certs })))
}

/// `GET /v1/hosts/certificates/{serial}` (admins).
pub(super) async fn host_get(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(serial): Path<String>,
) -> Result<Json<HostCertView>, ApiError> {
    let serial = Serial::parse(&serial)?;
    let view = blocking(&state, move |s| s.host_cert(&actor, serial)).await?;
    Ok(Json(view))
}

/// `POST /v1/hosts/certificates/{serial}/revoke` `{"reason"}` (admins).
pub(super) async fn host_revoke(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Path(serial): Path<String>,
    JsonBody(body): JsonBody<super::revoke::RevokeBody>,
) -> Result<Json<HostCertView>, ApiError> {
    let serial = Serial::parse(&serial)?;
    let reason = super::revoke::reason(&body.reason)?;
    let view = submit(&state, move |s| s.revoke_host(&actor, serial, reason)).await?;
    Ok(Json(view))
}

/// `GET /v1/host_ca.pub`: the host CA public key line.
pub(super) async fn host_ca_pub(State(state): State<AppState>) -> Result<Response, ApiError> {
    let line = blocking(&state, |s| s.host_ca_public()).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response())
}

/// `GET /v1/krl/host`: the host KRL (for `RevokedHostKeys`), with `ETag`.
pub(super) async fn host_krl_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let krl = blocking(&state, |s| s.host_krl()).await?;
    Ok(super::revoke::krl_answer(&krl, &headers))
}

/// `GET /v1/krl/host.sig`: the host CA's SSHSIG (namespace `countersign-host-krl`) over
/// the bytes `GET /v1/krl/host` serves now, with the same `ETag` and `X-KRL-Version`.
pub(super) async fn host_krl_sig_get(State(state): State<AppState>) -> Result<Response, ApiError> {
    let krl = blocking(&state, |s| s.host_krl()).await?;
    Ok(super::revoke::krl_signature_answer(&krl))
}
