//! The OpenAPI 3.1 document of the `/v1` API, served at `GET /v1/openapi.json`.
//!
//! Written here, beside the handlers it describes, as a [`serde_json::Value`] built once,
//! and held to the code by tests rather than trusted:
//! - the error codes and the status each is answered with come from [`ErrorCode`] through
//!   an exhaustive `match` (`errors.rs`): a new code does not compile until it has one;
//! - every `.route(...)` of `api.rs` is a path of the document with the same methods, and
//!   the document has no other path (`tests.rs` reads `api.rs`);
//! - the schemas of the service's answer types name exactly the fields they serialize
//!   (`tests.rs` serializes one of each);
//! - `tests/it/openapi.rs` serves the document from a live server, checks it with an
//!   independent OpenAPI validator, asks the router for every operation it lists, and runs
//!   Schemathesis (every check, stateful phase) against it as a requester and as an
//!   approver.
//!
//! One file per part: `errors.rs` (the error answers), `schemas.rs` and `bodies.rs`
//! (components), `requests.rs`, `admin.rs`, `signin.rs`, `hosts.rs` and `misc.rs` (the paths).
//!
//! [`ErrorCode`]: crate::error_code::ErrorCode

mod admin;
mod bodies;
mod breakglass;
mod errors;
mod hosts;
mod misc;
mod requests;
mod schemas;
mod signin;
#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

/// The document, built on first use.
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The document as served (compact JSON), serialized once.
static SERVED: LazyLock<Vec<u8>> = LazyLock::new(|| DOCUMENT.to_string().into_bytes());

/// The OpenAPI document of the API: what `GET /v1/openapi.json` serves.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// `GET /v1/openapi.json` (no auth): the document, `application/json`.
pub(super) async fn openapi_get() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        SERVED.as_slice(),
    )
}

const DESCRIPTION: &str = "\
SSH certificate authority with just-in-time access and separation of duties: a person \
asks for a role's certificate (`POST /v1/requests`), others approve it, and the \
requester fetches the certificate once it is issued.

Authenticate with `Authorization: Bearer <token>`: an API token made on the CA host \
(`countersign token create`), or a session from `countersign login` (`/v1/oidc/*`). \
Request bodies are `application/json` objects of at most 64 KiB with no unknown or \
duplicate fields. Every error is `{\"error\":{\"code\",\"message\"}}`; `code` is one of a \
fixed list, and each status below names the codes it carries. Any operation may answer \
503 (`overloaded`, `timeout`; on PostgreSQL `unavailable`) and 500 (`internal`); a \
request head over `max_header_bytes` is answered 431 by the HTTP layer, without a body \
(listed under every operation).

Not described here: the web UI's HTML pages (`/`, `/requests/...`, `/audit`, `/login`, \
`/logout`, `/static/style.css`), which serve browsers on the same listener and are \
documented in docs/api.md. The prose reference is docs/api.md.";

fn build() -> Value {
    let mut paths = Map::new();
    for (path, item) in misc::paths()
        .into_iter()
        .chain(requests::paths())
        .chain(admin::paths())
        .chain(signin::paths())
        .chain(hosts::paths())
        .chain(breakglass::paths())
    {
        let previous = paths.insert(path.to_owned(), item);
        debug_assert!(previous.is_none(), "{path} twice");
    }
    // Any operation: a request head too large for `max_header_bytes` (a long query
    // string) is answered by the HTTP layer before any route, without a body.
    for item in paths.values_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            if let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            {
                responses.insert(
                    "431".to_owned(),
                    json!({ "description": "the request head (request line and headers, \
                        a long query string included) is over `[server] max_header_bytes`; \
                        no body" }),
                );
            }
        }
    }
    let mut schemas = schemas::schemas();
    schemas.extend(bodies::schemas());
    schemas.extend(hosts::schemas());
    schemas.extend(breakglass::schemas());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "countersign",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": errors::responses(),
            "securitySchemes": security_schemes(),
        },
    })
}

fn security_schemes() -> Value {
    json!({
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`countersign token create USER`, `cs_...`) or a \
                session from `countersign login` (`css_...`, `POST /v1/oidc/token`); the \
                scheme is case-insensitive. A web UI session (its cookie) is refused here.",
        },
        "signInCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "countersign_signin",
            "description": "Ties a sign-in at the identity provider to the browser that \
                started it (`GET /v1/oidc/login`, `POST /v1/oidc/device/confirm` set it); \
                named `__Host-countersign_signin` under an `https://` `public_url`.",
        },
        "deviceFormCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "countersign_device",
            "description": "Set with the device login page (`GET /v1/oidc/device`); its \
                form comes back with it and with the same value in `csrf`. Named \
                `__Host-countersign_device` under an `https://` `public_url`.",
        },
    })
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone: no credential is read.
    None,
    /// A bearer token (API token or session); adds 401, 403 and 429.
    Bearer,
}

/// An operation: `id` is the handler's name.
fn op(id: &str, summary: &str, description: &str, auth: Auth) -> Value {
    let security = match auth {
        Auth::None => json!([]),
        Auth::Bearer => json!([{ "bearerAuth": [] }]),
    };
    json!({
        "operationId": id,
        "summary": summary,
        "description": description,
        "security": security,
        "responses": {},
    })
}

/// `operation` with `parameters`.
fn with_params(mut operation: Value, parameters: Vec<Value>) -> Value {
    operation["parameters"] = Value::Array(parameters);
    operation
}

/// `operation` with a JSON body of schema `name` (`required`: else it may be empty).
fn with_body(mut operation: Value, name: &str, required: bool) -> Value {
    let description = if required {
        "a JSON object"
    } else {
        "a JSON object, or nothing at all (an empty body)"
    };
    operation["requestBody"] = json!({
        "required": required,
        "description": description,
        "content": { "application/json": { "schema": schema(name) } },
    });
    operation
}

/// `operation` answering `answers` (status -> response) and the errors of `statuses`,
/// plus 500 and 503 (any operation), and 401, 403 and 429 for [`Auth::Bearer`].
fn answers(mut operation: Value, answers: Value, statuses: &[u16]) -> Value {
    let bearer = operation["security"] != json!([]);
    let mut all: Vec<u16> = statuses.to_vec();
    all.extend([500, 503]);
    if bearer {
        all.extend([401, 403, 429]);
    }
    let mut responses = answers.as_object().cloned().unwrap_or_default();
    for status in all {
        responses
            .entry(status.to_string())
            .or_insert_with(|| errors::response_ref(status));
    }
    operation["responses"] = Value::Object(responses);
    operation
}

/// `{"$ref"}` to the schema `name`.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A response with a JSON body of schema `name`.
fn json_answer(description: &str, name: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema(name) } },
    })
}

/// A response with a body of media type `media` (a text form, a page, bytes).
fn text_answer(description: &str, media: &str) -> Value {
    let schema = if media == "application/octet-stream" {
        json!({ "type": "string", "contentMediaType": media })
    } else {
        json!({ "type": "string" })
    };
    json!({ "description": description, "content": { media: { "schema": schema } } })
}

/// A parameter `name` in `place` (`path`, `query`, `header`).
fn param(place: &str, name: &str, schema: Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": place,
        "required": place == "path",
        "description": description,
        "schema": schema,
    })
}
