//! Paths and schemas of host certificates (`[host_ca]`): join tokens, enrollment,
//! renewal, listing, revocation, the host CA key and the host KRL. Every one answers 404
//! `not_found` when the server has no `[host_ca]`.

use serde_json::{Map, Value, json};

use super::schemas::{FINGERPRINT, closed, duration, object, or_null, serial, text, time};
use super::{Auth, answers, json_answer, op, param, schema, text_answer, with_body, with_params};
use crate::names::MAX_HOST_PRINCIPALS;
use crate::service::{HOST_CHALLENGE_LIFETIME, HOST_RENEW_NAMESPACE};

/// One DNS label: letters, digits, `-` inside.
const LABEL: &str = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";

/// A dotted-quad IPv4 address as Rust reads one (no leading zeros).
const IPV4: &str = "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}\
    (?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

/// A host principal, as `HostPrincipal::parse` takes it: a lower-case DNS name of at
/// most 253 characters, an IPv4 address, or an IPv6 address. (A name of digits and dots
/// alone reads as an address: no `allowed_principals` pattern takes one, so it is 403.)
fn principal() -> Value {
    json!({
        "anyOf": [
            {
                "type": "string",
                "maxLength": 253,
                "pattern": format!("^{LABEL}(?:\\.{LABEL})*$"),
            },
            { "type": "string", "pattern": format!("^{IPV4}$") },
            { "type": "string", "format": "ipv6" },
        ],
        "description": "a lower-case DNS name (`web1`, `web1.example.com`) or an IP \
            address; no wildcards; inside `[host_ca] allowed_principals` (403 \
            `principal_not_allowed` otherwise: never a name of digits and dots alone)",
        "examples": ["web1.example.com"],
    })
}

fn principals() -> Value {
    json!({ "type": "array", "items": principal(), "minItems": 1,
        "maxItems": MAX_HOST_PRINCIPALS, "uniqueItems": true })
}

fn bounded_text(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 16384, "description": description })
}

/// The answer and body schemas of this file (`components/schemas`).
pub(super) fn schemas() -> Map<String, Value> {
    let optional = |s: Value| or_null(s);
    let view = object(
        &[
            "serial",
            "status",
            "principals",
            "key_fingerprint",
            "key_id",
            "valid_after",
            "valid_before",
            "issued_at",
            "certificate",
        ],
        json!({
            "serial": serial(),
            "status": { "type": "string",
                "enum": ["active", "superseded", "expired", "revoked"] },
            "principals": principals(),
            "key_fingerprint": { "type": "string", "pattern": FINGERPRINT },
            "key_id": { "type": "string" },
            "valid_after": time(),
            "valid_before": time(),
            "issued_at": time(),
            "token_id": { "type": "string" },
            "renewed_from": serial(),
            "superseded_by": serial(),
            "revoked_at": time(),
            "revoked_by": { "type": "string" },
            "revoke_reason": { "type": "string" },
            "certificate": { "type": "string",
                "description": "the host certificate, one OpenSSH line" },
            "also_revoked": { "type": "array", "items": serial(),
                "description": "revoking: the other certificates of the same host key" },
        }),
    );
    let all = [
        ("HostCertificate", view),
        (
            "HostCertificateList",
            object(
                &["certificates"],
                json!({ "certificates": { "type": "array",
                    "items": schema("HostCertificate") } }),
            ),
        ),
        (
            "HostJoinToken",
            object(
                &["token", "id", "principals", "expires_at"],
                json!({
                    "token": { "type": "string", "pattern": "^csh_[0-9a-f]{64}$",
                        "description": "the secret, shown once" },
                    "id": { "type": "string", "pattern": "^ht-[0-9a-f]{16}$" },
                    "principals": principals(),
                    "expires_at": time(),
                }),
            ),
        ),
        (
            "HostChallenge",
            object(
                &["challenge", "namespace", "expires_in"],
                json!({
                    "challenge": { "type": "string" },
                    "namespace": { "type": "string", "const": HOST_RENEW_NAMESPACE },
                    "expires_in": { "type": "integer", "const": HOST_CHALLENGE_LIFETIME },
                }),
            ),
        ),
        (
            "HostTokenBody",
            closed(
                &["principals"],
                json!({ "principals": principals(), "ttl": optional(duration()) }),
            ),
        ),
        (
            "HostEnrollBody",
            closed(
                &["token", "public_key"],
                json!({
                    "token": bounded_text("the join token (`csh_...`)"),
                    "public_key": super::bodies::public_key(),
                    "ttl": optional(duration()),
                }),
            ),
        ),
        (
            "HostChallengeBody",
            closed(
                &["public_key"],
                json!({ "public_key": super::bodies::public_key() }),
            ),
        ),
        (
            "HostRenewBody",
            closed(
                &["certificate", "challenge", "signature"],
                json!({
                    "certificate": bounded_text("the host's current certificate line"),
                    "challenge": bounded_text("exactly as the challenge endpoint gave it"),
                    "signature": bounded_text("armored SSHSIG of the host key over the \
                        challenge (`ssh-keygen -Y sign -n countersign-host-renew`)"),
                    "ttl": optional(duration()),
                }),
            ),
        ),
        (
            "HostRevokeBody",
            closed(&["reason"], json!({ "reason": text() })),
        ),
    ];
    all.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()
}

/// The paths of this file.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    let serial_param = || param("path", "serial", serial(), "the host certificate's serial");
    let created = |what: &str| json!({ "201": json_answer(what, "HostCertificate") });
    let token = op(
        "host_token_create",
        "Make a host join token (admins)",
        "A single-use token for exactly `principals` (each inside `[host_ca] \
         allowed_principals`, else 403 `principal_not_allowed`), living `ttl` (default 15m, \
         at most 7d). Stored hashed; shown once.",
        Auth::Bearer,
    );
    let enroll = op(
        "host_enroll",
        "Enroll a host",
        "Uses up the join token and answers a host certificate for `public_key` and exactly \
         the token's principals (`ttl` default `[host_ca] cert_ttl`, at most `max_ttl`). 401 \
         `host_token_invalid` for an unknown, used or expired token.",
        Auth::None,
    );
    let challenge = op(
        "host_renew_challenge",
        "A challenge to renew a host certificate",
        "The text the host signs with its host key (SSHSIG, namespace \
         `countersign-host-renew`) for `POST /v1/hosts/renew`; good for 300 s.",
        Auth::None,
    );
    let renew = op(
        "host_renew",
        "Renew a host certificate",
        "With proof of the host key over a challenge and a current, unrevoked certificate \
         of ours for it: a new certificate, same principals, new serial. 400 \
         `host_proof_failed`, 403 `host_certificate_refused` or `principal_not_allowed`.",
        Auth::None,
    );
    let list = with_params(
        op(
            "host_list",
            "List host certificates (admins)",
            "Valid ones, newest first; `expiring` keeps those ending within it, `all` shows \
             expired, revoked and superseded ones too (with `expiring`: every one ending \
             within it); at most 1000.",
            Auth::Bearer,
        ),
        vec![
            param(
                "query",
                "expiring",
                duration(),
                "only those ending within this",
            ),
            param("query", "all", json!({ "type": "boolean" }), "every one"),
        ],
    );
    let one = with_params(
        op(
            "host_get",
            "One host certificate (admins)",
            "404 if no host certificate has this serial.",
            Auth::Bearer,
        ),
        vec![serial_param()],
    );
    let revoke = with_params(
        op(
            "host_revoke",
            "Revoke a host certificate (admins)",
            "Lists it in `GET /v1/krl/host` until it expires, with every other unexpired \
             certificate of the same host key (`also_revoked`); 409 `already_revoked`.",
            Auth::Bearer,
        ),
        vec![serial_param()],
    );
    let ca = op(
        "host_ca_pub",
        "The host CA public key",
        "The key for `@cert-authority` lines in clients' `known_hosts`.",
        Auth::None,
    );
    let krl = with_params(
        op(
            "host_krl_get",
            "The host KRL",
            "The OpenSSH KRL of revoked host certificates (for ssh's `RevokedHostKeys`). \
             With `If-None-Match` naming the current `ETag`: 304.",
            Auth::None,
        ),
        vec![param(
            "header",
            "If-None-Match",
            json!({ "type": "string" }),
            "`ETag`s (comma-separated) the client has",
        )],
    );
    let krl_sig = op(
        "host_krl_sig_get",
        "The host CA's signature over the host KRL",
        "Armored SSHSIG (namespace `countersign-host-krl`) over the bytes `GET \
         /v1/krl/host` serves now.",
        Auth::None,
    );
    let mut krl_ok = text_answer("the host KRL (binary)", "application/octet-stream");
    krl_ok["headers"] = super::misc::krl_headers();
    let mut sig_ok = text_answer("the armored signature", "text/plain");
    sig_ok["headers"] = super::misc::krl_headers();
    let not_modified = json!({ "description": "the KRL named in `If-None-Match` is current",
        "headers": super::misc::krl_headers() });
    let body_errors = [400, 404, 413, 415];
    vec![
        (
            "/v1/hosts/tokens",
            json!({ "post": answers(with_body(token, "HostTokenBody", true),
                json!({ "201": json_answer("the join token", "HostJoinToken") }),
                &body_errors) }),
        ),
        (
            "/v1/hosts/enroll",
            json!({ "post": answers(with_body(enroll, "HostEnrollBody", true),
                created("the host certificate"), &[400, 401, 403, 404, 413, 415, 429]) }),
        ),
        (
            "/v1/hosts/renew/challenge",
            json!({ "post": answers(with_body(challenge, "HostChallengeBody", true),
                json!({ "200": json_answer("the challenge", "HostChallenge") }),
                &body_errors) }),
        ),
        (
            "/v1/hosts/renew",
            json!({ "post": answers(with_body(renew, "HostRenewBody", true),
                created("the new host certificate"), &[400, 403, 404, 413, 415]) }),
        ),
        (
            "/v1/hosts/certificates",
            json!({ "get": answers(list,
                json!({ "200": json_answer("the certificates", "HostCertificateList") }),
                &[400, 404]) }),
        ),
        (
            "/v1/hosts/certificates/{serial}",
            json!({ "get": answers(one,
                json!({ "200": json_answer("the certificate", "HostCertificate") }),
                &[400, 404]) }),
        ),
        (
            "/v1/hosts/certificates/{serial}/revoke",
            json!({ "post": answers(with_body(revoke, "HostRevokeBody", true),
                json!({ "200": json_answer("the certificate, revoked", "HostCertificate") }),
                &[400, 404, 409, 413, 415]) }),
        ),
        (
            "/v1/host_ca.pub",
            json!({ "get": answers(ca,
                json!({ "200": text_answer("`TYPE BASE64 COMMENT` and a newline", "text/plain") }),
                &[404]) }),
        ),
        (
            "/v1/krl/host",
            json!({ "get": answers(krl, json!({ "200": krl_ok, "304": not_modified }), &[404]) }),
        ),
        (
            "/v1/krl/host.sig",
            json!({ "get": answers(krl_sig, json!({ "200": sig_ok }), &[404]) }),
        ),
    ]
}
