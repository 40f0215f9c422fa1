//! Paths: `/v1/requests` and what is done to one request, with the links from creating a
//! request to reading, approving, denying, cancelling it and fetching its certificate.

use serde_json::{Value, json};

use super::schemas::request_id;
use super::{Auth, answers, json_answer, op, param, text_answer, with_body, with_params};

/// The `{id}` of the path.
fn id() -> Value {
    param("path", "id", request_id(), "the request's id")
}

/// A link to `operation` on the request `id` names.
fn link(operation: &str, id: &str, description: &str) -> Value {
    json!({
        "operationId": operation,
        "parameters": { "id": id },
        "description": description,
    })
}

/// Links from an answer carrying a request (`$response.body#/id`).
fn request_links(onwards: &[(&str, &str, &str)]) -> Value {
    onwards
        .iter()
        .map(|(name, operation, what)| {
            (
                (*name).to_owned(),
                link(operation, "$response.body#/id", what),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The request as it is now (200), with links onwards.
fn request_answer(description: &str, onwards: &[(&str, &str, &str)]) -> Value {
    let mut answer = json_answer(description, "Request");
    answer["links"] = request_links(onwards);
    answer
}

const GET: (&str, &str, &str) = ("GetRequest", "request_get", "read the request");
const APPROVE: (&str, &str, &str) = ("ApproveRequest", "request_approve", "approve it");
const DENY: (&str, &str, &str) = ("DenyRequest", "request_deny", "deny it");
const CANCEL: (&str, &str, &str) = ("CancelRequest", "request_cancel", "cancel it");
const FETCH: (&str, &str, &str) = ("GetCertificate", "certificate_get", "fetch its certificate");
const DONE: (&str, &str, &str) = ("DoneRequest", "request_done", "end its certificate");

fn create() -> Value {
    let created = op(
        "requests_create",
        "Ask for a role's certificate",
        "Creates a pending request (201, `Location` names it). With `Idempotency-Key`, a \
         retry with the same body within 24 hours gets the request that key made (201, \
         `Idempotent-Replayed: true`, nothing created); another body with the key is 422. \
         An unknown role, a key not among the requester's, a `ttl` over the role's \
         `max_ttl` are 400 `invalid_request`.",
        Auth::Bearer,
    );
    let created = with_params(
        created,
        vec![param(
            "header",
            "Idempotency-Key",
            json!({ "type": "string", "pattern": "^[!-~]{1,255}$" }),
            "1-255 visible ASCII characters (e.g. a UUID), per user",
        )],
    );
    let mut answer = request_answer(
        "the request (made now, or by an earlier call with the same key)",
        &[GET, APPROVE, DENY, CANCEL, FETCH, DONE],
    );
    answer["headers"] = json!({
        "Location": { "required": true, "description": "`/v1/requests/{id}`",
            "schema": { "type": "string", "pattern": "^/v1/requests/r-[a-z2-7]{12}$" } },
        "Idempotent-Replayed": { "description": "`true` when the key's request is answered again",
            "schema": { "type": "string", "const": "true" } },
    });
    answers(
        with_body(created, "CreateRequest", true),
        json!({ "201": answer }),
        &[400, 413, 415, 422],
    )
}

fn list() -> Value {
    let statuses: Vec<&str> = crate::service::Status::ALL
        .iter()
        .map(|s| s.as_str())
        .chain([""])
        .collect();
    let listed = op(
        "requests_list",
        "List requests",
        "The caller's own requests and those they may approve (admins: all), newest first. \
         When more follow, `next` is the id to pass as `after`; `after` must name a request \
         the caller can see (else 404).",
        Auth::Bearer,
    );
    let listed = with_params(
        listed,
        vec![
            param(
                "query",
                "status",
                json!({ "type": "string", "enum": statuses }),
                "only requests with this status (empty: all)",
            ),
            param(
                "query",
                "limit",
                json!({ "type": "integer", "minimum": 1, "maximum": crate::service::LIST_LIMIT }),
                "most requests on the page (default and most: 10000)",
            ),
            param(
                "query",
                "after",
                json!({ "type": "string", "pattern": "^(?:r-[a-z2-7]{12})?$" }),
                "the `next` of the previous page (empty: from the start)",
            ),
        ],
    );
    answers(
        listed,
        json!({ "200": json_answer("one page of requests", "RequestList") }),
        &[400, 404],
    )
}

/// `POST /v1/requests/{id}/VERB` with a body of schema `body` (`required` or not).
fn decide(id_: &str, summary: &str, description: &str, body: (&str, bool)) -> Value {
    let decided = with_params(op(id_, summary, description, Auth::Bearer), vec![id()]);
    answers(
        with_body(decided, body.0, body.1),
        json!({ "200": request_answer("the request as it is now", &[GET, FETCH, DONE]) }),
        &[400, 404, 409, 413, 415],
    )
}

/// The paths of this file.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    let get = with_params(
        op(
            "request_get",
            "Read a request",
            "Its requester, its possible approvers and admins may read it; 404 for anyone \
             else.",
            Auth::Bearer,
        ),
        vec![id()],
    );
    let get = answers(
        get,
        json!({ "200": request_answer("the request", &[APPROVE, FETCH]) }),
        &[400, 404],
    );
    let approve = decide(
        "request_approve",
        "Approve a request",
        "Signs the certificate when it is the last approval needed. With `version`, 409 \
         `request_changed` if the request changed since it was reviewed. With a session, \
         401 `reauth_required` unless its sign-in is within `approval_max_auth_age`.",
        ("ApproveRequest", false),
    );
    let deny = decide(
        "request_deny",
        "Deny a request",
        "By someone who could approve it; a reason is required.",
        ("DenyRequest", true),
    );
    let cancel = decide(
        "request_cancel",
        "Cancel a request",
        "By its requester, while it is pending.",
        ("CancelRequest", false),
    );
    let done = decide(
        "request_done",
        "End a certificate early",
        "The requester gives back the certificate of their request (it is revoked).",
        ("DoneRequest", false),
    );
    let certificate = with_params(
        op(
            "certificate_get",
            "Fetch the certificate",
            "The certificate line of an issued request, for its requester; 409 `not_issued` \
             when none was issued.",
            Auth::Bearer,
        ),
        vec![id()],
    );
    let certificate = answers(
        certificate,
        json!({ "200": text_answer("the OpenSSH certificate line and a newline", "text/plain") }),
        &[400, 404, 409],
    );
    vec![
        ("/v1/requests", json!({ "post": create(), "get": list() })),
        ("/v1/requests/{id}", json!({ "get": get })),
        ("/v1/requests/{id}/approve", json!({ "post": approve })),
        ("/v1/requests/{id}/deny", json!({ "post": deny })),
        ("/v1/requests/{id}/cancel", json!({ "post": cancel })),
        (
            "/v1/requests/{id}/certificate",
            json!({ "get": certificate }),
        ),
        ("/v1/requests/{id}/done", json!({ "post": done })),
    ]
}
