//! [`ApiError`]: the one error type of the API, with stable codes.
//!
//! 4xx carry a safe message and a code clients branch on; 5xx are logged with their cause
//! chain and answered generically, so nothing internal (paths, SQL, key material) leaks.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error_code::ErrorCode;
use crate::service::{ErrorKind, ServiceError, chain};

/// An error response: HTTP status, stable code, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After: seconds` (429 and 503 answers).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 500, logged with its cause.
    pub fn internal(e: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %chain(e), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }

    /// The code, for tests and logs.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The safe message, for front ends that report errors as text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// HTTP status of each kind of service error.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Limited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Input that did not parse into its type at the edge: `invalid_request`, saying why.
impl From<crate::names::InvalidName> for ApiError {
    fn from(e: crate::names::InvalidName) -> Self {
        ApiError::invalid(e.0)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        e.log_internal();
        // Who was refused what (the request's span names the user and the route): a
        // non-admin trying admin endpoints, or someone approving their own request, is
        // something an operator watches for. The message is the one the caller gets.
        if e.kind() == ErrorKind::Forbidden {
            tracing::warn!(code = e.code().as_str(), reason = %e.public_message(), "refused");
        }
        let message = match e.code() {
            // Over HTTP, say how the credential is sent.
            ErrorCode::Unauthenticated => {
                "a valid bearer token is required (Authorization: Bearer <token>)".to_owned()
            }
            _ => e.public_message(),
        };
        ApiError::new(status_of(e.kind()), e.code(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code.as_str(), "message": self.message } });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        resp
    }
}
