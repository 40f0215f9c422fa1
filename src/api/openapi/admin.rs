//! Paths: revocation, users, the audit log, sessions and SSH keys.

use serde_json::{Map, Value, json};

use super::schemas::{FINGERPRINT, name, request_id, serial};
use super::{Auth, answers, json_answer, op, param, with_body, with_params};
use crate::service::{CHALLENGE_LIFETIME, KEY_NAMESPACE};

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn list_of(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

/// The answer schemas of this file's paths (`components/schemas`).
pub(super) fn schemas() -> Map<String, Value> {
    let key = object(
        &[
            "user",
            "fingerprint",
            "public_key",
            "source",
            "registered_at",
        ],
        json!({
            "user": name(),
            "fingerprint": { "type": "string", "pattern": FINGERPRINT },
            "public_key": { "type": "string" },
            "source": { "type": "string", "enum": ["config", "registered"] },
            "registered_at": { "oneOf": [time(), { "type": "null" }] },
        }),
    );
    let all = [
        (
            "CertificateRevoked",
            object(&["revoked"], json!({ "revoked": list_of(serial()) })),
        ),
        (
            "Relisted",
            object(
                &["serial", "host", "known", "valid_before", "krl_version"],
                json!({
                    "serial": serial(),
                    "host": { "type": "boolean" },
                    "known": { "type": "boolean" },
                    "valid_before": time(),
                    "krl_version": { "type": "integer", "minimum": 1 },
                }),
            ),
        ),
        (
            "UserRevoked",
            object(
                &[
                    "revoked",
                    "cancelled",
                    "disabled",
                    "tokens_revoked",
                    "already_disabled",
                ],
                json!({
                    "revoked": list_of(serial()),
                    "cancelled": list_of(request_id()),
                    "disabled": { "type": "boolean", "const": true },
                    "tokens_revoked": { "type": "integer", "minimum": 0 },
                    "already_disabled": { "type": "boolean" },
                }),
            ),
        ),
        (
            "UserEnabled",
            object(
                &["user", "disabled"],
                json!({
                    "user": name(), "disabled": { "type": "boolean", "const": false },
                }),
            ),
        ),
        (
            "AuditEvent",
            object(
                &[
                    "seq",
                    "at",
                    "actor",
                    "action",
                    "request_id",
                    "serial",
                    "detail",
                    "prev_hash",
                    "hash",
                ],
                json!({
                    "seq": { "type": "integer", "minimum": 1 },
                    "at": time(),
                    "actor": { "type": "string" },
                    "action": { "type": "string", "examples": ["request.created"] },
                    "request_id": { "type": ["string", "null"] },
                    "serial": { "type": ["string", "null"] },
                    "detail": { "type": "object" },
                    "prev_hash": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                    "hash": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                }),
            ),
        ),
        (
            "AuditEvents",
            object(
                &["events"],
                json!({
                    "events": list_of(super::schema("AuditEvent")),
                }),
            ),
        ),
        (
            "AuditVerified",
            object(
                &["ok", "events", "head"],
                json!({
                    "ok": { "type": "boolean", "const": true },
                    "events": { "type": "integer", "minimum": 0 },
                    "head": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                }),
            ),
        ),
        (
            "Session",
            object(
                &["id", "user", "via", "created_at", "expires_at"],
                json!({
                    "id": { "type": "string" }, "user": name(),
                    "via": { "type": "string", "examples": ["oidc", "oidc-device", "oidc-web"] },
                    "created_at": time(), "expires_at": time(),
                }),
            ),
        ),
        (
            "SessionList",
            object(
                &["sessions"],
                json!({
                    "sessions": list_of(super::schema("Session")),
                }),
            ),
        ),
        (
            "SessionRevoked",
            object(
                &["revoked", "user"],
                json!({
                    "revoked": { "type": "string" }, "user": name(),
                }),
            ),
        ),
        ("Key", key),
        (
            "KeyList",
            object(&["keys"], json!({ "keys": list_of(super::schema("Key")) })),
        ),
        (
            "KeyRegistered",
            object(
                &["key", "registered"],
                json!({
                    "key": super::schema("Key"), "registered": { "type": "boolean" },
                }),
            ),
        ),
        (
            "KeyRemoved",
            object(
                &["removed", "cancelled"],
                json!({
                    "removed": super::schema("Key"), "cancelled": list_of(request_id()),
                }),
            ),
        ),
        (
            "KeyChallenge",
            object(
                &["challenge", "namespace", "expires_in"],
                json!({
                    "challenge": { "type": "string" },
                    "namespace": { "type": "string", "const": KEY_NAMESPACE },
                    "expires_in": { "type": "integer", "const": CHALLENGE_LIFETIME },
                }),
            ),
        ),
    ];
    all.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()
}

/// An admin's `POST` on the thing `path_param` names, with a body.
fn admin_post(id: &str, summary: &str, description: &str, path_param: Value) -> Value {
    with_params(op(id, summary, description, Auth::Bearer), vec![path_param])
}

fn revocation() -> Vec<(&'static str, Value)> {
    let serial_param = param("path", "serial", serial(), "the certificate's serial");
    let user_param = param("path", "name", name(), "the user's name");
    let cert = admin_post(
        "certificate_revoke",
        "Revoke a certificate (admins)",
        "Puts the certificate in the KRL; 409 `already_revoked` if it is.",
        serial_param,
    );
    let user = admin_post(
        "user_revoke",
        "Offboard a user (admins)",
        "In one transaction: disables the user, revokes their tokens and every active \
         certificate, cancels every pending request. 404 for a user neither in the config \
         nor in the database; an admin cannot revoke themselves (403 `forbidden`).",
        user_param.clone(),
    );
    let enable = admin_post(
        "user_enable",
        "Enable a disabled user (admins)",
        "Lifts the disabled mark; 409 `not_disabled` if the user is not disabled.",
        user_param,
    );
    let errors = [400, 404, 409, 413, 415];
    vec![
        (
            "/v1/certificates/{serial}/revoke",
            json!({ "post": answers(
            with_body(cert, "Revoke", true),
            json!({ "200": json_answer("the serials revoked", "CertificateRevoked") }), &errors) }),
        ),
        (
            "/v1/users/{name}/revoke",
            json!({ "post": answers(
            with_body(user, "Revoke", true),
            json!({ "200": json_answer("what was ended", "UserRevoked") }), &errors) }),
        ),
        (
            "/v1/users/{name}/enable",
            json!({ "post": answers(
            with_body(enable, "EnableUser", false),
            json!({ "200": json_answer("the user, enabled", "UserEnabled") }), &errors) }),
        ),
    ]
}

fn audit() -> Vec<(&'static str, Value)> {
    let list = with_params(
        op(
            "audit_list",
            "Read the audit log (admins)",
            "Events in sequence order. `serial` gives a certificate's whole story.",
            Auth::Bearer,
        ),
        vec![
            param(
                "query",
                "serial",
                serial(),
                "a certificate's events and its request's",
            ),
            param("query", "request", request_id(), "a request's events"),
            param(
                "query",
                "since",
                time(),
                "events recorded at or after (RFC 3339)",
            ),
            param(
                "query",
                "after_seq",
                json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX }),
                "events after this sequence number (paging)",
            ),
            param(
                "query",
                "limit",
                json!({ "type": "integer", "minimum": 1, "maximum": crate::api::audit::MAX_LIMIT }),
                "most events (default 100)",
            ),
        ],
    );
    let verify = op(
        "audit_verify",
        "Verify the audit chain (admins)",
        "Recomputes the hash chain; 500 `audit_broken` names the first bad event.",
        Auth::Bearer,
    );
    vec![
        (
            "/v1/audit",
            json!({ "get": answers(list,
            json!({ "200": json_answer("the events", "AuditEvents") }), &[400]) }),
        ),
        (
            "/v1/audit/verify",
            json!({ "get": answers(verify,
            json!({ "200": json_answer("the chain holds", "AuditVerified") }), &[]) }),
        ),
    ]
}

fn sessions() -> Vec<(&'static str, Value)> {
    let list = with_params(
        op(
            "sessions_list",
            "List live sessions (admins)",
            "The live sessions from `countersign login` (never a token), oldest first.",
            Auth::Bearer,
        ),
        vec![param("query", "user", name(), "only this user's")],
    );
    let revoke = with_params(
        op(
            "session_revoke",
            "End a session (admins)",
            "Ends a live session for good; 404 if no such session is live.",
            Auth::Bearer,
        ),
        vec![param(
            "path",
            "id",
            json!({ "type": "string", "pattern": "^[0-9a-fA-F]{1,64}$" }),
            "the session's id",
        )],
    );
    vec![
        (
            "/v1/sessions",
            json!({ "get": answers(list,
            json!({ "200": json_answer("the live sessions", "SessionList") }), &[400]) }),
        ),
        (
            "/v1/sessions/{id}/revoke",
            json!({ "post": answers(revoke,
            json!({ "200": json_answer("the session ended", "SessionRevoked") }), &[404]) }),
        ),
    ]
}

fn keys() -> Vec<(&'static str, Value)> {
    let not_bots = "Not with a service account's token (403 `scope_not_allowed`).";
    let list = with_params(
        op(
            "keys_list",
            "List SSH keys",
            &format!(
                "The caller's keys, from the config and registered; another person's \
                 (`user`) or everyone's (`all`) for admins only. {not_bots}"
            ),
            Auth::Bearer,
        ),
        // Two plain parameters: an object parameter (`style: form, explode: true`) said
        // "not both" in its schema, but Schemathesis could not serialize some of its
        // invalid cases, and sent a valid query expecting a refusal (found in CI).
        vec![
            param(
                "query",
                "user",
                name(),
                "this person's keys (admins; not with `all=true`: 400)",
            ),
            param(
                "query",
                "all",
                json!({ "type": "boolean" }),
                "`true`: everyone's keys (admins; not with `user`: 400). Neither \
                 parameter: the caller's own",
            ),
        ],
    );
    let register = op(
        "keys_register",
        "Register an SSH key",
        &format!(
            "With a signature proving the key over a challenge from \
             `POST /v1/keys/challenge`: 201 when registered now, 200 with \
             `\"registered\":false` when it already was the caller's. 400 \
             `key_proof_failed` when the proof does not hold. With a session, 401 \
             `reauth_required` unless its sign-in is within `approval_max_auth_age` (a \
             registered key approves at the SSH front door). {not_bots}"
        ),
        Auth::Bearer,
    );
    let challenge = op(
        "keys_challenge",
        "Get a challenge to sign with a key",
        &format!(
            "Good once, for 5 minutes, for this caller and this key. With a session, 401 \
             `reauth_required` as for registering. {not_bots}"
        ),
        Auth::Bearer,
    );
    let remove = op(
        "keys_remove",
        "Remove a registered SSH key",
        &format!(
            "The caller's own registered key, or anyone's for an admin (404 otherwise); \
             the owner's pending requests for it are cancelled. {not_bots}"
        ),
        Auth::Bearer,
    );
    let body_errors = [400, 409, 413, 415];
    let registered = json_answer("the key and whether it is new", "KeyRegistered");
    vec![
        (
            "/v1/keys",
            json!({
                "get": answers(
                    list,
                    json!({ "200": json_answer("the keys", "KeyList") }),
                    &[400, 404],
                ),
                "post": answers(with_body(register, "RegisterKey", true),
                    json!({ "201": registered.clone(), "200": registered }), &body_errors),
            }),
        ),
        (
            "/v1/keys/challenge",
            json!({ "post": answers(
            with_body(challenge, "KeyChallengeBody", true),
            json!({ "200": json_answer("the challenge to sign", "KeyChallenge") }), &body_errors) }),
        ),
        (
            "/v1/keys/remove",
            json!({ "post": answers(
            with_body(remove, "RemoveKey", true),
            json!({ "200": json_answer("the key removed", "KeyRemoved") }), &[400, 404, 413, 415]) }),
        ),
    ]
}

/// The paths of this file.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    [revocation(), audit(), sessions(), keys()].concat()
}
