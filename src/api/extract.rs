//! JSON bodies and query strings parsed with the API's own error format.
//!
//! Bodies must be `application/json`, at most [`super::MAX_BODY`] bytes, a JSON object, and
//! may not carry unknown or duplicate fields (the body types use `deny_unknown_fields`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::error_code::ErrorCode;

/// A JSON body; an empty body is `T::default()` when `OPTIONAL`.
pub(super) struct Json<T, const OPTIONAL: bool = false>(pub T);

/// A JSON body that may be left out entirely (e.g. approve without a comment).
pub(super) type OptionalJson<T> = Json<T, true>;

impl<S, T, const OPTIONAL: bool> FromRequest<S> for Json<T, OPTIONAL>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    format!("request body is larger than {} bytes", super::MAX_BODY),
                )
            } else {
                ApiError::invalid("could not read the request body")
            }
        })?;
        if bytes.is_empty() && OPTIONAL {
            return Ok(Json(T::default()));
        }
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ));
        }
        // Bodies are objects with named fields; serde would also take the fields in order
        // from an array (`["prod-db", "ssh-ed25519 ...", ...]`).
        let first = bytes
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return Err(ApiError::invalid("the request body must be a JSON object"));
        }
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// A query string; unknown parameters are errors.
pub(super) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))
    }
}

/// A form body (`application/x-www-form-urlencoded`) whose refusals are the API's errors,
/// not axum's plain-text ones: 415 for another content type, 413 past the body limit, 400
/// for a form that does not parse into `T`.
pub(super) struct Form<T>(pub T);

impl<S, T> FromRequest<S> for Form<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Form::<T>::from_request(req, state).await {
            Ok(axum::extract::Form(form)) => Ok(Form(form)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedMediaType,
                    "send the form as Content-Type: application/x-www-form-urlencoded",
                ),
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    format!("request body is larger than {} bytes", super::MAX_BODY),
                ),
                _ => ApiError::invalid(format!("invalid form: {}", rejection.body_text())),
            }),
        }
    }
}
