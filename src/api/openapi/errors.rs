//! The error answers: one response per HTTP status, whose `code` is one of the codes
//! answered with that status, taken from [`ErrorCode`] itself.

use serde_json::{Map, Value, json};

use crate::error_code::ErrorCode;

/// The HTTP status an API error `code` is answered with; `None` for the codes only the
/// SSH front door prints. Exhaustive on purpose: a new code needs its status here.
pub(super) const fn status(code: ErrorCode) -> Option<u16> {
    use ErrorCode as C;
    Some(match code {
        C::InvalidRequest | C::KeyProofFailed | C::HostProofFailed => 400,
        C::Unauthenticated
        | C::UserDisabled
        | C::TokenExpired
        | C::SigninFailed
        | C::ReauthRequired
        | C::HostTokenInvalid => 401,
        C::NotARequester
        | C::NotAnApprover
        | C::SelfApproval
        | C::SodConflict
        | C::PolicyChanged
        | C::KeyNotAllowed
        | C::PrincipalTaken
        | C::ScopeNotAllowed
        | C::Forbidden
        | C::IdentityConflict
        | C::PrincipalNotAllowed
        | C::HostCertificateRefused
        | C::NotBreakable
        | C::NotAnInvoker
        | C::ReasonMismatch
        | C::SelfReview
        | C::NotAReviewer => 403,
        C::NotFound => 404,
        C::MethodNotAllowed => 405,
        C::KeyTaken
        | C::UnreviewedBreakglass
        | C::UnjustifiedBreakglass
        | C::AlreadyReviewed
        | C::ReviewClosed
        | C::NotBreakglass
        | C::NothingToAllow
        | C::AlreadyApproved
        | C::AlreadyDecided
        | C::Expired
        | C::NotIssued
        | C::RequestChanged
        | C::AlreadyRevoked
        | C::NotDisabled => 409,
        C::PayloadTooLarge => 413,
        C::UnsupportedMediaType => 415,
        C::IdempotencyMismatch => 422,
        C::RateLimited | C::TooManyPending => 429,
        C::Internal | C::AuditBroken => 500,
        C::Overloaded | C::Unavailable | C::NotReady | C::Timeout | C::IdpUnavailable => 503,
        C::TooManySessions | C::StillPending | C::Denied | C::Cancelled => return None,
    })
}

/// The API's codes answered with `http`, in [`ErrorCode::API`]'s order.
pub(super) fn codes_of(http: u16) -> Vec<&'static str> {
    ErrorCode::API
        .iter()
        .filter(|c| status(**c) == Some(http))
        .map(|c| c.as_str())
        .collect()
}

/// Every status an API error is answered with, ascending.
fn statuses() -> Vec<u16> {
    let mut all: Vec<u16> = ErrorCode::API.iter().filter_map(|c| status(*c)).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The name of the response of `http` under `components/responses`.
fn name(http: u16) -> String {
    format!("Error{http}")
}

/// `{"$ref"}` to the error response of `http`.
pub(super) fn response_ref(http: u16) -> Value {
    json!({ "$ref": format!("#/components/responses/{}", name(http)) })
}

/// The error body with `code` one of `codes`.
pub(super) fn error_schema(codes: &[&str]) -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": codes },
                    "message": { "type": "string", "description": "for people; never parse it" },
                },
            },
        },
    })
}

/// What each status means, in a word (the codes say the rest).
fn summary(http: u16) -> &'static str {
    match http {
        400 => "the input does not parse, is out of bounds, or does not prove a key",
        401 => "no valid credential, or a sign-in that did not complete",
        403 => "the caller may not do this",
        404 => "no such thing, or not one the caller may see",
        405 => "the endpoint does not take that method (`Allow` lists those it does)",
        409 => "the state does not allow it (decided, revoked, taken, changed)",
        413 => "the body is over 64 KiB",
        415 => "the body is not `Content-Type: application/json`",
        422 => "the `Idempotency-Key` made another request",
        429 => "a limit: failed authentications, sign-ins per address, pending requests",
        500 => "a server-side failure (the details are only in the server's log)",
        503 => "cannot serve now: overloaded, timed out, the database or the provider away",
        _ => "an error",
    }
}

/// `components/responses`: one error response per status.
pub(super) fn responses() -> Map<String, Value> {
    statuses()
        .into_iter()
        .map(|http| {
            let codes = codes_of(http);
            let listed: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
            let mut response = json!({
                "description": format!("{}: {}", summary(http), listed.join(", ")),
                "content": { "application/json": { "schema": error_schema(&codes) } },
            });
            if let Some(headers) = headers(http) {
                response["headers"] = headers;
            }
            (name(http), response)
        })
        .collect()
}

/// The headers an error of `http` carries.
fn headers(http: u16) -> Option<Value> {
    let retry_after = json!({
        "description": "seconds to wait before trying again (the limits that know it)",
        "schema": { "type": "integer", "minimum": 0 },
    });
    match http {
        401 => Some(json!({
            "WWW-Authenticate": {
                "description": "the scheme to authenticate with",
                "required": true,
                "schema": { "type": "string", "const": "Bearer" },
            },
        })),
        429 | 503 => Some(json!({ "Retry-After": retry_after })),
        405 => Some(json!({
            "Allow": {
                "description": "the methods the endpoint takes",
                "required": true,
                "schema": { "type": "string" },
            },
        })),
        _ => None,
    }
}
