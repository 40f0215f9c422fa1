//! Paths: health, readiness, the CA key, whoami, the KRL and this document.

use serde_json::{Value, json};

use super::{Auth, answers, json_answer, op, param, text_answer, with_body};

fn status_answer(value: &str) -> Value {
    json!({
        "description": format!("`{{\"status\":\"{value}\"}}`"),
        "content": { "application/json": { "schema": {
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "type": "string", "const": value } },
        } } },
    })
}

pub(super) fn krl_headers() -> Value {
    json!({
        "ETag": { "required": true, "schema": { "type": "string" },
            "description": "changes with the KRL (at least every minute)" },
        "X-KRL-Version": { "required": true, "schema": { "type": "string", "pattern": "^[0-9]+$" },
            "description": "the KRL's version: only grows" },
    })
}

/// The paths of this file.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    let health = op(
        "health_get",
        "Liveness",
        "`{\"status\":\"ok\"}` once the database answers a read within 2 s; 503 \
         `unavailable` when it does not, or when 4 health checks already wait for it. Not \
         subject to `max_concurrent_requests`.",
        Auth::None,
    );
    let ready = op(
        "ready_get",
        "Readiness, for a load balancer",
        "`{\"status\":\"ready\"}` when the database answers a read within 2 s and this \
         server runs the newest policy the database records; else 503 `unavailable` (the \
         database) or `not_ready` (the message says why).",
        Auth::None,
    );
    let ca_pub = op(
        "ca_pub_get",
        "The CA public key",
        "The line for sshd's `TrustedUserCAKeys`.",
        Auth::None,
    );
    let whoami = op(
        "whoami_get",
        "Who the caller is",
        "The caller's user, groups, and the roles they may request, approve, break the glass \
         for and review; with a service account's token also its `scopes` (and \
         `can_approve`, `can_break_glass`, `can_review` are empty).",
        Auth::Bearer,
    );
    let krl = op(
        "krl_get",
        "The Key Revocation List",
        "The OpenSSH KRL of every revoked certificate until `[ca] backdate` after its \
         expiry, signed again at least every minute. With `If-None-Match` naming the \
         current `ETag` (or `*`): 304 without a body.",
        Auth::None,
    );
    let krl = super::with_params(
        krl,
        vec![param(
            "header",
            "If-None-Match",
            json!({ "type": "string" }),
            "`ETag`s (comma-separated) the client has",
        )],
    );
    let krl_sig = op(
        "krl_sig_get",
        "The CA's signature over the KRL",
        "Armored SSHSIG (namespace `countersign-krl`) over the bytes `GET /v1/krl` serves \
         now, with the same `ETag` and `X-KRL-Version`.",
        Auth::None,
    );
    let forgotten = op(
        "krl_forgotten",
        "List again a revocation the CA forgot (admins)",
        "For a serial a server's `krl sync` kept because the CA's KRL dropped it before its \
         certificate ended (a data folder restored from an older copy): a certificate the \
         CA has is revoked again as usual (`known`: true); one it has none of is listed in \
         the KRL (the host KRL with `host`) until `valid_before`, at most 367 days ahead \
         (a later end moves an earlier or lapsed listing). 409 `already_revoked` if it is \
         listed until then or later already.",
        Auth::Bearer,
    );
    let openapi = op(
        "openapi_get",
        "This document",
        "The OpenAPI 3.1 document of the `/v1` API.",
        Auth::None,
    );
    let mut krl_ok = text_answer("the KRL (binary)", "application/octet-stream");
    krl_ok["headers"] = krl_headers();
    let mut krl_sig_ok = text_answer("the armored signature", "text/plain");
    krl_sig_ok["headers"] = krl_headers();
    let not_modified = json!({ "description": "the KRL named in `If-None-Match` is current",
        "headers": krl_headers() });
    let document = json!({
        "description": "the document",
        "content": { "application/json": { "schema": { "type": "object" } } },
    });
    vec![
        (
            "/v1/health",
            json!({ "get": answers(health, json!({ "200": status_answer("ok") }), &[]) }),
        ),
        (
            "/v1/ready",
            json!({ "get": answers(ready, json!({ "200": status_answer("ready") }), &[]) }),
        ),
        (
            "/v1/ca.pub",
            json!({ "get": answers(ca_pub,
            json!({ "200": text_answer("`TYPE BASE64 COMMENT` and a newline", "text/plain") }), &[]) }),
        ),
        (
            "/v1/whoami",
            json!({ "get": answers(whoami,
            json!({ "200": json_answer("who the caller is", "WhoAmI") }), &[]) }),
        ),
        (
            "/v1/krl",
            json!({ "get": answers(krl,
            json!({ "200": krl_ok, "304": not_modified }), &[]) }),
        ),
        (
            "/v1/krl.sig",
            json!({ "get": answers(krl_sig, json!({ "200": krl_sig_ok }), &[]) }),
        ),
        (
            "/v1/krl/forgotten",
            json!({ "post": answers(
            with_body(forgotten, "KrlForgotten", true),
            json!({ "200": json_answer("what was listed", "Relisted") }), &[400, 404, 409, 413, 415]) }),
        ),
        (
            "/v1/openapi.json",
            json!({ "get": answers(openapi, json!({ "200": document }), &[]) }),
        ),
    ]
}
