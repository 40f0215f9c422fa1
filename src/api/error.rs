//! [`ApiError`]: the one error type of the API, with stable codes.
//!
//! 4xx carry a safe message and a code clients branch on; 5xx are logged with their cause
//! chain and answered generically, so nothing internal (paths, SQL, key material) leaks.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::policy::rules::Refusal;
use crate::service::ServiceError;

/// An error response: HTTP status, stable code, human message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
            "internal",
            "internal error; see the server log",
        )
    }

    /// The code, for tests and logs.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The safe message, for front ends that report errors as text (the SSH front door).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `error: cause: cause` for logs.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// HTTP status of each refusal code: who-may rules are 403, state conflicts 409.
fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::AlreadyApproved { .. } | Refusal::AlreadyDecided { .. } | Refusal::Expired => {
            StatusCode::CONFLICT
        }
        _ => StatusCode::FORBIDDEN,
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
        match e {
            ServiceError::Refused(r) => ApiError::new(refusal_status(&r), r.code(), r.to_string()),
            ServiceError::Invalid(m) => ApiError::invalid(m),
            ServiceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            e @ ServiceError::TooManyPending { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pending",
                e.to_string(),
            ),
            ServiceError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid bearer token is required (Authorization: Bearer <token>)",
            ),
            ServiceError::Disabled(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "user_disabled", m)
            }
            ServiceError::Audit(broken) => {
                tracing::error!(error = %broken, "audit chain does not verify");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "audit_broken",
                    broken.to_string(),
                )
            }
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
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
